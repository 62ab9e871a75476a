"""The journals of this process: found again by path, the default one, their totals for
``safe_data.stats()``, and what happens to all of them at a fork and at exit.

After ``os.fork()`` each journal's writer forgets the parent's segment and starts its own
on its first record; at exit every journal seals its active segment.
"""

from __future__ import annotations

import atexit
import os
import threading
import warnings
import weakref

from ..errors import JournalWarning

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:
    from .journal import Journal

_journals: weakref.WeakValueDictionary[str, Journal] = weakref.WeakValueDictionary()  # by path
_every: weakref.WeakSet[Journal] = weakref.WeakSet()  # for fork and exit hooks
#: the default journal and its writer ([None, None] until one is opened): one list the C
#: containers hold and read at every construction without a lookup, so it is changed in
#: place, by _set_default only (one slice assignment: a reader never sees half of it)
_default_slot: list = [None, None]
_lock = threading.RLock()
_closed_totals = [0, 0, 0]  # records, bytes, flushes of this process's journals since closed


def register(journal: Journal) -> None:
    with _lock:
        _journals.setdefault(journal.path, journal)
        _every.add(journal)


def unregister(journal: Journal) -> None:
    """Forget a journal that closed, counting what its writer wrote into the totals."""
    with _lock:
        if _journals.get(journal.path) is journal:
            del _journals[journal.path]
        _every.discard(journal)
        if _default_slot[0] is journal:
            _set_default(None)
        _closed_totals[0] += journal._writer.seq
        _closed_totals[1] += journal._writer.bytes_written
        _closed_totals[2] += journal._writer.flushes


def open_at(path: str) -> Journal | None:
    """The open journal of this process at the absolute ``path``, if any."""
    with _lock:
        return _journals.get(path)


def open_journals() -> list[Journal]:
    """The open journals of this process."""
    with _lock:
        return list(_every)


def totals() -> tuple[int, int, int]:
    """(records, bytes, fdatasyncs of records) this process wrote to its journals, open or
    closed, since it started (or since the fork that made it)."""
    with _lock:
        records, nbytes, flushes = _closed_totals
        for journal in _every:
            records += journal._writer.seq
            nbytes += journal._writer.bytes_written
            flushes += journal._writer.flushes
    return records, nbytes, flushes


def default() -> Journal:
    """The default journal: the one ``configure()`` opened, else the one at
    ``default_path()``, opened (or found open) the first time."""
    journal = _default_slot[0]
    if journal is None:
        # imported here: the containers find the default journal through this module,
        # and the journal's own modules load with the first journal, not with them
        from .journal import default_path, journal_at

        with _lock:
            if _default_slot[0] is None:
                _set_default(journal_at(default_path()))
            journal = _default_slot[0]
    return journal


def current() -> Journal | None:
    """The default journal if one is open (``default()`` opens one), else None."""
    return _default_slot[0]


def is_default(journal: Journal) -> bool:
    return journal is _default_slot[0]


def swap_default(journal: Journal | None) -> Journal | None:
    """Make ``journal`` the default journal; return the previous one."""
    with _lock:
        previous = _default_slot[0]
        _set_default(journal)
    return previous


def _set_default(journal: Journal | None) -> None:
    _default_slot[:] = (journal, None if journal is None else journal._writer)


def _before_fork() -> None:
    for journal in list(_every):
        journal._writer.before_fork()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()
    _closed_totals[:] = [0, 0, 0]
    for journal in list(_every):
        journal._after_fork_in_child()


def _close_all() -> None:
    for journal in list(_every):
        try:
            journal.close()
        except Exception as exc:  # exiting: report, keep closing the others
            warnings.warn(f"could not seal {journal.path} at exit: {exc}", JournalWarning, stacklevel=1)


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
atexit.register(_close_all)
