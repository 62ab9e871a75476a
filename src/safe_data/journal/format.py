"""The on-disk format, versions 1 and 2 (revision 6): the one module that implements docs/format.md.

The writers (``_writer_c.pyx`` and its pure twin ``_writer_py.py``) produce these bytes; this
module defines the constants both use and decodes them back.  Everything is little-endian.

Segment file = 64-byte header, then frames, then zero bytes up to the preallocated size
(an ``.open`` segment) or end of file (a sealed ``.seg`` segment).

Version 1 (revisions 1 to 5): frame = 36-byte header ``<IIQqQBBH``::

    frame_len   u32  length of the whole frame, header included (0 = no more frames)
    crc         u32  CRC32C of bytes [8, frame_len) of the frame
    seq         u64  per-writer sequence number, from 1
    time_ns     i64  wall-clock time of the write, ns since the epoch
    thread      u64  thread identifier of the writer
    op          u8   operation code, see OPS
    flags       u8   FLAG_COMPRESSED | FLAG_CALLER | FLAG_ID
    name_len    u16  length of the container name

then ``name`` (UTF-8), with FLAG_ID the container's number (LEB128; revision 3), and the
payload: the codec encodings of ``key``, ``values`` and, with FLAG_CALLER, ``caller``,
concatenated; with FLAG_COMPRESSED the payload is an lz4 block
with its uncompressed size stored in front (``lz4.block.compress(store_size=True)``).

Version 2 (revision 6, what writers write): the same header, and compact frames, which
state only what the frame before them does not tell (see docs/format.md, "Compact frames")::

    len     LEB128  length of the rest of the frame (0 = no more frames)
    crc     u32     CRC32C of the context (seq u64, time_ns i64: not stored) and the rest
    op      u8
    dt      zigzag LEB128: time_ns - the previous frame's (the first: the header's created)
    slot    LEB128  slot << 2 | flags: which (thread, name, container number) of the
                    segment's table, and FLAG_COMPRESSED | FLAG_CALLER

then the payload as in version 1.  The seq is the previous frame's plus one (the first:
the header's base seq plus one).  The table is defined by OP_DEFINE frames (op,
slot, thread u64, number LEB128, name), each the first time its triple is used.
"""

from __future__ import annotations

import struct

MAGIC = b"SAFEDATA"
#: the version writers write: compact frames (revision 6)
FORMAT_VERSION = 2
#: 36-byte frame headers (revisions 1 to 5): still read, and written with compact=False
CLASSIC_VERSION = 1
VERSIONS = (CLASSIC_VERSION, FORMAT_VERSION)

#: magic, version, header size, flags, writer id, segment number, created ns, pid, and
#: (with HEADER_COUNTED) the sealed segment's record count and last seq; then the CRC32C
#: of the first 60 bytes.
SEGMENT_HEADER = struct.Struct("<8sHHIQQqIQQ")
SEGMENT_HEADER_SIZE = 64
SEGMENT_CRC = struct.Struct("<I")
CRC_OFFSET = 60
#: header flag: bytes 44..59 state how many records the sealed segment holds and the seq
#: of its last one (revision 2); without it they are zero (an .open segment, revision 1)
HEADER_COUNTED = 0x1

FRAME_HEADER = struct.Struct("<IIQqQBBH")
FRAME_HEADER_SIZE = FRAME_HEADER.size  # 36
MAX_FRAME_LEN = 0xFFFFFFFF
MAX_NAME_LEN = 0xFFFF

FLAG_COMPRESSED = 0x01
FLAG_CALLER = 0x02
#: the container's number follows the name: with the writer id, the identity of the
#: container that wrote the record, whatever its name (revision 3)
FLAG_ID = 0x04
KNOWN_FLAGS = FLAG_COMPRESSED | FLAG_CALLER | FLAG_ID

#: compact frames (version 2): the flags a record may carry, the context its CRC covers
#: (seq, time_ns), and the fewest bytes after ``len`` (crc, op, flags)
COMPACT_FLAGS = FLAG_COMPRESSED | FLAG_CALLER
#: a compact record stores its flags in the low bits of its slot's number (slot << 2 | flags)
COMPACT_FLAG_BITS = 2
COMPACT_CONTEXT = struct.Struct("<Qq")
MIN_COMPACT_BODY = 6  # crc, op, dt
#: at least what a compact record and its definition take beyond its payload and name (the
#: room a writer makes for one): two lengths (5 bytes each at most), two CRCs, two ops,
#: dt (10), two slots (10 each), the thread (8) and the container number (10), and 2 spare
COMPACT_SLACK = 2 * 5 + 2 * 4 + 4 + 10 + 2 * 10 + 8 + 10
#: the op code of a definition (version 2): not a record, it adds one (thread, name,
#: container number) to its segment's table
OP_DEFINE = 253

#: the op code of a hole: a frame a repair put where records could not be read (their
#: bytes are in damaged/); it numbers the records it stands for and is not a record
OP_HOLE = 255

# --- segment names ----------------------------------------------------------------------
# A segment is named by its id, ``<writer id, 16 hex digits>-<segment number, 6 digits>``
# (:func:`segment_id`), plus a suffix: ``.open`` while it is written, ``.seg`` once sealed.
# The remote layout (safe_data.remote.protocol) builds its names on these.

OPEN_SUFFIX = ".open"
SEALED_SUFFIX = ".seg"

#: the largest sealed segment a receiver or reader decompresses (docs/remote.md): a body
#: that would inflate to more is refused, whatever its zstd header claims
MAX_SEGMENT_BYTES = 256 << 20
#: zstd level of a segment shipped or encrypted at rest: on journal segments level 1
#: compresses as well as level 3 (4.5x on small-int records) and 1.5x faster (740 vs 500 MB/s)
ZSTD_LEVEL = 1

#: a sealed segment's index, beside it (derived data, see journal/index.py): magic,
#: payload length, HMAC-SHA256 of the payload under the journal's key; then the payload,
#: one codec value
INDEX_SUFFIX = ".idx"
INDEX_MAGIC = b"SDINDEX1"
INDEX_HEADER = struct.Struct("<8sI32s")

# --- operation codes: (container kind, operation) --------------------------------------
# Codes are stable: never renumber, only add.
OPS: dict[int, tuple[str, str]] = {
    1: ("list", "clear"),
    2: ("list", "pop"),
    3: ("list", "remove"),
    4: ("list", "del"),
    5: ("list", "set"),
    6: ("list", "*="),
    7: ("list", "init"),
    8: ("list", "undo"),
    9: ("list", "insert"),
    10: ("list", "assign"),
    11: ("list", "snapshot"),
    16: ("dict", "clear"),
    17: ("dict", "pop"),
    18: ("dict", "popitem"),
    19: ("dict", "del"),
    20: ("dict", "set"),
    21: ("dict", "update"),
    22: ("dict", "|="),
    23: ("dict", "init"),
    24: ("dict", "undo"),
    25: ("dict", "assign"),
    26: ("dict", "snapshot"),
    32: ("set", "clear"),
    33: ("set", "pop"),
    34: ("set", "remove"),
    35: ("set", "discard"),
    36: ("set", "difference_update"),
    37: ("set", "intersection_update"),
    38: ("set", "symmetric_difference_update"),
    39: ("set", "-="),
    40: ("set", "&="),
    41: ("set", "^="),
    42: ("set", "init"),
    43: ("set", "undo"),
    44: ("set", "insert"),
    45: ("set", "snapshot"),
    # rows of a database table (the SQLAlchemy hook): key = primary key, values = {column: value}
    64: ("row", "delete"),
    65: ("row", "update"),
    # a file replaced as a whole (safe_data.atomic): key = the file's absolute path,
    # values = [its previous content, bytes]
    80: ("file", "replace"),
    # persistent synced collections (safe_data.synced): key = the path of keys/indexes from
    # the collection's root to the container changed (a tuple; () for the root)
    96: ("synced", "set"),  # values = {key or index: old value} of what was overwritten
    97: ("synced", "del"),  # values = {key or index: value} of what was deleted
    98: ("synced", "clear"),  # values = the whole container before (dict or list)
    99: ("synced", "replace"),  # values = the whole collection before (reset(), outside change)
    # transaction markers (revision 5, safe_data.transaction): name "", no container number.
    # The records of the writer's same thread between a begin and its end are the unit's.
    112: ("txn", "begin"),  # key None; values = {"note": str, "user": str or None} (+ "undo"/"redo": unit id)
    113: ("txn", "end"),  # key = the begin marker's seq; values = {"outcome": "committed" or "failed"}
}
OP_CODES: dict[tuple[str, str], int] = {v: k for k, v in OPS.items()}

# --- value codec tags -------------------------------------------------------------------
# Exact builtin types get a compact encoding that decodes without running any code;
# everything else is a pickle (protocol 5) authenticated with the journal's key.
T_NONE = 0x00
T_FALSE = 0x01
T_TRUE = 0x02
T_INT = 0x03  # zigzag LEB128, fits in int64
T_FLOAT = 0x04  # 8-byte IEEE 754 double
T_STR = 0x05  # LEB128 length + UTF-8
T_BYTES = 0x06  # LEB128 length + raw
T_TUPLE = 0x07  # LEB128 count + items
T_LIST = 0x08
T_DICT = 0x09  # LEB128 count + key, value pairs
T_SET = 0x0A
T_FROZENSET = 0x0B
T_SLICE = 0x0C  # start, stop, step
T_BYTEARRAY = 0x0D
T_PICKLE = 0x0E  # LEB128 length n + 32-byte HMAC-SHA256 + n pickle bytes
T_BIGINT = 0x0F  # LEB128 length + two's complement little-endian
T_NESTED = 0x10  # LEB128 container number (0: not of this journal) + a list, dict or set (revision 3)

#: nesting deeper than this is pickled whole (pickle handles cycles and depth)
MAX_ENCODE_DEPTH = 32
#: a decoder refuses deeper nesting than any writer produces
MAX_DECODE_DEPTH = MAX_ENCODE_DEPTH + 2
MAC_SIZE = 32
PICKLE_PROTOCOL = 5

#: payloads at least this long are lz4-compressed (if that makes them smaller)
DEFAULT_COMPRESS_THRESHOLD = 512
#: a payload longer than this is compressed only if its first LZ4_PROBE_SIZE bytes shrink
#: to at most 90% (both writers apply the rule, so they write the same bytes)
LZ4_PROBE_SIZE = 65536
#: lz4 cannot expand more than 255x; refuse to inflate anything claiming more
MAX_LZ4_RATIO = 255


def pack_segment_header(
    crc32c, writer_id: int, segment_no: int, created_ns: int, pid: int, base_seq: int | None = None
) -> bytes:
    """A new segment's header: version 2 with ``base_seq`` (the seq before its first
    frame's, in the ``last seq`` field), version 1 without."""
    version = CLASSIC_VERSION if base_seq is None else FORMAT_VERSION
    head = SEGMENT_HEADER.pack(
        MAGIC, version, SEGMENT_HEADER_SIZE, 0, writer_id, segment_no, created_ns, pid, 0, base_seq or 0
    )
    return head + SEGMENT_CRC.pack(crc32c(head))


def counted_header(crc32c, header, records: int, last_seq: int) -> bytes:
    """``header`` (a segment's first 64 bytes) stating that the sealed segment holds
    ``records`` records, the last numbered ``last_seq``."""
    fields = list(SEGMENT_HEADER.unpack_from(header))
    fields[3] |= HEADER_COUNTED
    fields[8:10] = records, last_seq
    head = SEGMENT_HEADER.pack(*fields)
    return head + SEGMENT_CRC.pack(crc32c(head))


class SegmentHeader:
    """The parsed header of a segment file.  ``records`` and ``last_seq`` are what a
    sealed segment states it holds (None when its header does not say: revision 1, or
    an ``.open`` segment).  ``base_seq``: a version-2 segment's seq before its first
    frame's (None in version 1, where each frame states its seq)."""

    __slots__ = ("version", "writer_id", "segment_no", "created_ns", "pid", "records", "last_seq", "base_seq")

    def __init__(
        self, version, writer_id, segment_no, created_ns, pid, records=None, last_seq=None, base_seq=None
    ):
        self.version = version
        self.writer_id = writer_id
        self.segment_no = segment_no
        self.created_ns = created_ns
        self.pid = pid
        self.records = records
        self.last_seq = last_seq
        self.base_seq = base_seq

    @property
    def compact(self) -> bool:
        """Its frames are compact frames (version 2)."""
        return self.version == FORMAT_VERSION

    @property
    def segment_id(self) -> str:
        """``<writer>-<n>``: the segment's name without its suffix."""
        return segment_id(self.writer_id, self.segment_no)

    @property
    def counted(self) -> bool:
        return self.records is not None

    @property
    def first_seq(self) -> int | None:
        """The seq the stated records start at (None if not stated, or no records)."""
        return self.last_seq - self.records + 1 if self.records else None


def segment_id(writer_id: int, segment_no: int) -> str:
    """The id of a writer's segment: ``<writer>-<n>`` (the inverse of :func:`parse_segment_id`)."""
    return f"{writer_id:016x}-{segment_no:06d}"


_LOWER_HEX = frozenset("0123456789abcdef")


def parse_segment_id(text) -> tuple[int, int] | None:
    """``(writer id, segment number)`` of a segment id, or None if ``text`` is not one."""
    # read by hand, not with a regular expression: re costs milliseconds at import
    if not (isinstance(text, str) and len(text) == 23 and text[16] == "-"):
        return None
    writer, number = text[:16], text[17:]
    if _LOWER_HEX.issuperset(writer) and number.isascii() and number.isdigit():
        return int(writer, 16), int(number)
    return None


def is_segment_id(text) -> bool:
    return parse_segment_id(text) is not None


def sealed_segment_id(name: str) -> str | None:
    """The id of a sealed segment's file name (``<id>.seg``), or None for any other name."""
    if not name.endswith(SEALED_SUFFIX):
        return None
    stem = name[: -len(SEALED_SUFFIX)]
    return stem if is_segment_id(stem) else None


def unpack_segment_header(crc32c, data) -> SegmentHeader:
    """Parse and verify a segment header; raise ValueError with the reason if it is bad."""
    if len(data) < SEGMENT_HEADER_SIZE:
        raise ValueError(f"segment header truncated ({len(data)} of {SEGMENT_HEADER_SIZE} bytes)")
    (magic, version, size, flags, writer_id, segment_no, created_ns, pid, records, last_seq) = (
        SEGMENT_HEADER.unpack_from(data)
    )
    if magic != MAGIC:
        raise ValueError(f"not a safe_data segment (magic {magic!r})")
    (crc,) = SEGMENT_CRC.unpack_from(data, CRC_OFFSET)
    if crc != crc32c(bytes(data[:CRC_OFFSET])):
        raise ValueError("segment header checksum mismatch")
    if version not in VERSIONS or size != SEGMENT_HEADER_SIZE:
        raise ValueError(
            f"unsupported segment format version {version} "
            f"(this reader knows {', '.join(map(str, VERSIONS))})"
        )
    if records > last_seq:
        raise ValueError(f"segment header states {records} records ending at seq {last_seq}")
    # version 2 states the seq before its first frame's: bytes 52..59 hold it until the
    # seal, which states the records and the last seq (their difference)
    base = last_seq - records if version == FORMAT_VERSION else None
    if not flags & HEADER_COUNTED:
        return SegmentHeader(version, writer_id, segment_no, created_ns, pid, base_seq=base)
    return SegmentHeader(version, writer_id, segment_no, created_ns, pid, records, last_seq, base)


# --- compact frames (version 2) ---------------------------------------------------------


def leb128_bytes(n: int) -> bytes:
    """``n`` (>= 0) as unsigned LEB128."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def zigzag(n: int) -> int:
    """A signed 64-bit ``n`` as the unsigned number LEB128 stores (small magnitudes small)."""
    return ((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF


def unzigzag(z: int) -> int:
    return (z >> 1) ^ -(z & 1)


def compact_frame(crc32c, seq: int, time_ns: int, body) -> bytes:
    """The compact frame of ``body`` (its bytes from ``op`` on), whose context is ``seq``
    and ``time_ns``: ``len``, the CRC32C of context and body, the body."""
    crc = crc32c(COMPACT_CONTEXT.pack(seq, time_ns) + bytes(body))
    return leb128_bytes(4 + len(body)) + SEGMENT_CRC.pack(crc) + bytes(body)


def record_body(op: int, flags: int, dt: int, slot: int, payload) -> bytes:
    """The body of a compact record (its bytes after the CRC): op, dt, slot and flags
    in one number, payload."""
    return (
        bytes((op,))
        + leb128_bytes(zigzag(dt))
        + leb128_bytes(slot << COMPACT_FLAG_BITS | flags)
        + bytes(payload)
    )


def hole_body(dt: int, payload) -> bytes:
    """The body of a compact hole: no slot (a hole has no thread, name or number)."""
    return bytes((OP_HOLE,)) + leb128_bytes(zigzag(dt)) + bytes(payload)


def define_body(slot: int, thread: int, number: int, name: bytes) -> bytes:
    """The body of a definition: table entry ``slot`` is (thread, name, number)."""
    return bytes((OP_DEFINE,)) + leb128_bytes(slot) + _U64.pack(thread) + leb128_bytes(number) + name


_U64 = struct.Struct("<Q")


def index_path(segment_path: str) -> str:
    """Where the index of the sealed segment at ``segment_path`` is (journal/index.py)."""
    return segment_path[: -len(SEALED_SUFFIX)] + INDEX_SUFFIX
