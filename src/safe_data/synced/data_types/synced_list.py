"""SyncedList: the MutableSequence data type of synced collections."""

from __future__ import annotations

import operator
from collections.abc import MutableSequence, Sequence

from ..numpy_utils import _convert_numpy, _is_atleast_1d_numpy_array, _numpy_cache_blocklist
from ..utils import AbstractTypeResolver
from .synced_collection import SyncedCollection, _plain, _sc_resolver

_sequence_resolver = AbstractTypeResolver(
    {
        "SEQUENCE": lambda obj: (
            (isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)))
            or _is_atleast_1d_numpy_array(obj)
        ),
    },
    cache_blocklist=_numpy_cache_blocklist,
)


def _require_sequence(data) -> None:
    if _sequence_resolver.get_type(data) != "SEQUENCE":
        raise ValueError(f"Unsupported type: {type(data)}. The data must be a non-string sequence or None.")


class SyncedList(SyncedCollection, MutableSequence):
    r"""A list-like synced collection (the :class:`~collections.abc.MutableSequence` API).

    It is not a ``list`` subclass: call it (``l()``) for a plain ``list`` copy.  Nested
    mappings and sequences are stored as synced collections of the same backend.
    Overwritten and deleted items are journaled, by index, before they are discarded.

    Parameters
    ----------
    data : non-string Sequence, optional
        Initial data (default: empty); a NumPy array is converted to a list.
    \*args, \*\*kwargs
        Passed on to the other base classes (the backend's resource, ``parent``,
        ``journal``).

    Warning
    -------
    Copying one (even deep-copying) copies a handle on the resource, not the data: use
    ``l()`` for a copy of the data.
    """

    # _validate=False is passed by _from_base: nested data was validated with its root
    def __init__(self, data=None, _validate=True, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if data is None:
            self._data = []
            return
        if _validate:
            self._validate(data)
        data = _convert_numpy(data)
        with self._suspend_sync:
            self._data = [self._from_base(value, parent=self) for value in data]

    @classmethod
    def is_base_type(cls, data):
        """Whether ``data`` is a non-string sequence (or a NumPy array of 1 or more
        dimensions)."""
        return _sequence_resolver.get_type(data) == "SEQUENCE"

    def _to_base(self):
        """The data as a plain ``list`` (nested collections converted too), no load."""
        return [_plain(value) for value in self._data]

    def _key_of(self, child):
        for index, value in enumerate(self._data):
            if value is child:
                return index
        raise LookupError("this nested collection was removed from its parent")

    def _update(self, data=None, _validate=False):
        """Make the data in memory equal to ``data``, in place.

        Items are compared position by position: unchanged ones are left alone, nested
        collections are updated in place when the new item has their type, the tail is
        cut or extended.

        Parameters
        ----------
        data : non-string Sequence, optional
            The new data; None changes nothing.
        _validate : bool
            Whether ``data`` has been validated already (if not, changed items are).
        """
        if data is None:
            return
        data = _convert_numpy(data)
        _require_sequence(data)
        with self._suspend_sync:
            items = self._data
            for index in range(min(len(items), len(data))):
                existing, new = items[index], data[index]
                if existing is new:
                    continue
                if _sc_resolver.get_type(existing) == "SYNCEDCOLLECTION":
                    try:
                        existing._update(new, _validate)
                        continue
                    except ValueError:
                        pass  # another type now: replace it below
                elif type(existing) is type(new) and existing == new:
                    continue
                if not _validate:
                    self._validate(new)
                items[index] = self._from_base(new, parent=self)
            if len(items) > len(data):
                del items[len(data) :]
            elif len(data) > len(items):
                tail = data[len(items) :]
                if not _validate:
                    self._validate(tail)
                items.extend(self._from_base(value, parent=self) for value in tail)

    def reset(self, data):
        """Replace the whole contents with ``data`` (what it replaces is journaled).

        Raises
        ------
        ValueError
            If ``data`` is not a non-string sequence.
        """
        data = _convert_numpy(data)
        _require_sequence(data)
        self._validate(data)
        with self._load_and_save, self._operation_lock:
            self._journal_replaced()
            self._update(data, _validate=True)

    # --- overwriting ------------------------------------------------------------------------

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            self._set_slice(index, value)
            return
        self._validate(value)
        with self._load_and_save, self._operation_lock:
            index = range(len(self._data))[index]  # a plain index; IndexError as list's
            old = self._data[index]
            if old is not value:
                self._journal_discard("set", {index: _plain(old)})
            self._data[index] = self._from_base(value, parent=self)

    def _set_slice(self, where, values):
        values = list(_convert_numpy(values))
        self._validate(values)
        with self._load_and_save, self._operation_lock:
            indexes = range(len(self._data))[where]
            if where.step not in (None, 1) and len(values) != len(indexes):
                raise ValueError(
                    f"attempt to assign sequence of size {len(values)} to "
                    f"extended slice of size {len(indexes)}"
                )
            old = {index: _plain(self._data[index]) for index in indexes}
            if old:
                self._journal_discard("set", old)
            self._data[where] = [self._from_base(value, parent=self) for value in values]

    # --- adding -----------------------------------------------------------------------------

    def insert(self, index, item):  # noqa: D102
        self._validate(item)
        with self._load_and_save:
            self._data.insert(index, self._from_base(item, parent=self))

    def append(self, item):  # noqa: D102
        self._validate(item)
        with self._load_and_save:
            self._data.append(self._from_base(item, parent=self))

    def extend(self, iterable):  # noqa: D102
        items = list(iterable)  # an iterator is consumed once
        self._validate(items)
        with self._load_and_save:
            self._data.extend([self._from_base(item, parent=self) for item in items])

    def __iadd__(self, iterable):
        self.extend(iterable)
        return self

    def reverse(self):
        """Reverse in place (nothing is discarded, nothing journaled)."""
        with self._load_and_save:
            self._data.reverse()

    # --- deleting ---------------------------------------------------------------------------

    def __delitem__(self, index):
        with self._load_and_save, self._operation_lock:
            indexes = range(len(self._data))[index]
            if isinstance(index, slice):
                old = {i: _plain(self._data[i]) for i in indexes}
                if not old:
                    return
            else:
                old = {indexes: _plain(self._data[indexes])}
            self._journal_discard("del", old)
            del self._data[index]

    def pop(self, index=-1):
        """Remove the item at ``index`` and return it as plain data."""
        with self._load_and_save, self._operation_lock:
            if not self._data:
                raise IndexError("pop from empty list")
            index = range(len(self._data))[index]
            old = _plain(self._data[index])
            self._journal_discard("del", {index: old})
            del self._data[index]
        return old

    def remove(self, value):  # noqa: D102
        # comparing with nested collections calls them, which would load: suspend sync
        with self._load_and_save, self._operation_lock, self._suspend_sync:
            index = self._data.index(value)
            self._journal_discard("del", {index: _plain(self._data[index])})
            del self._data[index]

    def clear(self):  # noqa: D102
        with self._load_and_save, self._operation_lock:  # saves even when empty, as the original
            if self._data:
                self._journal_discard("clear", self._to_base())
                self._data.clear()

    # --- reading ----------------------------------------------------------------------------

    def __reversed__(self):
        self._load()
        return reversed(self._data)

    def index(self, value, start=0, stop=None):  # noqa: D102
        self._load()
        return self._data.index(value, start, len(self._data) if stop is None else stop)

    def count(self, value):  # noqa: D102
        self._load()
        return self._data.count(value)

    def _compare(self, other, compare):
        if isinstance(other, SyncedCollection):
            other = other()
        return compare(self(), other)

    def __lt__(self, other):
        return self._compare(other, operator.lt)

    def __le__(self, other):
        return self._compare(other, operator.le)

    def __gt__(self, other):
        return self._compare(other, operator.gt)

    def __ge__(self, other):
        return self._compare(other, operator.ge)
