"""AttrDict: a mixin that gives a dict-like synced collection attribute access to its keys."""

from __future__ import annotations

from .synced_collection import SYNCED_ATTRIBUTES


class AttrDict:
    """Redirect attribute access to items: ``d.foo`` is ``d["foo"]``.

    A mixin for dict-like collections (``class JSONAttrDict(JSONDict, AttrDict)``).
    Names in ``_PROTECTED_KEYS`` (the collection's own attributes) and dunder names stay
    attributes; every other name is a key.  Classes that add attributes extend
    ``_PROTECTED_KEYS``, or setting them would store keys instead.

    Examples
    --------
    >>> assert doc.foo == doc["foo"]  # doctest: +SKIP
    """

    _PROTECTED_KEYS: frozenset = SYNCED_ATTRIBUTES

    def __getattr__(self, name):
        # only called for names that are not attributes
        if name.startswith("__") or name in self._PROTECTED_KEYS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        try:
            return self.__getitem__(name)
        except KeyError as error:
            raise AttributeError(error) from None

    def __setattr__(self, name, value):
        if name in self._PROTECTED_KEYS or name.startswith("__"):
            super().__setattr__(name, value)
        else:
            self.__setitem__(name, value)

    def __delattr__(self, name):
        if name in self._PROTECTED_KEYS or name.startswith("__"):
            super().__delattr__(name)
        else:
            self.__delitem__(name)
