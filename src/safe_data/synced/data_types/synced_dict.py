"""SyncedDict: the MutableMapping data type of synced collections."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from ..utils import AbstractTypeResolver
from .synced_collection import _SCALARS, SyncedCollection, _plain, _sc_resolver

_MISSING = object()

_mapping_resolver = AbstractTypeResolver({"MAPPING": lambda obj: isinstance(obj, Mapping)})


def _require_mapping(data) -> None:
    if _mapping_resolver.get_type(data) != "MAPPING":
        raise ValueError(f"Unsupported type: {type(data)}. The data must be a mapping or None.")


class SyncedDict(SyncedCollection, MutableMapping):
    r"""A dict-like synced collection (the :class:`~collections.abc.MutableMapping` API).

    It is not a ``dict`` subclass: call it (``d()``) for a plain ``dict`` copy.  Nested
    mappings and sequences are stored as synced collections of the same backend.
    Overwritten and deleted values are journaled before they are discarded.

    Parameters
    ----------
    data : Mapping, optional
        Initial data (default: empty).
    \*args, \*\*kwargs
        Passed on to the other base classes (the backend's resource, ``parent``,
        ``journal``).

    Warning
    -------
    Copying one (even deep-copying) copies a handle on the resource, not the data: use
    ``d()`` for a copy of the data.
    """

    # _validate=False is passed by _from_base: nested data was validated with its root
    def __init__(self, data=None, _validate=True, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if data is None:
            self._data = {}
            return
        if _validate:
            self._validate(data)
        with self._suspend_sync:
            self._data = {key: self._from_base(value, parent=self) for key, value in data.items()}

    @classmethod
    def is_base_type(cls, data):
        """Whether ``data`` is a :class:`~collections.abc.Mapping`."""
        return _mapping_resolver.get_type(data) == "MAPPING"

    def _to_base(self):
        """The data as a plain ``dict`` (nested collections converted too), no load."""
        return {key: _plain(value) for key, value in self._data.items()}

    def _key_of(self, child):
        for key, value in self._data.items():
            if value is child:
                return key
        raise LookupError("this nested collection was removed from its parent")

    def _update(self, data=None, _validate=False):
        """Make the data in memory equal to ``data``, in place.

        Unchanged values are left alone and nested collections are updated in place when
        the new value has their type, so references to them stay valid.

        Parameters
        ----------
        data : Mapping, optional
            The new data; None changes nothing.
        _validate : bool
            Whether ``data`` has been validated already (if not, changed values are).
        """
        if data is None:
            return
        _require_mapping(data)
        with self._suspend_sync:
            for key, new in data.items():
                existing = self._data.get(key, _MISSING)
                if existing is new:
                    continue
                if existing is not _MISSING:
                    if _sc_resolver.get_type(existing) == "SYNCEDCOLLECTION":
                        try:
                            existing._update(new, _validate)
                            continue
                        except ValueError:
                            pass  # another type now: replace it below
                    elif type(existing) is type(new) and existing == new:
                        continue
                if not _validate:
                    self._validate({key: new})
                self._data[key] = self._from_base(new, parent=self)
            for key in [key for key in self._data if key not in data]:
                del self._data[key]

    def reset(self, data):
        """Replace the whole contents with ``data`` (what it replaces is journaled).

        Raises
        ------
        ValueError
            If ``data`` is not a mapping.
        """
        _require_mapping(data)
        self._validate(data)
        with self._load_and_save, self._operation_lock:
            self._journal_replaced()
            self._update(data, _validate=True)

    # --- adding and overwriting -------------------------------------------------------------

    def __setitem__(self, key, value):
        self._validate({key: value})
        with self._load_and_save, self._operation_lock:
            old = self._data.get(key, _MISSING)
            # (the scalar tests inline _plain and _from_base: this is the hottest path)
            if old is not _MISSING and old is not value:
                self._journal_discard("set", {key: old if type(old) in _SCALARS else _plain(old)})
            self._data[key] = value if type(value) in _SCALARS else self._from_base(value, parent=self)

    def update(self, other=None, **kwargs):  # noqa: D102
        if other is None:
            other = {}
        elif _mapping_resolver.get_type(other) != "MAPPING":
            other = dict(other)
        new = {**other, **kwargs}
        if not new:
            return
        self._validate(new)
        with self._load_and_save, self._operation_lock:
            data = self._data
            overwritten = {
                key: _plain(data[key]) for key, value in new.items() if key in data and data[key] is not value
            }
            if overwritten:
                self._journal_discard("set", overwritten)
            self._update({**data, **new}, _validate=True)

    def setdefault(self, key, default=None):  # noqa: D102
        self._load()
        if key in self._data:
            return self._data[key]
        self._validate({key: default})
        with self._load_and_save:
            if key not in self._data:
                self._data[key] = self._from_base(default, parent=self)
            return self._data[key]

    # --- deleting ---------------------------------------------------------------------------

    def __delitem__(self, key):
        with self._load_and_save, self._operation_lock:
            old = self._data[key]
            self._journal_discard("del", {key: _plain(old)})
            del self._data[key]

    def pop(self, key, default=None):
        """Remove ``key`` and return its value as plain data; ``default`` if it is absent
        (as in ``synced_collections``, the default default is None, not a KeyError)."""
        self._load()
        if key not in self._data:
            return default
        with self._load_and_save, self._operation_lock:
            old = self._data.get(key, _MISSING)
            if old is _MISSING:
                return default
            old = _plain(old)
            self._journal_discard("del", {key: old})
            del self._data[key]
        return old

    def popitem(self):
        """Remove the last item and return it as ``(key, plain value)``."""
        with self._load_and_save, self._operation_lock:
            if not self._data:
                raise KeyError("popitem(): dictionary is empty")
            key = next(reversed(self._data))
            old = _plain(self._data[key])
            self._journal_discard("del", {key: old})
            del self._data[key]
        return key, old

    def clear(self):  # noqa: D102
        with self._load_and_save, self._operation_lock:  # saves even when empty, as the original
            if self._data:
                self._journal_discard("clear", self._to_base())
                self._data.clear()

    # --- reading ----------------------------------------------------------------------------

    def keys(self):  # noqa: D102
        self._load()
        return self._data.keys()

    def values(self):
        """The values as plain data (a view of a plain copy)."""
        return self().values()

    def items(self):
        """The items with plain values (a view of a plain copy)."""
        return self().items()

    def get(self, key, default=None):  # noqa: D102
        self._load()
        return self._data.get(key, default)
