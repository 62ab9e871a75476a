"""Threads and processes around an uploader: its own thread and event loop, the registry
of live uploaders, what a forked child inherits, and the flush at interpreter exit.

A registered object (an :class:`~safe_data.remote.uploader.Uploader`) provides two hooks:
``_after_fork_in_child()`` (its thread does not exist in the child: it must refuse to be
used there) and ``_close_at_exit()`` (flush, for a bounded time, before the interpreter
stops the threads it needs).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["LoopThread", "lower_priority", "register", "unregister", "live_uploaders"]

log = logging.getLogger("safe_data.upload")

_live: weakref.WeakSet[Any] = weakref.WeakSet()


def register(uploader) -> None:
    _live.add(uploader)


def unregister(uploader) -> None:
    _live.discard(uploader)


def live_uploaders() -> list:
    """The uploaders of this process that have started and not been closed."""
    return list(_live)


def _after_fork_in_child() -> None:
    for uploader in list(_live):
        uploader._after_fork_in_child()
    _live.clear()


def _close_at_exit() -> None:
    for uploader in list(_live):
        uploader._close_at_exit()


os.register_at_fork(after_in_child=_after_fork_in_child)
# At exit, flush before concurrent.futures stops its thread pools (which the uploader's loop
# uses): hooks registered with threading run before atexit's, the latest first.
import concurrent.futures.thread  # noqa: E402,F401 - registers its hook before ours

if hasattr(threading, "_register_atexit"):
    threading._register_atexit(_close_at_exit)
else:  # pragma: no cover
    atexit.register(_close_at_exit)


def lower_priority() -> None:
    """Lower the calling thread's scheduling priority to nice +10, so that on a busy
    machine the application's threads go first.  Linux only: there a thread has its own
    nice value (inherited by the threads it starts), and its native id names it."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except OSError:  # not permitted (seccomp, ...): run at normal priority
            pass


class LoopThread:
    """A daemon thread, at a lower priority, running one coroutine in an event loop of its
    own: the bridge between an object's blocking methods (any thread) and its loop."""

    def __init__(self, name: str, what: str) -> None:
        self.name = name  # the thread's
        self.what = what  # for the log
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(
        self, main: Callable[[threading.Event], Coroutine[Any, Any, None]]
    ) -> asyncio.AbstractEventLoop:
        """Run ``main(ready)`` in the thread until it returns; return the loop once it set
        ``ready``, or raise what it raised before that."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            lower_priority()  # this thread and the workers it starts: background work
            loop = asyncio.new_event_loop()
            self.loop = loop
            try:
                loop.run_until_complete(loop.create_task(main(ready)))
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                if not ready.is_set():
                    failure.append(exc)
                    ready.set()
                elif not isinstance(exc, asyncio.CancelledError):
                    log.exception("%s stopped by an error", self.what)
            finally:
                try:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.run_until_complete(loop.shutdown_default_executor())
                finally:
                    loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        assert self.loop is not None
        return self.loop

    def is_current(self) -> bool:
        """Whether the caller runs in this thread."""
        return threading.current_thread() is self._thread

    def call_soon(self, callback: Callable[[], Any]) -> None:
        """Have the loop call ``callback`` soon (nothing if it has already stopped)."""
        if self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(callback)
            except RuntimeError:  # loop already closed
                pass

    def join(self, timeout: float | None) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout)
