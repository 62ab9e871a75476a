"""A journal directory's records: every writer's segments read, merged by time, and what
could not be read reported (the layer :class:`~safe_data.journal.journal.Journal` and the
``safe-data`` command read through).

A reader that wants some containers' records reads them through each sealed segment's
index (:mod:`.index`): a segment without them is not even mapped, and of one with them
only their frames are read.  A segment without a sound index is scanned whole, as every
segment once was, and its index built on the way.
"""

from __future__ import annotations

import heapq
import itertools
import os

from ..errors import CorruptRecordError
from . import format as fmt
from . import index
from .batches import RecordBatch
from .bulk import BATCH, segment_batches, undecodable
from .continuity import ChainContext, Span, writer_chains
from .reader import (
    Frame,
    Problem,
    Scan,
    SegmentView,
    decode_frame,
    frame_at,
    open_segments,
    read_frames_from,
    scan_frames,
)


def read_records(
    directory: str,
    crc32c,
    key,
    *,
    container=None,
    nested=False,
    since_ns=None,
    until_ns=None,
    trust_pickles=False,
    report=None,
    nested_ids=False,
    identity: tuple[int, int] | None = None,
    save_indexes: bool = True,
    check_indexes: bool = False,
):
    """Records of every segment in ``directory``, merged by time (then writer, then seq);
    only ``container``'s if given (and with ``nested``, those of containers nested in it),
    or only those of the container ``identity`` (writer, container number).  With
    ``nested_ids``, safe containers inside values come back as NestedContainer.

    ``report(problem)`` is called for each problem found; a record that fails to decode is
    reported and skipped, the rest of its segment is still read.  Across each writer's
    segments, what vanished, was cut short or appears twice is reported too
    (:mod:`.continuity`); a segment that appears twice is read once.  ``save_indexes``:
    write the segment indexes built on the way (not in a journal opened read-only);
    ``check_indexes``: scan every segment whole and report an index that disagrees.

    Nothing is read before the first record is asked for.  Records are made a batch at a
    time (:mod:`.bulk`) and handed out one by one by C code: a reader of every record
    pays no Python call per record.
    """
    return itertools.chain.from_iterable(
        _batches(
            directory,
            crc32c,
            key,
            container,
            nested,
            since_ns,
            until_ns,
            trust_pickles,
            report,
            nested_ids,
            identity,
            save_indexes,
            check_indexes,
            False,
        )
    )


def read_record_batches(
    directory: str,
    crc32c,
    key,
    *,
    container=None,
    nested=False,
    since_ns=None,
    until_ns=None,
    trust_pickles=False,
    report=None,
    nested_ids=False,
    identity: tuple[int, int] | None = None,
    save_indexes: bool = True,
):
    """:func:`read_records`' records, in the same order, as :class:`~.batches.RecordBatch`
    objects: those of one writer's sealed and open segments, unfiltered, decoded in C
    straight into columns where the extension is built."""
    for made in _batches(
        directory,
        crc32c,
        key,
        container,
        nested,
        since_ns,
        until_ns,
        trust_pickles,
        report,
        nested_ids,
        identity,
        save_indexes,
        False,
        True,
    ):
        if isinstance(made, RecordBatch):
            yield made
            continue
        # the records of a filtered reading, or of several writers merged by time
        while records := list(itertools.islice(made, BATCH)):
            yield RecordBatch.of_records(records)


def _batches(
    directory,
    crc32c,
    key,
    container,
    nested,
    since_ns,
    until_ns,
    trust_pickles,
    report,
    nested_ids,
    identity,
    save_indexes,
    check_indexes,
    columns,
):
    """Iterables of :func:`read_records`' records, in order; with ``columns``, some are
    RecordBatches (a segment read whole: :func:`.bulk.segment_batches`)."""
    views = open_segments(directory, crc32c)
    chains, duplicated = writer_chains([v for v in views if v.header is not None])
    context = ChainContext(directory)  # reads the ledger: after the segments were opened
    if report:
        for problem in unreadable_headers(views) + duplicated + context.ledger_problems:
            report(problem)
    name = None if container is None else container.encode("utf-8")
    wanted = index.Selection(
        () if name is None else (name,),
        (name + b"[",) if nested and name is not None else (),  # nested: _support.child_name
        writer=None if identity is None else identity[0],
        container_ids=() if identity is None else (identity[1],),
        since_ns=since_ns,
        until_ns=until_ns,
    )

    def wanted_records(view, frames):
        for frame in frames:
            if not _is_wanted(frame, wanted, view.header.writer_id):
                continue
            if since_ns is not None and frame.time_ns < since_ns:
                continue
            if until_ns is not None and frame.time_ns >= until_ns:
                continue
            try:
                yield decode_frame(frame, view.header, view.name, key, trust_pickles, nested_ids)
            except CorruptRecordError as exc:
                if report:
                    report(undecodable(view, frame, exc))

    def chain(views, columns):
        for view in views:
            frames = _frames(view, wanted, key if save_indexes else None, key, check_indexes)
            if frames is None:
                yield from segment_batches(view, key, trust_pickles, nested_ids, report, columns)
            else:
                yield wanted_records(view, frames)
            if report:  # (each batch is taken before the next is asked for)
                for problem in view.problems:
                    if not problem.live:
                        report(problem)
        if report:
            spans = [Span.of(v.name, v.header, v.scan, v.live) for v in views if not v.vanished]
            # a segment purged while the others were read is in the ledger by now
            latest = ChainContext(directory) if any(v.vanished for v in views) else context
            for problem in latest.problems(spans):
                if not problem.live:
                    report(problem)

    if len(chains) == 1:  # one writer: its records are in order already
        yield from chain(*chains.values(), columns)
    else:
        yield heapq.merge(
            *(itertools.chain.from_iterable(chain(v, False)) for v in chains.values()),
            key=lambda r: (r.time_ns, r.writer, r.seq),
        )


def _frames(
    view: SegmentView, wanted: index.Selection, save_key: bytes | None, key: bytes | None, check: bool = False
):
    """The frames of ``view`` a reader wanting ``wanted`` needs: through the segment's
    index when it is sealed and has a sound one, else all of them, by a full scan that
    builds its index (saved, authenticated with ``save_key``, if given).  ``check``: scan
    whole and compare with the index there is.  None: every frame of the segment, which
    needs no index built (read them with :func:`.bulk.segment_batches`)."""
    everything = wanted.every and wanted.since_ns is None and wanted.until_ns is None
    if view.header is None or (everything and not view.sealed):
        return None
    if not view.sealed:
        # a compact frame is read in the state of the frames before it: no reading of
        # the frames known by their offsets alone (see _open_frames)
        return view.frames() if view.header.compact else _open_frames(view, wanted)
    found = index.cached(view, key)
    if found is None or check:
        return _scan_and_index(view, save_key, found)
    if everything:
        return None
    frames = view.frames_at(found.offsets(wanted), found.scan)
    if frames is None or not all(_is_wanted(frame, wanted, found.identity[0]) for frame in frames):
        view.problems.clear()
        return _scan_and_index(view, save_key)
    return frames


def _is_wanted(frame: Frame, wanted: index.Selection, writer: int) -> bool:
    return wanted.every or wanted.wants(
        frame.name, writer, frame.container_number if wanted.container_ids else 0
    )


def _scan_and_index(view: SegmentView, save_key: bytes | None, known: index.SegmentIndex | None = None):
    """Every frame of ``view``, building its index; ``known``: the index it had, which
    must agree (else it is reported, and replaced)."""
    builder = index.Builder(view)
    for frame in view.frames():
        builder.add(frame)
        yield frame
    if view.scan is None or view.vanished:
        return
    built = builder.finish(view.scan)
    if known is None or not index.same(known, built):
        index.save(view, built, save_key)
    if known is not None and not index.same(known, built):
        view.problems.append(
            Problem(view.name, 0, "its index disagreed with its frames (the index was replaced)")
        )


def _open_frames(view: SegmentView, wanted: index.Selection) -> list:
    """The wanted frames of a live writer's open segment.  Only what was written since
    this process last read it is scanned, and of the frames before only the wanted ones
    are read (a fresh scan when the last frame known no longer verifies)."""
    try:
        fd = view.reopen()
    except FileNotFoundError:
        view.vanished = True
        return []
    try:
        known = index.growing(view)
        if known is None or (
            known.last_offset is not None and _frame_in(fd, known.last_offset, view.crc32c, known) is None
        ):
            known = index.Growing(view)
        before = known.end
        scan = _scan_tail(view, known, read_frames_from(fd, before), before)
        if scan.complete and not scan.problems and not scan.holes:  # resume here next time
            known.end, known.first_seq, known.last_seq = scan.end, scan.first_seq, scan.last_seq
            index.keep_growing(view, known)
        frames = [_frame_in(fd, offset, view.crc32c, scan) for offset in known.offsets(wanted)]
    finally:
        os.close(fd)
    if any(frame is None for frame in frames):
        return view.frames()  # the file is not what was known of it: read it whole
    view.scan = scan
    view.note_problems(scan)
    return frames


def _scan_tail(view: SegmentView, known: index.Growing, tail: bytes, start: int) -> Scan:
    """Scan ``tail``, the segment's bytes from ``start``, adding its frames to ``known``;
    the Scan of the whole segment (offsets in the file, seqs from the first frame)."""
    frames = scan_frames(
        tail,
        view.crc32c,
        view.name,
        False,
        start=0,
        first_seq=None if known.last_seq is None else known.last_seq + 1,
    )
    while True:
        try:
            frame = next(frames)
        except StopIteration as done:
            scan = done.value
            break
        frame.offset += start
        known.add(frame)
    whole = Scan(fmt.SEGMENT_HEADER_SIZE)
    whole.end = scan.end + start
    whole.problems = [p._replace(offset=p.offset + start) for p in scan.problems]
    whole.stopped = whole.problems[-1] if scan.stopped is not None else None
    whole.first_seq = known.first_seq if known.first_seq is not None else scan.first_seq
    whole.last_seq = scan.last_seq if scan.last_seq is not None else known.last_seq
    whole.skipped = [(offset + start, length, seq) for offset, length, seq in scan.skipped]
    whole.holes = [h._replace(offset=h.offset + start) for h in scan.holes]
    whole.open_ended = scan.open_ended
    return whole


def _frame_in(fd: int, offset: int, crc32c, scan) -> Frame | None:
    """The frame at ``offset`` of the file, read and verified as :func:`frame_at` does."""
    head = os.pread(fd, 4, offset)
    if len(head) < 4 or offset + int.from_bytes(head, "little") > scan.end:
        return None
    data = os.pread(fd, int.from_bytes(head, "little"), offset)
    frame = frame_at(data, 0, crc32c, _Within(len(data), scan))
    if frame is not None:
        frame.offset = offset
    return frame


class _Within:
    """A scan's seq range with another end: one frame's bytes read on their own."""

    __slots__ = ("end", "first_seq", "last_seq")

    def __init__(self, end: int, scan):
        self.end, self.first_seq, self.last_seq = end, scan.first_seq, scan.last_seq


def unreadable_headers(views) -> list[Problem]:
    """The problems of the segments whose header does not verify (live ones aside: a
    writer may be between creating a file and writing its header)."""
    return [view.problems[0] for view in views if view.header is None and not view.live]


def verify_directory(directory: str, crc32c, key) -> list[Problem]:
    problems: list[Problem] = []
    for _ in read_records(directory, crc32c, key, report=problems.append, check_indexes=True):
        pass
    return problems
