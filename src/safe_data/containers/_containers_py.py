"""Pure-Python twin of ``_containers_c.pyx``: the same names, in the same order, writing the
same bytes.

It follows the C code closely on purpose, so a fix in one is easy to carry to the other.
Used when the extension is not built, or when ``SAFE_DATA_NO_EXTENSIONS=1``.

Every destructive method follows one pattern: work out exactly what will be discarded,
journal it (which may raise: then nothing changes), then let the builtin method do the
change.  A record is only written when something is actually discarded.
"""

from __future__ import annotations

import operator
import sys
import weakref

from ..errors import ReentrantChangeError
from ..journal import codec
from ..journal import format as fmt
from . import _support

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:
    from ..journal._writer_py import RecordWriter
    from ..journal.journal import Journal

# (mypy: the in-place operators keep the builtins' signatures, which differ from the binary
# ones; "type: ignore[misc]" marks each)

__all__ = ["SafeDict", "SafeList", "SafeSet", "watch_records"]

_MISSING = object()
_OP = fmt.OP_CODES


#: called with the container before each record it writes (C: _record_watcher)
_record_watcher = None


def watch_records(watcher):
    """Call ``watcher(container)`` before each record a container writes, in the writing
    thread, inside the operation (None: stop).  It must not raise: nothing is recorded
    or changed if it does."""
    global _record_watcher
    _record_watcher = watcher


class _Binding:
    """What a safe container is bound to: a journal's writer, its identity (a number
    unique among the writer's containers), its name and its options.  A nested
    container's name is a label worked out again before each record (see _containers_c.pyx)."""

    __slots__ = (
        "journal",
        "writer",
        "container_id",
        "name",
        "bname",
        "deep",
        "capture",
        "versioned",
        "active",
        "_me",
        "_parent",
        "_key",
        "_parent_label",
        "_self",
        "_owner",
    )
    journal: Journal
    writer: RecordWriter
    container_id: int
    name: str
    bname: bytes
    deep: bool
    capture: bool
    versioned: bool
    active: int
    _parent: weakref.ref | None  # a nested container's parent, else None
    _key: object  # where it was last seen in its parent
    _parent_label: str  # the parent's name when _key was noted
    _owner: weakref.ref  # the container, for the record watcher

    def __enter__(self):
        """Start an operation on this container (C: _Binding.begin): take the operation
        lock, and refuse an operation that code run by another operation of this container
        starts (re-entrant change; see _containers_c.pyx)."""
        w = self.writer
        w.operation_lock.__enter__()
        if self.active == w.op_epoch:
            w.operation_lock.__exit__(None, None, None)
            raise ReentrantChangeError(self.name)
        self.active = w.op_epoch
        return self

    def __exit__(self, *exc):
        self.active = 0
        self.writer.operation_lock.__exit__(None, None, None)

    def many(self, op, key, values):
        if self._parent is not None:
            self.relabel()
        if _record_watcher is not None:
            _record_watcher(self._owner())
        caller = _support.caller_of(__name__) if self.capture else None
        self.writer.append(op, self.bname, key, values, caller, self.container_id)

    def relabel(self):
        """A nested container's label as of now (C: _Binding.relabel)."""
        parent = self._parent()
        if parent is None:
            return
        pb = getattr(parent, "_b", None)
        if pb is None:
            return
        if pb._parent is not None:
            pb.relabel()
        key, me = self._key, self._self
        if isinstance(parent, list):
            if not (0 <= key < len(parent) and id(list.__getitem__(parent, key)) == me):
                key = next((i for i, v in enumerate(list.__iter__(parent)) if id(v) == me), _MISSING)
        elif id(dict.get(parent, key)) != me:
            key = next((k for k, v in list(dict.items(parent)) if id(v) == me), _MISSING)
        if key is _MISSING:
            return
        if key is not self._key or pb.name is not self._parent_label:
            self._key = key
            self._parent_label = pb.name
            self.name = _support.child_name(pb.name, key)
            self.bname = self.name.encode("utf-8")

    def label(self) -> str:
        if self._parent is not None:
            self.relabel()
        return self.name

    @property
    def root(self) -> str:
        """The name of the outermost container it is nested in (C: _Binding.root)."""
        b = self
        while b._parent is not None:
            up = getattr(b._parent(), "_b", None)
            if up is None:
                break
            b = up
        return b.name

    def convert(self, value, key):
        """With deep=True: a plain list/dict/set stored inside becomes a safe container (a
        versioned one in a versioned container, so that restore() sees its changes)
        nested in this one; a safe container of ours nested elsewhere moves here."""
        t = type(value)
        if t is list:
            value = SafeList(
                value,
                name=_support.child_name(self.label(), key),
                journal=self.journal,
                deep=True,
                capture_caller=self.capture,
                versioned=self.versioned,
            )
        elif t is dict:
            value = SafeDict(
                value,
                name=_support.child_name(self.label(), key),
                journal=self.journal,
                deep=True,
                capture_caller=self.capture,
                versioned=self.versioned,
            )
        elif t is set:
            value = SafeSet(
                value,
                name=_support.child_name(self.label(), key),
                journal=self.journal,
                capture_caller=self.capture,
                versioned=self.versioned,
            )
        else:
            child = getattr(value, "_b", None) if isinstance(value, (SafeList, SafeDict, SafeSet)) else None
            if child is None or child._parent is None or child.writer is not self.writer:
                return value
            child._parent, child._key = self._me, key
            child._parent_label = None  # its label is rebuilt at its next record
            return value
        child = value._b
        child._parent, child._key, child._parent_label = self._me, key, self.name
        child._self = id(value)
        return value


def _bind(old, owner, kind, name, journal, deep, capture, versioned):
    """The binding of a new container; ``__init__`` called again keeps unspecified settings
    and the container's identity (in the same journal)."""
    b = _Binding()
    b._owner = weakref.ref(owner)
    if old is not None:
        name = old.name if name is None else name
        journal = old.journal if journal is None else journal
        deep, versioned = old.deep, old.versioned  # fixed when the container was created
        capture = capture or old.capture
    b.journal = _support.resolve_journal(journal)
    b.writer = b.journal._writer
    b.name = name if name is not None else _support.auto_name(kind, __name__)
    if type(b.name) is not str:  # (C: the str field's own check)
        raise TypeError(f"Expected str, got {type(b.name).__name__}")
    b.bname = b.name.encode("utf-8")
    if len(b.bname) > fmt.MAX_NAME_LEN:
        raise ValueError(f"container name longer than {fmt.MAX_NAME_LEN} bytes")
    b.deep = deep
    b.capture = capture
    b.versioned = versioned  # adds are journaled too ("insert", "assign", "snapshot")
    b.active = 0  # the writer's operation epoch while an operation of ours runs
    b._parent = b._key = b._parent_label = b._self = None
    if old is not None and old.writer is b.writer:
        b.container_id = old.container_id
        if name == old.name:  # still where it was: still nested there
            b.name, b.bname = old.name, old.bname
            b._parent, b._key, b._parent_label, b._self = old._parent, old._key, old._parent_label, old._self
    else:
        b.container_id = b.writer.next_container_id()
    b._me = weakref.ref(owner) if deep else None
    return b


class _Safe:
    """The read-only settings every safe container exposes (C: a property per class)."""

    __slots__ = ()
    _b: _Binding  # (each class's own slot)

    @property
    def name(self) -> str:
        """The container's name in the journal (nested: its path as of now)."""
        return self._b.label()

    @property
    def container_id(self) -> int:
        """Its number in the journal: with the writer id, its identity in the records."""
        return self._b.container_id

    @property
    def journal(self):
        """The journal it preserves into."""
        return self._b.journal

    @property
    def capture_caller(self) -> bool:
        """Whether records name their caller."""
        return self._b.capture

    def __copy__(self):
        return _support.copy_of(self)

    def undo(self, n=1):
        """Revert the last ``n`` destructive operations (see :func:`safe_data.undo`)."""
        from ..history import undo  # (the history layer sits above the containers)

        return undo(self, n)


def _ssize(i, overflow):
    """An index as list's C code takes it (C: PyNumber_AsSsize_t): ``overflow`` past ssize_t."""
    i = operator.index(i)
    if not -sys.maxsize - 1 <= i <= sys.maxsize:
        raise overflow(
            "cannot fit 'int' into an index-sized integer"
            if overflow is IndexError
            else "Python int too large to convert to C ssize_t"
        )
    return i


def _position(n, i, message):
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(message)
    return i


class SafeList(_Safe, list):
    """A ``list`` whose every discarded value is journaled first."""

    __slots__ = ("_b", "__weakref__")

    def __new__(cls, *args, deep=False, versioned=False, **kwargs):
        return list.__new__(_TrackedSafeList if (deep or versioned) and cls is SafeList else cls)

    def __init__(
        self, iterable=(), *, name=None, journal=None, deep=False, capture_caller=False, versioned=False
    ):
        old = getattr(self, "_b", None)
        b = _bind(old, self, "list", name, journal, deep, capture_caller, versioned)
        # (called again, the settings are the container's: b's, not the arguments)
        iterable = [b.convert(v, i) for i, v in enumerate(iterable)] if b.deep else list(iterable)
        if old is None:
            self._b = b
            list.__init__(self, iterable)
            if versioned:
                b.many(_OP["list", "snapshot"], None, self)
            return
        with old:  # __init__ again on a live list: it replaces the contents
            if len(self):
                _discard_all(self, _OP["list", "init"])
            self._b = b
            list.extend(self, iterable)
            if b.versioned:
                b.many(_OP["list", "snapshot"], None, self)

    @property
    def deep(self) -> bool:
        """Whether nested containers become safe ones."""
        return self._b.deep

    @property
    def versioned(self) -> bool:
        """Whether every change is journaled, so that restore() is exact."""
        return self._b.versioned

    def __reduce__(self):
        return _support.reduce(self, "list", list(self))

    def __deepcopy__(self, memo):
        return _support.deepcopy_of(self, memo, list.extend, list(self))

    # Discarding, under the binding (see _containers_c.pyx): each takes out exactly what it
    # discards, journals what it took, and puts it back if that fails.
    def clear(self):
        with self._b:
            if len(self):
                _discard_all(self, _OP["list", "clear"])

    def pop(self, index=-1, /):
        b = self._b
        i = _ssize(index, OverflowError)
        with b:
            if not len(self):
                raise IndexError("pop from empty list")
            return _discard_at(self, _OP["list", "pop"], _position(len(self), i, "pop index out of range"))

    def remove(self, value):
        with self._b:
            try:
                i = list.index(self, value)
            except ValueError:
                raise ValueError("list.remove(x): x not in list") from None
            _discard_at(self, _OP["list", "remove"], i)

    def __delitem__(self, key):
        b = self._b
        if type(key) is not slice:
            key = _ssize(key, IndexError)
        with b:
            if type(key) is slice:
                taken, where = _take_slice(self, key, None)
                if taken:
                    try:
                        b.many(_OP["list", "del"], where, taken)
                    except BaseException:
                        _put_back(self, where.start, where.step, taken)
                        raise
            else:
                _discard_at(
                    self, _OP["list", "del"], _position(len(self), key, "list assignment index out of range")
                )

    def __setitem__(self, key, value):
        b = self._b
        if type(key) is slice:
            if type(value) is not list:
                value = list(value)  # run the caller's iterable before taking the lock
            self._set_slice(key, value)
            return
        i = _ssize(key, IndexError)
        if b.deep:
            value = b.convert(value, _position(len(self), i, "list assignment index out of range"))
        with b:
            i = _position(len(self), i, "list assignment index out of range")
            old = list.__getitem__(self, i)
            if old is value:
                return
            list.__setitem__(self, i, value)
            try:
                b.many(_OP["list", "set"], i, [old])
                if b.versioned:
                    b.many(_OP["list", "assign"], i, [value])
            except BaseException:
                _undo_assign(self, i, 1, [value], [old])
                raise

    def _set_slice(self, key, value):
        b = self._b
        if b.deep:  # the labels of nested containers: as of now (converting runs code)
            first, _, step = key.indices(len(self))
            value = [b.convert(v, first + j * step) for j, v in enumerate(value)]
        with b:
            taken, where = _take_slice(self, key, value)
            try:
                if taken:  # the key says where the old items were and how many replace them
                    b.many(_OP["list", "set"], (where, len(value)), taken)
                if b.versioned:
                    b.many(_OP["list", "assign"], where, value)
            except BaseException:
                _undo_assign(self, where.start, where.step, value, taken)
                raise

    def __imul__(self, n):  # type: ignore[misc]
        b = self._b
        times = operator.index(n)
        with b:
            if times <= 0:
                if len(self):
                    _discard_all(self, _OP["list", "*="])
                return self
            result = list.__imul__(self, times)
            if b.versioned and times > 1:
                b.many(_OP["list", "snapshot"], None, self)
            return result

    # Adding, in this twin only: under the operation lock, so that no other thread adds
    # between what a discard reads and what it removes (C does that without a lock).
    def append(self, value):
        with self._b.writer.adding_lock:
            list.append(self, value)

    def extend(self, iterable):
        items = list(iterable)  # run the caller's iterable before taking the lock
        with self._b.writer.adding_lock:
            list.extend(self, items)

    def insert(self, index, value):
        with self._b.writer.adding_lock:
            list.insert(self, index, value)

    def __iadd__(self, other):  # type: ignore[misc]
        self.extend(other)
        return self

    def sort(self, *, key=None, reverse=False):
        with self._b.writer.adding_lock:
            list.sort(self, key=key, reverse=reverse)

    def reverse(self):
        with self._b.writer.adding_lock:
            list.reverse(self)


def _discard_all(lst, op):
    """Take every item out, journal them, and put them back in front if that fails."""
    taken = list.copy(lst)
    list.clear(lst)
    try:
        lst._b.many(op, None, taken)
    except BaseException:
        list.__setitem__(lst, slice(0, 0), taken)
        raise


def _discard_at(lst, op, i):
    """Take the item at i out, journal it, and put it back if that fails; return it."""
    item = list.pop(lst, i)
    try:
        lst._b.many(op, i, [item])
    except BaseException:
        _put_back(lst, i, 1, [item])
        raise
    return item


def _take_slice(lst, key, value):
    """Replace lst[key] by value (None: delete it); return (the items taken out, the
    slice normalized to the length they came from)."""
    where = slice(*key.indices(len(lst)))
    taken = list.__getitem__(lst, key)
    if value is None:
        list.__delitem__(lst, key)
    else:
        if where.step != 1 and len(taken) != len(value):
            raise ValueError(
                f"attempt to assign sequence of size {len(value)} to extended slice of size {len(taken)}"
            )
        list.__setitem__(lst, key, value)
    return taken, where


def _locate(lst, item, hint):
    """The index of item itself (by identity) in lst, looking at hint first; -1 if gone."""
    if hint < len(lst) and list.__getitem__(lst, hint) is item:
        return hint
    return next((i for i, x in enumerate(list.__iter__(lst)) if x is item), -1)


def _put_back(lst, start, step, taken):
    """The record of a removal could not be written: put the items back where they were."""
    if step == 1:
        start = min(start, len(lst))
        list.__setitem__(lst, slice(start, start), taken)
        return
    order = range(len(taken)) if step > 0 else range(len(taken) - 1, -1, -1)  # lowest first
    for k in order:
        list.insert(lst, min(start + k * step, len(lst)), taken[k])


def _undo_assign(lst, start, step, value, taken):
    """The record of an assignment could not be written: put back what it replaced."""
    if all(_locate(lst, v, start + k * step) == start + k * step for k, v in enumerate(value)):
        if step == 1:
            list.__setitem__(lst, slice(start, start + len(value)), taken)
        else:
            for k, item in enumerate(taken):
                list.__setitem__(lst, start + k * step, item)
        return
    _put_back(lst, start, 1, taken)  # another thread moved items meanwhile: keep both


class _TrackedSafeList(SafeList):
    """What ``SafeList(..., deep=True)`` or ``versioned=True`` creates: adding converts
    nested containers (deep) and is journaled (versioned); sort and reverse are journaled
    as a snapshot (versioned).  A separate class so that a plain SafeList does not
    override ``append`` (in C; this twin's plain SafeList does, to take the lock).
    """

    __slots__ = ()

    def _add(self, index, items):
        if not self._b.versioned:
            with self._b.writer.adding_lock:
                list.__setitem__(self, slice(index, index), items)
            return
        with self._b:  # the record and the change in the same order
            index = min(index, len(self))
            self._b.many(_OP["list", "insert"], index, items)
            list.__setitem__(self, slice(index, index), items)

    def _converted(self, index, iterable):
        if self._b.deep:
            return [self._b.convert(v, index + j) for j, v in enumerate(iterable)]
        return list(iterable)

    def append(self, value):
        n = len(self)
        self._add(n, self._converted(n, (value,)))

    def extend(self, iterable):
        n = len(self)
        self._add(n, self._converted(n, iterable))

    def insert(self, index, value):
        n, i = len(self), operator.index(index)
        i = max(0, min(n, i + n if i < 0 else i))
        self._add(i, self._converted(i, (value,)))

    def __iadd__(self, other):  # type: ignore[misc]
        self.extend(other)
        return self

    def sort(self, *, key=None, reverse=False):
        with self._b:
            list.sort(self, key=key, reverse=reverse)
            if self._b.versioned:
                self._b.many(_OP["list", "snapshot"], None, self)

    def reverse(self):
        with self._b:
            list.reverse(self)
            if self._b.versioned:
                self._b.many(_OP["list", "snapshot"], None, self)


class SafeDict(_Safe, dict):
    """A ``dict`` whose every removed or overwritten value is journaled first."""

    __slots__ = ("_b", "__weakref__")

    def __init__(
        self, *args, name=None, journal=None, deep=False, capture_caller=False, versioned=False, **kwargs
    ):
        old = getattr(self, "_b", None)
        self._b = _bind(old, self, "dict", name, journal, deep, capture_caller, versioned)
        self._update(args, kwargs, _OP["dict", "init"], old is not None)  # again: it updates
        if versioned and old is None:
            self._b.many(_OP["dict", "snapshot"], None, self)

    @property
    def deep(self) -> bool:
        """Whether nested containers become safe ones."""
        return self._b.deep

    @property
    def versioned(self) -> bool:
        """Whether every change is journaled, so that restore() is exact."""
        return self._b.versioned

    def __reduce__(self):
        return _support.reduce(self, "dict", dict(self))

    def __deepcopy__(self, memo):
        return _support.deepcopy_of(self, memo, dict.update, list(dict.items(self)))

    def _update(self, args, kwargs, op, track=True):
        if not args and not kwargs:
            return
        new = None  # a plain dict (C: _update_from_dict)
        if not kwargs and len(args) == 1 and type(args[0]) is dict and not self._b.deep:
            new = args[0]
        else:
            pairs = _support.update_pairs(args, kwargs)
            if self._b.deep:
                pairs = [(k, self._b.convert(v, k)) for k, v in pairs]
        with self._b:
            if new is not None:
                if not len(self) and not (self._b.versioned and track):
                    dict.update(self, new)  # nothing overwritten, nothing journaled
                    return
                pairs = list(new.items())  # a copy: looking keys up may run their __eq__
            if len(self):
                old = {}
                for k, v in pairs:
                    o = dict.get(self, k, _MISSING)
                    if o is not _MISSING and o is not v and k not in old:
                        old[k] = o
                if old:
                    self._b.many(op, None, old)
            if self._b.versioned and track and pairs:
                self._b.many(_OP["dict", "assign"], None, dict(pairs))
            dict.update(self, pairs)

    # Discarding: each reads what it discards, journals it and changes the dict under
    # the binding (see _containers_c.pyx): every method that changes a SafeDict takes it.
    def __setitem__(self, key, value):
        if self._b.deep:
            value = self._b.convert(value, key)
        with self._b:
            old = dict.get(self, key, _MISSING)
            if old is not _MISSING and old is not value:
                self._b.many(_OP["dict", "set"], key, {key: old})
            if self._b.versioned and old is not value:
                self._b.many(_OP["dict", "assign"], key, {key: value})
            dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        with self._b:
            old = dict.__getitem__(self, key)
            self._b.many(_OP["dict", "del"], key, {key: old})
            dict.__delitem__(self, key)

    def pop(self, key, /, *default):
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")
        with self._b:
            old = dict.get(self, key, _MISSING)
            if old is _MISSING:
                if default:
                    return default[0]
                raise KeyError(key)
            self._b.many(_OP["dict", "pop"], key, {key: old})
            return dict.pop(self, key)

    def popitem(self):
        with self._b:
            if not len(self):
                raise KeyError("popitem(): dictionary is empty")
            key = next(reversed(dict.keys(self)))
            self._b.many(_OP["dict", "popitem"], key, {key: dict.__getitem__(self, key)})
            return dict.popitem(self)

    def clear(self):
        with self._b:
            if len(self):
                self._b.many(_OP["dict", "clear"], None, self)
                dict.clear(self)

    def update(self, *args, **kwargs):
        self._update(args, kwargs, _OP["dict", "update"])

    def __ior__(self, other):  # type: ignore[misc]
        self._update((other,), {}, _OP["dict", "|="])
        return self

    # adding (overridden only to convert nested values when deep=True)
    def setdefault(self, key, default=None):
        if key in self:
            return self[key]
        if self._b.deep:
            default = self._b.convert(default, key)
        with self._b:
            if self._b.versioned and key not in self:
                self._b.many(_OP["dict", "assign"], key, {key: default})
            return dict.setdefault(self, key, default)


class SafeSet(_Safe, set):
    """A ``set`` whose every removed element is journaled first."""

    __slots__ = ("_b",)

    def __new__(cls, *args, versioned=False, **kwargs):
        return set.__new__(_TrackedSafeSet if versioned and cls is SafeSet else cls)

    def __init__(self, iterable=(), *, name=None, journal=None, capture_caller=False, versioned=False):
        old = getattr(self, "_b", None)
        b = _bind(old, self, "set", name, journal, False, capture_caller, versioned)
        if old is None:
            self._b = b
            set.__init__(self, iterable)
            if versioned:
                b.many(_OP["set", "snapshot"], None, set(self))
            return
        iterable = list(iterable)
        with old:  # __init__ again on a live set: it replaces the contents
            if len(self):
                _discard_all_of_set(self, _OP["set", "init"])
            self._b = b
            set.update(self, iterable)
            if b.versioned:
                b.many(_OP["set", "snapshot"], None, set(self))

    @property
    def versioned(self) -> bool:
        """Whether every change is journaled, so that restore() is exact."""
        return self._b.versioned

    # Adding, in this twin only: under the operation lock (see SafeList.append).
    def add(self, value):
        with self._b.writer.adding_lock:
            set.add(self, value)

    def update(self, *others):
        others = [o if type(o) in (set, frozenset) else set(o) for o in others]
        with self._b.writer.adding_lock:
            set.update(self, *others)

    def __ior__(self, other):  # type: ignore[misc]
        if not isinstance(other, (set, frozenset)):
            return NotImplemented
        self.update(other)
        return self

    def __repr__(self):  # like the builtin's: set's own repr names subclasses
        return "{" + ", ".join(map(repr, self)) + "}" if len(self) else "set()"

    def __reduce__(self):
        return _support.reduce(self, "set", set(self))

    def __deepcopy__(self, memo):
        return _support.deepcopy_of(self, memo, set.update, list(self))

    # Discarding, under the binding (see _containers_c.pyx); only clear() (and __init__ again)
    # take out what they journal first, as SafeList does.
    def clear(self):
        with self._b:
            if len(self):
                _discard_all_of_set(self, _OP["set", "clear"])

    def pop(self):
        with self._b:
            value = set.pop(self)
            try:
                self._b.many(_OP["set", "pop"], None, {value})
            except BaseException:
                set.add(self, value)  # not journaled: put it back, lose nothing
                raise
            return value

    def remove(self, element, /):
        with self._b:
            if element not in self:
                raise KeyError(element)
            self._b.many(_OP["set", "remove"], None, {element})
            set.remove(self, element)

    def discard(self, element, /):
        with self._b:
            if element in self:
                self._b.many(_OP["set", "discard"], None, {element})
                set.discard(self, element)

    def _remove(self, other, keep_common, op):
        """Remove what is in ``other`` (or, with keep_common, what is not) and journal it."""
        with self._b:
            gone = set.difference(self, other) if keep_common else set.intersection(self, other)
            if gone:
                self._b.many(op, None, gone)
                set.difference_update(self, gone)

    def _symmetric(self, other, op):
        other = set(other)
        with self._b:
            shared = set.intersection(self, other)
            if shared:
                self._b.many(op, None, shared)
                set.difference_update(self, shared)
            added = other - shared
            if self._b.versioned and added:
                self._b.many(_OP["set", "insert"], None, added)
            set.update(self, added)

    def difference_update(self, *others):
        self._remove(set().union(*others), False, _OP["set", "difference_update"])

    def intersection_update(self, *others):
        if others:
            self._remove(set(others[0]).intersection(*others[1:]), True, _OP["set", "intersection_update"])

    def symmetric_difference_update(self, other):
        self._symmetric(other, _OP["set", "symmetric_difference_update"])

    def __isub__(self, other):  # type: ignore[misc]
        if not isinstance(other, (set, frozenset)):
            return NotImplemented
        self._remove(other, False, _OP["set", "-="])
        return self

    def __iand__(self, other):  # type: ignore[misc]
        if not isinstance(other, (set, frozenset)):
            return NotImplemented
        self._remove(other, True, _OP["set", "&="])
        return self

    def __ixor__(self, other):  # type: ignore[misc]
        if not isinstance(other, (set, frozenset)):
            return NotImplemented
        self._symmetric(other, _OP["set", "^="])
        return self


def _discard_all_of_set(s, op):
    """Take every element out, journal them, and put them back if that fails."""
    taken = set.copy(s)
    set.clear(s)
    try:
        s._b.many(op, None, taken)
    except BaseException:
        set.update(s, taken)
        raise


class _TrackedSafeSet(SafeSet):
    """What ``SafeSet(..., versioned=True)`` creates: adding is journaled ("insert"), so
    that restore() is exact (see _containers_c.pyx)."""

    __slots__ = ()

    def add(self, value):
        with self._b:
            if value not in self:
                self._b.many(_OP["set", "insert"], None, {value})
                set.add(self, value)

    def update(self, *others):
        items = set().union(*others)  # the caller's iterables run before the lock
        with self._b:
            new = items.difference(self)
            if new:
                self._b.many(_OP["set", "insert"], None, new)
                set.update(self, new)

    def __ior__(self, other):  # type: ignore[misc]
        if not isinstance(other, (set, frozenset)):
            return NotImplemented
        self.update(other)
        return self


# The value encoder learns these types here: the journal imports nothing above it.
codec.register_containers(
    {
        SafeList: fmt.T_LIST,
        _TrackedSafeList: fmt.T_LIST,
        SafeDict: fmt.T_DICT,
        SafeSet: fmt.T_SET,
        _TrackedSafeSet: fmt.T_SET,
    }
)
