"""Reading segments back: frame validation, records and problems.

A reader trusts nothing it reads.  Every frame's length and CRC32C are checked before
any byte of it is decoded; the first frame that fails ends the segment and is reported as
a :class:`Problem` (segment, offset, reason), because after a bad length nothing that
follows can be located reliably.  Values are decoded by :mod:`.codec`, which runs no code
for builtin types and unpickles only MAC-verified pickles.
"""

from __future__ import annotations

import fcntl
import heapq
import mmap
import os
import struct
from collections import namedtuple
from datetime import datetime, timezone

from ..errors import CorruptRecordError
from . import format as fmt
from .. import _impl

_U32 = struct.Struct("<I")


class Problem(namedtuple("Problem", "segment offset reason live", defaults=(False,))):
    """Something a reader could not use: where it is and why.

    ``live`` is true when the segment is still being written by a running process.
    """

    __slots__ = ()

    def __str__(self):
        return f"{self.segment} at byte {self.offset}: {self.reason}"


class Record(namedtuple("Record", "seq time_ns container kind op key values pid thread caller "
                                  "writer segment offset")):
    """One preserved discard.

    ``values`` holds what was discarded: a list for list operations, a dict
    ``{key: old value}`` for dict operations, a set for set operations.  ``key`` is the
    index, slice or key the operation addressed (None for whole-container operations).
    """

    __slots__ = ()

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ns / 1e9, tz=timezone.utc)


class Frame:
    """A frame whose length and checksum verified; its payload is not decoded yet."""

    __slots__ = ("offset", "seq", "time_ns", "thread", "op", "flags", "name", "payload")

    def __init__(self, offset, seq, time_ns, thread, op, flags, name, payload):
        self.offset = offset
        self.seq = seq
        self.time_ns = time_ns
        self.thread = thread
        self.op = op
        self.flags = flags
        self.name = name
        self.payload = payload


_ZERO_CHUNK = bytes(1 << 16)


def is_zero(data, start: int) -> bool:
    """True if ``data[start:]`` is all zero bytes (works on mmaps, chunk by chunk)."""
    for pos in range(start, len(data), len(_ZERO_CHUNK)):
        chunk = data[pos:pos + len(_ZERO_CHUNK)]
        if chunk != _ZERO_CHUNK[: len(chunk)]:
            return False
    return True


def scan_frames(data, crc32c, segment: str, sealed: bool, start: int = fmt.SEGMENT_HEADER_SIZE):
    """Yield verified frames of ``data``; return (end of the last good frame, Problem or None).

    A frame is good when its length fits, its CRC32C matches and its sequence number
    follows the previous frame's: one writer numbers its frames one by one into its active
    segment, so a sound frame copied from another segment (or another place of this one)
    is caught here too (at the frame itself, or at the next one if it landed first).
    """
    pos, n = start, len(data)
    last_seq = 0
    while pos < n:
        if n - pos < 4:
            return pos, Problem(segment, pos, f"{n - pos} trailing bytes after the last frame")
        (frame_len,) = _U32.unpack_from(data, pos)
        if frame_len == 0:
            rest = n - pos
            if is_zero(data, pos):  # the preallocated zero tail
                if sealed:
                    return pos, Problem(segment, pos, f"{rest} zero bytes after the last frame")
                return pos, None
            return pos, Problem(segment, pos, "zeroed bytes followed by data (lost page?)")
        if frame_len < fmt.FRAME_HEADER_SIZE:
            return pos, Problem(segment, pos, f"invalid frame length {frame_len}")
        if frame_len > n - pos:
            return pos, Problem(segment, pos, f"torn frame: {frame_len} bytes announced, {n - pos} present")
        crc = _U32.unpack_from(data, pos + 4)[0]
        if crc != crc32c(data[pos + 8:pos + frame_len]):
            return pos, Problem(segment, pos, "checksum mismatch (torn write or corruption)")
        _, _, seq, time_ns, thread, op, flags, name_len = fmt.FRAME_HEADER.unpack_from(data, pos)
        if last_seq and seq != last_seq + 1:
            return pos, Problem(segment, pos, f"frame out of sequence: seq {seq} after {last_seq} "
                                              f"(copied from elsewhere?)")
        last_seq = seq
        body = pos + fmt.FRAME_HEADER_SIZE
        if body + name_len > pos + frame_len:
            return pos, Problem(segment, pos, "name longer than its frame")
        yield Frame(pos, seq, time_ns, thread, op, flags, data[body:body + name_len],
                    data[body + name_len:pos + frame_len])
        pos += frame_len
    return pos, None


def decode_frame(frame: Frame, header: fmt.SegmentHeader, segment: str, key, trust_pickles) -> Record:
    """Decode a verified frame; raise CorruptRecordError if its content is malformed."""
    try:
        kind, op = fmt.OPS[frame.op]
    except KeyError:
        raise CorruptRecordError(f"unknown operation code {frame.op}") from None
    if frame.flags & ~fmt.KNOWN_FLAGS:
        raise CorruptRecordError(f"unknown flags 0x{frame.flags:02x}")
    payload = frame.payload
    if frame.flags & fmt.FLAG_COMPRESSED:
        payload = _decompress(payload)
    decoded = _impl.decode_values(payload, key, trust_pickles, 3 if frame.flags & fmt.FLAG_CALLER else 2)
    rec_key, values = decoded[0], decoded[1]
    caller = decoded[2] if len(decoded) == 3 else None
    try:
        name = str(frame.name, "utf-8")
    except UnicodeDecodeError:
        raise CorruptRecordError("container name is not UTF-8") from None
    return Record(frame.seq, frame.time_ns, name, kind, op, rec_key, values, header.pid,
                  frame.thread, caller, header.writer_id, segment, frame.offset)


def _decompress(payload) -> bytes:
    from lz4.block import LZ4BlockError, decompress

    if len(payload) < 4:
        raise CorruptRecordError("compressed payload truncated")
    size = _U32.unpack_from(payload)[0]
    if size > fmt.MAX_LZ4_RATIO * len(payload):  # refuse decompression bombs
        raise CorruptRecordError(f"compressed payload claims an impossible {size} bytes")
    try:
        return decompress(payload)
    except LZ4BlockError as exc:
        raise CorruptRecordError(f"lz4: {exc}") from None


# --- segments ------------------------------------------------------------------------------


def segment_paths(directory: str) -> list[str]:
    names = [n for n in os.listdir(directory) if n.endswith((fmt.OPEN_SUFFIX, fmt.SEALED_SUFFIX))]
    return [os.path.join(directory, n) for n in sorted(names)]


def is_live(path: str) -> bool:
    """An ``.open`` segment is live while its writer holds the flock."""
    if not path.endswith(fmt.OPEN_SUFFIX):
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class SegmentView:
    """One segment file mapped for reading."""

    def __init__(self, path: str, crc32c):
        self.path = path
        self.name = os.path.basename(path)
        self.sealed = path.endswith(fmt.SEALED_SUFFIX)
        self.live = is_live(path)
        self._crc32c = crc32c
        with open(path, "rb") as f:
            if self.sealed:  # immutable: map it
                size = os.fstat(f.fileno()).st_size
                self.data = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) if size else b""
            else:
                # An .open segment may be sealed (truncated) by its writer at any moment;
                # a mapping would then fault with SIGBUS.  Read a snapshot instead.
                self.data = f.read()
        self.header = None
        self.problem = None
        try:
            self.header = fmt.unpack_segment_header(crc32c, self.data)
        except ValueError as exc:
            self.problem = Problem(self.name, 0, str(exc), self.live)

    def frames(self):
        """Yield verified frames; afterwards ``self.problem`` tells why the scan stopped."""
        if self.header is None:
            return
        problem = yield from scan_frames(self.data, self._crc32c, self.name, self.sealed)
        end, problem = problem
        if problem is not None:
            self.problem = Problem(problem.segment, problem.offset, problem.reason, self.live)
        self.end = end


def read_records(directory: str, crc32c, key, *, container=None, since_ns=None, until_ns=None,
                 trust_pickles=False, report=None):
    """Records of every segment in ``directory``, merged by time (then writer, then seq).

    ``report(problem)`` is called for each problem found; a record that fails to decode is
    reported and skipped, the rest of its segment is still read.
    """
    chains: dict[int, list[SegmentView]] = {}
    for path in segment_paths(directory):
        try:
            view = SegmentView(path, crc32c)
        except FileNotFoundError:  # sealed or recovered meanwhile: its .seg is listed next time
            continue
        if view.header is None:
            if report and not view.live:
                report(view.problem)
            continue
        chains.setdefault(view.header.writer_id, []).append(view)

    def chain(views):
        views.sort(key=lambda v: v.header.segment_no)
        for view in views:
            for frame in view.frames():
                if container is not None and frame.name != container:
                    continue
                if since_ns is not None and frame.time_ns < since_ns:
                    continue
                if until_ns is not None and frame.time_ns >= until_ns:
                    continue
                try:
                    yield decode_frame(frame, view.header, view.name, key, trust_pickles)
                except CorruptRecordError as exc:
                    if report:
                        report(Problem(view.name, frame.offset, f"undecodable record: {exc}"))
            if view.problem is not None and report and not view.live:
                report(view.problem)

    if container is not None:
        container = container.encode("utf-8")
    yield from heapq.merge(*(chain(v) for v in chains.values()),
                           key=lambda r: (r.time_ns, r.writer, r.seq))


def verify_directory(directory: str, crc32c, key) -> list[Problem]:
    problems: list[Problem] = []
    for _ in read_records(directory, crc32c, key, report=problems.append):
        pass
    return problems
