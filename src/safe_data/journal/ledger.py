"""The ledger: the segments that left the journal directory on purpose.

A segment leaves a journal in three ways only: a remote backup acknowledged it and the
uploader deleted it, ``safe-data purge`` deleted it, or recovery or a repair set it aside
in ``damaged/``.  Each time a line is appended to ``<journal>/ledger`` and made durable
*before* the file goes, so a reader can tell such a segment from one that vanished
(deleted by hand, lost with a disk or a botched copy): docs/format.md, "The ledger".

A line is the CRC32C (8 hex digits) of its JSON object, a space, the object, a newline:
``{"segment": "<writer>-<n>", "first": seq or null, "last": seq or null, "why": ...,
"time": ...}``.  ``first`` and ``last`` are the seqs the segment held, when its header
stated them (revision 2).  A torn last line (a crash while appending) is ignored: its
segment was still there, the file goes only after the append is durable.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections import namedtuple

from .. import _impl
from .._fs import fsync, fsync_dir, write_all
from ..errors import JournalFullError
from . import format as fmt
from .reader import Problem

LEDGER_FILE = "ledger"
#: how the ``why`` of a segment deleted from the backup (by the server's retention) starts:
#: ``safe-data pull`` records those it was told of, so the journal it fills has no gap
DELETED_ON_BACKUP = "deleted on the backup"
_ENOSPC = (errno.ENOSPC, errno.EDQUOT)


class Departure(namedtuple("Departure", "segment first last why time")):
    """One ledger line: segment ``<writer>-<n>`` left the journal, holding seqs ``first``
    to ``last`` (None when unknown), for the reason ``why``, at ``time`` (ISO, UTC)."""

    __slots__ = ()

    @property
    def identity(self) -> tuple[int, int] | None:
        """(writer id, segment number), or None if ``segment`` is not a segment id."""
        return fmt.parse_segment_id(self.segment)


def departure_of(path: str, why: str) -> Departure:
    """The ledger line for the segment file at ``path``: who it is and what it held from
    its header, or from its name when the header does not verify."""
    try:
        with open(path, "rb") as f:
            header = fmt.unpack_segment_header(_impl.crc32c, f.read(fmt.SEGMENT_HEADER_SIZE))
    except ValueError:
        stem = os.path.basename(path).rsplit(".", 1)[0]
        return Departure(stem, None, None, why, _now())
    first = header.last_seq - header.records + 1 if header.counted else None
    return Departure(header.segment_id, first, header.last_seq, why, _now())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def remove_segments(directory: str, paths, why: str, *, durable: bool = True) -> list[str]:
    """Delete segment files of the journal at ``directory``, recording each in its
    ledger first; return the names actually deleted (a file already gone is skipped).

    This is how a segment leaves a journal: one deleted otherwise is reported missing by
    ``Journal.verify()`` and ``safe-data verify``.  ``durable`` also fsyncs the directory
    after the deletions (the ledger is always made durable before them).  Raises
    JournalFullError if the disk is too full even for the ledger's lines; then nothing
    was deleted.
    """
    removed = []
    for path in record_removal(directory, paths, why):
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed.append(os.path.basename(path))
        remove_index(path)
    if durable:
        fsync_dir(directory)
    return removed


def remove_index(segment_path: str) -> None:
    """Delete the index of a segment that left the journal (derived data: journal/index.py)."""
    if segment_path.endswith(fmt.SEALED_SUFFIX):
        try:
            os.unlink(fmt.index_path(segment_path))
        except FileNotFoundError:
            pass


def record_removal(directory: str, paths, why: str) -> list[str]:
    """Record durably in the ledger that the segment files at ``paths`` are about to be
    deleted, for the reason ``why``; return those still there, for the caller to delete
    (the others went meanwhile, recorded by whoever removed them)."""
    departures, present = [], []
    for path in paths:
        try:
            departures.append(departure_of(path, why))
        except FileNotFoundError:
            continue
        present.append(path)
    if departures:
        record(directory, departures)
    return present


def record(directory: str, departures) -> None:
    """Append ``departures`` to the ledger in one write and make them durable."""
    append(
        directory,
        LEDGER_FILE,
        [d._asdict() for d in departures],
        "record in its ledger the segments to delete; nothing was deleted",
    )


def append(directory: str, filename: str, objects, doing: str) -> None:
    """Append ``objects`` as checksummed JSON lines to ``<directory>/<filename>`` in one
    write and make them durable (the ledger's format, shared by the forgotten log);
    ``doing`` ends the JournalFullError raised when the disk is full."""
    lines = b"".join(checked_line(o) for o in objects)
    path = os.path.join(directory, filename)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        created = os.fstat(fd).st_size == 0
        write_all(fd, lines)
        fsync(fd)
    except OSError as exc:
        if exc.errno in _ENOSPC:
            raise JournalFullError(
                exc.errno, f"no space left in {directory} to {doing}. Free some space first"
            ) from exc
        raise
    finally:
        os.close(fd)
    if created:
        fsync_dir(directory)


def checked_line(obj: dict) -> bytes:
    """The CRC32C of ``obj``'s JSON (8 hex digits), a space, the JSON, a newline."""
    body = json.dumps(obj, separators=(",", ":")).encode()
    return b"%08x %s\n" % (_impl.crc32c(body), body)


def parse_checked(line: bytes) -> dict | None:
    """The object of a :func:`checked_line`, or None if it does not verify."""
    crc, _, body = line.rstrip(b"\n").partition(b" ")
    try:
        if int(crc, 16) != _impl.crc32c(body):
            return None
        fields = json.loads(body)
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None


def read(directory: str):
    """({(writer id, segment number): Departure}, [Problem]) of the journal's ledger: the
    problems are its lines that do not verify (a torn last line is not one)."""
    try:
        with open(os.path.join(directory, LEDGER_FILE), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}, []
    gone, problems, offset = {}, [], 0
    for line in data.splitlines(keepends=True):
        departure = _parse(line)
        if departure is None and line.endswith(b"\n"):
            problems.append(
                Problem(LEDGER_FILE, offset, "ledger line does not verify (its checksum or fields are wrong)")
            )
        elif departure is not None and departure.identity is not None:
            gone[departure.identity] = departure
        offset += len(line)
    return gone, problems


def _parse(line: bytes) -> Departure | None:
    fields = parse_checked(line)
    if fields is None:
        return None
    departure = Departure(*(fields.get(name) for name in Departure._fields))
    ok = (
        isinstance(departure.segment, str)
        and isinstance(departure.why, str)
        and all(s is None or type(s) is int for s in (departure.first, departure.last))
    )
    return departure if ok else None
