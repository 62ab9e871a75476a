"""Reading segments back: frame validation, records and problems.

A reader trusts nothing it reads.  Every frame's length and CRC32C are checked before
any byte of it is decoded.  A frame that fails is reported as a :class:`Problem`
(segment, offset, reason); it costs that frame only when the next frame proves where it
ends, otherwise nothing that follows can be located reliably and the segment's frames end
there.  A sealed segment's header says how many records it holds, so one cut short at a
frame boundary is reported too, and :mod:`.continuity` checks each writer's segments
against one another.  Values are decoded by :mod:`.codec`, which runs no code for builtin
types and unpickles only MAC-verified pickles.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import struct
from collections import namedtuple
from datetime import datetime, timezone

from .. import _impl
from ..errors import CorruptRecordError
from . import compact as _compact
from . import format as fmt
from .encryption import is_encrypted

_U32 = struct.Struct("<I")
_READ_CHUNK = 1 << 20


class Problem(namedtuple("Problem", "segment offset reason live", defaults=(False,))):
    """Something a reader could not use: where it is and why.

    ``live`` is true when the segment is still being written by a running process.
    """

    __slots__ = ()

    def __str__(self):
        return f"{self.segment} at byte {self.offset}: {self.reason}"


class Record(
    namedtuple(
        "Record",
        "seq time_ns container kind op key values pid thread caller writer segment offset container_id",
        defaults=(None,),
    )
):
    """One preserved discard.

    ``values`` holds what was discarded: a list for list operations, a dict
    ``{key: old value}`` for dict operations, a set for set operations.  ``key`` is the
    index, slice or key the operation addressed (None for whole-container operations).
    ``container`` is the container's name as of the operation (a nested container's
    path); ``(writer, container_id)`` is its identity, whatever its name (None for
    records of other producers and of journals older than identities).
    """

    __slots__ = ()

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ns / 1e9, tz=timezone.utc)


class Frame:
    """A frame whose length and checksum verified; its payload is not decoded yet.

    ``number`` is the container's number of a compact frame (from its segment's table;
    0: none); None for a version-1 frame, whose payload starts with it under FLAG_ID.
    ``length``: the frame's bytes in the segment."""

    __slots__ = ("offset", "seq", "time_ns", "thread", "op", "flags", "name", "payload", "number", "length")

    def __init__(self, offset, seq, time_ns, thread, op, flags, name, payload, number=None, length=0):
        self.offset = offset
        self.seq = seq
        self.time_ns = time_ns
        self.thread = thread
        self.op = op
        self.flags = flags
        self.name = name
        self.payload = payload
        self.number = number
        self.length = length

    @property
    def container_number(self) -> int:
        """The container's number (0: none, or unreadable: decoding says so)."""
        if self.number is not None:
            return self.number
        if not self.flags & fmt.FLAG_ID:
            return 0
        try:
            return leb128(self.payload)[0]
        except CorruptRecordError:
            return 0


_ZERO_CHUNK = bytes(1 << 16)


def is_zero(data, start: int) -> bool:
    """True if ``data[start:]`` is all zero bytes (works on mmaps, chunk by chunk)."""
    for pos in range(start, len(data), len(_ZERO_CHUNK)):
        chunk = data[pos : pos + len(_ZERO_CHUNK)]
        if chunk != _ZERO_CHUNK[: len(chunk)]:
            return False
    return True


class Hole(namedtuple("Hole", "offset length seq span saved")):
    """A frame (at ``offset``, ``length`` bytes) a repair put where records could not be
    read: it stands for ``span`` records from ``seq`` (0: an unknown number, up to the
    next segment) whose bytes were set aside; ``saved`` says where (a dict: ``file`` in
    damaged/, ``offset`` and ``bytes`` there, ``reason``), or, for records forgotten on
    request (:mod:`.forget`), ``{"forgotten": <forget id>, "reason": ...}``."""

    __slots__ = ()

    @property
    def forgotten(self) -> bool:
        """The records it stands for were forgotten on request, not lost to damage."""
        return "forgotten" in self.saved


class Scan:
    """What one pass over a segment's frames found (what :func:`scan_frames` returns).

    ``end``: where the frames that could be located end; ``problems``: the frames
    skipped, then why the scan stopped early (if it did: ``stopped``); ``skipped``:
    (offset, length, seq) of each frame skipped; ``holes``: the holes met; ``first_seq``
    and ``last_seq``: the seqs the frames, skipped frames and holes cover, consecutive
    (None: none); ``open_ended``: the last hole stands for an unknown number of records.
    """

    __slots__ = ("end", "problems", "stopped", "first_seq", "last_seq", "skipped", "holes", "open_ended")

    def __init__(self, start: int):
        self.end = start
        self.problems: list[Problem] = []
        self.stopped: Problem | None = None
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.skipped: list[tuple[int, int, int]] = []
        self.holes: list[Hole] = []
        self.open_ended = False

    @property
    def next_seq(self) -> int | None:
        """The seq after the last one covered (None if none is)."""
        return None if self.last_seq is None else self.last_seq + 1

    @property
    def complete(self) -> bool:
        """Every seq the frames stand for is known: the scan was not stopped early."""
        return self.stopped is None and not self.open_ended

    def stop(self, problem: Problem) -> None:
        self.stopped = problem
        self.problems.append(problem)


def scan_frames(
    data,
    crc32c,
    segment: str,
    sealed: bool,
    start: int = fmt.SEGMENT_HEADER_SIZE,
    first_seq: int | None = None,
    compact: _compact.State | None = None,
):
    """Yield verified frames of ``data``; return a :class:`Scan`.

    A frame is good when its length fits, its CRC32C matches and its sequence number
    follows the previous frame's (the first one's is ``first_seq``, when the header says
    it): one writer numbers its frames one by one into its active segment, so a sound
    frame copied from another segment (or another place of this one) is caught here too
    (at the frame itself, or at the next one if it landed first).

    A frame whose CRC fails costs that frame only when the next frame proves its length
    right (see :func:`_resumes_at`): it is skipped and reported, and the scan goes on.
    Otherwise nothing after it can be located reliably and the scan stops there.  Holes
    (frames a repair wrote) are not yielded; they count for the records they stand for.

    ``compact``: the frames are compact frames (version 2), read from the
    :class:`.compact.State` given (its seqs replace ``first_seq``), which the scan
    advances: a reader may resume at ``scan.end`` with it.
    """
    if compact is not None:
        return (yield from _scan_compact(data, crc32c, segment, sealed, start, compact))
    scan = Scan(start)
    expected = first_seq  # the seq the next frame must carry (None: any)
    first = None
    pos, n = start, len(data)
    while pos < n:
        frame_len = _frame_length(data, pos, n)
        if frame_len is None:
            reason = _why_no_frame(data, pos, sealed)
            if reason is not None:
                scan.stop(Problem(segment, pos, reason))
            break
        if crc32c(data[pos + 8 : pos + frame_len]) != _U32.unpack_from(data, pos + 4)[0]:
            lost = expected if expected is not None else _claimed_seq(data, pos)
            if not _resumes_at(data, pos + frame_len, crc32c, lost + 1):
                scan.stop(Problem(segment, pos, "checksum mismatch (torn write or corruption)"))
                break
            scan.problems.append(
                Problem(
                    segment,
                    pos,
                    f"checksum mismatch: record seq {lost} "
                    f"({frame_len} bytes) skipped, the frames "
                    f"after it verify",
                )
            )
            scan.skipped.append((pos, frame_len, lost))
            first, expected = lost if first is None else first, lost + 1
            pos += frame_len
            continue
        _, _, seq, time_ns, thread, op, flags, name_len = fmt.FRAME_HEADER.unpack_from(data, pos)
        body = pos + fmt.FRAME_HEADER_SIZE
        if (seq != expected and expected is not None) or body + name_len > pos + frame_len or scan.open_ended:
            scan.stop(Problem(segment, pos, _out_of_place(scan, seq, expected)))
            break
        if first is None:
            first = seq
        if op == fmt.OP_HOLE:
            hole = _read_hole(pos, frame_len, seq, data[body + name_len : pos + frame_len])
            if hole is None:
                scan.stop(Problem(segment, pos, "unreadable hole (a repair's placeholder)"))
                break
            scan.holes.append(hole)
            scan.open_ended = hole.span == 0
            expected = seq + max(hole.span, 1)
        else:
            expected = seq + 1
            yield Frame(
                pos,
                seq,
                time_ns,
                thread,
                op,
                flags,
                data[body : body + name_len],
                data[body + name_len : pos + frame_len],
                None,
                frame_len,
            )
        pos += frame_len
    scan.end = pos
    if first is not None and expected is not None:
        scan.first_seq, scan.last_seq = first, expected - 1
    return scan


def segment_frames(data, crc32c, segment: str, sealed: bool, header: fmt.SegmentHeader):
    """:func:`scan_frames` of a whole segment, read as its header says (its version, the
    seqs it counts)."""
    if header.compact:
        return scan_frames(data, crc32c, segment, sealed, compact=_compact.State.of(header))
    return scan_frames(data, crc32c, segment, sealed, first_seq=header.first_seq)


def _scan_compact(data, crc32c, segment: str, sealed: bool, start: int, state: _compact.State):
    """scan_frames of compact frames: the same checks, the same reports (a frame out of
    place fails its CRC, whose context it is not in)."""
    scan = Scan(start)
    first = None
    pos, n = start, len(data)
    while pos < n:
        at = _compact.extent(data, pos, n)
        if at is None:
            reason = _why_no_compact_frame(data, pos, sealed)
            if reason is not None:
                scan.stop(Problem(segment, pos, reason))
            break
        body, end = at
        found = _compact.context(data, body, end, state)
        if found is None or not _compact.verifies(data, body, end, crc32c, found[0], found[1]):
            if not _skip_compact(data, pos, body, end, crc32c, state, scan, segment):
                scan.stop(Problem(segment, pos, "checksum mismatch (torn write or corruption)"))
                break
            if first is None and scan.skipped:
                first = scan.skipped[-1][2]
            pos = end
            continue
        seq, time_ns, after = found
        op = data[body + 4]
        if scan.open_ended:
            scan.stop(Problem(segment, pos, _out_of_place(scan, seq, None)))
            break
        if op == fmt.OP_DEFINE:
            problem = _define(data, after, end, state)
            if problem is not None:
                scan.problems.append(Problem(segment, pos, problem))
            pos = end
            continue
        if first is None:
            first = seq
        state.time_ns = time_ns
        if op == fmt.OP_HOLE:
            hole = _read_hole(pos, end - pos, seq, data[after:end])
            if hole is None:
                scan.stop(Problem(segment, pos, "unreadable hole (a repair's placeholder)"))
                break
            scan.holes.append(hole)
            scan.open_ended = hole.span == 0
            state.seq = seq + max(hole.span, 1) - 1
            pos = end
            continue
        state.seq = seq
        got = _compact.varint(data, after, end)
        slot, flags = _compact.slot_and_flags(got[0]) if got is not None else (len(state.table), 0)
        entry = state.table[slot] if slot < len(state.table) else None
        if got is None or entry is None:
            which = "unreadable" if got is None else slot
            scan.problems.append(
                Problem(
                    segment, pos, f"record seq {seq} skipped: its slot ({which}) has no definition before it"
                )
            )
            scan.skipped.append((pos, end - pos, seq))
            pos = end
            continue
        thread, name, number = entry
        yield Frame(pos, seq, time_ns, thread, op, flags, name, data[got[1] : end], number, end - pos)
        pos = end
    scan.end = pos
    if first is not None:
        scan.first_seq, scan.last_seq = first, state.seq
    return scan


def _define(data, start: int, end: int, state: _compact.State) -> str | None:
    """Add a verified definition to the table; why it cannot be taken, if it cannot."""
    found = _compact.definition(data, start, end)
    if found is None:
        return "malformed definition"
    slot, thread, number, name = found
    if slot < len(state.table):
        return f"slot {slot} defined twice"
    state.table.extend([None] * (slot - len(state.table)))  # a damaged definition skipped
    state.table.append((thread, name, number))
    return None


def _skip_compact(data, pos, body, end, crc32c, state, scan, segment) -> bool:
    """Skip the compact frame at ``pos`` whose CRC failed, if a sound frame follows it
    in one of the states it could leave (it was a record, a time difference later; or it
    was a definition, which changes neither); record what was skipped."""
    lost = state.seq + 1
    got = _compact.varint(data, body + 5, end)
    if got is not None:
        after = _compact.State(lost, state.time_ns + fmt.unzigzag(got[0]), state.table)
        if _compact.sound_at(data, end, crc32c, after):
            scan.problems.append(
                Problem(
                    segment,
                    pos,
                    f"checksum mismatch: record seq {lost} ({end - pos} bytes) skipped, "
                    f"the frames after it verify",
                )
            )
            scan.skipped.append((pos, end - pos, lost))
            state.seq, state.time_ns = after.seq, after.time_ns
            return True
    if _compact.sound_at(data, end, crc32c, state):
        scan.problems.append(
            Problem(
                segment,
                pos,
                f"checksum mismatch: a frame that is no record ({end - pos} bytes) skipped, "
                f"the frames after it verify (records whose definition it was are lost)",
            )
        )
        return True
    return False


def _why_no_compact_frame(data, pos: int, sealed: bool) -> str | None:
    """_why_no_frame of compact frames."""
    n = len(data)
    if data[pos] == 0:
        if not is_zero(data, pos):
            return "zeroed bytes followed by data (lost page?)"
        return f"{n - pos} zero bytes after the last frame" if sealed else None
    got = _compact.varint(data, pos, min(n, pos + 5))
    if got is None:
        return f"{n - pos} trailing bytes after the last frame"
    length, body = got
    if length < fmt.MIN_COMPACT_BODY:
        return f"invalid frame length {length}"
    return f"torn frame: {length + body - pos} bytes announced, {n - pos} present"


def scan_to_end(frames) -> Scan:
    """Run a :func:`scan_frames` generator to its end, dropping the frames; its Scan."""
    while True:
        try:
            next(frames)
        except StopIteration as stop:
            return stop.value


def _frame_length(data, pos: int, n: int) -> int | None:
    """The length of the frame at ``pos`` if it is sane and the frame fits, else None."""
    if n - pos < 4:
        return None
    (frame_len,) = _U32.unpack_from(data, pos)
    return frame_len if fmt.FRAME_HEADER_SIZE <= frame_len <= n - pos else None


def _why_no_frame(data, pos: int, sealed: bool) -> str | None:
    """Why no frame can be read at ``pos`` (None: the clean end of an ``.open``
    segment's frames, its preallocated zeros)."""
    n = len(data)
    if n - pos < 4:
        return f"{n - pos} trailing bytes after the last frame"
    (frame_len,) = _U32.unpack_from(data, pos)
    if frame_len == 0:
        if not is_zero(data, pos):
            return "zeroed bytes followed by data (lost page?)"
        return f"{n - pos} zero bytes after the last frame" if sealed else None
    if frame_len < fmt.FRAME_HEADER_SIZE:
        return f"invalid frame length {frame_len}"
    return f"torn frame: {frame_len} bytes announced, {n - pos} present"


def _claimed_seq(data, pos: int) -> int:
    """The seq a frame whose CRC failed says it has (a hint: it may be the damaged field)."""
    return fmt.FRAME_HEADER.unpack_from(data, pos)[2]


def _resumes_at(data, pos: int, crc32c, seq: int) -> bool:
    """Whether a sound frame numbered ``seq`` starts at ``pos``: its length is sane and
    fits, and its CRC verifies.  Only then was the length of the failed frame before it
    right, so skipping that one frame loses nothing else: a damaged length points into
    the middle of some frame, where a header with the next seq and a matching CRC over
    exactly its length does not occur by chance."""
    frame_len = _frame_length(data, pos, len(data))
    if frame_len is None:
        return False
    stored_crc, stored_seq = _U32.unpack_from(data, pos + 4)[0], _claimed_seq(data, pos)
    return stored_seq == seq and crc32c(data[pos + 8 : pos + frame_len]) == stored_crc


def _out_of_place(scan: Scan, seq: int, expected: int | None) -> str:
    """Why a frame whose CRC verified cannot be taken where it is."""
    if scan.open_ended:
        return f"frame seq {seq} after a hole of unknown size"
    if expected is not None and seq != expected:
        return f"frame out of sequence: seq {seq} where {expected} belongs (copied from elsewhere?)"
    return "name longer than its frame"


def _read_hole(offset: int, length: int, seq: int, payload) -> Hole | None:
    """The hole a repair wrote, or None if its payload is not one."""
    try:
        span, saved = _impl.decode_values(payload, None, False, 2)
    except CorruptRecordError:
        return None
    if type(span) is not int or span < 0 or type(saved) is not dict:
        return None
    return Hole(offset, length, seq, span, saved)


def shortfall(header: fmt.SegmentHeader, scan: Scan) -> tuple[int, int] | None:
    """(first, last) seq of the records a counted sealed segment states it holds but its
    frames do not reach, or None."""
    if not header.counted or header.records == 0:
        return None
    first = header.last_seq - header.records + 1
    reached = first - 1 if scan.last_seq is None else scan.last_seq
    return (reached + 1, header.last_seq) if reached < header.last_seq else None


def records_text(first: int, last: int) -> str:
    """``3 records (seq 8-10)``, ``1 record (seq 8)``."""
    count = last - first + 1
    return f"1 record (seq {first})" if count == 1 else f"{count} records (seq {first}-{last})"


def decode_frame(
    frame: Frame, header: fmt.SegmentHeader, segment: str, key, trust_pickles, nested_ids: bool = False
) -> Record:
    """Decode a verified frame; raise CorruptRecordError if its content is malformed."""
    try:
        kind, op = fmt.OPS[frame.op]
    except KeyError:
        raise CorruptRecordError(f"unknown operation code {frame.op}") from None
    if frame.flags & ~(fmt.KNOWN_FLAGS if frame.number is None else fmt.COMPACT_FLAGS):
        raise CorruptRecordError(f"unknown flags 0x{frame.flags:02x}")
    payload = frame.payload
    container_id = frame.number or None  # a compact frame's (0: none), from its table
    if frame.flags & fmt.FLAG_ID:
        container_id, size = leb128(payload)
        payload = payload[size:]
    if frame.flags & fmt.FLAG_COMPRESSED:
        payload = _decompress(payload)
    decoded = _impl.decode_values(
        payload, key, trust_pickles, 3 if frame.flags & fmt.FLAG_CALLER else 2, nested_ids
    )
    rec_key, values = decoded[0], decoded[1]
    caller = decoded[2] if len(decoded) == 3 else None
    try:
        name = str(frame.name, "utf-8")
    except UnicodeDecodeError:
        raise CorruptRecordError("container name is not UTF-8") from None
    return Record(
        frame.seq,
        frame.time_ns,
        name,
        kind,
        op,
        rec_key,
        values,
        header.pid,
        frame.thread,
        caller,
        header.writer_id,
        segment,
        frame.offset,
        container_id,
    )


def leb128(data) -> tuple[int, int]:
    """The unsigned LEB128 number at the start of ``data`` and how many bytes it takes."""
    n = 0
    for i in range(min(len(data), 10)):
        n |= (data[i] & 0x7F) << (7 * i)
        if data[i] < 0x80:
            return n, i + 1
    raise CorruptRecordError("container number truncated")


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
    """One segment file, read: its header at once, its frames when asked.

    A sealed segment is immutable, so it is mapped, but only while its frames are read
    (``data`` maps it, ``release()`` unmaps it): a mapping holds a file descriptor, and a
    journal may have more segments than a process may open files.
    """

    def __init__(self, path: str, crc32c):
        self.path = path
        self.name = os.path.basename(path)
        self.sealed = path.endswith(fmt.SEALED_SUFFIX)
        self.live = is_live(path)
        self.crc32c = crc32c
        self._data = None
        self.problems: list[Problem] = []
        self.encrypted = False  # an age file at rest (Journal(encrypt_to=...)): read decrypted
        self._plain: bytes | None = None
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            self.inode = (st.st_dev, st.st_ino)
            self.size = st.st_size
            head = f.read(fmt.SEGMENT_HEADER_SIZE)
            if self.sealed and is_encrypted(head):
                self.encrypted = True
                head = self._decrypt(head + f.read())
        self.header = None
        self.header_crc = fmt.SEGMENT_CRC.unpack_from(head, fmt.CRC_OFFSET)[0] if len(head) >= 64 else None
        self.scan: Scan | None = None
        self.vanished = False  # purged or set aside between its listing and its reading
        if self.encrypted and self._plain is None:
            return  # the problem says why it cannot be read
        try:
            self.header = fmt.unpack_segment_header(crc32c, head)
        except ValueError as exc:
            self.problems.append(Problem(self.name, 0, str(exc), self.live))

    def _decrypt(self, body: bytes) -> bytes:
        """The head of the decrypted segment (kept whole in memory: ``data``), or b"" with
        the reason as a problem."""
        from .encryption import DecryptionError, open_at_rest

        try:
            self._plain = open_at_rest(body, f"segment {self.name} (encrypted at rest)")
        except DecryptionError as exc:
            self.problems.append(Problem(self.name, 0, str(exc)))
            return b""
        self.size = len(self._plain)
        return self._plain[: fmt.SEGMENT_HEADER_SIZE]

    @property
    def data(self):
        """The segment's bytes: a sealed one mapped now (until ``release()``), an ``.open``
        one read now.  (An ``.open`` segment may be sealed, truncated, by its writer at any
        moment; a mapping would then fault with SIGBUS.)"""
        if self._plain is not None:
            return self._plain
        if self._data is None:
            if self.sealed:
                with open(self.path, "rb") as f:
                    self._data = mmap.mmap(f.fileno(), self.size, prot=mmap.PROT_READ) if self.size else b""
            else:
                fd = self.reopen()
                try:
                    self._data = read_all(fd)
                finally:
                    os.close(fd)
                self.size = len(self._data)
        return self._data

    def reopen(self) -> int:
        """A descriptor of this very file (an ``.open`` segment is renamed when sealed);
        FileNotFoundError if it is gone."""
        paths = [self.path]
        if not self.sealed:
            paths.append(self.path[: -len(fmt.OPEN_SUFFIX)] + fmt.SEALED_SUFFIX)
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) == self.inode:
                return fd
            os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "segment gone", self.path)

    def release(self) -> None:
        """Unmap a sealed segment (``data`` maps it again if asked)."""
        if isinstance(self._data, mmap.mmap):
            try:
                self._data.close()
            except BufferError:  # a caller still holds a view of it: the GC unmaps it
                return
            self._data = None

    def frames(self):
        """Yield verified frames; afterwards ``self.problems`` tells what could not be
        read, and ``self.scan`` what the frames cover."""
        if self.header is None:
            return
        try:
            data = self.data
        except FileNotFoundError:
            self.vanished = True
            return
        try:
            self.scan = yield from segment_frames(data, self.crc32c, self.name, self.sealed, self.header)
        finally:
            del data
            self.release()
        self.note_problems(self.scan)

    def frames_at(self, offsets, scan: Scan) -> list[Frame] | None:
        """The frames at ``offsets`` (from the segment's index), each verified as
        :meth:`frames` verifies them, ``scan`` standing for what a full scan finds; None if
        one does not verify (the index is wrong: scan the segment whole instead)."""
        if self.header is None:
            return []
        frames: list = []
        if offsets:
            try:
                data = self.data
            except FileNotFoundError:
                self.vanished = True
                return []
            try:
                if self.header.compact:
                    frames = _frames_in_passing(data, self, offsets)
                else:
                    frames = [frame_at(data, offset, self.crc32c, scan) for offset in offsets]
            finally:
                del data
                self.release()
            if any(frame is None for frame in frames):
                return None
        self.scan = scan
        self.note_problems(scan)
        return frames

    def note_problems(self, scan: Scan) -> None:
        """Take what ``scan`` (this segment's, however it was made) found as the problems."""
        if self.header is not None:
            self.problems.extend(
                Problem(p.segment, p.offset, p.reason, self.live)
                for p in _with_shortfall(self.header, scan, self.name)
            )


def _frames_in_passing(data, view: SegmentView, offsets) -> list:
    """The compact frames at ``offsets`` (a list of Frames, None where none is): one
    pass over the segment's frames, decoding none, since a compact frame is read in the
    state the frames before it leave (its seq, its time, its slot's definition)."""
    wanted = set(offsets)
    found = {}
    assert view.header is not None
    frames = segment_frames(data, view.crc32c, view.name, view.sealed, view.header)
    for frame in frames:
        if frame.offset in wanted:
            found[frame.offset] = frame
    return [found.get(offset) for offset in offsets]


def frame_at(data, pos: int, crc32c, scan) -> Frame | None:
    """The record frame at ``pos`` if it is one, verifies and lies within what ``scan``
    (a Scan, or anything with its ``end``, ``first_seq`` and ``last_seq``) covers; else None."""
    frame_len = _frame_length(data, pos, scan.end)
    if frame_len is None or crc32c(data[pos + 8 : pos + frame_len]) != _U32.unpack_from(data, pos + 4)[0]:
        return None
    _, _, seq, time_ns, thread, op, flags, name_len = fmt.FRAME_HEADER.unpack_from(data, pos)
    body = pos + fmt.FRAME_HEADER_SIZE
    if (
        op == fmt.OP_HOLE
        or body + name_len > pos + frame_len
        or scan.first_seq is None
        or not scan.first_seq <= seq <= scan.last_seq
    ):
        return None
    return Frame(
        pos,
        seq,
        time_ns,
        thread,
        op,
        flags,
        bytes(data[body : body + name_len]),
        bytes(data[body + name_len : pos + frame_len]),
    )


def read_all(fd: int) -> bytes:
    chunks, pos = [], 0
    while chunk := os.pread(fd, _READ_CHUNK, pos):
        chunks.append(chunk)
        pos += len(chunk)
    return b"".join(chunks)


def read_frames_from(fd: int, start: int) -> bytes:
    """An ``.open`` segment's bytes from ``start`` (where a frame begins) to just past its
    last whole frame: enough for a scan to see where the frames end (its preallocated
    zeros) or what stops them, without reading the rest of the preallocated file."""
    data = bytearray()
    walked = 0  # where the next frame's length is, from start
    while True:
        chunk = os.pread(fd, _READ_CHUNK, start + len(data))
        data += chunk
        while len(data) - walked >= 4:
            (length,) = _U32.unpack_from(data, walked)
            if length < fmt.FRAME_HEADER_SIZE:
                return bytes(data)  # zeros (the end) or not a frame length
            if walked + length > len(data):
                break
            walked += length
        if not chunk:
            return bytes(data)


def _with_shortfall(header: fmt.SegmentHeader, scan: Scan, name: str) -> list[Problem]:
    """The scan's problems, saying how many of the records the header counts they cost."""
    missing = shortfall(header, scan)
    if missing is None:
        return scan.problems
    lost = records_text(*missing)
    if scan.stopped is None:
        return scan.problems + [
            Problem(
                name,
                scan.end,
                f"{lost} missing: the segment ends "
                f"there, its header counts "
                f"{header.records} records up to seq "
                f"{header.last_seq} (cut short?)",
            )
        ]
    stop = scan.stopped
    return scan.problems[:-1] + [
        Problem(stop.segment, stop.offset, f"{stop.reason}; {lost} unreadable from here")
    ]


def open_segment(path: str, crc32c) -> SegmentView | None:
    """Map one segment; an ``.open`` one sealed meanwhile is read under its new name;
    None if it is gone (purged or set aside meanwhile)."""
    try:
        return SegmentView(path, crc32c)
    except (FileNotFoundError, IsADirectoryError):
        if path.endswith(fmt.OPEN_SUFFIX):
            return open_segment(path[: -len(fmt.OPEN_SUFFIX)] + fmt.SEALED_SUFFIX, crc32c)
        return None


def open_segments(directory: str, crc32c) -> list[SegmentView]:
    """Every segment of ``directory``, each file once (a listing that raced with a
    rename may name one file twice)."""
    views, seen = [], set()
    for path in segment_paths(directory):
        view = open_segment(path, crc32c)
        if view is not None and view.inode not in seen:
            seen.add(view.inode)
            views.append(view)
    return views
