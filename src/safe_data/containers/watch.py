"""``watch()``: a plain ``dict`` protected in place, on CPython 3.12's dict watchers.

``SafeDict`` protects what it is given to hold; a dict the application already has (a
module's globals, an object's ``__dict__``, a dict a library made) cannot become one.
``watch(d)`` journals every value that ``d`` loses, whatever removes it: ``d[k] = v``
over an old value, ``del``, ``pop``, ``popitem``, ``clear()``, ``dict.clear(d)``, C code.

When a record is written (docs/protecting.md): the watcher runs inside the dict
operation, where no Python code may run, so it keeps references to what is lost and the
record is encoded right after, by whichever comes first: the main thread at its next
check between bytecodes (a change made by the main thread is journaled before its next
function call or loop iteration), the committer thread (within a few milliseconds of a
change made by any thread), or :func:`flush_watched` (which returns once every change
made before it is journaled).  Everything queued is journaled at exit.  A SIGKILL can
lose changes made since the last of these; SafeDict journals before the change, so it
cannot.

The C extension on CPython 3.12 or newer only: elsewhere ``watch`` raises
NotImplementedError and names the alternatives.
"""

from __future__ import annotations

import atexit
import sys
import threading
import warnings

from ..errors import JournalWarning
from . import SafeDict, _support

__all__ = ["flush_watched", "unwatch", "watch", "watched_name"]

_drain_lock = threading.RLock()  # one drain at a time: records stay in the order of the changes
_c = None  # the C half (_watch_c), once watch() started it
_INLINE_VALUES = 1 << 2  # Py_TPFLAGS_INLINE_VALUES (3.13): attributes stored in the object


class _Watch:
    """How one dict is watched: its name, journal, container number, ``on_dealloc``."""

    __slots__ = ("name", "journal", "container_id", "on_dealloc")

    def __init__(self, name: str, journal, on_dealloc: bool):
        self.name = name
        self.journal = journal
        self.container_id = journal._writer.next_container_id()
        self.on_dealloc = on_dealloc


def _watcher():
    """The C half, started on first use; NotImplementedError where it cannot exist."""
    from .. import _impl

    if sys.version_info < (3, 12) or not _impl.EXTENSION:
        why = "CPython 3.12 or newer" if sys.version_info < (3, 12) else "the C extension"
        raise NotImplementedError(
            f"safe_data.watch() needs dict watchers, which need {why}; protect the data "
            "with a SafeDict instead (safe_data.make_safe(d) makes one of a dict, "
            "safe_data.proxy(obj) wraps another mapping)"
        )
    global _c
    if _c is None:
        from . import _watch_c

        _watch_c.start(_drain_quietly)
        threading.Thread(target=_watch_c.commit_forever, name="safe_data-watch", daemon=True).start()
        atexit.register(flush_watched)
        _c = _watch_c
    return _c


def _target_dict(target) -> dict:
    if isinstance(target, SafeDict):
        raise ValueError("a SafeDict journals its discards already: it needs no watch()")
    if isinstance(target, dict):
        return target
    if sys.version_info[:3] == (3, 13, 0) and type(target).__flags__ & _INLINE_VALUES:
        raise NotImplementedError(
            "CPython 3.13.0 does not tell dict watchers when an attribute stored in the object "
            "itself changes (CPython issue 125608, fixed in 3.13.1): upgrade to watch an "
            "object's attributes; dicts and modules can be watched on 3.13.0"
        )
    try:
        return vars(target)
    except TypeError:
        raise TypeError(
            f"watch() takes a dict or an object with a __dict__, not {type(target).__name__}"
        ) from None


def watch(target, name: str | None = None, *, journal=None, on_dealloc: bool = False):
    """Journal every value ``target`` loses from now on; return ``target``.

    ``target`` is a dict, or an object whose attributes (its ``__dict__``) are watched.
    ``name`` defaults to where watch() was called (``dict@myapp.config:12``); ``journal``
    to the default journal.  With ``on_dealloc=True`` the contents are journaled (as a
    clear) when the dict is deallocated.  Nested containers are not watched.
    """
    c = _watcher()
    d = _target_dict(target)
    if c.settings_of(d) is not None:
        raise ValueError(f"this dict is watched already, as {c.settings_of(d).name!r}: unwatch() it first")
    if name is None:
        name = _support.auto_name("dict" if d is target else type(target).__name__, __name__)
    elif not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    c.watch(d, _Watch(name, _support.resolve_journal(journal), bool(on_dealloc)))
    return target


def unwatch(target) -> None:
    """Stop watching ``target`` (what it lost while watched is journaled first)."""
    c = _watcher()
    d = _target_dict(target)
    if c.settings_of(d) is None:
        raise ValueError("this dict is not watched")
    flush_watched()
    c.unwatch(d)


def watched_name(target) -> str | None:
    """The name ``target`` is watched under, or None if it is not watched."""
    settings = _watcher().settings_of(_target_dict(target))
    return None if settings is None else settings.name


def flush_watched() -> None:
    """Journal every change the watcher has seen; return once they are in the journal
    (on disk, in the fsync mode).  A record that cannot be written is reported as a
    :class:`~safe_data.JournalWarning` naming the dict and the key."""
    if _c is None:
        return
    with _drain_lock:
        failures = [failure for item in _c.take() if (failure := _journal(_c, *item))]
    for failure in failures:  # after every record is written: a warning may be an error
        warnings.warn(JournalWarning(failure), stacklevel=2)


def _journal(c, settings: _Watch, event: int, key, lost) -> str | None:
    """Write one record; if it cannot be, say why."""
    if event == c.MODIFIED:
        op, values = "set", {key: lost}
    elif event == c.DELETED:
        op, values = "del", {key: lost}
    else:  # cleared, or deallocated with on_dealloc
        op, values = "clear", lost
    try:
        settings.journal.record("dict", op, settings.name, key, values, container_id=settings.container_id)
    except Exception as exc:  # the dict has changed already: it cannot be refused
        return f"watched dict {settings.name!r}: the {op} of key {key!r} could not be journaled: {exc}"
    return None


def _drain_quietly() -> None:
    """flush_watched() for the pending call and the committer: never waits for the other
    (the one draining takes what is queued), and ``_watch_c`` reports what it raises."""
    if _drain_lock.acquire(blocking=False):
        try:
            flush_watched()
        finally:
            _drain_lock.release()
