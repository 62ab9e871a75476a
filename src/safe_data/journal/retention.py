"""Retention: which sealed segments may leave the journal, and deleting them.

:meth:`Journal.purge <safe_data.Journal.purge>` and ``safe-data purge`` share it.  A
segment is a candidate when it is sealed and undamaged and meets every criterion given
(older than a time, holding only some containers, among the oldest beyond a size).  A
candidate no remote backup has acknowledged (no mark in ``uploaded/``, docs/remote.md)
is kept, and reported as kept, unless ``keep_unsent=False``: a purge deletes what it
may and keeps the rest, rather than all or nothing.  Each deletion is recorded in the
journal's ledger first (:mod:`.ledger`), so that a reader can tell it from a segment
that vanished.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from . import ledger
from .summary import SegmentSummary, segment_sizes, summarize

#: the directory of acknowledgement marks inside the journal directory (docs/remote.md)
MARKS_DIR = "uploaded"


class PurgeResult(NamedTuple):
    """What a purge deleted (or, with ``dry_run``, would delete) and what it kept.

    ``deleted`` and ``kept`` are :class:`~safe_data.journal.summary.SegmentSummary`
    items, oldest first: ``kept`` are the segments the criteria chose but no remote
    backup acknowledged (empty with ``keep_unsent=False``).  ``damaged`` counts the
    damaged sealed segments left alone (``safe-data verify --repair`` first).
    """

    deleted: list[SegmentSummary]
    kept: list[SegmentSummary]
    damaged: int
    dry_run: bool


def acknowledged(directory: str) -> set[str]:
    """Ids of the sealed segments a remote backup acknowledged (their marks)."""
    try:
        return set(os.listdir(os.path.join(directory, MARKS_DIR)))
    except FileNotFoundError:
        return set()


def plan(
    summaries,
    *,
    older_than_ns: int | None = None,
    containers=(),
    max_bytes: int | None = None,
    acked=frozenset(),
    keep_unsent: bool = True,
) -> tuple[list, list]:
    """(to delete, to keep), oldest first, from the summaries of every segment.

    With ``max_bytes``, candidates are taken oldest first while the journal's segments
    take more than that; a kept one frees nothing, so the next one is taken instead.
    """
    summaries = list(summaries)
    candidates = sorted(
        (
            s
            for s in summaries
            if s.sealed
            and not s.problems
            and (older_than_ns is None or s.newest_ns < older_than_ns)
            and (not containers or s.container_names <= set(containers))
        ),
        key=lambda s: (s.newest_ns, s.name),
    )
    excess = None if max_bytes is None else sum(s.disk_bytes for s in summaries) - max_bytes
    delete, keep = [], []
    for summary in candidates:
        if excess is not None and excess <= 0:
            break
        if keep_unsent and summary.segment_id not in acked:
            keep.append(summary)
            continue
        delete.append(summary)
        if excess is not None:
            excess -= summary.disk_bytes
    return delete, keep


def purge(
    directory: str,
    *,
    older_than_ns: int | None = None,
    containers=(),
    max_bytes: int | None = None,
    keep_unsent: bool = True,
    dry_run: bool = False,
    summaries=None,
) -> PurgeResult:
    """Delete the segments :func:`plan` chooses (see :meth:`Journal.purge
    <safe_data.Journal.purge>`); ``summaries``: those of every segment, if already read."""
    if summaries is None:
        summaries = summarize(segment_sizes(directory)[0])
    summaries = list(summaries)
    acked = acknowledged(directory)
    delete, keep = plan(
        summaries,
        older_than_ns=older_than_ns,
        containers=containers,
        max_bytes=max_bytes,
        acked=acked,
        keep_unsent=keep_unsent,
    )
    if not dry_run:
        _delete(directory, delete, acked)
    damaged = sum(1 for s in summaries if s.sealed and s.problems)
    return PurgeResult(delete, keep, damaged, dry_run)


def _delete(directory: str, segments, acked: set) -> None:
    """Delete segments, each recorded in the journal's ledger first, with why it went."""
    backed_up = [s.path for s in segments if s.segment_id in acked]
    unsent = [s.path for s in segments if s.segment_id not in acked]
    for paths, why in (
        (backed_up, "purged: acknowledged by a remote backup"),
        (
            unsent,
            "purged with keep_unsent=False (safe-data purge --force): no remote backup had acknowledged it",
        ),
    ):
        if paths:
            ledger.remove_segments(directory, paths, why)
