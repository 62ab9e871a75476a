"""Reading compact frames (format version 2, docs/format.md "Compact frames"): where one
ends, what its CRC covers, and the state a reader carries from one frame to the next.

A compact frame states only what the frames before it in its segment do not: its seq is
the previous frame's plus one, its time a difference to the previous frame's, and its
thread, name and container number a slot of the segment's table, which definition frames
fill.  So a frame is read in the :class:`State` the frames before it leave, and its CRC
covers that context (seq and time, not stored): a frame read in the wrong place, or after
a damaged frame whose time difference was wrong, does not verify.

:mod:`.reader` walks the frames with these (``scan_frames``); the writers build them with
:func:`.format.compact_frame`.
"""

from __future__ import annotations

import struct

from . import format as fmt

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
#: a frame's length fits 32 bits: LEB128 takes at most 5 bytes for it
_MAX_LEN_BYTES = 5


class State:
    """Where a reader of compact frames stands: the last frame's seq (the segment's base
    seq before any) and time (the header's created time before any), and the table
    (slot -> (thread, name, number), None where no definition was read)."""

    __slots__ = ("seq", "time_ns", "table")

    def __init__(self, seq: int, time_ns: int, table: list | None = None):
        self.seq = seq
        self.time_ns = time_ns
        self.table: list = [] if table is None else table

    @classmethod
    def of(cls, header: fmt.SegmentHeader) -> State:
        """The state before the first frame of the segment whose header is ``header``."""
        return cls(header.base_seq, header.created_ns)


def varint(data, pos: int, end: int) -> tuple[int, int] | None:
    """(value, position after it) of the LEB128 number at ``pos``, None if it runs past
    ``end`` or beyond 64 bits."""
    value = shift = 0
    while pos < end and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7
    return None


def extent(data, pos: int, n: int) -> tuple[int, int] | None:
    """(where the crc starts, where the frame ends) of the frame at ``pos``, if its
    length is sane and it fits before ``n``; else None."""
    got = varint(data, pos, min(n, pos + _MAX_LEN_BYTES))
    if got is None:
        return None
    length, body = got
    if length < fmt.MIN_COMPACT_BODY or length > n - body:
        return None
    return body, body + length


def context(data, body: int, end: int, state: State) -> tuple[int, int, int] | None:
    """(seq, time_ns, where the field after dt starts) of the frame whose crc is at ``body``, read
    in ``state``; None if its time difference cannot be read.  A definition carries no
    time: its context is the next seq and the previous time."""
    if data[body + 4] == fmt.OP_DEFINE:
        return state.seq + 1, state.time_ns, body + 5
    got = varint(data, body + 5, end)
    if got is None:
        return None
    dt, after = got
    return state.seq + 1, state.time_ns + fmt.unzigzag(dt), after


def verifies(data, body: int, end: int, crc32c, seq: int, time_ns: int) -> bool:
    """Whether the CRC at ``body`` covers the frame's bytes in the context (seq, time)."""
    try:
        head = fmt.COMPACT_CONTEXT.pack(seq, time_ns)
    except struct.error:  # a damaged time difference put it past 64 bits
        return False
    return crc32c(head + bytes(data[body + 4 : end])) == _U32.unpack_from(data, body)[0]


def sound_at(data, pos: int, crc32c, state: State) -> bool:
    """Whether a frame that verifies in ``state`` starts at ``pos``."""
    at = extent(data, pos, len(data))
    if at is None:
        return False
    found = context(data, at[0], at[1], state)
    return found is not None and verifies(data, at[0], at[1], crc32c, found[0], found[1])


def slot_and_flags(value: int) -> tuple[int, int]:
    """A record's slot and flags, from the one number that holds both."""
    return value >> fmt.COMPACT_FLAG_BITS, value & fmt.COMPACT_FLAGS


def definition(data, start: int, end: int) -> tuple[int, int, int, bytes] | None:
    """(slot, thread, number, name) of a definition whose slot starts at ``start``; None
    if it is malformed."""
    got = varint(data, start, end)
    if got is None or got[1] + 8 > end:
        return None
    slot, pos = got
    (thread,) = _U64.unpack_from(data, pos)
    got = varint(data, pos + 8, end)
    if got is None:
        return None
    number, pos = got
    return slot, thread, number, bytes(data[pos:end])
