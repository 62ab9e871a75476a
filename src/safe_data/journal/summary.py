"""One summary per segment: what a pass over its frames found, without decoding values.

What ``safe-data stats``, ``verify`` and ``purge`` and :meth:`Journal.purge
<safe_data.Journal.purge>` need to know of a segment (records, bytes, time span,
containers, problems), read without opening a :class:`~safe_data.Journal`: nothing is
created or recovered.
"""

from __future__ import annotations

import os

from .. import _impl
from ..errors import CorruptRecordError
from . import format as fmt
from .continuity import Span
from .reader import Problem, SegmentView, decode_frame, open_segment, segment_paths


class SegmentSummary:
    """What one pass over a segment's frames found (no values are decoded unless asked).

    ``name``, ``path``, ``sealed``, ``live`` (being written by a running process),
    ``records``, ``record_bytes`` (of frames), ``disk_bytes`` (allocated blocks),
    ``oldest_ns``/``newest_ns`` (its records' times), ``container_names``, ``forgotten``
    (records forgotten on request: holes, not records) and ``problems``.
    """

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
        self.forgotten = 0

    def __repr__(self) -> str:
        return f"<SegmentSummary {self.name}: {self.records} records, {self.disk_bytes} bytes>"

    def count(self, frame) -> None:
        size = frame.length
        add_span(self.containers, frame.name, 1, size, frame.time_ns, frame.time_ns)
        self.records += 1
        self.record_bytes += size

    @property
    def segment_id(self) -> str:
        """The name without its suffix: the id a remote backup knows it by."""
        return self.name[: -len(fmt.SEALED_SUFFIX)] if self.sealed else self.name

    @property
    def newest_ns(self) -> int:
        return max((c[3] for c in self.containers.values()), default=self.created_ns)

    @property
    def oldest_ns(self) -> int:
        return min((c[2] for c in self.containers.values()), default=self.created_ns)

    @property
    def container_names(self) -> set[str]:
        return {str(name, "utf-8", "replace") for name in self.containers}


def add_span(spans: dict, name, records: int, size: int, oldest: int, newest: int) -> None:
    """Add to ``spans[name]``, a tally of [records, bytes, oldest ns, newest ns]."""
    span = spans.get(name)
    if span is None:
        spans[name] = [records, size, oldest, newest]
        return
    span[0] += records
    span[1] += size
    span[2] = min(span[2], oldest)
    span[3] = max(span[3], newest)


def segment_sizes(directory: str) -> tuple[list[str], int]:
    """The journal's segment paths and the sum of their file sizes (a progress total)."""
    paths = segment_paths(directory)
    return paths, sum(_file_size(p) for p in paths)


def summarize(paths, *, key=None, decode: bool = False, advance=None):
    """Yield a :class:`SegmentSummary` per segment of ``paths`` (see :func:`segment_sizes`).

    With ``decode``, every frame is decoded too, so that records whose checksum holds but
    whose content does not decode are reported (what ``verify`` needs).  ``advance(n)``
    is called with the bytes read as the pass goes (a progress bar's).
    """
    advance = advance or (lambda n: None)
    for path in paths:
        view = open_segment(path, _impl.crc32c)  # an .open one sealed meanwhile: its new name
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
    if view.scan is not None:
        summary.forgotten = sum(h.span for h in view.scan.holes if h.forgotten)
    advance(summary.size - reported)
    return summary


def _undecodable(view: SegmentView, frame, key) -> Problem | None:
    """The problem of a frame whose checksum holds but whose record does not decode."""
    assert view.header is not None  # frames come only from segments with a valid header
    try:
        decode_frame(frame, view.header, view.name, key, False)
    except CorruptRecordError as exc:  # reported as the reader reports it
        return Problem(view.name, frame.offset, f"undecodable record: {exc}", view.live)
    return None
