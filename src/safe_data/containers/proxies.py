"""Journaling for containers safe_data did not create: proxies, and the logic they share.

``proxy(obj)`` wraps a ``MutableMapping`` or ``MutableSequence`` that cannot be converted
(a user-defined class, a ``shelve.Shelf``, a ``UserDict``) without changing or copying it:
the proxy implements the same ABC, delegates every method to the wrapped object, and
journals what a destructive method is about to discard before delegating it.

The journaling itself is written once, in ``MappingJournaling`` and
``SequenceJournaling``, in terms of a few primitives: reads go through the object's own
reading methods, and the change through ``_raw_setitem``/``_raw_delitem``/``_raw_clear``,
which change the data without journaling.  A proxy's primitives call the wrapped object;
``safe_data.protect``'s subclasses of deque, OrderedDict, defaultdict and bytearray bind
them to their base type's methods.  Every destructive method reads what it discards,
journals it and changes the data under the journal's operation lock, so concurrent
threads never discard something that was not journaled.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import MutableMapping, MutableSequence

from ..errors import ReentrantChangeError
from ..journal import format as fmt
from . import _support

__all__ = ["SafeMappingProxy", "SafeSequenceProxy", "proxy"]

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:
    from typing import Any, TypeVar, overload

    from . import SafeDict, SafeList, SafeSet

    _T = TypeVar("_T")
    _K = TypeVar("_K")
    _V = TypeVar("_V")
    _J = TypeVar("_J", bound="Journaled")

_MISSING = object()
#: frames of these modules are never "the caller" of a discarding call
_OWN_MODULES = frozenset({__name__, "safe_data.containers.protect", "safe_data.containers._support"})


def _caller():
    """(filename, line, function) of the nearest frame outside this package's wrappers."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") in _OWN_MODULES:
        frame = frame.f_back
    if frame is None:
        return None
    return (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)


class _Operation:
    """The journal's operation lock around one change of a wrapper, refusing a change that
    code run by another of its operations makes (ReentrantChangeError; the rule of
    _containers_c.pyx's _Binding.begin).  Adding is refused too: these wrappers journal what
    they discard before they remove it, so an add in between would be removed unjournaled.
    """

    __slots__ = ("_owner", "_lock")

    def __init__(self, owner):
        self._owner = owner
        self._lock = owner._journal.operation_lock

    def __enter__(self):
        self._lock.__enter__()
        epoch = self._owner._journal._writer.op_epoch
        if self._owner._active == epoch:
            self._lock.__exit__(None, None, None)
            raise ReentrantChangeError(self._owner._name)
        self._owner._active = epoch

    def __exit__(self, *exc):
        self._owner._active = 0
        self._lock.__exit__(*exc)


class Journaled:
    """A container bound to a journal under a name: records what its methods discard."""

    __slots__ = ()
    _kind = ""  # "list" or "dict": which operation codes of docs/format.md it records
    _deep = False  # the protect wrappers with deep=True convert nested containers

    def _bind(self, name: str, journal, capture_caller: bool) -> None:
        if len(name.encode("utf-8")) > fmt.MAX_NAME_LEN:
            raise ValueError(f"container name longer than {fmt.MAX_NAME_LEN} bytes")
        self._name = name  # type: ignore[misc]
        self._journal = _support.resolve_journal(journal)  # type: ignore[misc]
        self._capture = bool(capture_caller)  # type: ignore[misc]
        if not hasattr(self, "_active"):  # (__init__ again keeps an operation's mark)
            self._active = 0  # type: ignore[misc]  # the writer's operation epoch while an operation of ours runs

    def _operation(self) -> _Operation:
        """``with self._operation():`` around every change: see :class:`_Operation`."""
        return _Operation(self)

    @property
    def name(self) -> str:
        """The container's name in the journal."""
        return self._name

    @property
    def journal(self):
        """The journal it preserves into."""
        return self._journal

    @property
    def capture_caller(self) -> bool:
        """Whether records name their caller."""
        return self._capture

    def _record(self, op: str, key, values) -> None:
        caller = _caller() if self._capture else None
        self._journal.record(self._kind, op, self._name, key, values, caller=caller)

    def _adopt(self, value, key):
        """The value to store at ``key`` (the protect wrappers convert or validate it)."""
        return value


class MappingJournaling(Journaled):
    """The destructive methods of a mutable mapping, journaled (kind "dict").

    Needs ``get``, ``__getitem__`` and iteration, and the primitives ``_raw_setitem``,
    ``_raw_delitem`` and ``_raw_clear``.
    """

    __slots__ = ()
    _kind = "dict"

    def __setitem__(self, key, value):
        value = self._adopt(value, key)
        with self._operation():
            old = self.get(key, _MISSING)
            if old is not _MISSING and old is not value:
                self._record("set", key, {key: old})
            self._raw_setitem(key, value)

    def __delitem__(self, key):
        with self._operation():
            old = self.get(key, _MISSING)
            if old is _MISSING:
                raise KeyError(key)
            self._record("del", key, {key: old})
            self._raw_delitem(key)

    def pop(self, key, *default):
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")
        with self._operation():
            old = self.get(key, _MISSING)
            if old is _MISSING:
                if default:
                    return default[0]
                raise KeyError(key)
            self._record("pop", key, {key: old})
            self._raw_delitem(key)
            return old

    def _popitem(self, order):
        """Remove the first key of ``order(self)`` (``iter`` or ``reversed``)."""
        with self._operation():
            try:
                key = next(order(self))
            except StopIteration:
                raise KeyError("popitem(): dictionary is empty") from None
            value = self[key]
            self._record("popitem", key, {key: value})
            self._raw_delitem(key)
            return key, value

    def clear(self):
        with self._operation():
            old = dict(self.items())
            if old:
                self._record("clear", None, old)
            self._raw_clear()

    def update(self, *args, **kwargs):
        self._update(args, kwargs, "update")

    def _update(self, args, kwargs, op):
        """``update`` under another operation name (``|=``, ``init``): journals the values
        it overwrites in one record."""
        pairs = _support.update_pairs(args, kwargs)  # read before the lock is taken
        pairs = [(k, self._adopt(v, k)) for k, v in pairs]
        with self._operation():
            old = {}
            for k, v in pairs:
                o = self.get(k, _MISSING)
                if o is not _MISSING and o is not v and k not in old:
                    old[k] = o
            if old:
                self._record(op, None, old)
            for k, v in pairs:
                self._raw_setitem(k, v)


class SequenceJournaling(Journaled):
    """The destructive methods of a mutable sequence, journaled (kind "list").

    Needs ``__getitem__``, ``__len__``, ``index`` and iteration, and the primitives
    ``_raw_setitem``, ``_raw_delitem`` and ``_raw_clear``.
    """

    __slots__ = ()
    _kind = "list"

    def _values(self, items):
        """How discarded items are recorded: a list (a bytearray records bytes)."""
        return list(items)

    def _materialize(self, value):
        """What is assigned to a slice, read once before taking the lock."""
        return value if type(value) is list else list(value)

    def _position(self, index) -> int:
        index = operator.index(index)
        return index + len(self) if index < 0 else index  # type: ignore[arg-type]  # (a sequence)

    def __setitem__(self, key, value):
        if type(key) is slice:
            self._set_slice(key, self._materialize(value))
            return
        value = self._adopt(value, key)
        with self._operation():
            try:
                old = self[key]
            except IndexError:  # nothing there, nothing discarded: the object decides
                old = _MISSING
            if old is not _MISSING and old is not value:
                self._record("set", self._position(key), self._values([old]))
            self._raw_setitem(key, value)

    def _set_slice(self, key, value):
        with self._operation():
            old = self[key]
            start, stop, step = key.indices(len(self))
            if step != 1 and len(old) != len(value):
                raise ValueError(
                    f"attempt to assign sequence of size {len(value)} to extended slice of size {len(old)}"
                )
            if len(old):  # where the old items were, and how many items replace them
                self._record("set", (slice(start, stop, step), len(value)), self._values(old))
            if self._deep:
                value = [self._adopt(v, start + j * step) for j, v in enumerate(value)]
            self._raw_setitem(key, value)

    def __delitem__(self, key):
        with self._operation():
            old = self[key]  # IndexError, TypeError: nothing is deleted either
            if type(key) is slice:
                if len(old):
                    self._record("del", slice(*key.indices(len(self))), self._values(old))
            else:
                self._record("del", self._position(key), self._values([old]))
            self._raw_delitem(key)

    def pop(self, index=-1):
        with self._operation():
            old = self[index]
            self._record("pop", self._position(index), self._values([old]))
            self._raw_delitem(index)
            return old

    def remove(self, value):
        with self._operation():
            # the first equal item, found once: the item journaled is the item deleted
            i = self.index(value)
            self._record("remove", i, self._values([self[i]]))
            self._raw_delitem(i)

    def clear(self):
        with self._operation():
            old = self._values(self)
            if len(old):
                self._record("clear", None, old)
            self._raw_clear()


class _Proxy(Journaled):
    """What both proxies share: the wrapped object, the primitives and the reading methods."""

    __slots__ = ("_target", "_name", "_journal", "_capture", "_active", "__weakref__")
    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as the builtins

    def __init__(self, target, *, name: str | None = None, journal=None, capture_caller: bool = False):
        if not isinstance(target, self._abc):
            raise TypeError(
                f"{type(self).__name__} wraps a {self._abc.__name__}, not {type(target).__qualname__!r}"
            )
        self._target = target
        self._bind(
            _support.auto_name(self._kind, __name__) if name is None else name, journal, capture_caller
        )

    @property
    def target(self):
        """The wrapped object.  Calling its methods directly bypasses journaling."""
        return self._target

    def __repr__(self):
        return f"{type(self).__name__}({self._target!r}, name={self._name!r})"

    def __getattr__(self, attribute):
        raise AttributeError(
            f"{type(self).__name__} offers only the {self._abc.__name__} interface, so that every "
            f"discarding call is journaled; {attribute!r} is not part of it. Use .target."
            f"{attribute} to reach the wrapped object directly (not journaled)."
        )

    # the primitives the journaling methods change the wrapped object with
    def _raw_setitem(self, key, value):
        self._target[key] = value

    def _raw_delitem(self, key):
        del self._target[key]

    def _raw_clear(self):
        self._target.clear()

    # reading
    def __getitem__(self, key):
        return self._target[key]

    def __len__(self):
        return len(self._target)

    def __iter__(self):
        return iter(self._target)

    def __contains__(self, value):
        return value in self._target

    def __eq__(self, other):
        return self._target == (other._target if isinstance(other, _Proxy) else other)


class SafeMappingProxy(MappingJournaling, _Proxy, MutableMapping):
    """A ``MutableMapping`` view of a mapping that journals what it discards.

    Overwriting, deleting, ``pop``, ``popitem``, ``clear`` and ``update`` journal the values
    they discard, then change the wrapped mapping; everything else is the wrapped mapping's
    own method.  ``popitem`` removes the first key in iteration order, as
    ``MutableMapping.popitem`` does.  ``SafeMappingProxy(mapping, *, name=None,
    journal=None, capture_caller=False)``, or :func:`proxy`.
    """

    __slots__ = ()
    _abc = MutableMapping

    def get(self, key, default=None):
        return self._target.get(key, default)

    def keys(self):
        return self._target.keys()

    def items(self):
        return self._target.items()

    def values(self):
        return self._target.values()

    def setdefault(self, key, default=None):  # only ever adds; locked as the sequence's adds
        with self._operation():
            return self._target.setdefault(key, default)

    def popitem(self):
        return self._popitem(iter)


class SafeSequenceProxy(SequenceJournaling, _Proxy, MutableSequence):
    """A ``MutableSequence`` view of a sequence that journals what it discards.

    Assigning over items, deleting, ``pop``, ``remove`` and ``clear`` journal the items they
    discard, then change the wrapped sequence; everything else (``insert``, ``append``,
    ``extend``, ``reverse``, reads) is the wrapped sequence's own method, called under the
    journal's operation lock when it changes the sequence.
    ``SafeSequenceProxy(sequence, *, name=None, journal=None, capture_caller=False)``, or
    :func:`proxy`.
    """

    __slots__ = ()
    _abc = MutableSequence

    def __reversed__(self):
        return reversed(self._target)

    def index(self, value, *bounds):
        return self._target.index(value, *bounds)

    def count(self, value):
        return self._target.count(value)

    # adding and reordering: nothing is discarded, but under the operation lock, so that
    # no thread adds between what a discard reads and what it removes
    def insert(self, index, value):
        with self._operation():
            self._target.insert(index, value)

    def append(self, value):
        with self._operation():
            self._target.append(value)

    def extend(self, values):
        values = list(values)  # the caller's iterable runs before the lock (and may be self)
        with self._operation():
            self._target.extend(values)

    def __iadd__(self, values):
        self.extend(values)
        return self

    def reverse(self):
        with self._operation():
            self._target.reverse()


# What proxy gives: the object itself if it already journals, else a proxy.  A safe
# container typed only as a MutableSequence or MutableMapping is said to give a proxy
# (mypy flags that overlap).
if TYPE_CHECKING:

    @overload
    def proxy(  # type: ignore[overload-overlap]
        obj: SafeList[_T],
        name: str | None = None,
        journal: Any = None,
        capture_caller: bool = False,
    ) -> SafeList[_T]: ...
    @overload
    def proxy(  # type: ignore[overload-overlap]
        obj: SafeDict[_K, _V],
        name: str | None = None,
        journal: Any = None,
        capture_caller: bool = False,
    ) -> SafeDict[_K, _V]: ...
    @overload
    def proxy(
        obj: SafeSet[_T], name: str | None = None, journal: Any = None, capture_caller: bool = False
    ) -> SafeSet[_T]: ...
    @overload
    def proxy(obj: _J, name: str | None = None, journal: Any = None, capture_caller: bool = False) -> _J: ...
    @overload
    def proxy(
        obj: MutableMapping[Any, Any],
        name: str | None = None,
        journal: Any = None,
        capture_caller: bool = False,
    ) -> SafeMappingProxy: ...
    @overload
    def proxy(
        obj: MutableSequence[Any], name: str | None = None, journal: Any = None, capture_caller: bool = False
    ) -> SafeSequenceProxy: ...


def proxy(obj, name: str | None = None, journal=None, capture_caller: bool = False):
    """Wrap a mutable mapping or sequence so that what it discards is journaled first.

    The object is neither copied nor changed: the proxy delegates every method of the ABC
    to it, and journals the values a destructive method is about to discard before
    delegating.  Changes made through other references to the object are not journaled.

    Parameters
    ----------
    obj : MutableMapping or MutableSequence
        The object to protect: a class of your own, a library's (``shelve.Shelf``,
        ``UserDict``, ``UserList``), or a builtin you must not replace.
    name : str, optional
        The name of its records.  Default: where the proxy was created,
        ``dict@myapp.cache:12`` (``list@...`` for a sequence).
    journal : Journal, optional
        Default: :func:`safe_data.default_journal`.
    capture_caller : bool
        Record the file, line and function of each discarding call.

    Returns
    -------
    SafeMappingProxy or SafeSequenceProxy
        The proxy; ``obj`` itself if it already journals (a safe container or a proxy).

    Raises
    ------
    TypeError
        If ``obj`` is neither a ``MutableMapping`` nor a ``MutableSequence``.
    """
    from .protect import is_safe

    if is_safe(obj):
        return obj
    for cls in (SafeMappingProxy, SafeSequenceProxy):
        if isinstance(obj, cls._abc):
            return cls(obj, name=name, journal=journal, capture_caller=capture_caller)
    raise TypeError(
        f"proxy() wraps a collections.abc.MutableMapping or MutableSequence, not "
        f"{type(obj).__qualname__!r}; for a set use safe_data.SafeSet(obj), and for a class "
        f"of your own, implement (or register with) one of these ABCs"
    )
