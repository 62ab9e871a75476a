"""Discard hooks: what a journal's writer calls after each record while ``on_discard``
callbacks are registered (unset, the hot path pays one C flag test).

A :class:`DiscardHooks` builds the :class:`~safe_data.journal.reader.Record` and calls
the callbacks in turn, in the discarding thread, under the journal's operation lock and
before the container changes.  A callback's exception is reported as a
:class:`~safe_data.errors.DiscardHookWarning` and never propagates: the record is already
in the journal, and the operation goes on.  Records written while a callback runs (a
callback that discards, into this journal or another) are journaled as always but fire no
callbacks, so a callback can never recurse into itself.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings

from ..errors import DiscardHookWarning
from . import format as fmt
from .reader import Record

_in_callback = threading.local()  # .active: this thread is running a discard callback
_pid = os.getpid()  # for the records callbacks get (reset after a fork)
errors = 0  # callbacks that raised, for safe_data.stats()


class DiscardHooks:
    """The callbacks of one journal, called by its writer after each record.

    It holds the callbacks and the segment manager (for the writer id), not the journal,
    so the writer -> hook reference makes no cycle.
    """

    __slots__ = ("callbacks", "_manager")

    def __init__(self, manager):
        self.callbacks: tuple = ()
        self._manager = manager

    def __call__(self, seq, time_ns, op, name, key, values, caller, container_id):
        if getattr(_in_callback, "active", False):
            return  # written by a callback: journaled, not reported (no recursion)
        callbacks = self.callbacks
        if not callbacks:
            return
        kind, op_name = fmt.OPS[op]
        record = Record(
            seq,
            time_ns,
            name.decode("utf-8"),
            kind,
            op_name,
            _plain(key),
            _plain(values),
            _pid,
            threading.get_ident(),
            caller,
            self._manager.writer_id,
            None,
            None,
            container_id or None,
        )
        _in_callback.active = True
        try:
            for callback in callbacks:
                try:
                    callback(record)
                except Exception as exc:
                    _report(callback, record, exc)
        finally:
            _in_callback.active = False


def _plain(values):
    """A builtin copy of a safe container passed as the discarded values (a clear() passes
    the container itself, which is emptied right after the callback)."""
    t = type(values)
    if t is list or t is dict or t is set or values is None:
        return values
    if isinstance(values, list):
        return list(values)
    if isinstance(values, dict):
        return dict(values)
    if isinstance(values, set):
        return set(values)
    return values


def _report(callback, record, exc) -> None:
    global errors
    errors += 1
    message = (
        f"on_discard callback {callback!r} raised {type(exc).__name__}: {exc} "
        f"(record {record.seq} of {record.container!r} is in the journal)"
    )
    try:
        warnings.warn(message, DiscardHookWarning, stacklevel=2)
    except Exception as escalated:  # warnings turned into errors: still never propagate
        sys.unraisablehook(_Unraisable(type(escalated), escalated, escalated.__traceback__, None, callback))


class _Unraisable:
    """The argument sys.unraisablehook expects."""

    def __init__(self, exc_type, exc_value, exc_traceback, err_msg, obj):
        self.exc_type, self.exc_value, self.exc_traceback = exc_type, exc_value, exc_traceback
        self.err_msg, self.object = err_msg, obj


def _after_fork_in_child() -> None:
    global _pid, errors
    _pid = os.getpid()
    errors = 0


os.register_at_fork(after_in_child=_after_fork_in_child)
