"""Reading every record back (journal/bulk.py): the records the C frame decoder makes are
the ones the Python path makes, in Records or in columns (Journal.record_batches()),
damage is reported and skipped as before, and a reader of a journal of many segments
holds a few of them at a time, not the journal."""

import json
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

import safe_data as sd
from safe_data import _impl
from safe_data.journal import format as fmt
from safe_data.journal.records import read_records


def read(journal: sd.Journal, python_only: bool, monkeypatch, **options):
    """(records, problems) of read_records: through the C frame decoder where the
    extension is built, or with ``python_only`` as the twin reads them."""
    decoders: list = []
    with monkeypatch.context() as patch:
        if python_only:
            patch.setattr(_impl, "FrameDecoder", None)
        elif _impl.EXTENSION:  # and check that it is used
            made = _impl.FrameDecoder
            patch.setattr(_impl, "FrameDecoder", lambda *args: decoders.append(made(*args)) or decoders[-1])
        problems: list = []
        records = list(
            read_records(journal.path, _impl.crc32c, journal._key, report=problems.append, **options)
        )
    assert bool(decoders) == (_impl.EXTENSION and not python_only)
    return records, problems


def test_the_frame_decoder_is_the_extensions():
    assert (_impl.FrameDecoder is not None) == _impl.EXTENSION


@pytest.fixture
def varied(tmp_path):
    """Records of every shape: list, dict and set ops, compressed payloads, verified
    pickles, callers, nested containers, names that are not ASCII; in sealed segments and
    the open one."""
    journal = sd.Journal(tmp_path / "journal", segment_size=8192)
    items = sd.SafeList(
        [1, -(2**70), 2.5, "text", b"\x00", bytearray(b"ba"), (1, (2,)), None, True],
        name="items",
        journal=journal,
        capture_caller=True,
    )
    big = sd.SafeList([list(range(2000)), "x" * 5000], name="größe", journal=journal)
    table = sd.SafeDict(
        {1: {"a": [1, {2}]}, (1, 2): frozenset({3}), "f": Fraction(1, 3)}, name="table", journal=journal
    )
    tags = sd.SafeSet({"a", 2, (3, 4)}, name="tags", journal=journal)
    outer = sd.SafeDict(name="outer", journal=journal)
    outer["inner"] = sd.SafeList([1, 2], name="inner", journal=journal)
    for _ in range(600):
        items.append(slice(1, 2))
        items.pop()
    while items:
        items.pop()
    big.clear()
    del table[1]
    table.popitem()
    table.clear()
    tags.discard((3, 4))
    tags.clear()
    outer.clear()
    assert len(list(journal.records())) > 200  # (builds the sealed segments' indexes)
    names = os.listdir(journal.path)
    assert sum(n.endswith(fmt.SEALED_SUFFIX) for n in names) > 2
    assert sum(n.endswith(fmt.OPEN_SUFFIX) for n in names) == 1
    return journal


@pytest.mark.parametrize("options", [{}, {"nested_ids": True}, {"trust_pickles": True}])
def test_c_and_python_paths_give_identical_records(varied, monkeypatch, options):
    fast, fast_problems = read(varied, False, monkeypatch, **options)
    slow, slow_problems = read(varied, True, monkeypatch, **options)
    assert fast == slow and fast_problems == slow_problems == []
    for a, b in zip(fast, slow, strict=True):
        assert type(a) is type(b)
        assert [type(v) for v in a] == [type(v) for v in b]
    assert any(
        isinstance(r.values, dict) and isinstance(next(iter(r.values.values()), None), Fraction) for r in fast
    )  # a verified pickle, unpickled


@pytest.mark.parametrize("python_only", [False, True])
@pytest.mark.parametrize("options", [{}, {"container": "items"}, {"nested_ids": True}])
def test_record_batches_hold_the_records_in_order(varied, monkeypatch, python_only, options):
    with monkeypatch.context() as patch:
        if python_only:
            patch.setattr(_impl, "FrameDecoder", None)
        batches = list(varied.record_batches(**options))
    records = list(varied.records(**options))
    assert [r for batch in batches for r in batch.records()] == records
    assert sum(map(len, batches)) == len(records) > 100
    for batch in batches:
        assert batch.seq.typecode == "Q" and batch.time_ns.typecode == "q"
        assert batch.values == [r.values for r in batch.records()]
        assert list(batch.offset) == [r.offset for r in batch.records()]


def test_record_batches_of_several_writers_are_merged_by_time(tmp_path):
    path = tmp_path / "journal"
    other = textwrap.dedent("""
        import sys, safe_data as sd
        journal = sd.Journal(sys.argv[1])
        queue = sd.SafeList(range(300), name="theirs", journal=journal)
        for _ in range(300):
            queue.pop()
        journal.close()
    """)
    journal = sd.Journal(path)
    ours = sd.SafeList(range(300), name="ours", journal=journal)
    for _ in range(150):
        ours.pop()
    subprocess.run([sys.executable, "-c", other, str(path)], check=True, timeout=60)
    for _ in range(150):
        ours.pop()
    records = list(journal.records())
    assert len({r.writer for r in records}) == 2 and len(records) == 600
    assert [r for batch in journal.record_batches() for r in batch.records()] == records
    journal.close()


def _frames(data: bytes) -> list[int]:
    """The offsets of a segment's frames."""
    offsets, pos = [], fmt.SEGMENT_HEADER_SIZE
    while pos + 4 <= len(data) and (length := int.from_bytes(data[pos : pos + 4], "little")):
        offsets.append(pos)
        pos += length
    return offsets


def _rewrite(data: bytearray, pos: int, **fields) -> None:
    """Set header fields of the frame at ``pos`` and make its CRC verify again."""
    header = list(fmt.FRAME_HEADER.unpack_from(data, pos))
    names = ["frame_len", "crc", "seq", "time_ns", "thread", "op", "flags", "name_len"]
    for name, value in fields.items():
        header[names.index(name)] = value
    fmt.FRAME_HEADER.pack_into(data, pos, *header)
    length = header[0]
    data[pos + 4 : pos + 8] = _impl.crc32c(bytes(data[pos + 8 : pos + length])).to_bytes(4, "little")


def test_damage_is_reported_and_skipped_as_the_python_path_does(tmp_path, monkeypatch):
    journal = sd.Journal(tmp_path / "journal", compact=False)  # (the fields of version-1 frames)
    queue = sd.SafeList(range(100), name="queue", journal=journal)
    for _ in range(100):
        queue.pop()
    journal.seal()
    assert len(list(journal.records())) == 100  # builds the index: then every frame is read in bulk
    (segment,) = [p for p in os.scandir(journal.path) if p.name.endswith(fmt.SEALED_SUFFIX)]
    data = bytearray(Path(segment.path).read_bytes())
    offsets = _frames(bytes(data))
    # the C decoder stops at the first, the rest of the segment is read as the twin reads it
    _rewrite(data, offsets[30], op=200)  # sound, but no operation has that code
    data[offsets[60] + 40] ^= 0xFF  # a checksum that fails: that record is skipped
    with open(segment.path, "wb") as f:
        f.write(data)
    fast, fast_problems = read(journal, False, monkeypatch)
    slow, slow_problems = read(journal, True, monkeypatch)
    assert fast == slow and fast_problems == slow_problems
    assert len(fast) == 98
    reasons = [p.reason for p in fast_problems]
    assert any("checksum mismatch" in r for r in reasons)
    assert any("undecodable record: unknown operation code" in r for r in reasons)


# --- memory: a few segments at a time ---------------------------------------------------

SEGMENT_SIZE = 256 * 1024
JOURNAL_BYTES = 48 << 20
#: how much a reader's peak RSS may grow reading the whole journal: a few segments, the
#: records of a batch, the indexes built on the way -- a sixth of the journal
RSS_BOUND_KIB = (JOURNAL_BYTES // 6) >> 10

READER = textwrap.dedent("""
    import json, resource, sys
    import safe_data as sd
    from safe_data.journal.reader import SegmentView

    if sys.argv[2] == "keep-mapped":  # the negative control: no segment is ever unmapped
        SegmentView.release = lambda self: None
    journal = sd.Journal(sys.argv[1], readonly=True)
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    before = peak()
    first = sum(1 for _ in journal.records())  # scans each segment whole: builds its index
    after_first = peak()
    second = sum(1 for _ in journal.records())  # through the C frame decoder, where built
    print(json.dumps({"records": [first, second], "growth_kib": [after_first - before,
                                                                 peak() - before]}))
""")


@pytest.fixture(scope="module")
def many_segments(tmp_path_factory):
    """A journal of ~48 MiB in ~190 sealed segments of 256 KiB, 400-byte records."""
    path = tmp_path_factory.mktemp("many") / "journal"
    journal = sd.Journal(path, segment_size=SEGMENT_SIZE)
    queue = sd.SafeList(name="queue", journal=journal)
    blob = os.urandom(400)  # incompressible: the journal is as big on disk as said
    records = JOURNAL_BYTES // 470
    for _ in range(records):
        queue.append(blob)
        queue.pop()
    journal.close()
    segments = [n for n in os.listdir(path) if n.endswith(fmt.SEALED_SUFFIX)]
    assert len(segments) > 150
    return path, records


def _read_in_subprocess(path, how: str) -> dict:
    # Started by a shell that forks it: a process started straight from this one (vfork,
    # exec) starts with this process's peak RSS as its own ru_maxrss, which would hide
    # any growth below it.
    result = subprocess.run(
        ["/bin/sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-c", READER, str(path), how],
        capture_output=True,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB: Linux")
def test_reading_everything_holds_a_few_segments_not_the_journal(many_segments):
    path, records = many_segments
    read = _read_in_subprocess(path, "as-is")
    assert read["records"] == [records, records]
    assert max(read["growth_kib"]) < RSS_BOUND_KIB, read


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB: Linux")
def test_a_reader_keeping_every_segment_mapped_would_exceed_the_bound(many_segments):
    """The negative control: the bound above tells a reader that maps every segment at
    once from one that maps them one at a time."""
    path, records = many_segments
    read = _read_in_subprocess(path, "keep-mapped")
    assert read["records"] == [records, records]
    assert read["growth_kib"][0] > RSS_BOUND_KIB, read


@pytest.mark.parametrize(
    "payload, reason",
    [
        (bytes([fmt.T_STR, 2, 0xC3, 0x28]), "invalid UTF-8"),
        (bytes([fmt.T_DICT, 1, fmt.T_LIST, 0, fmt.T_NONE]), "unhashable dict key"),
        (bytes([fmt.T_SET, 1, fmt.T_LIST, 0]), "unhashable set element"),
        (bytes([fmt.T_FROZENSET, 1, fmt.T_DICT, 0]), "unhashable set element"),
    ],
)
def test_values_that_cannot_be_built_are_corrupt_records_in_both_decoders(payload, reason):
    from safe_data.errors import CorruptRecordError
    from safe_data.journal import codec

    messages = []
    for decode in {_impl.decode_values, codec.decode_values}:
        with pytest.raises(CorruptRecordError, match=reason) as raised:
            decode(payload, None, False, 1)
        messages.append(str(raised.value))
    assert len(set(messages)) == 1
    assert _impl.decode_values(bytes([fmt.T_STR, 2]) + "é".encode(), None, False, 1) == ["é"]
