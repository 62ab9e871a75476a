"""Restore drills: can the backup be read back?  (``safe-data check-remote``, docs/remote.md)

A drill lists a remote, downloads a random sample of its segments, and verifies each as
a receiver does (:func:`~safe_data.remote.verify.check_compressed`: one zstd frame,
decompressed in bounded memory, the SHA-256 the listing gives, the segment header and
every frame's CRC); an age-encrypted segment is checked as stored (its ciphertext's
SHA-256), then decrypted with the identity, if the drill has one, and checked inside.
It also compares the listing with what this journal knows the remote acknowledged: a
segment the journal's ledger deleted as acknowledged by that sink, or still marked for
it, must be listed, unless the remote says it deleted it (a tombstone, listed by
``deletions()`` where the sink has it: the server's retention or an admin token), which
is reported as such and is no problem.  Every problem is one line of the report; the report is recorded in
``<journal>/uploaded/drill.json``, where ``safe-data stats`` and
``safe_data.stats()`` find the time of the last good drill
(:func:`safe_data.remote._ledger.last_good_drill`).

:func:`fetch_verified` is the one place a segment is brought back from a sink and
checked: ``safe-data pull`` stores what it returns, and a drill throws it away.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import math
import random
import re

from ..journal import encryption, ledger
from . import _ledger, tombstones
from .keystores import KeyStoreError, Shredded, data_keys
from .protocol import MAX_SEGMENT_BYTES
from .sinks import SinkError
from .verify import InvalidSegment, SegmentTooLarge, check_compressed, check_encrypted

__all__ = ["DrillReport", "drill", "fetch_verified", "parse_subset", "record"]

#: problems kept in drill.json (the count is kept whole)
MAX_RECORDED_PROBLEMS = 100
_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]+)?)%")


def parse_subset(subset: str | int) -> float | int:
    """``"5%"`` -> 0.05 (a fraction of the listing), ``"3"`` or 3 -> 3 (segments);
    ValueError for anything else, a fraction not in (0, 100%] or fewer than 1 segment."""
    if isinstance(subset, str):
        match = _PERCENT.fullmatch(subset.strip())
        if match:
            fraction = float(match.group(1)) / 100
            if not 0 < fraction <= 1:
                raise ValueError(f"{subset!r}: a percentage must be above 0% and at most 100%")
            return fraction
        if not subset.strip().isdigit():
            raise ValueError(f"{subset!r} is neither a percentage (5%) nor a number of segments")
        subset = int(subset)
    if isinstance(subset, bool) or not isinstance(subset, int) or subset < 1:
        raise ValueError(f"{subset!r}: a drill checks at least 1 segment")
    return subset


def sample_size(subset: float | int, listed: int) -> int:
    """How many of ``listed`` segments a drill downloads: at least 1 (if any)."""
    wanted = subset if isinstance(subset, int) else math.ceil(subset * listed)
    return min(listed, max(1, wanted))


async def fetch_verified(
    sink,
    segment_id: str,
    sha256: str | None,
    identities=None,
    *,
    ciphertext_suffices: bool = False,
    key_store=None,
) -> bytes:
    """Download one segment from ``sink`` and verify it; its zstd body.

    An age-encrypted copy is checked as stored (its form, and ``sha256`` against the
    ciphertext), then decrypted with ``identities`` (see
    :func:`~safe_data.journal.encryption.read_identities`) and the segment inside
    verified; a plain copy must decompress to the sealed segment ``segment_id`` whose
    SHA-256 is ``sha256``.  With a ``key_store`` (:mod:`.keystores`), an encrypted copy
    is opened with its data key, which ``identities`` unwrap (a copy the store has no key
    for, with the long-term identities).  KeyError if the sink does not have it;
    DecryptionError if it cannot be decrypted (no identity, or not one of its
    recipients); :class:`~.keystores.Shredded` if its data key was destroyed by a forget;
    InvalidSegment (or SegmentTooLarge) with the reason if it does not verify.  With
    ``ciphertext_suffices`` and no identities, an encrypted copy is checked as stored
    only and returned still encrypted (a drill on a host that holds only recipients).
    The checks decompress in bounded memory, in a worker thread; nothing is unpickled.
    """
    if sha256 is None:
        raise InvalidSegment("its listing gives no SHA-256 to check it against")
    body = await sink.get(segment_id)
    loop = asyncio.get_running_loop()
    hint = " (shipped with a key store? give it too: --key-store)"
    if key_store is not None and identities is not None and encryption.is_encrypted(body):
        # checked as stored before the key store is asked for that version's key
        await loop.run_in_executor(None, check_encrypted, io.BytesIO(body), sha256)
        identities, long_term = await data_keys.identities_for(key_store, segment_id, sha256, identities)
        hint = f" (and {key_store!r} holds no data key for it)" if long_term else ""
    return await loop.run_in_executor(
        None, _verified, body, segment_id, sha256, identities, ciphertext_suffices, hint
    )


def _verified(
    body: bytes, segment_id: str, sha256: str, identities, ciphertext_suffices: bool, hint: str
) -> bytes:
    if not encryption.is_encrypted(body):
        check_compressed(io.BytesIO(body), MAX_SEGMENT_BYTES, sha256, segment_id)
        return body
    check_encrypted(io.BytesIO(body), sha256)
    if identities is None and ciphertext_suffices:
        return body
    try:
        body = encryption.decrypt(body, identities, f"segment {segment_id}")
    except encryption.DecryptionError as exc:
        if identities is None or "another recipient" not in str(exc):
            raise
        raise encryption.DecryptionError(f"{exc}{hint}") from None
    check_compressed(io.BytesIO(body), MAX_SEGMENT_BYTES, None, segment_id)
    return body


@dataclasses.dataclass
class DrillReport:
    """What a drill of ``target`` (the sink's repr) found: ``listed`` segments on the
    remote, ``checked`` (ids downloaded and verified), ``expected`` (ids this journal
    knows the remote acknowledged), ``problems`` (one line each), ``time`` (ISO);
    ``undecrypted``: how many of the checked were encrypted and, without an identity,
    verified as stored ciphertext only; ``deleted``: the acknowledged segments the remote
    deleted (one line each: ``segment <id>: deleted by retention on <date>``);
    ``shredded``: the checked segments whose data key a forget destroyed (one line each),
    which are no problem either."""

    target: str
    listed: int = 0
    checked: list[str] = dataclasses.field(default_factory=list)
    expected: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    undecrypted: int = 0
    deleted: list[str] = dataclasses.field(default_factory=list)
    shredded: list[str] = dataclasses.field(default_factory=list)
    time: str = dataclasses.field(default_factory=_ledger.now_iso)

    @property
    def ok(self) -> bool:
        return not self.problems


def acknowledged_by_sink(journal_path: str, sink) -> set[str]:
    """Ids of the segments this journal knows ``sink`` acknowledged: deleted as
    acknowledged by it (the journal's ledger names the sinks), or still marked for it
    (the marks of the destination the last uploader's report gives that sink, or, for
    an uploader of one sink, the marks in ``uploaded/``)."""
    target = repr(sink)
    departures, _problems = ledger.read(journal_path)
    known = {
        d.segment
        for d in departures.values()
        if d.why.startswith("acknowledged by ") and target in d.why[len("acknowledged by ") :]
    }
    status = _ledger.read_status(journal_path) or {}
    destinations = status.get("destinations") or []
    if len(destinations) > 1:
        for destination in destinations:
            if isinstance(destination, dict) and destination.get("sink") == target:
                known |= _ledger.destination_marks(journal_path, str(destination.get("name")))
    elif status.get("sink") == target:
        _pending, marked, _orphans = _ledger.scan(journal_path)
        known |= set(marked)
    return known


async def drill(
    sink,
    journal_path: str | None = None,
    subset: float | int = 0.05,
    rng=random,
    identities=None,
    key_store=None,
) -> DrillReport:
    """Run one drill of ``sink`` (``subset`` from :func:`parse_subset`); never raises for
    what it finds: an unreachable sink, a missing, damaged or undecryptable segment are
    problems, a shredded one is not.  Encrypted segments are decrypted and checked inside
    with ``identities`` (and the ``key_store`` of their data keys); without, they are
    checked as stored (see :func:`fetch_verified`)."""
    report = DrillReport(repr(sink))
    expected: set[str] = set()
    if journal_path is not None:
        expected = await asyncio.get_running_loop().run_in_executor(
            None, acknowledged_by_sink, journal_path, sink
        )
    report.expected = len(expected)
    try:
        entries = await sink.list()
    except (SinkError, OSError, NotImplementedError) as exc:
        report.problems.append(f"cannot list {sink!r}: {exc}")
        return report
    report.listed = len(entries)
    listed = {entry["id"] for entry in entries}
    missing = expected - listed
    deleted: dict[str, dict] = {}
    if missing:
        try:
            deleted = {t["id"]: t for t in await sink.deletions() if isinstance(t, dict) and "id" in t}
        except (SinkError, OSError) as exc:
            report.problems.append(f"cannot list the deletions of {sink!r}: {exc}")
    for segment_id in sorted(missing):
        if segment_id in deleted:
            report.deleted.append(f"segment {segment_id}: {tombstones.describe(deleted[segment_id])}")
        else:
            report.problems.append(f"segment {segment_id}: acknowledged by {sink!r}, but missing from it")
    if not entries:
        report.problems.append(f"{sink!r} holds no segment: nothing could be read back")
    for entry in rng.sample(entries, sample_size(subset, len(entries))):
        segment_id = entry["id"]
        try:
            body = await fetch_verified(
                sink,
                segment_id,
                entry.get("sha256"),
                identities,
                ciphertext_suffices=True,
                key_store=key_store,
            )
        except Shredded as exc:
            report.shredded.append(str(exc))
        except KeyError:
            report.problems.append(f"segment {segment_id}: listed, but the download found nothing")
        except (InvalidSegment, SegmentTooLarge) as exc:
            report.problems.append(f"segment {segment_id}: does not verify: {exc}")
        except encryption.DecryptionError as exc:
            report.problems.append(f"segment {segment_id}: cannot be decrypted: {exc}")
        except KeyStoreError as exc:
            report.problems.append(f"segment {segment_id}: {exc}")
        except (SinkError, OSError) as exc:
            report.problems.append(f"segment {segment_id}: download failed: {exc}")
        else:
            report.checked.append(segment_id)
            report.undecrypted += encryption.is_encrypted(body)
    return report


def _dict(value) -> dict:
    """``value`` if it is a dict (a report read back may hold anything), else a new one."""
    return value if isinstance(value, dict) else {}


def record(journal_path: str, report: DrillReport) -> dict:
    """Add a drill's report to ``<journal>/uploaded/drill.json`` (one entry per target,
    and the time of the last good drill of any); the whole record."""
    recorded = _ledger.read_status(journal_path, _ledger.DRILL_FILE) or {}
    targets = _dict(recorded.get("targets"))
    previous = _dict(targets.get(report.target))
    targets[report.target] = {
        "last_run": report.time,
        "ok": report.ok,
        "last_good": report.time if report.ok else previous.get("last_good"),
        "listed": report.listed,
        "checked": len(report.checked),
        "undecrypted": report.undecrypted,
        "expected": report.expected,
        "deleted": len(report.deleted),
        "shredded": len(report.shredded),
        "problem_count": len(report.problems),
        "problems": report.problems[:MAX_RECORDED_PROBLEMS],
    }
    goods = [t["last_good"] for t in targets.values() if isinstance(t, dict) and t.get("last_good")]
    recorded = {"last_good": max(goods) if goods else None, "targets": targets}
    _ledger.write_status(journal_path, recorded, _ledger.DRILL_FILE)
    return recorded
