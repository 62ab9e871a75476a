"""Segment indexes: where each container's records lie in a sealed segment, so that a
reader of one container skips the segments that do not hold it and decodes only its
frames in those that do (docs/format.md, "Segment indexes").

An index is derived data.  It is built from one full scan of a sealed segment (the first
read that scans the segment whole builds it), saved beside the segment as
``<segment-id>.idx`` (written to a temporary file and renamed: never half there), kept in a
small per-process cache, and rebuilt whenever it is missing, unreadable, or not about this
very segment file.  Nothing in it is trusted further than it can be checked:

- its file is authenticated with the journal's key (HMAC-SHA256, as pickled values are):
  an index that was damaged, or written by anyone without the key, is not used, and a
  journal read without its key file uses none from disk;
- it names the segment file it describes (writer, number, size, the header's CRC32C), so a
  copied, repaired or rewritten segment does not match an old index;
- its offsets, with the frames the scan skipped and the records holes stand for, must add
  up to the records the sealed segment's header counts: an index that left a record out
  does not load;
- each frame it points to is read and CRC-checked like any other, and must be one the
  reader asked for.  A mismatch makes the reader rebuild the index from a full scan.

The value stored is one codec value (docs/format.md, "Values"; builtin types only, so
decoding runs no code): ``[writer, number, size, header_crc, scan, first_ns, last_ns,
entries]`` with ``entries`` a list of ``[name, container_id, first_ns, last_ns, offsets]``,
``offsets`` the frames' offsets as little-endian u32s.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
from array import array
from collections import OrderedDict

from .. import _impl
from .._fs import write_all
from ..errors import CorruptRecordError
from . import format as fmt
from .codec import encode_value, mac
from .reader import Frame, Hole, Problem, Scan

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable

    from .reader import SegmentView

#: the indexes of this many segments stay in memory per process
CACHE_SIZE = 256


class Selection:
    """Which records a reader wants: by container name (exact, or with a prefix: the
    containers nested in one) or by container number (of one writer), or every
    container's; and by time."""

    __slots__ = ("names", "prefixes", "writer", "container_ids", "since_ns", "until_ns", "every")

    def __init__(
        self,
        names=(),
        prefixes=(),
        *,
        writer: int | None = None,
        container_ids=(),
        since_ns: int | None = None,
        until_ns: int | None = None,
    ):
        self.names = frozenset(names)
        self.prefixes = tuple(prefixes)
        self.writer = writer
        self.container_ids = frozenset(container_ids)
        self.since_ns = since_ns
        self.until_ns = until_ns
        self.every = not (self.names or self.prefixes or self.container_ids)

    def wants(self, name: bytes, writer: int, container_id: int) -> bool:
        return (
            self.every
            or name in self.names
            or name.startswith(self.prefixes)
            or (container_id in self.container_ids and writer == self.writer)
        )

    def overlaps(self, first_ns: int, last_ns: int) -> bool:
        return (self.since_ns is None or last_ns >= self.since_ns) and (
            self.until_ns is None or first_ns < self.until_ns
        )


class Entry:
    """One container's records in a segment: its name, number, time range and offsets."""

    __slots__ = ("name", "container_id", "first_ns", "last_ns", "offsets")

    def __init__(self, name: bytes, container_id: int, first_ns: int, last_ns: int, offsets: array):
        self.name = name
        self.container_id = container_id
        self.first_ns = first_ns
        self.last_ns = last_ns
        self.offsets = offsets


class SegmentIndex:
    """The index of one sealed segment file: what its full scan found, and its entries."""

    __slots__ = ("identity", "scan", "entries", "first_ns", "last_ns")

    def __init__(self, identity: tuple, scan: Scan, entries: list[Entry]):
        self.identity = identity
        self.scan = scan
        self.entries = entries
        self.first_ns = min((e.first_ns for e in entries), default=0)
        self.last_ns = max((e.last_ns for e in entries), default=0)

    def offsets(self, selection: Selection) -> list[int]:
        """The offsets of the frames ``selection`` wants, in file order."""
        return select(self.entries, self.identity[0], selection)


def select(entries: Iterable[Entry], writer: int, selection: Selection) -> list[int]:
    """The offsets of the frames of ``entries`` (of ``writer``'s segment) that
    ``selection`` wants, in file order."""
    chosen = [
        e
        for e in entries
        if selection.wants(e.name, writer, e.container_id) and selection.overlaps(e.first_ns, e.last_ns)
    ]
    if len(chosen) == 1:
        return list(chosen[0].offsets)
    return sorted(offset for entry in chosen for offset in entry.offsets)


class Builder:
    """Collects the index of a segment while its frames are scanned."""

    def __init__(self, view: SegmentView):
        self._view = view
        self.entries: dict[tuple[bytes, int], Entry] = {}

    def add(self, frame: Frame) -> None:
        container_id = frame.container_number  # (0 if unreadable: the record reads as undecodable)
        key = (bytes(frame.name), container_id)  # (a slice of a bytearray: an open segment's)
        entry = self.entries.get(key)
        if entry is None:
            self.entries[key] = Entry(
                key[0], container_id, frame.time_ns, frame.time_ns, array("I", (frame.offset,))
            )
        else:
            entry.offsets.append(frame.offset)
            if frame.time_ns < entry.first_ns:
                entry.first_ns = frame.time_ns
            if frame.time_ns > entry.last_ns:
                entry.last_ns = frame.time_ns

    def finish(self, scan: Scan) -> SegmentIndex:
        return SegmentIndex(identity_of(self._view), scan, list(self.entries.values()))


def same(a: SegmentIndex, b: SegmentIndex) -> bool:
    """Whether two indexes of a segment say the same."""

    def content(i):
        s = i.scan
        return (
            i.identity,
            s.end,
            s.first_seq,
            s.last_seq,
            s.open_ended,
            s.problems,
            s.skipped,
            s.holes,
            sorted((e.name, e.container_id, e.first_ns, e.last_ns, list(e.offsets)) for e in i.entries),
        )

    return content(a) == content(b)


def identity_of(view: SegmentView) -> tuple:
    """(writer, number, size, header CRC): what a segment file's index must be about."""
    header = view.header
    assert header is not None  # (only a segment with a sound header is indexed)
    return (header.writer_id, header.segment_no, view.size, view.header_crc)


# --- the file ---------------------------------------------------------------------------


def encode(index: SegmentIndex, key: bytes) -> bytes:
    scan = index.scan
    problems = scan.problems
    stopped = problems.index(scan.stopped) if scan.stopped is not None else None
    value = [
        *index.identity,
        [
            scan.end,
            scan.first_seq,
            scan.last_seq,
            scan.open_ended,
            stopped,
            [[p.offset, p.reason] for p in problems],
            [list(s) for s in scan.skipped],
            [list(h) for h in scan.holes],
        ],
        index.first_ns,
        index.last_ns,
        [[e.name, e.container_id, e.first_ns, e.last_ns, _le(e.offsets)] for e in index.entries],
    ]
    payload = bytearray()
    encode_value(payload, value, b"")
    return fmt.INDEX_HEADER.pack(fmt.INDEX_MAGIC, len(payload), mac(key, payload)) + payload


def decode(data: bytes, view: SegmentView, key: bytes) -> SegmentIndex | None:
    """The index ``data`` holds if it is authentic, sound and about ``view``'s file,
    else None."""
    from hmac import compare_digest  # (hmac pulls in OpenSSL: not at import safe_data)

    try:
        magic, length, tag = fmt.INDEX_HEADER.unpack_from(data)
        payload = data[fmt.INDEX_HEADER.size :]
        if magic != fmt.INDEX_MAGIC or length != len(payload) or not compare_digest(tag, mac(key, payload)):
            return None
        (value,) = _impl.decode_values(payload, None, False, 1)
        writer, number, size, header_crc, scan_value, first_ns, last_ns, entries = value
        if (writer, number, size, header_crc) != identity_of(view):
            return None
        scan = _scan_from(scan_value, view.name)
        index = SegmentIndex(
            (writer, number, size, header_crc),
            scan,
            [Entry(name, cid, first, last, _from_le(offsets)) for name, cid, first, last, offsets in entries],
        )
    except (CorruptRecordError, ValueError, TypeError, IndexError, OverflowError, struct.error):
        return None
    return index if _accounts_for_every_record(index, view) else None


def _scan_from(value, segment: str) -> Scan:
    end, first_seq, last_seq, open_ended, stopped, problems, skipped, holes = value
    scan = Scan(end)
    scan.first_seq, scan.last_seq, scan.open_ended = first_seq, last_seq, bool(open_ended)
    scan.problems = [Problem(segment, offset, reason) for offset, reason in problems]
    scan.stopped = scan.problems[stopped] if stopped is not None else None
    scan.skipped = [tuple(s) for s in skipped]
    scan.holes = [Hole(*h) for h in holes]
    return scan


def _accounts_for_every_record(index: SegmentIndex, view: SegmentView) -> bool:
    """The offsets, skipped frames and holes cover exactly the records the scan found,
    and those the header counts when the scan was complete: nothing left out."""
    scan = index.scan
    found = (
        sum(len(e.offsets) for e in index.entries)
        + len(scan.skipped)
        + sum(max(h.span, 1) for h in scan.holes)
    )
    if scan.first_seq is None or scan.last_seq is None:
        covered = 0
    else:
        covered = scan.last_seq - scan.first_seq + 1
    if found != covered:
        return False
    header = view.header
    assert header is not None  # (decode() compared the identity first)
    return not (header.counted and scan.complete and covered != header.records)


def _le(offsets: array) -> bytes:
    if sys.byteorder == "big":
        offsets = array("I", offsets)
        offsets.byteswap()
    return offsets.tobytes()


def _from_le(data: bytes) -> array:
    if type(data) is not bytes or len(data) % 4:
        raise ValueError("offsets")
    offsets = array("I")
    offsets.frombytes(data)
    if sys.byteorder == "big":
        offsets.byteswap()
    return offsets


# --- the open segments ------------------------------------------------------------------


class Growing:
    """What is known of a live writer's open segment so far: the index of its frames up
    to ``end``, so that the next read scans only the frames written since."""

    __slots__ = ("builder", "writer", "end", "first_seq", "last_seq", "last_offset")

    def __init__(self, view: SegmentView):
        self.builder = Builder(view)
        self.writer = identity_of(view)[0]
        self.end = fmt.SEGMENT_HEADER_SIZE
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.last_offset: int | None = None

    def add(self, frame: Frame) -> None:
        self.builder.add(frame)
        self.last_offset = frame.offset

    def offsets(self, selection: Selection) -> list[int]:
        return select(self.builder.entries.values(), self.writer, selection)


_growing: OrderedDict[tuple, Growing] = OrderedDict()


def growing(view: SegmentView) -> Growing | None:
    with _cache_lock:
        return _growing.get((view.path, view.inode))


def keep_growing(view: SegmentView, state: Growing) -> None:
    slot = (view.path, view.inode)
    with _cache_lock:
        _growing[slot] = state
        _growing.move_to_end(slot)
        while len(_growing) > CACHE_SIZE:
            _growing.popitem(last=False)


# --- finding an index -------------------------------------------------------------------

_cache: OrderedDict[tuple, SegmentIndex] = OrderedDict()
_cache_lock = threading.Lock()


def cached(view: SegmentView, key: bytes | None) -> SegmentIndex | None:
    """The index of ``view``'s file from this process's cache or (given the journal's
    ``key``) its ``.idx`` file."""
    slot = (view.path, view.inode, identity_of(view))
    with _cache_lock:
        index = _cache.get(slot)
        if index is not None:
            _cache.move_to_end(slot)
            return index
    if not key or view.encrypted:  # (an encrypted segment's index is never on disk)
        return None
    try:
        with open(fmt.index_path(view.path), "rb") as f:
            data = f.read()
    except OSError:
        return None
    index = decode(data, view, key)
    if index is not None:
        remember(view, index)
    return index


def remember(view: SegmentView, index: SegmentIndex) -> None:
    slot = (view.path, view.inode, identity_of(view))
    with _cache_lock:
        _cache[slot] = index
        _cache.move_to_end(slot)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)


def save(view: SegmentView, index: SegmentIndex, key: bytes | None) -> None:
    """Write ``index`` beside its segment, atomically, authenticated with ``key``; a
    journal that cannot take it (no key, read-only, full) simply goes without: the index
    is derived data."""
    remember(view, index)
    if not key or view.encrypted:  # its containers' names, ids and times would be in clear
        return
    path = fmt.index_path(view.path)
    tmp = f"{path}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    try:  # not fsynced: after a power loss a torn index fails its CRC and is rebuilt
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_all(fd, encode(index, key))
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
