"""The uploader's records in the journal directory (docs/remote.md): which sealed segments
are pending, the acknowledgement marks, the status report, deleting acknowledged segments.

The marks live in ``<journal>/uploaded/`` (``MARKS_DIR``): an empty file named after each
segment that enough destinations acknowledged and that is kept for a retention period,
plus ``status.json``, the last uploader's report, and ``drill.json``, the last restore
drill's.  An uploader with several destinations also marks what each one acknowledged,
in ``uploaded/to/<destination>/<segment id>``, so that a restart sends a segment only to
the destinations that miss it.  (Not to be confused with the journal's own ledger of departed
segments, :mod:`safe_data.journal.ledger`, which every deletion here is recorded in first.)
"""

from __future__ import annotations

import calendar
import collections
import json
import os
import threading
import time

from .._fs import fsync, fsync_dir
from ..journal import format as fmt
from ..journal import ledger
from ..journal.retention import MARKS_DIR
from . import tombstones

__all__ = ["PendingSegment", "pending_segments", "read_status", "MARKS_DIR"]

#: the last uploader's report, in MARKS_DIR (not a segment id, so never taken for a mark)
STATUS_FILE = "status.json"
#: the last restore drill's report, in MARKS_DIR
DRILL_FILE = "drill.json"
#: the per-destination marks, in MARKS_DIR (not a segment id either)
DESTINATIONS_DIR = "to"

PendingSegment = collections.namedtuple("PendingSegment", "id path size mtime")
PendingSegment.__doc__ = "A sealed segment not yet acknowledged by a sink."


def segment_path(journal_path: str, segment_id: str) -> str:
    return os.path.join(journal_path, segment_id + fmt.SEALED_SUFFIX)


def _mark_path(journal_path: str, segment_id: str) -> str:
    return os.path.join(journal_path, MARKS_DIR, segment_id)


def destination_dir(journal_path: str, destination: str) -> str:
    """Where the marks of what ``destination`` acknowledged are."""
    return os.path.join(journal_path, MARKS_DIR, DESTINATIONS_DIR, destination)


def destination_marks(journal_path: str, destination: str) -> set[str]:
    """Ids of the segments ``destination`` acknowledged that are still marked for it."""
    try:
        return {m for m in os.listdir(destination_dir(journal_path, destination)) if fmt.is_segment_id(m)}
    except FileNotFoundError:
        return set()


def acknowledged_by(journal_path: str, segment_id: str, destinations) -> list[str]:
    """Those of ``destinations`` (names) that acknowledged ``segment_id``."""
    return [
        d for d in destinations if os.path.exists(os.path.join(destination_dir(journal_path, d), segment_id))
    ]


def remove_destination_marks(journal_path: str, destinations, segment_ids) -> None:
    """Remove the per-destination marks of these segments (once they left the journal)."""
    for destination in destinations:
        folder = destination_dir(journal_path, destination)
        for segment_id in segment_ids:
            _unlink(os.path.join(folder, segment_id))


def scan(journal_path: str):
    """(unmarked sealed segments oldest first, {marked id: mark mtime} of present segments,
    orphan marks)."""
    marks_dir = os.path.join(journal_path, MARKS_DIR)
    try:
        marks = set(os.listdir(marks_dir))
    except FileNotFoundError:
        marks = set()
    pending, marked, present = [], {}, set()
    with os.scandir(journal_path) as entries:
        for entry in entries:
            segment_id = fmt.sealed_segment_id(entry.name)
            if segment_id is None:
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            present.add(segment_id)
            if segment_id in marks:
                try:
                    marked[segment_id] = os.stat(os.path.join(marks_dir, segment_id)).st_mtime
                    continue
                except FileNotFoundError:  # tidied by another uploader meanwhile: pending
                    pass
            pending.append(PendingSegment(segment_id, entry.path, st.st_size, st.st_mtime))
    pending.sort(key=lambda s: (s.mtime, s.id))
    orphans = [m for m in marks if fmt.is_segment_id(m) and m not in present]
    return pending, marked, orphans


def pending_segments(journal_path: str | os.PathLike) -> list[PendingSegment]:
    """The sealed segments of a journal directory that no sink acknowledged yet, oldest
    first (``id``, ``path``, ``size`` in bytes, ``mtime``).  Rejected segments are pending."""
    path = os.path.abspath(os.fspath(journal_path))
    if not os.path.isdir(path):
        return []
    return scan(path)[0]


def is_marked(journal_path: str, segment_id: str) -> bool:
    return os.path.exists(_mark_path(journal_path, segment_id))


def unacknowledged(journal_path: str, segment_ids) -> list[str]:
    """Those of ``segment_ids`` still in the journal directory and not marked."""
    return [
        i
        for i in segment_ids
        if not is_marked(journal_path, i) and os.path.exists(segment_path(journal_path, i))
    ]


def write_marks(journal_path: str, segment_ids, destination: str | None = None) -> None:
    """The durable records that enough destinations (or, with ``destination``, that one)
    acknowledged these segments (docs/remote.md): each mark created and fsynced (all but
    the first fsync find nothing left to write), then one fsync of the directory for the
    whole batch."""
    marks_dir = os.path.join(journal_path, MARKS_DIR)
    if destination is not None:
        marks_dir = destination_dir(journal_path, destination)
    if not os.path.isdir(marks_dir):
        os.makedirs(marks_dir, mode=0o700, exist_ok=True)
        parent = os.path.dirname(marks_dir)  # each new directory's entry, up to the journal's
        while True:
            fsync_dir(parent)
            if parent == journal_path or len(parent) <= len(journal_path):
                break
            parent = os.path.dirname(parent)
    for segment_id in segment_ids:
        fd = os.open(os.path.join(marks_dir, segment_id), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(marks_dir)


def _unlink(path: str) -> bool:
    """Remove a file; False if it was already gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def remove_acknowledged(journal_path: str, segment_ids, by: str) -> list[str]:
    """Delete segments acknowledged ``by`` (the sinks, as their reprs, that a restore
    drill looks for), each recorded in the journal's ledger first; return the ids of
    those deleted (the others were already gone)."""
    id_of = {segment_path(journal_path, i): i for i in segment_ids}
    present = ledger.record_removal(journal_path, list(id_of), f"acknowledged by {by}")
    removed = [p for p in present if _unlink(p)]
    for path in removed:
        ledger.remove_index(path)
    return [id_of[path] for path in removed]


def record_backup_deletions(journal_path: str, deleted) -> int:
    """Record in the journal's ledger the segments the backup deleted (their tombstones,
    :mod:`.tombstones`) that are neither in the journal nor in its ledger already, so
    that its continuity check reads them as deleted, not lost; how many were recorded."""
    gone, _problems = ledger.read(journal_path)
    deleted = [t for t in deleted if tombstones.decode(tombstones.encode(t), t.get("id")) is not None]
    departures = [
        ledger.Departure(t["id"], None, None, tombstones.describe(t, "on the backup"), t["deleted_at"])
        for t in deleted
        if fmt.parse_segment_id(t["id"]) not in gone
        and not os.path.exists(segment_path(journal_path, t["id"]))
    ]
    if departures:
        ledger.record(journal_path, departures)
    return len(departures)


def record_shredded(journal_path: str, found, identities, backup: str, key_store: str) -> None:
    """Record the segments a pull found shredded (:class:`.keystores.Shredded`, each read
    with ``identities`` for what was forgotten): in the journal's ledger, so that its
    continuity check reads each as gone on purpose, not lost; in its forgotten log, so that
    ``restore()`` says which containers lost records: every container the version held,
    not only those forgotten (once per forget and version)."""
    from ..journal import forgotten
    from .keystores.data_keys import unseal_details

    gone, _problems = ledger.read(journal_path)
    departures, entries = [], []
    for shredded in found:
        why = f"shredded by forget {shredded.forget_id} (its data key was destroyed in {key_store})"
        if fmt.parse_segment_id(shredded.segment_id) not in gone:
            departures.append(ledger.Departure(shredded.segment_id, None, None, why, shredded.time))
        if forgotten.has_shred(journal_path, shredded.forget_id, shredded.segment_id, shredded.sha256):
            continue
        details = unseal_details(shredded.sealed, identities)
        entries.append(
            forgotten.Entry(
                shredded.forget_id,
                shredded.time,
                {},
                shredded.segment_id,
                details.get("records"),
                details.get("seqs") or [],
                details.get("held") or details.get("containers") or [],
                {"sha256": shredded.sha256, "key_store": key_store, "pulled_from": backup},
            )
        )
    if departures:
        ledger.record(journal_path, departures)
    if entries:
        forgotten.append(journal_path, entries)


def remove_marks(journal_path: str, segment_ids) -> None:
    for segment_id in segment_ids:
        _unlink(_mark_path(journal_path, segment_id))


def remove_orphan_marks(journal_path: str, segment_ids) -> None:
    """Remove the marks of segments no longer in the journal directory."""
    remove_marks(journal_path, [i for i in segment_ids if not os.path.exists(segment_path(journal_path, i))])


# --- the status report -----------------------------------------------------------------------


def read_status(journal_path: str | os.PathLike, name: str = STATUS_FILE) -> dict | None:
    """The report the last uploader of this journal directory left (``safe-data stats``
    shows it): ``sink``, ``pid``, ``running``, ``started``/``updated`` (ISO times), and
    for that run ``acked``, ``acked_bytes``, ``last_ack``, ``errors``, ``last_error``,
    ``last_error_at``, ``rejected`` (id -> reason), ``acks_required`` and
    ``destinations`` (each one's ``name``, ``sink``, counters and last error).  None if
    there is none.  With ``name=DRILL_FILE``: the last restore drill's report
    (:func:`safe_data.remote.drill.record`)."""
    try:
        with open(os.path.join(os.fspath(journal_path), MARKS_DIR, name), "rb") as f:
            status = json.loads(f.read(1 << 20))
    except (FileNotFoundError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def write_status(journal_path: str, status: dict, name: str = STATUS_FILE) -> None:
    """Replace the report (or, with ``name``, another one) atomically (temp file, rename;
    no fsync: it is informational)."""
    marks_dir = os.path.join(journal_path, MARKS_DIR)
    os.makedirs(marks_dir, mode=0o700, exist_ok=True)
    tmp = os.path.join(marks_dir, f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(status, f, indent=1)
    os.replace(tmp, os.path.join(marks_dir, name))


def last_good_drill(journal_path: str | os.PathLike) -> float | None:
    """When the last good restore drill of this journal's backup ran (seconds since the
    epoch; of any destination), or None if none did (docs/remote.md)."""
    when = (read_status(journal_path, DRILL_FILE) or {}).get("last_good")
    if not isinstance(when, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def now_iso() -> str:
    """The time as the report spells it (UTC, to the second)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def with_backlog(journal_path: str | os.PathLike, destinations: list[dict]) -> list[dict]:
    """The destinations' reports (each with its ``name``) with what each still misses:
    ``pending``, the sealed segments present it did not acknowledge, and
    ``lag_seconds``, the age of the oldest of them (None: none).  With one destination,
    its acknowledgements are the marks in ``uploaded/`` (and the segments deleted after
    them).  A segment deleted once enough destinations held it is missed by the others
    for good: it is no longer anyone's backlog."""
    path = os.fspath(journal_path)
    sealed: dict[str, float] = {}
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                segment_id = fmt.sealed_segment_id(entry.name)
                if segment_id is None:
                    continue
                try:
                    sealed[segment_id] = entry.stat().st_mtime
                except FileNotFoundError:
                    continue
    except FileNotFoundError:
        pass
    now = time.time()
    out = []
    for destination in destinations:
        if len(destinations) == 1:
            try:
                held = set(os.listdir(os.path.join(path, MARKS_DIR)))
            except FileNotFoundError:
                held = set()
        else:
            held = destination_marks(path, str(destination.get("name")))
        missing = [mtime for segment_id, mtime in sealed.items() if segment_id not in held]
        lag = None if not missing else max(0.0, round(now - min(missing), 1))
        out.append({**destination, "pending": len(missing), "lag_seconds": lag})
    return out
