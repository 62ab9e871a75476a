"""The uploader: ships sealed segments to a sink (or several), and only then lets the local copy go.

See docs/remote.md for the contract.  In short, for each sealed ``<id>.seg`` of the
journal directory without a ``uploaded/<id>`` mark: read it, hash it (SHA-256 of the raw
segment), zstd-compress it (level 1), ``await sink.put(...)``.  On acknowledgement: delete
the segment at once, or write its mark durably and delete it ``keep_for`` seconds later;
either way the journal's ledger records it first (:mod:`safe_data.journal.ledger`), so
that a reader can tell it from a segment that vanished.

Transient failures are retried with exponential backoff and full jitter, honouring
``Retry-After``; a rejected segment is kept, reported once and counted.  Nothing of this
runs on the application's hot path: the uploader has its own thread (``start()``/
``close()``, or ``with Uploader(...)``) or runs as a task of the application's event loop
(``async with Uploader(...)``).

Staying out of the application's way (measured in benchmarks/test_bench_upload.py: an
application thread popping at full speed lost 80% of its speed to an uploader shipping
what it popped; now about 10-15%):

* hashing and compressing, the uploader's only CPU-heavy work, run in its own pool of
  ``compress_threads`` threads (default 1): it never takes more than that many cores,
  however many segments are in flight;
* its threads run at a lower priority (nice +10, Linux), so on a busy machine the
  application's threads go first;
* no fsync per segment: the ledger lines of the acknowledgements that arrive together
  share one fsync before their segments are deleted (``keep_for=0``), and with a
  retention period their marks share one directory fsync (group commit).

Every sealed segment in the directory is shipped, whichever process wrote it, so one
uploader can serve several writers; two uploaders on one directory are harmless (the
sink's idempotency absorbs the duplicate sends).

Several destinations (``sinks=[a, b, c], acks_required=2``): each destination
(:mod:`.destinations`) has its own segments in flight and its own retries, and marks what
it acknowledged in ``uploaded/to/<name>/``; a segment is acknowledged (marked in
``uploaded/``, or deleted) once ``acks_required`` destinations hold it.  Until it is
deleted, the destinations that miss it keep receiving it; a restart sends it only to
those.  A segment's compressed body is made once and shared by its destinations; an
encrypted one is also kept on disk until the segment is freed (:mod:`._prepared`), so that
every attempt, destination and run sends the same ciphertext.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import os
import random
import threading
import time
import warnings
from typing import Any

from .. import _faults
from ..errors import SafeDataError
from ..journal import encryption
from ..journal.format import SEALED_SUFFIX
from ..journal.journal import Journal, default_journal, journal_at
from . import _ledger, _prepared, drill, keystores
from ._ledger import MARKS_DIR, PendingSegment, pending_segments, read_status
from ._loop_thread import LoopThread, live_uploaders, lower_priority, register, unregister
from .destinations import Destination, destinations_of
from .sinks import RejectedError, Sink, TransientError

__all__ = [
    "Uploader",
    "UploaderError",
    "UploadWarning",
    "PendingSegment",
    "pending_segments",
    "MARKS_DIR",
    "read_status",
    "live_uploaders",
]

# the old package's name: what applications configure their logging for
log = logging.getLogger("safe_data.upload")

STATUS_INTERVAL = 1.0  # seconds: the report is rewritten at most this often


class UploaderError(SafeDataError):
    """The uploader cannot do what was asked (not started, closed, or inherited by fork)."""


class UploadWarning(UserWarning):
    """A sink rejected a segment for good; it stays in the journal directory."""


def _prepare(path: str, recipients: list | None, data_key: bool = False):
    """(raw size, sha256 hex, body, wrapped data key or None) of a segment file as it is
    sent (:func:`._prepared.made`), or None if it is gone.  A segment encrypted at rest
    already is its body, sent as it is (its size is the ciphertext's); not with a data
    key: the uploader cannot decrypt it (RejectedError)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    if encryption.is_encrypted(raw):
        if data_key:
            raise RejectedError(
                f"{os.path.basename(path)} is encrypted at rest to the long-term recipients: a "
                f"key store cannot shred it (ship it without a key store, or without encrypt_to)"
            )
        return len(raw), hashlib.sha256(raw).hexdigest(), raw, None
    segment_id = os.path.basename(path)[: -len(SEALED_SUFFIX)]
    body, sha256, wrapped = _prepared.made(os.path.dirname(path), segment_id, raw, recipients, data_key)
    return len(raw), sha256, body, wrapped


async def _wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` seconds pass."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()


class _GroupCommit:
    """Group commit of what follows acknowledgements (marks, or ledger lines and
    deletions).  ``await mark(id)`` returns once ``write_batch`` handled a batch holding
    ``id`` (or raises the OSError that prevented it).  One batch is written at a time,
    in a worker thread; the ids that arrive meanwhile form the next batch."""

    def __init__(self, write_batch) -> None:
        self._write_batch = write_batch  # blocking: (list of ids) -> None
        self._waiting: list[tuple[Any, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None

    async def mark(self, segment_id: Any) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._waiting.append((segment_id, done))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await loop.run_in_executor(None, self._write_batch, [i for i, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter of the batch
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def aclose(self) -> None:
        """Wait for the batch being written (it cannot be taken back once started)."""
        if self._drainer is not None:
            await asyncio.gather(self._drainer, return_exceptions=True)


# --- the uploader ----------------------------------------------------------------------------


class Uploader:
    """Ship the sealed segments of a journal to a sink (docs/remote.md).

    Parameters
    ----------
    sink : Sink
        Where segments go (:class:`~safe_data.remote.sinks.directory.DirectorySink`,
        :class:`~safe_data.remote.sinks.http.HttpSink`, ``S3Sink``).  The uploader closes it
        when it stops.  Give either ``sink`` or ``sinks``.
    journal : Journal or path, optional
        The journal whose directory is shipped; default: the default journal.  A path opens
        (or finds) this process's journal there.
    sinks : list of Sink, or {name: Sink}
        Several destinations, each with its own retries: a segment counts as acknowledged
        (and may be deleted) once ``acks_required`` of them hold it.  A destination's
        name (given, or derived from the sink's URL or path) is where its marks live:
        keep it stable across restarts.
    acks_required : int, optional
        How many destinations must acknowledge a segment (default: all of them).
    drill_every : float, optional
        Seconds between restore drills (:func:`safe_data.remote.drill.drill`) of each
        destination: a sample of ``drill_subset`` downloaded and verified, the result
        recorded for ``safe-data stats``.  None or 0: no drills.
    drill_subset : str or int
        The sample of a drill: a percentage (``"5%"``) or a number of segments (at least 1).
    seal_every : float
        Seconds between seals of this process's active segment, so that records do not sit
        unsent in it; 0 or None: seal only on :meth:`flush` (and when segments fill up).
    keep_for : float
        Seconds to keep an acknowledged segment on local disk before deleting it.
    concurrency : int
        Segments in flight at once.
    compress_threads : int
        Threads that hash and compress segments: at most this many cores are taken from
        the application (the rest of the uploader's work waits on the network and disk).
    backoff : (float, float)
        First and longest delay between retries of a segment (exponential, full jitter);
        a ``Retry-After`` from the sink takes precedence.
    exit_timeout : float
        At interpreter exit, a running uploader flushes for at most this long.
    recipients : list of str, optional
        age X25519 recipients (``age1...``): each segment is encrypted to all of them after
        compression, before it leaves (docs/security.md); needs the ``encrypt`` extra.
    key_store : KeyStore or path, optional
        Crypto-shredding (:mod:`.keystores`): each segment is encrypted to a fresh data
        key of its own instead, and that key, wrapped to ``recipients``, is stored here
        before the segment is sent.  Needs ``recipients``.  The uploader closes it.

    Notes
    -----
    Use it from threads: ``start()`` ... ``close()`` (or ``with Uploader(...)``), which
    runs a daemon thread with its own event loop; or inside an asyncio program:
    ``async with Uploader(...) as uploader`` (a task of the running loop).
    """

    def __init__(
        self,
        sink: Sink | None = None,
        journal=None,
        *,
        sinks=None,
        acks_required: int | None = None,
        drill_every: float | None = None,
        drill_subset: str | int = "5%",
        seal_every: float | None = 5.0,
        keep_for: float = 0.0,
        concurrency: int = 4,
        compress_threads: int = 1,
        backoff: tuple[float, float] = (0.1, 30.0),
        exit_timeout: float = 5.0,
        recipients: list[str] | None = None,
        key_store=None,
    ) -> None:
        if (sink is None) == (sinks is None):
            raise TypeError("give the uploader either a sink or sinks=[...], not both")
        destinations = destinations_of({"sink": sink} if sinks is None else sinks)
        required = len(destinations) if acks_required is None else int(acks_required)
        if not 1 <= required <= len(destinations):
            raise ValueError(f"acks_required must be between 1 and {len(destinations)} (the destinations)")
        if drill_every is not None and drill_every < 0:
            raise ValueError("drill_every must not be negative")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if compress_threads < 1:
            raise ValueError("compress_threads must be at least 1")
        if keep_for < 0:
            raise ValueError("keep_for must not be negative")
        if seal_every is not None and seal_every < 0:
            raise ValueError("seal_every must not be negative")
        first, longest = backoff
        if not 0 <= first <= longest:
            raise ValueError("backoff must be (first delay, longest delay) with 0 <= first <= longest")
        if journal is None:
            journal = default_journal()
        elif not isinstance(journal, Journal):
            journal = journal_at(os.fspath(journal))
        #: the sink of a single-destination uploader; None with ``sinks=``
        self.sink = sink
        self.destinations: list[Destination] = destinations
        self.sinks = [d.sink for d in destinations]
        self.acks_required = required
        # With one destination its acknowledgements are the marks in uploaded/ (the
        # layout of before several destinations existed); with more, each has its own.
        self._several = len(destinations) > 1
        self._names = [d.name for d in destinations]
        self.drill_every = drill_every or 0.0
        self.drill_subset = drill.parse_subset(drill_subset)
        self.journal = journal
        self.path = journal.path
        self.seal_every = seal_every or 0.0
        self.keep_for = float(keep_for)
        self.concurrency = int(concurrency)
        self.compress_threads = int(compress_threads)
        self.backoff = (float(first), float(longest))
        self.exit_timeout = exit_timeout
        # parsed now: a bad recipient or a missing pyrage is an error here, not a retry loop
        self.recipients = None if recipients is None else encryption.parse_recipients(recipients)
        if key_store is not None and self.recipients is None:
            raise ValueError(
                "a key store needs recipients: the data keys are stored encrypted to them "
                "(Uploader(..., recipients=[...], key_store=...), push --recipient)"
            )
        self.key_store = None if key_store is None else keystores.key_store_of(key_store)
        self._pid = os.getpid()
        self._forked = False
        self._state = "new"  # new, running, closed
        self._thread: LoopThread | None = None  # with start(): the thread running _main
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main_task: asyncio.Task | None = None
        self._stats_lock = threading.Lock()
        self._acked = 0
        self._acked_bytes = 0
        self._errors = 0
        self._last_error: str | None = None
        self._rejected: dict[str, str] = {}  # id -> reason, this run
        # ISO times, this run
        self._started: str | None = None
        self._last_ack: str | None = None
        self._last_error_at: str | None = None
        self._status_dirty = True
        self._status_written = 0.0  # monotonic time of the last report
        self._settled: set[str] = set()  # acknowledged or rejected, this run
        self._acked_ids: set[str] = set()  # acknowledged by enough destinations, this run
        # id -> (future of _prepare, names of the destinations using it)
        self._bodies: dict[str, tuple[asyncio.Future, set[str]]] = {}

    def __repr__(self) -> str:
        where = (
            repr(self.sink) if self.sink is not None else f"{self.sinks!r} ({self.acks_required} required)"
        )
        return f"<Uploader {self.path!r} -> {where} ({self._state})>"

    # --- public API ------------------------------------------------------------------------

    def start(self) -> Uploader:
        """Start the background thread (its own event loop); return self."""
        self._check_usable()
        if self._state != "new":
            raise UploaderError(f"this uploader is already {self._state}; create a new one")
        self._state = "running"
        self._thread = LoopThread("safe_data-uploader", "safe_data uploader")
        register(self)
        try:
            self._loop = self._thread.start(self._main)
        except BaseException:
            self._state = "closed"
            raise
        return self

    def flush(self, timeout: float | None = None) -> None:
        """Seal this process's active segment, then block until every segment sealed so far
        is acknowledged (or rejected: see :meth:`stats`).  TimeoutError if that takes
        longer than ``timeout`` seconds; the uploader keeps trying.  From a coroutine use
        :meth:`aflush`."""
        self._check_running()
        if asyncio._get_running_loop() is self._loop or self._in_own_thread():
            raise UploaderError(
                "flush() would block the uploader's own event loop: "
                "use `await uploader.aflush()` in asyncio code"
            )
        self.journal.seal()
        targets = [s.id for s in _ledger.scan(self.path)[0]]
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._wait_settled(targets), self._loop)
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:  # (not yet the builtin TimeoutError in 3.10)
            future.cancel()
            raise TimeoutError(self._timeout_message(targets, timeout)) from None

    async def aflush(self, timeout: float | None = None) -> None:
        """:meth:`flush` for asyncio code (from any event loop)."""
        self._check_running()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.journal.seal)
        targets = [s.id for s in (await loop.run_in_executor(None, _ledger.scan, self.path))[0]]
        assert self._loop is not None
        waiter: asyncio.Future[None]
        if loop is self._loop:
            waiter = asyncio.ensure_future(self._wait_settled(targets))
        else:
            waiter = asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self._wait_settled(targets), self._loop)
            )
        try:
            done, _ = await asyncio.wait({waiter}, timeout=timeout)
        finally:
            if not waiter.done():
                waiter.cancel()
        if not done:
            raise TimeoutError(self._timeout_message(targets, timeout))
        waiter.result()

    def close(self, timeout: float | None = 10) -> None:
        """Flush for at most ``timeout`` seconds, then stop.  Segments not acknowledged by
        then stay in the journal and are shipped by the next uploader.  In a forked child
        this does nothing (the parent's thread does not exist there)."""
        if self._forked or self._state != "running":
            self._state = "closed" if not self._forked else self._state
            return
        if self._thread is None:
            raise UploaderError(
                "this uploader runs in an event loop: use `await uploader.aclose()` (or `async with`)"
            )
        if self._in_own_thread():
            raise UploaderError("close() cannot be called from the uploader's own thread")
        try:
            self.flush(timeout)
        except TimeoutError as exc:
            warnings.warn(f"closing the uploader: {exc}", UploadWarning, stacklevel=2)
        finally:
            self._state = "closed"
            self._thread.call_soon(self._request_stop)
            self._thread.join(timeout=max(5.0, self.exit_timeout))
            unregister(self)

    async def aclose(self, timeout: float | None = 10) -> None:
        """:meth:`close` for the ``async with`` form."""
        if self._forked or self._state != "running":
            return
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.close, timeout)
            return
        try:
            await self.aflush(timeout)
        except TimeoutError as exc:
            warnings.warn(f"closing the uploader: {exc}", UploadWarning, stacklevel=2)
        finally:
            self._state = "closed"
            task = self._main_task
            if task is not None:
                self._request_stop()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            unregister(self)

    def counters(self) -> dict[str, Any]:
        """What this uploader did since it started, without looking at the disk (cheap):
        ``acked``/``acked_bytes`` (segments acknowledged by enough destinations),
        ``rejected`` (count) and ``rejected_ids`` (segments too many destinations refused),
        ``errors`` (transient failures), ``last_error``, ``running``, and
        ``destinations``: each one's ``name``, ``sink``, ``acked``, ``acked_bytes``,
        ``last_ack``, ``errors``, ``last_error``, ``last_error_at``, ``rejected``."""
        with self._stats_lock:
            return {
                "acked": self._acked,
                "acked_bytes": self._acked_bytes,
                "rejected": len(self._rejected),
                "rejected_ids": sorted(self._rejected),
                "errors": self._errors,
                "last_error": self._last_error,
                "running": self._state == "running",
                "destinations": [d.status() for d in self.destinations],
            }

    def stats(self) -> dict[str, Any]:
        """:meth:`counters`, and ``pending_segments``/``pending_bytes``: the sealed segments
        not acknowledged yet, in the journal directory now; each destination's with its
        ``pending`` segments (present, not acknowledged by it) and ``lag_seconds`` (the
        age of the oldest of them)."""
        self._check_usable()
        pending = pending_segments(self.path)
        counters = self.counters()
        return {
            "pending_segments": len(pending),
            "pending_bytes": sum(s.size for s in pending),
            **counters,
            "destinations": _ledger.with_backlog(self.path, counters["destinations"]),
        }

    def __enter__(self) -> Uploader:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    async def __aenter__(self) -> Uploader:
        self._check_usable()
        if self._state != "new":
            raise UploaderError(f"this uploader is already {self._state}; create a new one")
        self._loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        self._state = "running"
        register(self)
        self._main_task = self._loop.create_task(self._main(ready))
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait({waiter, self._main_task}, return_when=asyncio.FIRST_COMPLETED)
        if self._main_task.done():  # failed at start
            waiter.cancel()
            self._state = "closed"
            self._main_task.result()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    # --- internals -------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        self._forked = True  # the thread and loop stayed in the parent

    def _close_at_exit(self) -> None:
        if self._thread is not None:
            try:
                self.close(timeout=self.exit_timeout)
            except Exception as exc:  # exiting: report, let the others close
                warnings.warn(f"uploader could not finish at exit: {exc}", UploadWarning, stacklevel=1)

    def _in_own_thread(self) -> bool:
        return self._thread is not None and self._thread.is_current()

    def _check_usable(self) -> None:
        if self._forked or os.getpid() != self._pid:
            raise UploaderError(
                f"this Uploader belongs to process {self._pid}, which forked this one; its thread "
                f"does not exist here. Create and start a new Uploader in the child process."
            )

    def _check_running(self) -> None:
        self._check_usable()
        if self._state != "running":
            raise UploaderError(
                "the uploader is not running: call start() (or use `with` / `async with`) first"
                if self._state == "new"
                else "the uploader is closed; create a new one"
            )

    def _timeout_message(self, targets, timeout) -> str:
        left = _ledger.unacknowledged(self.path, [t for t in targets if t not in self._settled])
        detail = f"; last error: {self._last_error}" if self._last_error else ""
        return (
            f"{len(left)} segment(s) of {self.path} not acknowledged within {timeout} s; "
            f"they stay on local disk and are retried{detail}"
        )

    def _request_stop(self) -> None:
        """In the loop: end the main task at its next round (not by cancelling it: a cancel
        that races with a wake-up can be lost in Python < 3.12's wait_for)."""
        self._stop = True
        self._wake.set()

    def _error(self, message: str, destination: Destination | None = None) -> None:
        with self._stats_lock:
            self._errors += 1
            self._last_error = message
            self._last_error_at = _ledger.now_iso()
            self._status_dirty = True
            if destination is not None:
                destination.errors += 1
                destination.last_error = message
                destination.last_error_at = self._last_error_at

    def _status(self, running: bool) -> dict:
        with self._stats_lock:
            return {
                "sink": repr(self.sink) if self.sink is not None else repr(self.sinks),
                "acks_required": self.acks_required,
                "destinations": [d.status() for d in self.destinations],
                "pid": os.getpid(),
                "running": running,
                "started": self._started,
                "updated": _ledger.now_iso(),
                "acked": self._acked,
                "acked_bytes": self._acked_bytes,
                "last_ack": self._last_ack,
                "errors": self._errors,
                "last_error": self._last_error,
                "last_error_at": self._last_error_at,
                "rejected": dict(self._rejected),
            }

    async def _report(self, loop, *, running: bool = True, force: bool = False) -> None:
        """Rewrite the status file if something changed (at most every STATUS_INTERVAL)."""
        now = time.monotonic()
        if not force and (not self._status_dirty or now - self._status_written < STATUS_INTERVAL):
            return
        self._status_dirty = False
        self._status_written = now
        try:
            await loop.run_in_executor(None, _ledger.write_status, self.path, self._status(running))
        except OSError as exc:  # informational: never worth stopping for
            log.warning("cannot write the upload status in %s: %s", self.path, exc)

    async def _main(self, ready) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stop = False
        self._changed = asyncio.Event()  # replaced by a new one each time it is set
        self._tasks: dict[tuple[str, str], asyncio.Task] = {}  # (destination, segment id) -> task
        self._compressor = concurrent.futures.ThreadPoolExecutor(
            self.compress_threads,
            thread_name_prefix="safe_data-uploader-compress",
            initializer=lower_priority,
        )
        self._marks = _GroupCommit(self._acknowledged)
        self._deletions = _GroupCommit(self._delete_now)
        self._destination_marks = _GroupCommit(self._acknowledged_by_destination)
        await loop.run_in_executor(None, os.makedirs, os.path.join(self.path, MARKS_DIR), 0o700, True)
        self._started = _ledger.now_iso()
        drills = loop.create_task(self._drills()) if self.drill_every else None
        ready.set()
        next_seal = time.monotonic() + self.seal_every if self.seal_every else None
        try:
            while True:
                now = time.monotonic()
                if next_seal is not None and now >= next_seal:
                    try:
                        await loop.run_in_executor(None, self.journal.seal)
                    except Exception as exc:  # noqa: BLE001 - keep shipping what is sealed
                        self._error(f"sealing the active segment failed: {exc}")
                    next_seal = time.monotonic() + self.seal_every
                if self._stop:
                    return
                self._wake.clear()
                try:
                    wait = await self._round(loop)
                except Exception as exc:  # noqa: BLE001 - keep the uploader alive
                    log.exception("safe_data uploader round failed")
                    self._error(f"{type(exc).__name__}: {exc}")
                    wait = 1.0
                await self._report(loop)
                if next_seal is not None:
                    wait = min(wait, max(0.0, next_seal - time.monotonic()))
                await _wait_event(self._wake, wait)
        finally:
            tasks = list(self._tasks.values()) + ([drills] if drills is not None else [])
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._destination_marks.aclose()
            await self._marks.aclose()
            await self._deletions.aclose()
            await self._report(loop, running=False, force=True)
            self._compressor.shutdown(wait=False, cancel_futures=True)
            for sink in self.sinks:
                try:
                    await sink.close()
                except Exception as exc:  # noqa: BLE001 - stopping anyway
                    log.warning("closing %r failed: %s", sink, exc)
            if self.key_store is not None:
                await self.key_store.close()

    async def _round(self, loop) -> float:
        """Start shipping what is pending, delete what is due; seconds until the next round."""
        try:
            pending, marked, orphans = await loop.run_in_executor(None, _ledger.scan, self.path)
        except OSError as exc:
            self._error(f"cannot list {self.path}: {exc}")
            return 1.0
        wait = 1.0
        now = time.time()
        due = []
        for segment_id, mark_time in marked.items():
            left = mark_time + self.keep_for - now
            if left <= 0:
                due.append(segment_id)
            else:
                wait = min(wait, left)
        if due or orphans:
            await loop.run_in_executor(None, self._tidy, due, orphans)
        held: dict[str, set[str]] = {}
        if self._several:  # what each destination holds, and the segments kept after their
            # acknowledgement, which the destinations that miss them still receive
            held = await loop.run_in_executor(None, self._destination_scan, pending, marked)
            pending = pending + [
                PendingSegment(i, _ledger.segment_path(self.path, i), 0, t)
                for i, t in sorted(marked.items(), key=lambda item: (item[1], item[0]))
                if i not in due
            ]
        # the kept bodies of segments no destination misses any more go (:mod:`._prepared`)
        needed = [s.id for s in pending if not all(s.id in held.get(n, ()) for n in self._names)]
        await loop.run_in_executor(None, _prepared.tidy, self.path, needed)
        for destination in self.destinations:
            done = held.get(destination.name, set())
            for segment in pending:
                if len(destination.in_flight) >= self.concurrency:
                    break
                if (
                    segment.id in destination.in_flight
                    or segment.id in destination.rejected
                    or segment.id in destination.acked_ids  # (a scan may predate an acknowledgement)
                    or segment.id in done
                ):
                    continue
                destination.in_flight.add(segment.id)
                self._tasks[destination.name, segment.id] = loop.create_task(self._ship(destination, segment))
        return wait

    def _destination_scan(self, pending, marked) -> dict[str, set[str]]:
        """(In a worker thread) {destination: the present segments it acknowledged};
        the marks of segments gone from the journal are removed."""
        present = {s.id for s in pending} | set(marked)
        held = {}
        for name in self._names:
            marks = _ledger.destination_marks(self.path, name)
            _ledger.remove_destination_marks(self.path, [name], marks - present)
            held[name] = marks & present
        return held

    def _tidy(self, due, orphans) -> None:
        # never delete what no sink holds (or another uploader just deleted)
        marked = [i for i in due if _ledger.is_marked(self.path, i)]
        try:
            for segment_id in self._remove_acknowledged(marked):
                log.debug("deleted acknowledged segment %s", segment_id)
        except OSError as exc:
            self._error(f"cannot delete acknowledged segments {', '.join(marked)}: {exc}")
        else:
            _ledger.remove_marks(self.path, marked)
        _ledger.remove_orphan_marks(self.path, orphans)

    def _remove_acknowledged(self, segment_ids) -> list[str]:
        """Delete acknowledged segments, the journal's ledger naming the sinks that hold
        each (what a restore drill of a sink checks), and their kept bodies; the ids deleted."""
        if not self._several:
            removed = _ledger.remove_acknowledged(self.path, segment_ids, repr(self.sink))
        else:
            holders: dict[str, list[str]] = {}
            for segment_id in segment_ids:
                names = set(_ledger.acknowledged_by(self.path, segment_id, self._names))
                by = ", ".join(repr(d.sink) for d in self.destinations if d.name in names)
                holders.setdefault(by, []).append(segment_id)
            removed = []
            for by, ids in holders.items():
                removed += _ledger.remove_acknowledged(self.path, ids, by)
            _ledger.remove_destination_marks(self.path, self._names, removed)
        _prepared.remove(self.path, removed)
        return removed

    async def _ship(self, destination: Destination, segment: PendingSegment) -> None:
        attempt = 0
        prepared = None
        try:
            while True:
                retry_after = None
                try:
                    if prepared is None:
                        prepared = await self._body(destination, segment)
                    if prepared is None:  # gone: deleted by another uploader after its ack
                        return
                    size, sha256, body = prepared
                    _faults.point("upload.send")
                    await destination.sink.put(segment.id, body, sha256)
                    _faults.point("upload.ack")
                except RejectedError as exc:
                    self._reject(destination, segment.id, str(exc))
                    return
                except TransientError as exc:
                    retry_after = exc.retry_after
                    self._error(str(exc) or type(exc).__name__, destination)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a sink bug or an unreadable file: retry
                    self._error(f"segment {segment.id}: {type(exc).__name__}: {exc}", destination)
                else:
                    try:
                        await self._acknowledge(destination, segment.id, size)
                    except OSError as exc:  # it stays: sending it again is harmless
                        message = f"segment {segment.id} was acknowledged, but deleting or marking it failed"
                        self._error(f"{message}: {exc}", destination)
                    else:
                        return
                first, longest = self.backoff
                delay = random.uniform(0, min(longest, first * (2 ** min(attempt, 60))))
                if retry_after is not None:
                    delay = max(delay, retry_after)
                attempt += 1
                log.debug("segment %s to %s: retry in %.2f s", segment.id, destination.name, delay)
                await asyncio.sleep(delay)
        finally:
            self._release_body(destination, segment.id)
            destination.in_flight.discard(segment.id)
            self._tasks.pop((destination.name, segment.id), None)
            self._settle(segment.id)
            self._wake.set()

    async def _body(self, destination: Destination, segment: PendingSegment):
        """(raw size, sha256, body) of a segment (see :func:`_prepare`), made once for all its destinations
        and held until the last of them is done with it; None if the segment is gone.
        A failed attempt (an unreadable file, a key store that failed) is not kept: the next
        one reads again."""
        entry = self._bodies.get(segment.id)
        if entry is None or (entry[0].done() and (entry[0].cancelled() or entry[0].exception())):
            future = asyncio.ensure_future(self._made(segment))
            entry = self._bodies[segment.id] = (future, entry[1] if entry else set())
        entry[1].add(destination.name)
        return await asyncio.shield(entry[0])  # one destination stopping does not cancel it

    async def _made(self, segment: PendingSegment):
        loop = asyncio.get_running_loop()
        key_store = self.key_store
        prepared = await loop.run_in_executor(
            self._compressor, _prepare, segment.path, self.recipients, key_store is not None
        )
        if prepared is None:
            return None
        size, sha256, body, wrapped = prepared
        if key_store is not None and wrapped is not None:
            # its key first: a segment stored without its key would be lost (put again for
            # a body kept by an earlier run, which may have died before putting it)
            await key_store.put(segment.id, sha256, wrapped)
        return size, sha256, body

    def _release_body(self, destination: Destination, segment_id: str) -> None:
        entry = self._bodies.get(segment_id)
        if entry is not None:
            entry[1].discard(destination.name)
            if not entry[1]:
                del self._bodies[segment_id]

    async def _acknowledge(self, destination: Destination, segment_id: str, size: int) -> None:
        """``destination`` acknowledged a segment: mark it for that destination; once
        enough destinations did, mark the segment (with a retention period) or delete it."""
        if self._several:
            await self._destination_marks.mark((destination.name, segment_id))
            holders = await asyncio.get_running_loop().run_in_executor(
                None, _ledger.acknowledged_by, self.path, segment_id, self._names
            )
        with self._stats_lock:
            destination.acked_ids.add(segment_id)
            destination.acked += 1
            destination.acked_bytes += size
            destination.last_ack = _ledger.now_iso()
            self._status_dirty = True
        if segment_id in self._acked_ids or (self._several and len(holders) < self.acks_required):
            return
        self._acked_ids.add(segment_id)  # before the wait: the last acknowledgements race here
        try:
            await (self._marks if self.keep_for > 0 else self._deletions).mark(segment_id)
        except BaseException:
            self._acked_ids.discard(segment_id)
            with self._stats_lock:
                destination.acked_ids.discard(segment_id)
            raise
        with self._stats_lock:
            self._acked += 1
            self._acked_bytes += size
            self._last_ack = _ledger.now_iso()
            self._status_dirty = True

    def _acknowledged_by_destination(self, marks: list[tuple[str, str]]) -> None:
        """(In a worker thread) mark a batch of (destination, segment id) acknowledgements,
        so that a restart sends a segment only to the destinations that miss it."""
        for name in self._names:
            ids = [i for n, i in marks if n == name]
            if ids:
                _ledger.write_marks(self.path, ids, destination=name)

    def _acknowledged(self, segment_ids: list[str]) -> None:
        """(In a worker thread) mark a batch of acknowledged segments, for the retention
        period's sake (``keep_for``) and so that a restart does not send them again."""
        _faults.point("upload.delete")
        _ledger.write_marks(self.path, segment_ids)
        log.debug("acknowledged: %s", ", ".join(segment_ids))
        # kept for their retention period; their bodies not, unless a destination misses them
        if self._several:
            everywhere = len(self._names)
            segment_ids = [
                i
                for i in segment_ids
                if len(_ledger.acknowledged_by(self.path, i, self._names)) == everywhere
            ]
        _prepared.remove(self.path, segment_ids)

    def _delete_now(self, segment_ids: list[str]) -> None:
        """(In a worker thread) delete a batch of acknowledged segments without marks:
        their ledger lines share one fsync, the deletions none.  Should a deletion not
        survive a crash, the segment is sent again, and the sink answers "already stored"
        (a mark would cost two fsyncs per segment to save that resend)."""
        _faults.point("upload.delete")
        for segment_id in self._remove_acknowledged(segment_ids):
            log.debug("segment %s acknowledged and deleted", segment_id)

    def _reject(self, destination: Destination, segment_id: str, reason: str) -> None:
        """A destination refused a segment for good; once too many did for the others to
        make up ``acks_required``, the segment is rejected (kept, and waited for no more)."""
        with self._stats_lock:
            first = segment_id not in destination.rejected
            destination.rejected[segment_id] = reason
            destination.last_error = reason
            destination.last_error_at = _ledger.now_iso()
            refusals = sum(segment_id in d.rejected for d in self.destinations)
            if refusals > len(self.destinations) - self.acks_required:
                self._rejected[segment_id] = reason
            self._last_error = reason
            self._last_error_at = destination.last_error_at
            self._status_dirty = True
        if first:
            message = (
                f"segment {segment_id} was rejected by {destination.sink!r}: {reason}. It stays in "
                f"{self.path}; it is not sent there again by this uploader"
            )
            log.warning("%s", message)
            warnings.warn(message, UploadWarning, stacklevel=1)

    async def _drills(self) -> None:
        """Every ``drill_every`` seconds, a restore drill of each destination, recorded
        for ``safe-data stats``; a failed one is logged (it never stops the uploader)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.drill_every)
            for destination in self.destinations:
                try:
                    report = await drill.drill(destination.sink, self.path, self.drill_subset)
                    await loop.run_in_executor(None, drill.record, self.path, report)
                except Exception:  # noqa: BLE001 - a sink's bug or a full disk: the next one may work
                    log.exception("the restore drill of %r could not run or be recorded", destination.sink)
                    continue
                if not report.ok:
                    log.warning(
                        "restore drill of %r failed: %s", destination.sink, "; ".join(report.problems[:5])
                    )

    def _settle(self, segment_id: str) -> None:
        self._settled.add(segment_id)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _wait_settled(self, targets) -> None:
        """Until each target is acknowledged (marked or deleted) or rejected."""
        self._wake.set()
        loop = asyncio.get_running_loop()

        def remaining(ids):
            return _ledger.unacknowledged(self.path, [t for t in ids if t not in self._rejected])

        left = list(targets)
        while True:
            changed = self._changed
            left = await loop.run_in_executor(None, remaining, left)
            if not left:
                return
            await _wait_event(changed, 0.25)
