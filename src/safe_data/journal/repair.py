"""Repairing a damaged journal: set aside what cannot be read, keep every record that can.

A sealed segment is immutable and readers map it, so a repair never changes one in
place: the whole original is first copied to ``damaged/``, then a file holding every
frame that verifies replaces it by an atomic rename.  Where frames could not be read it
holds a *hole* (docs/format.md): a frame that numbers the records lost there and names
the copy that keeps their bytes, so the segment still accounts for every record its
header counts and verify reports it sound.  A reader that has the old file mapped keeps
reading the old bytes (truncating in place could kill it with SIGBUS), and a crash at any
step leaves either the original or the repaired segment, never neither.

``.open`` segments of dead writers get the journal's own recovery (see
:func:`.recovery.recover_dead_segments`); those of live writers are never touched.
"""

from __future__ import annotations

import mmap
import os
import shutil
from collections import namedtuple

from .. import _faults, _impl
from .._fs import fsync, fsync_dir, write_all
from . import format as fmt
from . import ledger
from .codec import encode_value
from .encryption import AGE_HEADER, is_encrypted
from .reader import Hole, Scan, records_text, segment_frames, shortfall
from .recovery import DAMAGED_DIR, recover_dead_segments
from .segments import NEW_SUFFIX

_CHUNK = 1 << 20


def repair(directory: str, problems) -> list[str]:
    """Repair the segments named in ``problems``; return what was done.

    Parameters
    ----------
    directory : str
        The journal directory.
    problems : iterable of Problem
        What a check found (``Journal.verify()``, ``safe-data verify``).  Only the segment
        names are used: each segment is checked again here, so a stale list does no harm
        and a second call changes nothing.

    Returns
    -------
    list of str
        One line per segment changed, naming the copy of the original in ``damaged/``.

    Notes
    -----
    * A sealed segment keeps every frame that verifies: a frame skipped for a failed
      checksum becomes a hole, and so does a damaged tail (the frames after a damaged
      length cannot be located; they are in the saved copy only).
    * A sealed segment whose header is unreadable, or that is a second copy of another
      segment, is moved to ``damaged/`` whole (and recorded in the ledger).
    * A segment that is missing cannot be repaired: it stays reported.
    * A segment whose frames all verify but do not decode (an unknown operation written
      by a newer version, say) is left alone: there is nothing torn to cut.
    * Dead writers' ``.open`` segments are recovered and sealed; live ones are skipped.
    """
    directory = os.fspath(directory)
    done = []
    dead_open = False
    for name in sorted({p.segment for p in problems if not p.live}):
        if name.endswith(fmt.SEALED_SUFFIX):
            message = _repair_sealed(directory, name)
            if message is not None:
                done.append(message)
        elif name.endswith(fmt.OPEN_SUFFIX):
            dead_open = True
    if dead_open:  # recovery takes each segment's lock: a live writer's is never touched
        for problem in recover_dead_segments(directory, _impl.crc32c, durable=True):
            done.append(f"{problem.segment}: sealed after its writer died; {problem.reason}")
    return done


def _repair_sealed(directory: str, name: str) -> str | None:
    path = os.path.join(directory, name)
    try:
        source = open(path, "rb")
    except FileNotFoundError:  # purged or repaired meanwhile
        return None
    with source:
        size = os.fstat(source.fileno()).st_size
        data: mmap.mmap | bytes = mmap.mmap(source.fileno(), size, prot=mmap.PROT_READ) if size else b""
        try:
            if is_encrypted(data[: len(AGE_HEADER)]):  # age authenticates it: nothing to mend
                return f"{name}: encrypted at rest, left as it is (read it with its identity)"
            try:
                header = fmt.unpack_segment_header(_impl.crc32c, data)
            except ValueError as exc:
                return _set_aside_unreadable(directory, name, source, str(exc))
            if _is_second_copy(directory, name, header, source):
                return _set_aside_copy(directory, name, source, header)
            frames, scan = readable_frames(data, name, header)
            if not scan.problems:
                return None
            saved = _save_copy(directory, name, source)
            pieces = rebuilt(header, frames, scan.holes + _holes_for_damage(header, scan, len(data), saved))
        finally:
            if isinstance(data, mmap.mmap):
                data.close()
        replace_segment(directory, path, source, pieces)
    return f"{name}: {_describe(scan, header, size)}; the original was saved to {saved}"


def _set_aside_unreadable(directory: str, name: str, source, why: str) -> str:
    """Move a segment whose header does not verify to damaged/, recorded in the ledger
    (it leaves the journal: its records are readable only from the copy)."""
    saved = _save_copy(directory, name, source)
    ledger.remove_segments(directory, [os.path.join(directory, name)], f"repaired: {why}; moved to {saved}")
    return f"{name}: {why}; the whole segment was moved to {saved}"


def _set_aside_copy(directory: str, name: str, source, header: fmt.SegmentHeader) -> str:
    """Move a second copy of a segment to damaged/; no ledger line: the segment has not
    left the journal, its first copy is still there."""
    saved = _save_copy(directory, name, source)
    os.unlink(os.path.join(directory, name))
    fsync_dir(directory)
    return f"{name}: a second copy of {header.segment_id}{fmt.SEALED_SUFFIX}; it was moved to {saved}"


def _is_second_copy(directory: str, name: str, header: fmt.SegmentHeader, source) -> bool:
    """Whether another file, named as this segment's header says, holds the segment."""
    own = header.segment_id + fmt.SEALED_SUFFIX
    if name == own:
        return False
    try:
        other = os.stat(os.path.join(directory, own))
    except FileNotFoundError:
        return False
    mine = os.fstat(source.fileno())
    return (other.st_dev, other.st_ino) != (mine.st_dev, mine.st_ino)


def readable_frames(data, name: str, header: fmt.SegmentHeader) -> tuple[list, Scan]:
    """(the frames that verify, the Scan)."""
    found: list = []
    frames = segment_frames(data, _impl.crc32c, name, True, header)
    while True:
        try:
            found.append(next(frames))
        except StopIteration as stop:
            return found, stop.value


class NewHole(namedtuple("NewHole", "offset seq span saved")):
    """A hole to write where the frame(s) at ``offset`` were: it stands for ``span``
    records from ``seq``; ``saved`` says what became of them (see :class:`.reader.Hole`)."""

    __slots__ = ()


def rebuilt(header: fmt.SegmentHeader, frames, holes) -> list:
    """A sealed segment rewritten, as pieces for :func:`replace_segment`: its header, then
    in the order of their offsets ``frames`` (Frames that verified, kept) and ``holes``
    (Holes already there, kept; NewHoles, written).  The records of ``frames`` and the
    spans of ``holes`` must account for every seq the segment's header counts.

    Every rewrite of a segment (a repair, forgetting records) goes through here: the new
    file keeps the header, the seq chain and the time chain of the old one."""
    placed = sorted([(f.offset, f) for f in frames] + [(h.offset, h) for h in holes], key=lambda p: p[0])
    return _rebuilt_compact(header, placed) if header.compact else _rebuilt(header, placed)


def _rebuilt_compact(header: fmt.SegmentHeader, placed) -> list:
    """rebuilt() of a compact segment: its frames cannot be copied as they are (each is
    read in the state the frames before it leave), so they are written anew, in the same
    order, from what they hold: each record (with a definition before the first of each
    (thread, name, number)) and each hole, at the time of the frame before it."""
    crc32c = _impl.crc32c
    out = bytearray()
    time_ns = header.created_ns
    slots: dict[tuple, int] = {}
    for _, item in placed:
        if isinstance(item, (Hole, NewHole)):
            body = fmt.hole_body(0, _hole_payload(item.span, item.saved))
            out += fmt.compact_frame(crc32c, item.seq, time_ns, body)
            continue
        triple = (item.thread, bytes(item.name), item.number)
        if triple not in slots:
            slots[triple] = len(slots)
            body = fmt.define_body(slots[triple], item.thread, item.number, triple[1])
            out += fmt.compact_frame(crc32c, item.seq, time_ns, body)
        body = fmt.record_body(item.op, item.flags, item.time_ns - time_ns, slots[triple], item.payload)
        out += fmt.compact_frame(crc32c, item.seq, item.time_ns, body)
        time_ns = item.time_ns
    return [(0, fmt.SEGMENT_HEADER_SIZE), bytes(out)]


def _rebuilt(header: fmt.SegmentHeader, placed) -> list:
    """rebuilt() of a version-1 segment: (offset, length) ranges of the original to copy
    (the frames and the holes kept; contiguous ones in one range), and the bytes of each
    new hole, at the time of the frame before it."""
    pieces: list = [(0, fmt.SEGMENT_HEADER_SIZE)]
    time_ns = header.created_ns
    for offset, item in placed:
        if isinstance(item, NewHole):
            pieces.append(_hole(item.seq, item.span, time_ns, item.saved))
            continue
        if not isinstance(item, Hole):
            time_ns = item.time_ns
        last = pieces[-1]
        if isinstance(last, tuple) and sum(last) == offset:
            pieces[-1] = (last[0], last[1] + item.length)  # contiguous frames: one copy
        else:
            pieces.append((offset, item.length))
    return pieces


def _holes_for_damage(header: fmt.SegmentHeader, scan: Scan, size: int, saved: str) -> list[NewHole]:
    """A hole for each frame skipped, and one for a damaged tail whose records are not all
    accounted for: their bytes are in the copy ``saved``."""
    reasons = {p.offset: p.reason for p in scan.problems}
    holes = [
        NewHole(offset, seq, 1, _saved(saved, offset, length, reasons[offset]))
        for offset, length, seq in scan.skipped
    ]
    tail = _tail_hole(header, scan, size, saved)
    if tail is not None:
        holes.append(NewHole(scan.end, *tail))
    return holes


def _tail_hole(header: fmt.SegmentHeader, scan: Scan, size: int, saved: str):
    """(seq, span, where the bytes are) of the hole for the records lost in a damaged
    tail, or None when there are none (or nothing tells which: a segment without counts
    and without a readable frame)."""
    if scan.stopped is None:
        return None
    missing = shortfall(header, scan)
    if header.counted:
        if missing is None:
            return None
        seq, span = missing[0], missing[1] - missing[0] + 1
    elif scan.next_seq is not None:
        seq, span = scan.next_seq, 0  # how many were lost is not known
    else:
        return None
    return seq, span, _saved(saved, scan.end, size - scan.end, scan.stopped.reason)


def _saved(saved: str, offset: int, length: int, reason: str) -> dict:
    """Where a hole's records are: ``length`` bytes at ``offset`` of the copy ``saved``."""
    return {"file": saved, "offset": offset, "bytes": length, "reason": reason}


def _hole_payload(span: int, where: dict) -> bytes:
    payload = bytearray()
    encode_value(payload, span, b"")
    encode_value(payload, where, b"")
    return bytes(payload)


def _hole(seq: int, span: int, time_ns: int, where: dict) -> bytes:
    """A version-1 hole frame (docs/format.md): it stands for ``span`` records from
    ``seq``, whose bytes are where ``where`` says (see _saved)."""
    payload = _hole_payload(span, where)
    frame_len = fmt.FRAME_HEADER_SIZE + len(payload)
    head = fmt.FRAME_HEADER.pack(frame_len, 0, seq, time_ns, 0, fmt.OP_HOLE, 0, 0)
    crc = _impl.crc32c(head[8:] + payload)
    return fmt.FRAME_HEADER.pack(frame_len, crc, seq, time_ns, 0, fmt.OP_HOLE, 0, 0) + payload


def _describe(scan: Scan, header: fmt.SegmentHeader, size: int) -> str:
    """What the repair did to a segment, for its report."""
    reasons = {p.offset: p.reason for p in scan.problems}
    done = [
        f"set aside {records_text(seq, seq)} at byte {offset} ({reasons[offset]})"
        for offset, _, seq in scan.skipped
    ]
    if scan.stopped is not None:
        missing = shortfall(header, scan)
        lost = f", {records_text(*missing)}" if missing else ""
        done.append(f"cut {size - scan.end} bytes from byte {scan.end}{lost} ({scan.stopped.reason})")
    return "; ".join(done)


def _save_copy(directory: str, name: str, source) -> str:
    """Copy all of ``source`` to ``damaged/<name>.0.bin`` (the bytes from offset 0, as
    recovery names what it saves); an earlier copy is never overwritten."""
    damaged = os.path.join(directory, DAMAGED_DIR)
    os.makedirs(damaged, mode=0o700, exist_ok=True)
    fd, target = _exclusive_file(damaged, f"{name}.0", ".bin")
    with os.fdopen(fd, "wb") as out:
        source.seek(0)
        shutil.copyfileobj(source, out, _CHUNK)
        out.flush()
        fsync(out.fileno())
    fsync_dir(damaged)
    return os.path.relpath(target, directory)


def _exclusive_file(directory: str, stem: str, suffix: str) -> tuple[int, str]:
    """Create ``stem + suffix``, or ``stem.2 + suffix``, ... whichever is free first."""
    n = 1
    while True:
        path = os.path.join(directory, f"{stem}{suffix}" if n == 1 else f"{stem}.{n}{suffix}")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path
        except FileExistsError:
            n += 1


def replace_segment(directory: str, path: str, source, pieces) -> None:
    """Atomically replace ``path`` by ``pieces``: (offset, length) ranges of ``source``
    and bytes; its index (derived from the old file) goes.  A crash at any step leaves
    either the old file or the new one at ``path``."""
    # The .new suffix is the journal's own for files being built: should we crash before
    # the rename, recovery removes the leftover once it is stale.
    building = path + NEW_SUFFIX
    fd = os.open(building, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for piece in pieces:
            if isinstance(piece, tuple):
                _copy_range(source, fd, *piece)
            else:
                write_all(fd, piece)
        fsync(fd)
    finally:
        os.close(fd)
    _faults.point("segment.rewrite")
    os.rename(building, path)
    fsync_dir(directory)
    ledger.remove_index(path)


def _copy_range(source, fd: int, offset: int, length: int) -> None:
    source.seek(offset)
    while length:
        chunk = source.read(min(_CHUNK, length))
        if not chunk:
            raise OSError(f"{source.name} shrank while it was being repaired")
        write_all(fd, chunk)
        length -= len(chunk)
