"""The journal, read only: its directory and key, and one summary per segment.

Inspecting commands read segments through these without opening a
:class:`~safe_data.Journal`, so they neither create files nor recover segments.
"""

from __future__ import annotations

import os

from .. import _impl
from ..errors import CorruptRecordError
from ..journal import format as fmt
from ..journal.continuity import ChainContext, Span, writer_chains
from ..journal.journal import default_path
from ..journal.keyfile import read_key
from ..journal.reader import Problem, SegmentView, decode_frame, open_segment, segment_paths
from .exits import EXIT_NOT_FOUND, Failure
from .output import _progress


def _journal_dir(journal_path: str | None) -> str:
    """The journal directory the command works on; exit 3 if there is none."""
    path = os.path.abspath(journal_path or default_path())
    if not os.path.isdir(path):
        raise Failure(f"no journal at {path}", EXIT_NOT_FOUND)
    return path


_read_key = read_key  # the journal's MAC key for reading, or None (see keyfile.read_key)


def _open_view(path: str) -> SegmentView | None:
    """Map one segment; an ``.open`` one sealed meanwhile is read under its new name."""
    return open_segment(path, _impl.crc32c)


class SegmentSummary:
    """What one pass over a segment's frames found (no values are decoded unless asked)."""

    def __init__(self, view: SegmentView, disk_bytes: int):
        self.name = view.name
        self.path = view.path
        self.sealed = view.sealed
        self.live = view.live
        self.size = view.size
        self.disk_bytes = disk_bytes
        self.header = view.header
        self.created_ns = view.header.created_ns if view.header else 0
        self.span: Span | None = None  # what its frames cover, once read
        self.records = 0
        self.record_bytes = 0
        #: container name (bytes) -> [records, bytes, oldest ns, newest ns]
        self.containers: dict[bytes, list[int]] = {}
        self.problems: list[Problem] = []

    def count(self, frame) -> None:
        size = fmt.FRAME_HEADER_SIZE + len(frame.name) + len(frame.payload)
        _add_span(self.containers, frame.name, 1, size, frame.time_ns, frame.time_ns)
        self.records += 1
        self.record_bytes += size

    @property
    def newest_ns(self) -> int:
        return max((c[3] for c in self.containers.values()), default=self.created_ns)

    @property
    def oldest_ns(self) -> int:
        return min((c[2] for c in self.containers.values()), default=self.created_ns)

    @property
    def container_names(self) -> set[str]:
        return {str(name, "utf-8", "replace") for name in self.containers}


def _add_span(spans: dict, name, records: int, size: int, oldest: int, newest: int) -> None:
    """Add to ``spans[name]``, a tally of [records, bytes, oldest ns, newest ns]."""
    span = spans.get(name)
    if span is None:
        spans[name] = [records, size, oldest, newest]
        return
    span[0] += records
    span[1] += size
    span[2] = min(span[2], oldest)
    span[3] = max(span[3], newest)


def summarize_segments(directory: str, *, key=None, decode: bool = False, description: str):
    """Yield a :class:`SegmentSummary` per segment, with a progress bar over the bytes.

    With ``decode``, every frame is decoded too, so that records whose checksum holds but
    whose content does not decode are reported (what ``verify`` needs).
    """
    paths = segment_paths(directory)
    total = sum(_file_size(p) for p in paths)
    with _progress(description, total) as advance:
        for path in paths:
            view = _open_view(path)
            if view is not None:
                yield _summarize(view, key, decode, advance)


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _summarize(view: SegmentView, key, decode: bool, advance) -> SegmentSummary:
    try:
        disk_bytes = os.stat(view.path).st_blocks * 512
    except FileNotFoundError:
        disk_bytes = 0
    summary = SegmentSummary(view, disk_bytes)
    reported = 0
    for frame in view.frames():
        summary.count(frame)
        problem = _undecodable(view, frame, key) if decode else None
        if problem is not None:
            summary.problems.append(problem)
        if summary.records % 4096 == 0:
            advance(frame.offset - reported)
            reported = frame.offset
    summary.problems.extend(view.problems)
    if view.header is not None and not view.vanished:  # (vanished: purged meanwhile)
        summary.span = Span.of(view.name, view.header, view.scan, view.live)
    advance(summary.size - reported)
    return summary


def continuity_problems(directory: str, summaries) -> list[Problem]:
    """What the checks across segments find (:mod:`safe_data.journal.continuity`): for
    the summaries of every segment of the journal, read first."""
    chains, problems = writer_chains([s for s in summaries if s.header is not None])
    context = ChainContext(directory)  # its ledger, read after the segments were
    problems += context.ledger_problems
    for chain in chains.values():
        problems += context.problems([s.span for s in chain if s.span is not None])
    return [p for p in problems if not p.live]


def _undecodable(view: SegmentView, frame, key) -> Problem | None:
    """The problem of a frame whose checksum holds but whose record does not decode."""
    assert view.header is not None  # frames come only from segments with a valid header
    try:
        decode_frame(frame, view.header, view.name, key, False)
    except CorruptRecordError as exc:  # reported as the reader reports it
        return Problem(view.name, frame.offset, f"undecodable record: {exc}", view.live)
    return None
