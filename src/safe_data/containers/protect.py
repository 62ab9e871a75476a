"""``make_safe``: the safe counterpart of a container you already have.

``list``, ``dict`` and ``set`` become ``SafeList``, ``SafeDict`` and ``SafeSet``.  The four
other mutable containers of the standard library that hold values become subclasses of
their own type that journal what they discard:

- ``SafeDeque`` (``collections.deque``): ``popleft``, ``rotate``, ``maxlen`` and C-speed
  reads are kept.  A bounded deque silently drops items when ``append``, ``appendleft``,
  ``extend``, ``extendleft`` or ``+=`` overflow ``maxlen``: those evictions are discards
  and are journaled (op ``del`` at the evicted positions).
- ``SafeOrderedDict`` (``collections.OrderedDict``): ``move_to_end``, ``popitem(last=False)``
  and order-sensitive equality are kept; ``popitem(last=...)`` journals the item it takes.
- ``SafeDefaultDict`` (``collections.defaultdict``): ``default_factory`` and ``__missing__``
  are kept; with ``deep=True`` the value the factory creates is a safe container too.
- ``SafeBytearray`` (``bytearray``): index and slice assignment, ``del``, ``pop``,
  ``remove``, ``clear`` and ``*=`` journal the bytes they discard (as ``bytes``).

Subclasses rather than proxies, because these types allow it: ``isinstance(x, deque)``,
pickling, the type's whole API and the C speed of its reads are kept, and only the
destructive methods run Python code.  The journaling itself is shared with the proxies
(``safe_data.proxy``).  Only these exact types are converted: a subclass of any of them
has methods of its own that a conversion would lose, so ``make_safe`` refuses it and
suggests :func:`safe_data.proxy`, which wraps it without converting it.
"""

from __future__ import annotations

import operator
from collections import OrderedDict, defaultdict, deque
from itertools import islice

from ..journal import registry
from ..journal.journal import journal_at
from . import SafeDict, SafeList, SafeSet, _support
from .proxies import Journaled, MappingJournaling, SequenceJournaling, _Proxy

__all__ = ["SafeBytearray", "SafeDefaultDict", "SafeDeque", "SafeOrderedDict", "is_safe", "make_safe"]

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, overload

    _T = TypeVar("_T")
    _K = TypeVar("_K")
    _V = TypeVar("_V")
    _J = TypeVar("_J", bound=Journaled)


def _child(value, name: str, journal, capture_caller: bool):
    """With deep=True: a nested container make_safe knows becomes a safe one named ``name``."""
    if type(value) in _CONVERTERS:
        return make_safe(value, name=name, deep=True, journal=journal, capture_caller=capture_caller)
    return value


class _Protected(Journaled):
    """What the wrappers share: their settings, deep conversion, copying and pickling.

    A wrapper sets ``_label`` and the primitives of ``safe_data.proxies`` (``_raw_setitem``,
    ``_raw_delitem``, ``_raw_clear``: its base type's own methods), and says how it
    pickles with ``_pickled_contents()``: (constructor contents, list items, dict items).
    """

    __slots__ = ()
    _label = ""  # the prefix of default names: "deque@myapp.jobs:12"

    def _bind_settings(self, name, journal, deep, capture_caller) -> None:
        """Bind to a journal; ``__init__`` called again keeps the settings it is not given."""
        if "_journal" in vars(self):
            name = self._name if name is None else name
            journal = self._journal if journal is None else journal
        elif name is None:
            name = _support.auto_name(self._label, __name__)
        self._bind(name, journal, capture_caller)
        self._deep = bool(deep)  # type: ignore[misc]

    @property
    def deep(self) -> bool:
        """Whether nested containers become safe ones."""
        return self._deep

    def _adopt(self, value, key):
        if not self._deep:
            return value
        return _child(value, _support.child_name(self._name, key), self._journal, self._capture)

    def _options(self) -> dict:
        """Constructor keywords besides name, journal and capture_caller."""
        return {"deep": self._deep}

    def _settings(self, *, for_pickle: bool = False) -> dict:
        journal = self._journal
        if for_pickle:  # a pickle names the journal by path (None: the default journal)
            journal = None if registry.is_default(journal) else journal.path
        return {"name": self._name, "journal": journal, "capture_caller": self._capture, **self._options()}

    def _args(self, contents) -> tuple:
        """The positional constructor arguments that recreate it holding ``contents``."""
        return (contents,)

    def copy(self):
        """A shallow copy with the same name, journal and settings."""
        return type(self)(*self._args(self), **self._settings())

    __copy__ = copy

    def __reduce__(self):
        contents, listitems, dictitems = self._pickled_contents()
        return (
            _rebuild,
            (type(self), self._args(contents), self._settings(for_pickle=True)),
            None,
            listitems,
            dictitems,
        )

    def __reduce_ex__(self, protocol):  # bytearray defines its own; ours must win
        return self.__reduce__()


def _rebuild(cls, args, settings):
    """Unpickle a wrapper: the journal is named by its path (None: the default journal)."""
    settings = dict(settings)
    path = settings.pop("journal")
    return cls(*args, journal=None if path is None else journal_at(path), **settings)


class _ProtectedSequence(SequenceJournaling, _Protected):
    """A sequence wrapper: ``*=`` and ``__init__`` again discard every item."""

    __slots__ = ()

    def _replace(self, fill) -> None:
        """``__init__``: journal the current items (a live object re-initialised), then fill."""
        with self._operation():
            if len(self):  # type: ignore[arg-type]  # (a sequence)
                self._record("init", None, self._values(self))
            fill()

    def __imul__(self, n):
        with self._operation():
            if operator.index(n) <= 0 and len(self):
                self._record("*=", None, self._values(self))
            return self._raw_imul(n)

    def _pickled_contents(self):
        return (), iter(self), None


class _ProtectedMapping(MappingJournaling, _Protected):
    """A dict wrapper: ``__init__`` again and ``|=`` update, ``popitem`` takes the last item."""

    __slots__ = ()

    def __init__(self, *args, name=None, journal=None, deep=False, capture_caller=False, **kwargs):
        self._bind_settings(name, journal, deep, capture_caller)
        self._update(args, kwargs, "init")

    def __ior__(self, other):
        self._update((other,), {}, "|=")
        return self

    def popitem(self):
        return self._popitem(reversed)

    def setdefault(self, key, default=None):
        default = self._adopt(default, key)
        with self._operation():
            if key not in self:
                self._raw_setitem(key, default)
            return self.get(key)

    def _pickled_contents(self):
        return (), None, iter(self.items())


class SafeDeque(_ProtectedSequence, deque):
    """A ``collections.deque`` whose every discarded item is journaled first, evictions
    by ``maxlen`` included.  ``SafeDeque(iterable=(), maxlen=None, *, name=None,
    journal=None, deep=False, capture_caller=False)``."""

    _label = "deque"
    _raw_setitem = deque.__setitem__
    _raw_delitem = deque.__delitem__
    _raw_clear = deque.clear
    _raw_imul = deque.__imul__

    def __init__(
        self, iterable=(), maxlen=None, *, name=None, journal=None, deep=False, capture_caller=False
    ):
        self._bind_settings(name, journal, deep, capture_caller)
        items = [self._adopt(v, i) for i, v in enumerate(iterable)] if deep else list(iterable)
        self._replace(lambda: deque.__init__(self, items, maxlen))

    def _options(self) -> dict:
        return {"deep": self._deep, "maxlen": self.maxlen}

    def pop(self):
        return self._pop_end(-1, deque.pop)

    def popleft(self):
        return self._pop_end(0, deque.popleft)

    def _pop_end(self, index, take):
        with self._operation():
            if not len(self):
                raise IndexError("pop from an empty deque")
            self._record("pop", index % len(self), [self[index]])
            return take(self)

    # adding: with maxlen, what overflows at the other end is discarded
    def append(self, value):
        self._add([self._adopt(value, len(self))], left=False)

    def appendleft(self, value):
        self._add([self._adopt(value, 0)], left=True)

    def extend(self, iterable):
        n = len(self)
        self._add([self._adopt(v, n + j) for j, v in enumerate(iterable)], left=False)

    def extendleft(self, iterable):
        self._add([self._adopt(v, 0) for v in iterable], left=True)

    def __iadd__(self, other):  # type: ignore[misc]
        self.extend(other)
        return self

    def insert(self, index, value):  # never evicts: a full bounded deque refuses (IndexError)
        value = self._adopt(value, index)
        with self._operation():
            deque.insert(self, index, value)

    def reverse(self):
        with self._operation():
            deque.reverse(self)

    def rotate(self, n=1):
        with self._operation():
            deque.rotate(self, n)

    def _add(self, items: list, left: bool) -> None:
        # under the operation lock even when nothing overflows: no thread may add between
        # what a discard reads and what it removes
        with self._operation():
            if self.maxlen is None:
                (deque.extendleft if left else deque.extend)(self, items)
                return
            overflow = len(self) + len(items) - self.maxlen
            if overflow > 0:
                self._record("del", *self._evicted(items, overflow, left))
            (deque.extendleft if left else deque.extend)(self, items)

    def _evicted(self, items: list, overflow: int, left: bool):
        """(positions, items) that adding ``items`` pushes out: positions in the deque as it
        would be with every item added (extendleft adds them in reverse order)."""
        beyond = max(0, overflow - len(self))  # how many of the added items go too
        if left:  # the right end goes: the deque's last items, then the first ones added
            gone = items[:beyond][::-1] + list(islice(reversed(self), overflow - beyond))[::-1]
            start = self.maxlen or 0  # (only a bounded deque overflows)
        else:  # the left end goes: the deque's first items, then the first ones added
            gone = list(islice(self, overflow - beyond)) + items[:beyond]
            start = 0
        key = start if overflow == 1 else slice(start, start + overflow, 1)
        return key, gone


class SafeBytearray(_ProtectedSequence, bytearray):
    """A ``bytearray`` whose every discarded byte is journaled first (records hold
    ``bytes``).  ``SafeBytearray(source=b"", encoding=..., errors=..., *, name=None,
    journal=None, capture_caller=False)``.

    Writes through the buffer protocol (``memoryview``, ``readinto``, ``recv_into``) change
    the bytes without calling a method and are not journaled.
    """

    _label = "bytearray"
    _raw_setitem = bytearray.__setitem__
    _raw_delitem = bytearray.__delitem__
    _raw_clear = bytearray.clear
    _raw_imul = bytearray.__imul__

    def __init__(self, *args, name=None, journal=None, capture_caller=False, **kwargs):
        self._bind_settings(name, journal, False, capture_caller)
        source = bytearray(*args, **kwargs)  # the caller's iterable runs before the lock
        self._replace(lambda: bytearray.__init__(self, source))

    def _options(self) -> dict:
        return {}

    def _values(self, items):
        return bytes(items)

    def _materialize(self, value):
        if isinstance(value, int):
            raise TypeError("can assign only bytes, buffers, or iterables of ints in range(0, 256)")
        return bytes(value)

    def _adopt(self, value, key):
        value = operator.index(value)
        if not 0 <= value < 256:
            raise ValueError("byte must be in range(0, 256)")
        return value

    def remove(self, value):
        super().remove(operator.index(value))  # index() would also find a subsequence

    # adding and reordering take the operation lock: bytearray's own methods would let
    # another thread add between what a discard reads and what it removes
    def append(self, item):
        with self._operation():
            bytearray.append(self, item)

    def extend(self, iterable):
        data = bytearray(iterable)  # the caller's iterable runs before the lock
        with self._operation():
            bytearray.extend(self, data)

    def insert(self, index, item):
        with self._operation():
            bytearray.insert(self, index, item)

    def __iadd__(self, other):  # type: ignore[misc]
        data = bytes(memoryview(other))  # bytearray's += takes buffers only
        with self._operation():
            bytearray.extend(self, data)
        return self

    def reverse(self):
        with self._operation():
            bytearray.reverse(self)

    def _pickled_contents(self):
        return bytes(self), None, None


class SafeOrderedDict(_ProtectedMapping, OrderedDict):
    """A ``collections.OrderedDict`` whose every removed or overwritten value is journaled
    first.  Takes the ``OrderedDict`` arguments and ``name``, ``journal``, ``deep``,
    ``capture_caller``."""

    _label = "OrderedDict"
    _raw_setitem = OrderedDict.__setitem__
    _raw_delitem = OrderedDict.__delitem__
    _raw_clear = OrderedDict.clear

    def popitem(self, last=True):
        return self._popitem(reversed if last else iter)


class SafeDefaultDict(_ProtectedMapping, defaultdict):
    """A ``collections.defaultdict`` whose every removed or overwritten value is journaled
    first.  ``SafeDefaultDict(default_factory=None, /, *args, name=None, journal=None,
    deep=False, capture_caller=False, **kwargs)``."""

    _label = "defaultdict"
    _raw_setitem = defaultdict.__setitem__
    _raw_delitem = defaultdict.__delitem__
    _raw_clear = defaultdict.clear

    def __init__(self, default_factory=None, /, *args, **kwargs):
        defaultdict.__init__(self, default_factory)
        super().__init__(*args, **kwargs)

    def _args(self, contents) -> tuple:
        return (self.default_factory, contents)

    def __missing__(self, key):
        if self.default_factory is None:
            raise KeyError(key)
        self[key] = self.default_factory()
        return self.get(key)  # what was stored: with deep=True, a safe container


def _safe_list(obj, name, journal, deep, capture):
    if deep:
        obj = [_child(v, _support.child_name(name, i), journal, capture) for i, v in enumerate(obj)]
    return SafeList(obj, name=name, journal=journal, deep=deep, capture_caller=capture)


def _safe_dict(obj, name, journal, deep, capture):
    if deep:
        obj = {k: _child(v, _support.child_name(name, k), journal, capture) for k, v in obj.items()}
    return SafeDict(obj, name=name, journal=journal, deep=deep, capture_caller=capture)


def _safe_set(obj, name, journal, deep, capture):
    return SafeSet(obj, name=name, journal=journal, capture_caller=capture)


def _safe_deque(obj, name, journal, deep, capture):
    return SafeDeque(obj, obj.maxlen, name=name, journal=journal, deep=deep, capture_caller=capture)


def _safe_ordered_dict(obj, name, journal, deep, capture):
    return SafeOrderedDict(obj, name=name, journal=journal, deep=deep, capture_caller=capture)


def _safe_defaultdict(obj, name, journal, deep, capture):
    return SafeDefaultDict(
        obj.default_factory, obj, name=name, journal=journal, deep=deep, capture_caller=capture
    )


def _safe_bytearray(obj, name, journal, deep, capture):
    return SafeBytearray(obj, name=name, journal=journal, capture_caller=capture)


#: the exact types make_safe converts (deep=True nests them too), and how
_CONVERTERS: dict[type, Callable[..., Any]] = {
    list: _safe_list,
    dict: _safe_dict,
    set: _safe_set,
    deque: _safe_deque,
    OrderedDict: _safe_ordered_dict,
    defaultdict: _safe_defaultdict,
    bytearray: _safe_bytearray,
}


def is_safe(obj) -> bool:
    """Whether ``obj`` already journals what it discards (a safe container, a wrapper of
    this module or a proxy)."""
    return isinstance(obj, (SafeList, SafeDict, SafeSet, _Protected, _Proxy))


# What make_safe gives for each type it takes.  It converts by exact type, which a static
# type cannot tell: a defaultdict typed as a dict is said to give a SafeDict (mypy flags
# that overlap).
if TYPE_CHECKING:

    @overload
    def make_safe(
        obj: list[_T],
        name: str | None = None,
        deep: bool = True,
        journal: Any = None,
        capture_caller: bool = False,
    ) -> SafeList[_T]: ...
    @overload
    def make_safe(  # type: ignore[overload-overlap]
        obj: defaultdict[Any, Any],
        name: str | None = None,
        deep: bool = True,
        journal: Any = None,
        capture_caller: bool = False,
    ) -> SafeDefaultDict: ...
    @overload
    def make_safe(  # type: ignore[overload-overlap]
        obj: OrderedDict[Any, Any],
        name: str | None = None,
        deep: bool = True,
        journal: Any = None,
        capture_caller: bool = False,
    ) -> SafeOrderedDict: ...
    @overload
    def make_safe(
        obj: dict[_K, _V],
        name: str | None = None,
        deep: bool = True,
        journal: Any = None,
        capture_caller: bool = False,
    ) -> SafeDict[_K, _V]: ...
    @overload
    def make_safe(
        obj: set[_T],
        name: str | None = None,
        deep: bool = True,
        journal: Any = None,
        capture_caller: bool = False,
    ) -> SafeSet[_T]: ...
    @overload
    def make_safe(
        obj: deque[Any],
        name: str | None = None,
        deep: bool = True,
        journal: Any = None,
        capture_caller: bool = False,
    ) -> SafeDeque: ...
    @overload
    def make_safe(
        obj: bytearray,
        name: str | None = None,
        deep: bool = True,
        journal: Any = None,
        capture_caller: bool = False,
    ) -> SafeBytearray: ...
    @overload
    def make_safe(
        obj: _J, name: str | None = None, deep: bool = True, journal: Any = None, capture_caller: bool = False
    ) -> _J: ...


def make_safe(obj, name: str | None = None, deep: bool = True, journal=None, capture_caller: bool = False):
    """The safe counterpart of a container: a new container that journals what it discards.

    Parameters
    ----------
    obj : list, dict, set, collections.deque, collections.OrderedDict, collections.defaultdict or bytearray
        Exactly one of these types.  The result is a copy: other references to ``obj``
        do not see later changes (use :func:`safe_data.proxy` to protect an object in
        place).
    name : str, optional
        The name of its records.  Default: where it was made, ``deque@myapp.jobs:12``.
    deep : bool
        Convert nested values of these types too, recursively, each named by its path
        (``orders[3]["items"]``); containers stored later are converted as well (by a
        ``SafeList``/``SafeDict`` only if they are lists, dicts or sets).  Ignored for sets
        and bytearrays, whose items cannot be containers.
    journal : Journal, optional
        Default: :func:`safe_data.default_journal`.
    capture_caller : bool
        Record the file, line and function of each discarding call.

    Returns
    -------
    SafeList, SafeDict, SafeSet, SafeDeque, SafeOrderedDict, SafeDefaultDict or SafeBytearray
        The new container; ``obj`` itself if it already journals (then the other arguments
        are ignored).

    Raises
    ------
    TypeError
        For any other type, subclasses of the types above included.
    """
    if is_safe(obj):
        return obj
    convert = _CONVERTERS.get(type(obj))
    if convert is None:
        raise TypeError(
            f"make_safe() converts list, dict, set, collections.deque, OrderedDict, defaultdict "
            f"and bytearray (those exact types), not {type(obj).__qualname__!r}. To protect a "
            f"mutable mapping or sequence without converting it (your own class, a subclass, "
            f"a shelve, a UserDict), wrap it: safe_data.proxy(obj)."
        )
    if name is None:
        name = _support.auto_name(type(obj).__name__, __name__)
    return convert(obj, name, journal, deep, capture_caller)
