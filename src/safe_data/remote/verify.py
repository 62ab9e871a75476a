"""Checking a segment received from elsewhere, in bounded memory (docs/remote.md).

A receiver (the backup server, the sinks that read segments back) checks what it is given
before keeping it: one complete zstd frame whose output stays under a limit, whose SHA-256
is the one announced, and which is a sealed segment whose header and every frame verify.
Nothing is decoded or unpickled (a hole's small payload excepted, as the reader does).

Everything here works on a stream: :class:`SegmentVerifier` takes the decompressed bytes
in pieces of any size, holding at most one frame header (or one hole) at a time, and
:func:`check_compressed` runs a file through zstd into it.  So checking a 256 MiB segment
costs a few MiB, whatever its frames' sizes, and a zstd bomb stops at the limit.

The rules are those of :func:`safe_data.journal.reader.scan_frames` on a sealed segment,
strict: the reader can skip a damaged frame and go on; a receiver refuses the segment at
its first problem.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import NoReturn

import google_crc32c

from ..journal import compact
from ..journal import format as fmt
from ..journal.encryption import AGE_HEADER, is_encrypted
from ..journal.reader import Scan, _read_hole, shortfall

__all__ = [
    "InvalidSegment",
    "SegmentTooLarge",
    "SegmentVerifier",
    "check_body",
    "check_compressed",
    "check_encrypted",
    "zstd_frame_size",
]

_U32 = struct.Struct("<I")
#: an age header (version line, recipient stanzas, MAC line) longer than this is refused
_MAX_AGE_HEADER = 1 << 16
#: the smallest age payload: a 16-byte nonce and one chunk's 16-byte tag
_MIN_AGE_PAYLOAD = 32
#: a hole's payload is a count and a small dict; a "hole" larger than this is refused
_MAX_HOLE = 1 << 16
_READ_CHUNK = 1 << 16
_INFLATE_CHUNK = 1 << 20
#: what a compact frame's head holds at most after its length: crc, op, dt (10), slot
#: (10): enough to know its context (seq, time) before its CRC is computed
_COMPACT_HEAD = 4 + 1 + 10 + 10


class InvalidSegment(ValueError):
    """The body is not a valid sealed segment (or not valid zstd): 400."""


class SegmentTooLarge(ValueError):
    """The body or the decompressed segment exceeds its limit: 413."""


class SegmentVerifier:
    """A sealed segment checked as it is written to it, piece by piece.

    ``write(piece)`` raises :class:`InvalidSegment` at the first problem; ``close()``
    checks the end (the last frame complete, the records the header counts all there).
    With ``segment_id``, the header's writer id and segment number must match it.
    """

    def __init__(self, segment_id: str | None = None):
        self._segment_id = segment_id
        self._pos = 0  # bytes of the segment taken so far
        self._pending = bytearray()  # the segment header, a frame header or a hole, in part
        self._need = fmt.SEGMENT_HEADER_SIZE  # the size _pending is being filled to
        self._header: fmt.SegmentHeader | None = None
        self._frame = 0  # offset of the frame being read
        self._frame_len = 0
        self._left = 0  # bytes of the current frame's body still to come (streamed)
        self._crc = 0
        self._stored_crc = 0
        self._seq = 0
        self._hole = False
        self._expected: int | None = None  # the seq the next frame must carry (None: any)
        self._first: int | None = None
        self._open_ended = False
        self._time = 0  # the time of the frame being read (version 1)
        #: the time (ns) of the newest frame verified so far: the segment's time for the
        #: server's retention (server/retention.py); None before the first
        self.newest_ns: int | None = None
        # compact frames (version 2): the state the next frame is read in, how many slots
        # are defined, and the state the frame being read leaves
        self._state: compact.State | None = None
        self._defined = 0
        self._after: tuple[int, int, bool] = (0, 0, False)  # (seq, time, a definition)
        self._in_length = True  # _pending holds the frame's length (else its head)
        #: what a compact frame's head says is wrong, told once its CRC matched: a flipped
        #: bit there is a checksum mismatch, not the undefined slot it makes the head name
        self._head_problem: str | None = None

    def _fail(self, offset: int, reason: str) -> NoReturn:
        raise InvalidSegment(f"byte {offset}: {reason}")

    def write(self, piece) -> int:
        view = memoryview(piece).cast("B")
        i, n = 0, len(view)
        while i < n:
            if self._left:  # inside a frame's body: CRC it, keep nothing (a hole excepted)
                take = min(self._left, n - i)
                chunk = bytes(view[i : i + take])  # google_crc32c takes bytes only
                self._crc = google_crc32c.extend(self._crc, chunk)
                if self._hole:
                    self._pending += chunk
                self._left -= take
                i += take
                if not self._left:
                    self._end_frame()
                continue
            take = min(self._need - len(self._pending), n - i)
            self._pending += view[i : i + take]
            i += take
            if len(self._pending) == self._need:
                self._filled()
        self._pos += n
        return n

    def _filled(self) -> None:
        if self._header is None:
            self._start(bytes(self._pending))
        elif self._state is not None:
            self._compact_part(bytes(self._pending))
            return
        else:
            self._frame_head(bytes(self._pending))
        self._pending.clear()
        self._need = 1 if self._state is not None else fmt.FRAME_HEADER_SIZE

    def _compact_part(self, part: bytes) -> None:
        """A compact frame's length (a byte at a time), then its head."""
        if self._in_length:
            if part[-1] >= 0x80:
                if len(part) == 5:
                    self._fail(self._frame, "invalid frame length (more than 32 bits)")
                self._need += 1
                return
            length = compact.varint(part, 0, len(part))[0]  # type: ignore[index]
            if length == 0:
                self._fail(self._frame, "zero bytes after the last frame")
            if length < fmt.MIN_COMPACT_BODY:
                self._fail(self._frame, f"invalid frame length {length}")
            self._frame_len = len(part) + length
            self._len_bytes = len(part)
            self._in_length = False
            self._pending.clear()
            self._need = min(length, _COMPACT_HEAD)
            return
        self._pending.clear()
        self._compact_head(part)  # (a hole's: keeps the start of its payload in _pending)
        self._in_length = True
        self._need = 1
        if not self._left:
            self._end_frame()

    def _compact_head(self, head: bytes) -> None:
        """The first bytes of a compact frame's body: its context, its slot, the start of
        its CRC."""
        state, pos = self._state, self._frame
        assert state is not None
        found = compact.context(head, 0, len(head), state)
        if found is None:
            self._fail(pos, "malformed frame (its time difference)")
        seq, time_ns, after = found
        op = head[4]
        got = compact.varint(head, after, len(head))
        if op == fmt.OP_DEFINE:
            if got is None or got[0] != self._defined:
                self._head_problem = f"a definition of slot {got and got[0]} where {self._defined} belongs"
        elif op == fmt.OP_HOLE:
            self._hole = True
            if self._frame_len - after > _MAX_HOLE:
                self._fail(pos, "unreadable hole (a repair's placeholder)")
            self._pending += head[after:]
        elif got is None or compact.slot_and_flags(got[0])[0] >= self._defined:
            self._head_problem = f"record seq {seq}: its slot has no definition before it"
        self._after = (seq, time_ns, op == fmt.OP_DEFINE)
        self._stored_crc = _U32.unpack_from(head)[0]
        try:
            context = fmt.COMPACT_CONTEXT.pack(seq, time_ns)
        except struct.error:
            self._fail(pos, "checksum mismatch (torn write or corruption)")
        self._crc = google_crc32c.value(context + head[4:])
        self._left = self._frame_len - self._len_bytes - len(head)

    def _start(self, head: bytes) -> None:
        try:
            header = fmt.unpack_segment_header(google_crc32c.value, head)
        except ValueError as exc:
            raise InvalidSegment(str(exc)) from None
        if self._segment_id is not None and header.segment_id != self._segment_id:
            raise InvalidSegment(
                f"segment id {self._segment_id} does not match its header ({header.segment_id})"
            )
        self._header = header
        self._expected = header.first_seq
        self._frame = fmt.SEGMENT_HEADER_SIZE
        if header.compact:
            self._state = compact.State.of(header)
            self._need = 1  # (see _filled: a compact frame's length, a byte at a time)

    def _frame_head(self, head: bytes) -> None:
        frame_len, stored_crc, seq, self._time, _thread, op, _flags, name_len = fmt.FRAME_HEADER.unpack(head)
        if frame_len == 0:
            self._fail(self._frame, "zero bytes after the last frame")
        if frame_len < fmt.FRAME_HEADER_SIZE:
            self._fail(self._frame, f"invalid frame length {frame_len}")
        if fmt.FRAME_HEADER_SIZE + name_len > frame_len:
            self._fail(self._frame, "name longer than its frame")
        self._frame_len, self._stored_crc, self._seq = frame_len, stored_crc, seq
        self._hole = op == fmt.OP_HOLE
        if self._hole and frame_len - fmt.FRAME_HEADER_SIZE - name_len > _MAX_HOLE:
            self._fail(self._frame, "unreadable hole (a repair's placeholder)")
        self._crc = google_crc32c.value(head[8:])
        self._left = frame_len - fmt.FRAME_HEADER_SIZE
        self._name_len = name_len
        if not self._left:
            self._end_frame()

    def _end_compact_frame(self) -> None:
        """_end_frame of a compact frame: its CRC, then the state it leaves."""
        state, pos = self._state, self._frame
        assert state is not None
        seq, time_ns, definition = self._after
        if self._crc != self._stored_crc:
            self._fail(pos, "checksum mismatch (torn write or corruption)")
        if self._head_problem is not None:
            self._fail(pos, self._head_problem)
        if self._open_ended:
            self._fail(pos, f"frame seq {seq} after a hole of unknown size")
        self._frame += self._frame_len
        self._saw_time(time_ns)
        if definition:
            self._defined += 1
            return
        if self._first is None:
            self._first = seq
        state.seq, state.time_ns = seq, time_ns
        if self._hole:
            hole = _read_hole(pos, self._frame_len, seq, bytes(self._pending))
            self._pending.clear()
            self._hole = False
            if hole is None:
                self._fail(pos, "unreadable hole (a repair's placeholder)")
            self._open_ended = hole.span == 0
            state.seq = seq + max(hole.span, 1) - 1
        self._expected = state.seq + 1

    def _end_frame(self) -> None:
        if self._state is not None:
            return self._end_compact_frame()
        seq, pos = self._seq, self._frame
        if self._crc != self._stored_crc:
            self._fail(pos, "checksum mismatch (torn write or corruption)")
        if self._open_ended:
            self._fail(pos, f"frame seq {seq} after a hole of unknown size")
        if self._expected is not None and seq != self._expected:
            self._fail(pos, f"frame out of sequence: seq {seq} where {self._expected} belongs")
        if self._first is None:
            self._first = seq
        self._saw_time(self._time)
        if self._hole:
            hole = _read_hole(pos, self._frame_len, seq, bytes(self._pending[self._name_len :]))
            self._pending.clear()
            if hole is None:
                self._fail(pos, "unreadable hole (a repair's placeholder)")
            self._open_ended = hole.span == 0
            self._expected = seq + max(hole.span, 1)
        else:
            self._expected = seq + 1
        self._hole = False
        self._frame += self._frame_len

    def _saw_time(self, time_ns: int) -> None:
        if self.newest_ns is None or time_ns > self.newest_ns:
            self.newest_ns = time_ns

    def close(self) -> None:
        """Check the end; raise :class:`InvalidSegment` if the segment stops short."""
        if self._header is None:
            raise InvalidSegment(f"segment header truncated ({self._pos} of {fmt.SEGMENT_HEADER_SIZE} bytes)")
        got = self._pos - self._frame
        if got and self._state is not None:
            if self._in_length and not self._left:  # (not even its length is whole)
                self._fail(self._frame, f"{got} trailing bytes after the last frame")
            self._fail(self._frame, f"torn frame: {self._frame_len} bytes announced, {got} present")
        if got < 4 and got:
            self._fail(self._frame, f"{got} trailing bytes after the last frame")
        if got:
            announced = self._frame_len if self._left else _U32.unpack_from(self._pending)[0]
            self._fail(self._frame, f"torn frame: {announced} bytes announced, {got} present")
        scan = Scan(self._frame)
        if self._first is not None and self._expected is not None:
            scan.first_seq, scan.last_seq = self._first, self._expected - 1
        if shortfall(self._header, scan) is not None:
            self._fail(
                self._frame,
                f"the segment ends before the last record its header counts (seq {self._header.last_seq})",
            )


def frame_window(zstandard, head: bytes, max_segment_bytes: int) -> int:
    """The window zstd may use for the frame whose header starts ``head``; InvalidSegment if
    it is no zstd frame, SegmentTooLarge if it declares more than ``max_segment_bytes`` or
    asks for a bigger window than such a segment needs."""
    try:
        params = zstandard.get_frame_parameters(head)
    except zstandard.ZstdError as exc:
        raise InvalidSegment(f"not a zstd frame: {exc}") from None
    if (
        params.content_size not in (0, zstandard.CONTENTSIZE_UNKNOWN)
        and params.content_size > max_segment_bytes
    ):
        raise SegmentTooLarge(
            f"segment of {params.content_size} bytes exceeds the limit of {max_segment_bytes}"
        )
    # A frame of a segment of n bytes needs a window of at most the next power of two
    # >= n; streaming compressors may use their level's default (a few MiB).  Anything
    # bigger is refused before zstd allocates it.
    window = 8 << 20
    while window < max_segment_bytes and window < (1 << 27):
        window <<= 1
    if params.window_size > window:
        raise SegmentTooLarge(f"zstd window of {params.window_size} bytes exceeds {window}")
    return window


def zstd_frame_size(f, size: int) -> int:
    """The size of the zstd frame at the start of the seekable file ``f`` (of ``size``
    bytes), from its header and block headers; InvalidSegment if it is not one or does not
    fit.  (zstd's own streaming API does not tell where a frame ends.)"""
    import zstandard

    f.seek(0)
    head = f.read(18)
    try:
        pos = zstandard.frame_header_size(head)
        params = zstandard.get_frame_parameters(head)
    except zstandard.ZstdError as exc:
        raise InvalidSegment(f"not a zstd frame: {exc}") from None
    while True:
        f.seek(pos)
        block = f.read(3)
        if len(block) < 3:
            raise InvalidSegment("zstd: truncated frame")
        bits = int.from_bytes(block, "little")
        kind, block_size = (bits >> 1) & 3, bits >> 3
        if kind == 3:
            raise InvalidSegment("zstd: reserved block type")
        pos += 3 + (1 if kind == 1 else block_size)
        if bits & 1:  # the last block
            break
    pos += 4 if params.has_checksum else 0
    if pos > size:
        raise InvalidSegment("zstd: truncated frame")
    return pos


class _Inflated:
    """Where zstd writes the segment: counted against the limit, hashed, verified.

    The first problem the verifier finds is kept, not raised, until the whole is known:
    a segment too large is refused as such (413), and a body whose hash does not match
    as that, whatever its frames, as when the checks ran one after the other."""

    def __init__(self, limit: int, segment_id: str | None):
        self.limit = limit
        self.size = 0
        self.digest = hashlib.sha256()
        self.verifier = SegmentVerifier(segment_id)
        self.problem: InvalidSegment | None = None

    def write(self, piece) -> int:
        self.size += len(piece)
        if self.size > self.limit:
            raise SegmentTooLarge(f"segment exceeds the limit of {self.limit} bytes")
        self.digest.update(piece)
        if self.problem is None:
            try:
                self.verifier.write(piece)
            except InvalidSegment as exc:
                self.problem = exc
        return len(piece)


def check_compressed(f, max_segment_bytes: int, sha256: str | None, segment_id: str | None = None) -> int:
    """See :func:`_check_compressed`: the decompressed size."""
    return _check_compressed(f, max_segment_bytes, sha256, segment_id).size


def _check_compressed(f, max_segment_bytes: int, sha256: str | None, segment_id: str | None) -> _Inflated:
    """Check the zstd-compressed segment in the seekable binary file ``f``; return what
    came out of it (its decompressed ``size``, and its ``verifier``).

    Raise SegmentTooLarge past ``max_segment_bytes`` and InvalidSegment unless ``f`` holds
    exactly one complete zstd frame of a valid sealed segment (see :class:`SegmentVerifier`;
    with ``segment_id``, its header must name it) whose SHA-256 is ``sha256`` (hex; None
    when only the ciphertext it was decrypted from has a known hash).  The content size in
    the frame header is never trusted to accept anything; it only lets an honest oversized
    upload be refused first.  Memory: zstd's window (bounded) plus a chunk in and out.
    """
    import zstandard  # lazy: a tenth of a second, and only receivers and readers need it

    size = f.seek(0, 2)
    f.seek(0)
    window = frame_window(zstandard, f.read(18), max_segment_bytes)
    left = zstd_frame_size(f, size)
    if left != size:
        raise InvalidSegment("zstd: data after the frame (one frame expected)")
    out = _Inflated(max_segment_bytes, segment_id)
    dctx = zstandard.ZstdDecompressor(max_window_size=window)
    f.seek(0)
    try:
        with dctx.stream_writer(out, write_size=_INFLATE_CHUNK, closefd=False) as writer:  # type: ignore[arg-type]  # write() is all it uses
            while chunk := f.read(_READ_CHUNK):
                writer.write(chunk)
    except zstandard.ZstdError as exc:
        raise InvalidSegment(f"zstd: {exc}") from None
    if sha256 is not None and not hmac.compare_digest(out.digest.hexdigest(), sha256):
        raise InvalidSegment("X-Content-SHA256 does not match the decompressed segment")
    if out.problem is not None:
        raise out.problem
    out.verifier.close()
    return out


def check_encrypted(f, sha256: str) -> int:
    """Check the age file in the seekable binary file ``f``; return its size.

    Without the identity, a receiver can check only the form: an age header with at least
    one X25519 recipient stanza and a MAC line, followed by a payload, and the SHA-256 of
    the whole ciphertext, which is what is announced for an encrypted body.  Whoever
    decrypts it checks the segment inside (:func:`safe_data.remote.drill.fetch_verified`).
    """
    size = f.seek(0, 2)
    f.seek(0)
    head = f.read(_MAX_AGE_HEADER)
    end = head.find(b"\n--- ")
    if not is_encrypted(head) or end < 0:
        raise InvalidSegment("age: no complete header (version line, recipients, MAC line)")
    mac_end = head.find(b"\n", end + 1)
    lines = head[len(AGE_HEADER) : end].split(b"\n")
    if mac_end < 0 or not any(line.startswith(b"-> X25519 ") for line in lines):
        raise InvalidSegment("age: the header has no X25519 recipient or no MAC line")
    if size - (mac_end + 1) < _MIN_AGE_PAYLOAD:
        raise InvalidSegment("age: truncated payload")
    f.seek(0)
    digest = hashlib.sha256()
    while chunk := f.read(_INFLATE_CHUNK):
        digest.update(chunk)
    if not hmac.compare_digest(digest.hexdigest(), sha256):
        raise InvalidSegment("X-Content-SHA256 does not match the encrypted body")
    return size


def check_body(
    f, max_segment_bytes: int, sha256: str, segment_id: str | None = None
) -> tuple[int, int | None]:
    """:func:`check_encrypted` if ``f`` holds an age file (its first bytes say so), else
    :func:`check_compressed`: (the size of the ciphertext, or of the decompressed segment;
    the time in ns of its newest record, None for a ciphertext, which cannot be read)."""
    f.seek(0)
    if is_encrypted(f.read(len(AGE_HEADER))):
        return check_encrypted(f, sha256), None
    out = _check_compressed(f, max_segment_bytes, sha256, segment_id)
    return out.size, out.verifier.newest_ns
