"""Every record of one segment, for the readers that want them all (``Journal.records()``
without a filter, ``safe-data export``), a batch at a time.

Where the C extension is built, runs of sound frames are decoded straight into Records
(``_impl.FrameDecoder``, ``journal/_records_c.pyx``), or into the columns of a
:class:`~.batches.RecordBatch`.  From the first frame such a run
does not take (damaged, a hole, a record that does not decode) to the end, the segment
is read as :meth:`~.reader.SegmentView.frames` reads it, and each frame decoded by
:func:`~.reader.decode_frame`: what is reported and what is skipped is what the generic
reader reports and skips.  The twin reads every frame that way.
"""

from __future__ import annotations

from .. import _impl
from ..errors import CorruptRecordError
from . import compact
from . import format as fmt
from .batches import RecordBatch
from .reader import Problem, Record, Scan, SegmentView, _decompress, decode_frame, scan_frames

#: records decoded per call into C (Records, or columns).  Small, so that most of a batch is
#: taken and gone before the garbage collector's next young-generation pass (every 700
#: allocations): records that outlive one are moved to an older generation, which costs
#: more than the calls saved by larger batches (4096: 0.4-0.6x the rate of 256; columns
#: too, whose values are objects)
BATCH = 256


def segment_batches(
    view: SegmentView, key, trust_pickles: bool, nested_ids: bool, report, columns: bool = False
):
    """Yield lists of the records of ``view``, in order (with ``columns``, RecordBatches
    of them); ``report(problem)`` is called for a record that does not decode (it is
    skipped), after the records before it were taken.  Afterwards ``view.scan`` and
    ``view.problems`` are as ``view.frames()`` leaves them.  The segment is mapped only
    while its frames are read."""
    header = view.header
    if header is None:
        return
    try:
        data = view.data
    except FileNotFoundError:
        view.vanished = True
        return
    try:
        pos, seq, first = fmt.SEGMENT_HEADER_SIZE, header.first_seq, None
        state = compact.State.of(header) if header.compact else None
        if _impl.FrameDecoder is not None:
            decoder = _impl.FrameDecoder(
                Record,
                fmt.OPS,
                _decompress,
                header.pid,
                header.writer_id,
                view.name,
                key,
                trust_pickles,
                nested_ids,
            )
            if state is not None:
                decoder.start_compact(state.seq, state.time_ns)
            while True:
                made, pos, seq = decoder.run(data, pos, seq, BATCH, columns)
                batch = (
                    RecordBatch.of_columns(made, header.pid, header.writer_id, view.name) if columns else made
                )
                if len(batch):
                    if first is None:
                        first = seq - len(batch)  # (a run's seqs are consecutive)
                    yield batch
                if len(batch) < BATCH:
                    break
            if state is not None:  # where the decoder stopped, the reader goes on
                state = compact.State(*decoder.compact_state())
        rest = scan_frames(data, view.crc32c, view.name, view.sealed, start=pos, first_seq=seq, compact=state)
        decoded = _decoded_batches(rest, view, header, key, trust_pickles, nested_ids, report)
        scan = yield from (_as_columns(decoded) if columns else decoded)
        view.scan = _joined(scan, first, seq)
    finally:
        del data
        view.release()
    view.note_problems(view.scan)


def undecodable(view: SegmentView, frame, exc: CorruptRecordError) -> Problem:
    """The problem of a verified frame of ``view`` that does not decode."""
    return Problem(view.name, frame.offset, f"undecodable record: {exc}")


def _decoded_batches(
    frames, view: SegmentView, header: fmt.SegmentHeader, key, trust_pickles: bool, nested_ids: bool, report
):
    """Yield the records of a :func:`scan_frames` generator in lists; return its Scan."""
    batch: list = []
    while True:
        try:
            frame = next(frames)
        except StopIteration as done:
            if batch:
                yield batch
            return done.value
        try:
            batch.append(decode_frame(frame, header, view.name, key, trust_pickles, nested_ids))
        except CorruptRecordError as exc:
            if batch:  # the records before it are taken before it is reported
                yield batch
                batch = []
            if report:
                report(undecodable(view, frame, exc))
            continue
        if len(batch) == BATCH:
            yield batch
            batch = []


def _as_columns(batches):
    """The lists of Records of ``batches`` as RecordBatches; return what it returns."""
    while True:
        try:
            batch = next(batches)
        except StopIteration as done:
            return done.value
        yield RecordBatch.of_records(batch)


def _joined(rest: Scan, first: int | None, seq: int | None) -> Scan:
    """The Scan of the whole segment: ``rest``'s, from where the decoded run stopped,
    which took the frames ``first`` to ``seq - 1`` (``first`` None: none)."""
    if first is not None and seq is not None:
        rest.first_seq = first
        if rest.last_seq is None:
            rest.last_seq = seq - 1
    return rest
