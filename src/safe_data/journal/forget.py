"""Forgetting records on request: sealed segments rewritten without them.

A segment is immutable once sealed, so forgetting never changes one in place: each
sealed segment holding a chosen record is rewritten by :func:`.repair.rebuilt` (the one
rewriter of segments) into a new file, fsynced, renamed over the old one, and the
directory fsynced.  Each run of consecutive chosen records becomes a *hole* whose
``saved`` says ``{"forgotten": <forget id>, ...}`` (docs/format.md, "Holes"): the segment
still accounts for every seq its header counts, so the seq chain, the header's counts and
the checks across segments hold, and verify tells forgotten records from damaged ones.
Then one line per segment goes to the forgotten log (:mod:`.forgotten`).

What it does not do: touch a segment being written (the caller seals its own first; other
live writers' are reported in ``Forgotten.unsealed``), or take back the bytes a reader
still maps (it keeps the old inode until it unmaps it, as for a repair).  A crash at any
step leaves each segment either old or new, never neither.
"""

from __future__ import annotations

import mmap
import os
import secrets
import time
from collections import namedtuple

from .. import _impl
from ..errors import CorruptRecordError, SafeDataError
from . import forgotten
from . import format as fmt
from .encryption import AGE_HEADER, is_encrypted, open_at_rest, seal_file
from .reader import Frame, decode_frame, is_live, segment_frames, segment_paths
from .repair import NewHole, readable_frames, rebuilt, replace_segment

#: the ``reason`` of a forgotten hole's ``saved`` (its ``forgotten`` key holds the id)
FORGOTTEN_REASON = "forgotten on request"


class Forgotten(namedtuple("Forgotten", "id segments unsealed backups", defaults=({},))):
    """What a forget did (or, dry, would do): ``id`` (in the forgotten log and the holes),
    ``segments`` ({segment id: records forgotten}), ``unsealed`` (the open segments of
    other running writers that hold chosen records: not forgotten; forget again once they
    are sealed), ``backups`` ({backup: {segment id: records}} of the backups given)."""

    __slots__ = ()

    @property
    def records(self) -> int:
        return sum(self.segments.values())


class Choice:
    """Which records to forget: by name (and the containers nested in it), by identity
    (writer, container number), by time (``after_ns <= t < before_ns``), and by a
    predicate on the decoded Record; each criterion given must hold.  ``asked`` is what
    the forgotten log says was asked."""

    def __init__(self, *, names=(), identity=None, after_ns=None, before_ns=None, predicate=None, asked=None):
        self.names = tuple(n.encode("utf-8") for n in names)
        self.prefixes = tuple(n + b"[" for n in self.names)  # nested: _support.child_name
        self.identity = identity
        self.after_ns = after_ns
        self.before_ns = before_ns
        self.predicate = predicate
        self.asked = asked or {}

    def wants(self, frame: Frame, writer: int) -> bool:
        """Whether ``frame`` is chosen, by everything but the predicate."""
        if self.names and not (frame.name in self.names or frame.name.startswith(self.prefixes)):
            return False
        if self.identity is not None and (writer, frame.container_number) != self.identity:
            return False
        if self.after_ns is not None and frame.time_ns < self.after_ns:
            return False
        return self.before_ns is None or frame.time_ns < self.before_ns


def new_id() -> str:
    """A forget's id: its time (UTC) and 8 random hex digits."""
    return time.strftime("%Y%m%dT%H%M%SZ-", time.gmtime()) + secrets.token_hex(4)


def forget(
    directory: str, choice: Choice, key: bytes | None, *, recipients=None, dry_run=False, forget_id=None
) -> Forgotten:
    """Forget the records ``choice`` picks from every sealed segment of the journal at
    ``directory`` (``key``: its key, to decode values for a predicate; ``recipients``: the
    parsed age recipients to encrypt segments encrypted at rest to again; ``forget_id``:
    the id to use, default :func:`new_id`).

    Raises SafeDataError, before any change to it, for a chosen segment that is damaged
    (repair it first: ``safe-data verify --fix``) or encrypted at rest without an identity
    or without recipients to encrypt it to again.
    """
    forget_id = forget_id or new_id()
    segments, unsealed = {}, []
    for path in segment_paths(directory):
        if not path.endswith(fmt.SEALED_SUFFIX):
            if is_live(path) and _open_holds(path, choice, key):
                unsealed.append(os.path.basename(path))
            continue
        found = _forget_in(directory, path, choice, key, forget_id, recipients, dry_run)
        if found:
            segment_id, seqs, names = found
            segments[segment_id] = sum(last - first + 1 for first, last in seqs)
            if not dry_run:
                entry = forgotten.Entry(
                    forget_id, _now(), choice.asked, segment_id, segments[segment_id], seqs, names
                )
                forgotten.append(directory, [entry])
    return Forgotten(forget_id, segments, unsealed)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _forget_in(directory, path, choice, key, forget_id, recipients, dry_run):
    """(segment id, [[first, last] seqs forgotten], [container names]) of one sealed
    segment, or None when it holds no chosen record (or vanished)."""
    name = os.path.basename(path)
    try:
        source = open(path, "rb")
    except FileNotFoundError:  # purged meanwhile
        return None
    with source:
        size = os.fstat(source.fileno()).st_size
        mapped: mmap.mmap | bytes = mmap.mmap(source.fileno(), size, prot=mmap.PROT_READ) if size else b""
        try:
            encrypted = is_encrypted(mapped[: len(AGE_HEADER)])
            data = _decrypted(name, mapped, recipients) if encrypted else mapped
            found = rewritten(name, data, choice, key, forget_id)
        finally:
            if isinstance(mapped, mmap.mmap):
                mapped.close()
    if found is None:
        return None
    segment_id, runs, new, names = found
    if not dry_run:
        replace_segment(directory, path, None, [new])
        if encrypted:  # rewritten in plaintext, then encrypted again as at a seal
            seal_file(path, recipients, durable=True)
    return segment_id, runs, names


def rewritten(name: str, data, choice: Choice, key, forget_id: str):
    """(segment id, [[first, last] seqs chosen], the segment's bytes without them, the
    sorted names of the containers of the chosen records) of the sealed segment ``data``
    (its file name ``name``), or None when nothing in it is chosen.  The same segment,
    choice and id give the same bytes, wherever it is rewritten (the local journal, a
    copy fetched from a backup)."""
    found = _chosen(name, data, choice, key)
    if found is None:
        return None
    header, frames, holes, runs = found
    gone = {seq for first, last in runs for seq in range(first, last + 1)}
    kept = [f for f in frames if f.seq not in gone]
    saved = {"forgotten": forget_id, "reason": FORGOTTEN_REASON}
    new = [NewHole(_offset_of(frames, first), first, last - first + 1, saved) for first, last in runs]
    names = sorted({str(f.name, "utf-8", "replace") for f in frames if f.seq in gone})
    return header.segment_id, runs, _joined(data, rebuilt(header, kept, holes + new)), names


def container_names(name: str, data) -> list[str]:
    """The sorted names of the containers with records in the sealed segment ``data``
    (its file name ``name``), as checked as :func:`rewritten` reads it."""
    header = fmt.unpack_segment_header(_impl.crc32c, data)
    frames = segment_frames(data, _impl.crc32c, name, False, header)
    return sorted({str(f.name, "utf-8", "replace") for f in frames})


def _decrypted(name: str, data, recipients) -> bytes:
    if recipients is None:
        raise SafeDataError(
            f"segment {name} is encrypted at rest: open the journal with encrypt_to= "
            f"(safe-data forget --encrypt-to) to encrypt its rewrite again"
        )
    return open_at_rest(bytes(data), f"segment {name} (encrypted at rest)")


def _chosen(name: str, data, choice: Choice, key):
    """(header, frames, holes, [[first, last], ...] runs of chosen seqs) of a segment,
    or None when nothing in it is chosen.  SafeDataError if it is damaged."""
    header = fmt.unpack_segment_header(_impl.crc32c, data)
    frames, scan = readable_frames(data, name, header)
    runs: list[list[int]] = []
    last_chosen = None
    for frame in frames:
        if not _is_chosen(frame, header, name, choice, key):
            last_chosen = None
            continue
        if last_chosen is not None and frame.seq == last_chosen + 1:
            runs[-1][1] = frame.seq
        else:
            runs.append([frame.seq, frame.seq])
        last_chosen = frame.seq
    if not runs:
        return None
    if scan.problems:
        raise SafeDataError(
            f"segment {name} is damaged ({scan.problems[0]}): repair it first "
            f"(safe-data verify --fix), then forget again; nothing was forgotten in it"
        )
    return header, frames, scan.holes, runs


def _is_chosen(frame: Frame, header, name: str, choice: Choice, key) -> bool:
    if not choice.wants(frame, header.writer_id):
        return False
    if choice.predicate is None:
        return True
    try:
        record = decode_frame(frame, header, name, key, False)
    except CorruptRecordError as exc:
        raise SafeDataError(
            f"segment {name}: a record at byte {frame.offset} does not decode ({exc})"
        ) from None
    return bool(choice.predicate(record))


def _open_holds(path: str, choice: Choice, key) -> bool:
    """Whether a live writer's open segment holds a record ``choice`` picks."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        header = fmt.unpack_segment_header(_impl.crc32c, data)
    except (OSError, ValueError):
        return False
    frames = segment_frames(data, _impl.crc32c, os.path.basename(path), False, header)
    return any(_is_chosen(f, header, os.path.basename(path), choice, key) for f in frames)


def _offset_of(frames: list, seq: int) -> int:
    return next(f.offset for f in frames if f.seq == seq)


def _joined(data, pieces) -> bytes:
    """The bytes ``pieces`` (as :func:`.repair.rebuilt` gives them) make of ``data``."""
    out = bytearray()
    for piece in pieces:
        out += data[piece[0] : piece[0] + piece[1]] if isinstance(piece, tuple) else piece
    return bytes(out)
