"""Records in columns, for bulk readers (``Journal.record_batches()``): what
``Journal.records()`` yields, in the same order, without one object per record.

Where the C extension is built, a batch of a segment's sound frames is decoded straight
into columns (``FrameDecoder.run(columns=True)``): numbers into arrays, the other fields
into lists.  Everything else (the twin, damaged frames, filters, several writers merged
by time) makes batches of the Records the generic reader makes.
"""

from __future__ import annotations

from array import array

from .reader import Record

#: the fields held as arrays of 64-bit integers (typecode by field); the others are lists
NUMBERS = {"seq": "Q", "time_ns": "q", "thread": "Q", "offset": "Q"}


class RecordBatch:
    """Records column by column: ``batch.values[i]``, ``batch.seq[i]``... are the fields
    of the i-th record, named as :class:`~safe_data.journal.reader.Record` names them.
    ``seq``, ``time_ns``, ``thread`` and ``offset`` are :class:`array.array` of 64-bit
    integers, the other fields lists.  ``records()`` gives the Records themselves."""

    __slots__ = Record._fields
    seq: array
    time_ns: array
    container: list[str]
    kind: list[str]
    op: list[str]
    key: list
    values: list
    pid: list[int]
    thread: array
    caller: list
    writer: list[int]
    segment: list[str]
    offset: array
    container_id: list[int | None]

    def __init__(self, columns: dict):
        for field in Record._fields:
            setattr(self, field, columns[field])

    def __len__(self) -> int:
        return len(self.seq)

    def records(self) -> list[Record]:
        return list(map(Record, *(getattr(self, field) for field in Record._fields)))

    @classmethod
    def of_records(cls, records: list[Record]) -> RecordBatch:
        columns: dict[str, list | array] = {
            field: [getattr(r, field) for r in records] for field in Record._fields
        }
        for field, typecode in NUMBERS.items():
            columns[field] = array(typecode, columns[field])
        return cls(columns)

    @classmethod
    def of_columns(cls, made: tuple, pid: int, writer: int, segment: str) -> RecordBatch:
        """The batch of what ``FrameDecoder.run(columns=True)`` made, from one segment."""
        columns: dict = dict(
            zip(("container", "kind", "op", "key", "values", "caller", "container_id"), made[4:], strict=True)
        )
        for (field, typecode), raw in zip(NUMBERS.items(), made[:4], strict=True):
            columns[field] = array(typecode, raw)
        count = len(columns["seq"])
        columns.update(pid=[pid] * count, writer=[writer] * count, segment=[segment] * count)
        return cls(columns)
