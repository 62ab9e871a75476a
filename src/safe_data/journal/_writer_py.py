"""Pure-Python twin of ``_writer_c.pyx``: the same names, in the same order, writing the
same bytes (the value encoder is ``codec.py``'s).

It follows the C code closely on purpose, so a fix in one is easy to carry to the other.
Used when the extension is not built, or when ``SAFE_DATA_NO_EXTENSIONS=1``.
"""

from __future__ import annotations

import errno
import os
import threading
import time
import weakref

import google_crc32c

from .. import _faults
from ..errors import JournalClosedError, RecordTooLargeError
from . import format as fmt
from .codec import decode_values, encode_value, put_varint
from .segments import sync_data

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DURABILITY_BATCH",
    "DURABILITY_FSYNC",
    "DURABILITY_PROCESS",
    "RecordWriter",
    "crc32c",
    "decode_values",
]

crc32c = google_crc32c.value

DURABILITY_PROCESS = 0
DURABILITY_BATCH = 1
DURABILITY_FSYNC = 2

_lz4_compress = None


def _compress(payload):
    global _lz4_compress
    if _lz4_compress is None:  # lz4 is imported on first use: keeps `import safe_data` light
        from lz4.block import compress as _lz4_compress
    return _lz4_compress(payload, store_size=True)


def _worth_compressing(payload) -> bool:
    """Long payloads are compressed only if a probe of their start shrinks (format.md)."""
    if len(payload) <= fmt.LZ4_PROBE_SIZE:
        return True
    return len(_compress(memoryview(payload)[: fmt.LZ4_PROBE_SIZE])) * 10 <= fmt.LZ4_PROBE_SIZE * 9


class RecordWriter:
    """Appends frames to the active segment of one journal, for all threads of a process."""

    def __init__(self, manager, mac_key: bytes, durability: int, compress_threshold: int):
        self._manager = manager
        self._key = mac_key
        self._fsync = durability == DURABILITY_FSYNC
        self._threshold = compress_threshold
        self._lock = threading.Lock()
        #: held by a container from reading what it discards to changing itself (see
        #: RecordWriter.enter in _writer_c.pyx); reentrant for pickles that discard.  In this
        #: twin, adding takes it too: Python code cannot take items out in one atomic step
        self.operation_lock = _OperationLock(self)
        self.adding_lock = self.operation_lock.lock  # adding methods need no epoch
        self._map: Any = None  # the active segment's mmap, None between segments
        self._pos = self._end = 0
        self._fd = -1
        self._seq = 0
        self._closed = False
        # compact frames (format version 2): the active segment's table, (thread, name,
        # container number) -> slot, and the time of its last frame (see _commit)
        self._compact = manager.compact
        self._slots: dict[tuple, int] = {}
        self._time = 0
        self._hook = None  # called after each record (Journal.on_discard), or None
        self._bytes = 0  # frame bytes written by this process (safe_data.stats())
        self._containers = 0  # numbers given to containers (next_container_id)
        # group commit ("fsync" mode, see _settle); _flusher under _flushed, the rest under self._lock
        self._flushed = threading.Condition(threading.RLock())  # a flush ended (see _settle)
        self._flusher = 0  # the thread flushing, 0 if none
        self._synced = 0  # every record up to this seq is on disk
        self._failed: tuple | None = None  # (lo, hi, errno, message): see _fail
        self._unsettled = 0  # operations and appends whose records _settle has not answered for
        self._flushes = 0  # fdatasync calls made for records (their grouping shows here)

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def op_epoch(self) -> int:
        """How many outermost operations have begun (see _Binding.__enter__)."""
        return self.operation_lock.epoch

    @property
    def bytes_written(self) -> int:
        """Bytes of the frames this process wrote through this writer (since a fork)."""
        return self._bytes

    @property
    def flushes(self) -> int:
        """fdatasync calls made to put records on disk ("fsync" mode; since a fork): fewer
        than the records when concurrent operations shared them."""
        return self._flushes

    @property
    def prefaulted_to(self) -> int:
        """0: this writer has no prefaulter (the C writer's thread that faults a segment's
        pages in ahead of its records)."""
        return 0

    @property
    def synced(self) -> int:
        """The seq up to which every record is known to be on disk ("fsync" mode)."""
        return self._synced

    @property
    def mac_key(self) -> bytes:
        """The journal's key, which authenticates pickles (and tells its containers)."""
        return self._key

    def next_container_id(self) -> int:
        """A number for a new container, unique among this writer's (codes 1, 2, ...)."""
        with self._lock:
            self._containers += 1
            return self._containers

    def set_hook(self, hook) -> None:
        """Call ``hook(seq, time_ns, op, name, key, values, caller, container_id)`` after
        each record is in the journal, in the writing thread (inside the operation: in
        "fsync" mode before the flush that ends it); None: no hook.
        """
        self._hook = hook

    def append(self, op: int, name: bytes, key, values, caller=None, container_id: int = 0) -> int:
        """Journal one record; return its sequence number.  Raises before anything is lost."""
        payload = bytearray()
        encode_value(payload, key, self._key)
        encode_value(payload, values, self._key)
        flags = 0
        if caller is not None:
            encode_value(payload, caller, self._key)
            flags |= fmt.FLAG_CALLER
        if len(payload) >= self._threshold and _worth_compressing(payload):
            packed = _compress(payload)
            if len(packed) < len(payload):
                payload = packed
                flags |= fmt.FLAG_COMPRESSED
        if not self._compact:
            number = bytearray()
            if container_id:  # the container's number, LEB128, after the name
                flags |= fmt.FLAG_ID
                put_varint(number, container_id)
            payload = bytearray(name + number + payload)
        # the most a frame takes (a compact one: with its definition, each field at most)
        frame_len = (
            fmt.FRAME_HEADER_SIZE + len(payload) + (fmt.COMPACT_SLACK + len(name) if self._compact else 0)
        )
        if frame_len > fmt.MAX_FRAME_LEN:
            raise RecordTooLargeError(
                f"a {frame_len}-byte record exceeds the 4 GiB frame limit; nothing was discarded"
            )
        thread = threading.get_ident()
        settle = False
        with self._lock:
            if self._closed:
                raise JournalClosedError("the journal is closed; nothing was discarded")
            if self._pos + frame_len > self._end:
                self._rotate(frame_len)
            seq = self._seq + 1
            now = time.time_ns()
            if self._compact:
                frame = self._compact_frames(seq, now, thread, op, flags, name, container_id, payload)
            else:
                frame = fmt.FRAME_HEADER.pack(0, 0, seq, now, thread, op, flags, len(name)) + payload
                crc = crc32c(frame[8:])
                frame = fmt.FRAME_HEADER.pack(len(frame), crc, 0, 0, 0, 0, 0, 0)[:8] + frame[8:]
            pos = self._pos
            self._map[pos + 1 : pos + len(frame)] = frame[1:]
            _faults.point("record.write")
            # its first byte last, as the C writer does: the frames are there once it is
            # (zero before: where the frames end)
            self._map[pos] = frame[0]
            self._pos = pos + len(frame)
            self._seq = seq
            self._bytes += len(frame)
            if self._fsync:
                ol = self.operation_lock
                if ol.owner == thread:  # on disk once the operation ends, outside its lock
                    if not ol.first:
                        ol.first = seq
                        self._unsettled += 1
                    ol.last = seq
                else:
                    self._unsettled += 1
                    settle = True
        if settle:
            self._settle(seq, seq)
        if self._hook is not None:
            self._hook(seq, now, op, name, key, values, caller, container_id)
        return seq

    def _compact_frames(self, seq, now, thread, op, flags, name, container_id, payload) -> bytes:
        """The compact frame of a record (format version 2), after the definition of its
        (thread, name, number) if this segment has none yet."""
        defined = b""
        slot = self._slots.get((thread, name, container_id))
        if slot is None:
            slot = self._slots[thread, name, container_id] = len(self._slots)
            defined = fmt.compact_frame(
                crc32c, seq, self._time, fmt.define_body(slot, thread, container_id, name)
            )
        frame = fmt.compact_frame(
            crc32c, seq, now, fmt.record_body(op, flags, now - self._time, slot, payload)
        )
        self._time = now
        return defined + frame

    def _settle(self, first: int, last: int) -> None:
        """Return once the records ``first`` to ``last`` (one operation's, or one append's)
        are on disk ("fsync" mode); raise OSError if a failed flush or seal covered one.

        Group commit: one thread at a time flushes (the leader, ``_flusher``), with one
        fdatasync, every record written so far, holding no lock meanwhile.  Threads that
        wrote meanwhile wait on ``_flushed``; the leader wakes them all when done, and each
        finds its record on disk, or leads the next flush, for all that wrote since.  A
        finalizer run by the leader's thread may discard and settle in turn: it flushes
        itself rather than wait for itself (the condition's lock is reentrant for it).
        """
        me = threading.get_ident()
        try:
            while True:
                with self._flushed:
                    while True:
                        failed = self._failed
                        if failed is not None and failed[0] < last and first <= failed[1]:
                            raise OSError(failed[2], failed[3])
                        if last <= self._synced:
                            return
                        if self._flusher in (0, me):
                            break
                        self._flushed.wait()
                    outer, self._flusher = self._flusher, me
                try:
                    # let the threads just woken by the last flush write their records
                    # first (a GIL switch, ~1 us against a ~1 ms fdatasync): one flush then
                    # covers them, rather than each leading a flush of its own
                    time.sleep(0)
                    self._flush()
                finally:
                    with self._flushed:
                        self._flusher = outer
                        self._flushed.notify_all()
        finally:
            with self._lock:
                self._unsettled -= 1
                if not self._unsettled:
                    self._failed = None  # no record it covered is left to report it

    def _flush(self) -> None:
        """One fdatasync of the active segment, for every record written so far (those of
        earlier segments are on disk: sealing fsyncs them, see _seal)."""
        with self._lock:
            target, lo = self._seq, self._synced
            if self._map is None:
                # C: a rotation let the GIL go while sealing them; its fsync marks them.
                # Here it held self._lock throughout, so the seal has marked them already
                return
            fd = os.dup(self._fd)
            self._flushes += 1
        try:
            try:
                sync_data(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            with self._lock:
                self._fail(lo, target, exc)
        else:
            with self._lock:
                self._synced = max(self._synced, target)

    def _fail(self, lo: int, hi: int, exc: BaseException) -> None:
        """Note (under self._lock) that the records lo < seq <= hi may not be on disk: a
        flush or a seal of them failed.  Each reports it to its operation, even after a later
        flush succeeds: once fdatasync has failed, the kernel may have dropped their dirty
        pages, and a retry proves nothing about them.  Forgotten when none is left."""
        code = exc.errno if isinstance(exc, OSError) and exc.errno else errno.EIO
        failed = self._failed
        if failed is not None:
            lo, hi = min(lo, failed[0]), max(hi, failed[1])
        self._failed = (lo, hi, code, f"records {lo + 1} to {hi} of the journal may not be on disk: {exc}")

    def _rotate(self, need: int) -> None:
        self._seal()
        self._map, self._pos, self._end, self._fd = self._manager.open(need, self._seq + 1)
        self._slots = {}  # a new segment, a new table: every segment is read alone
        self._time = self._manager.active.created_ns

    def _seal(self) -> None:
        """Seal the active segment, if any (under self._lock), and note its records on disk
        ("fsync" mode: sealing fsyncs), or that they may not be if sealing failed."""
        used, self._map, self._pos, self._end, self._fd = self._pos, None, 0, 0, -1
        try:
            self._manager.seal(used, self._seq)
        except BaseException as exc:
            if self._fsync:
                self._fail(self._synced, self._seq, exc)
            raise
        if self._fsync:
            self._synced = self._seq

    def sync(self) -> None:
        """Make every record written so far durable (fdatasync of the active segment)."""
        with self._lock:
            if self._map is None:
                return
            fd = os.dup(self._fd)
        try:
            sync_data(fd)
        finally:
            os.close(fd)

    def seal_segment(self) -> None:
        """Seal the active segment now (the next record opens a new one), so that what it
        holds can be shipped; nothing happens if no segment is open."""
        with self._lock:
            if self._closed or self._map is None:
                return
            self._seal()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._seal()

    def before_fork(self) -> None:
        """Nothing to end: this writer has no thread of its own (the C writer's prefaulter
        has one)."""

    def after_fork_in_child(self) -> None:
        """A forked child must never write into its parent's segment."""
        self._lock = threading.Lock()
        # another thread of the parent may have been inside an operation: start free,
        # but keep counting epochs (marks left by the parent's threads must not match)
        epoch, self.operation_lock = self.operation_lock.epoch, _OperationLock(self)
        self.operation_lock.epoch = epoch
        self.adding_lock = self.operation_lock.lock
        self._map, self._pos, self._end, self._fd, self._seq = None, 0, 0, -1, 0
        self._bytes = 0
        self._flushed = threading.Condition(threading.RLock())
        self._flusher = 0
        self._synced = self._unsettled = self._flushes = 0
        self._failed = None
        self._manager.forget_after_fork()


class _OperationLock:
    """RecordWriter.enter/leave of _writer_c.pyx: a reentrant lock that counts the outermost
    entries (``epoch``), by which a container tells its own operation from another's; in
    "fsync" mode the records of an operation go to disk once it has left the lock."""

    __slots__ = ("lock", "_depth", "epoch", "owner", "first", "last", "_writer")

    def __init__(self, writer: RecordWriter):
        self.lock = threading.RLock()
        self._depth = 0
        self.epoch = 0
        self.owner = 0  # the thread inside, 0 if none
        self.first = self.last = 0  # the seqs of the operation's records ("fsync" mode)
        self._writer = weakref.ref(writer)  # the writer holds this lock

    def __enter__(self):
        self.lock.acquire()
        self._depth += 1
        if self._depth == 1:
            self.epoch += 1
            self.owner = threading.get_ident()
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth:
            self.lock.release()
            return
        first, last = self.first, self.last
        self.first = self.owner = 0
        self.lock.release()
        if first:
            self._writer()._settle(first, last)
