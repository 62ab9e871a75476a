"""Compact frames (format version 2): laid out as docs/format.md says, read back as what
was written, and every kind of damage caught (a flipped bit, a torn tail, a frame out of
place, a slot without its definition)."""

import struct
import threading
import warnings
from pathlib import Path

import google_crc32c
import pytest

import safe_data as sd
from safe_data.journal import compact
from safe_data.journal import format as fmt

from ._helpers import frame_extents, records


def _segment(journal_dir) -> Path:
    (seg,) = [p for p in Path(journal_dir).iterdir() if p.name.endswith(fmt.SEALED_SUFFIX)]
    return seg


def _verify(journal_dir):
    with sd.Journal(journal_dir, readonly=True) as j:
        return j.verify()


def _records_of(journal_dir):
    with sd.Journal(journal_dir, readonly=True) as j:
        return records(j)


def _read(journal_dir):
    """(records, problems) of a journal directory, read with a fresh journal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sd.JournalWarning)
        with sd.Journal(journal_dir) as j:
            return list(j.records(on_error="ignore")), j.verify()


def test_a_compact_frame_is_laid_out_as_documented(journal):
    ab = sd.SafeList([7], name="ab", journal=journal)
    ab.pop()
    journal.close()
    data = _segment(journal.path).read_bytes()
    magic, version, header_size, flags = struct.unpack_from("<8sHHI", data)
    assert (magic, version, header_size, flags) == (b"SAFEDATA", 2, 64, fmt.HEADER_COUNTED)
    created, _pid, records, last_seq = struct.unpack_from("<qIQQ", data, 32)
    assert (records, last_seq) == (1, 1)  # sealed: counted; the base seq is their difference
    assert 0 < ab.container_id < 0x80
    (define, record) = frame_extents(data)
    # the definition: len, crc, op 253, slot 0, thread u64, number, name
    off, n = define
    assert data[off] == n - 1  # len: the bytes after it (one byte: < 128)
    body = data[off + 5 : off + n]
    assert body[:2] == bytes([fmt.OP_DEFINE, 0])
    assert struct.unpack_from("<Q", body, 2)[0] == threading.get_ident()
    assert body[10:] == bytes([ab.container_id]) + b"ab"
    context = struct.pack("<Qq", 1, created)  # the next seq, the previous time: the header's
    assert struct.unpack_from("<I", data, off + 1)[0] == google_crc32c.value(context + body)
    # the record: len, crc, op 2 (list pop), dt, slot 0 << 2 | flags 0, then the payload
    # as in version 1: key (int 0 -> zigzag 0), values (a list of one int 7, zigzag 14)
    off, n = record
    assert data[off] == n - 1 and off + n == len(data)
    body = data[off + 5 : off + n]
    assert body[0] == 2
    dt, after = compact.varint(body, 1, len(body))
    assert body[after:] == bytes([0, fmt.T_INT, 0, fmt.T_LIST, 1, fmt.T_INT, 14])
    (rec,) = _records_of(journal.path)
    assert rec.time_ns == created + fmt.unzigzag(dt)
    context = struct.pack("<Qq", 1, rec.time_ns)
    assert struct.unpack_from("<I", data, off + 1)[0] == google_crc32c.value(context + body)
    # 14 bytes when the clock moved by less than 64 ns since the segment was made, 15 within 8 us
    assert n == 13 + len(body[1:after])


def _workload(journal):
    """Discards of several containers by two threads, over several segments."""
    L = sd.SafeList(range(300), name="orders", journal=journal)
    d = sd.SafeDict({i: str(i) for i in range(50)}, name="by id", journal=journal)
    s = sd.SafeSet(range(20), name="tags", journal=journal)

    def other():
        for _ in range(40):
            L.pop(0)
            d.popitem()

    for i in range(100):
        L.pop()
        if i == 50:
            worker = threading.Thread(target=other)
            worker.start()
            worker.join()
        s.discard(i % 20)
    d["x"] = "y"
    d["x"] = {"nested": [1, 2.5, None]}
    journal.record("row", "delete", "rows", (1,), {"a": b"\x00" * 600})  # compressed: lz4
    L.clear()


def _essence(recs):
    """The records but for their times, their threads numbered by first appearance."""
    threads: dict = {}
    return [
        (
            r.seq,
            r.container,
            r.kind,
            r.op,
            r.key,
            r.values,
            threads.setdefault(r.thread, len(threads)),
            r.container_id,
        )
        for r in recs
    ]


def test_compact_and_classic_segments_hold_the_same_records(tmp_path):
    """The same work journaled in both versions reads back the same (times aside), and a
    directory holding segments of both is read whole; the compact one is much smaller."""
    got, sizes = [], []
    for compact_frames in (True, False):
        path = tmp_path / str(compact_frames)
        with sd.Journal(path, segment_size=4096, compact=compact_frames) as j:
            _workload(j)
        got.append(_essence(_records_of(path)))
        sizes.append(sum(p.stat().st_size for p in path.iterdir() if p.name.endswith(fmt.SEALED_SUFFIX)))
        assert _verify(path) == []
    assert got[0] == got[1] and len(got[0]) > 200
    assert sizes[0] * 2 < sizes[1]
    # one journal, segments of both versions
    with sd.Journal(tmp_path / "both", compact=False) as j:
        sd.SafeList([1], name="old", journal=j).pop()
    with sd.Journal(tmp_path / "both") as j:
        sd.SafeList([2], name="new", journal=j).pop()
        assert [(r.container, r.values) for r in j.records()] == [("old", [1]), ("new", [2])]
        assert j.verify() == []


def _journal_of_pops(journal_dir, n=10):
    with sd.Journal(journal_dir) as j:
        L = sd.SafeList(range(1000, 1000 + n), name="L", journal=j)
        for _ in range(n):
            L.pop()
    return list(range(1000 + n - 1, 999, -1))


def test_a_flipped_bit_in_a_payload_costs_that_record_only(tmp_path):
    values = _journal_of_pops(tmp_path / "j")
    seg = _segment(tmp_path / "j")
    frames = frame_extents(seg.read_bytes())  # a definition, then the records
    off, n = frames[4]  # the record of seq 4
    data = bytearray(seg.read_bytes())
    data[off + n - 1] ^= 0x08
    seg.write_bytes(bytes(data))
    got, problems = _read(tmp_path / "j")
    assert [r.values[0] for r in got] == values[:3] + values[4:]
    assert [(p.offset, p.reason) for p in problems] == [
        (off, f"checksum mismatch: record seq 4 ({n} bytes) skipped, the frames after it verify")
    ]


def test_every_flipped_bit_is_caught_and_never_misattributed(tmp_path):
    """Negative control of the CRC and its context: flip each bit of a record frame in the
    middle (its length, time difference and slot included).  Every read gives only records
    that were written, with their own seq, time and container, and reports the damage."""
    _journal_of_pops(tmp_path / "j", n=6)
    seg = _segment(tmp_path / "j")
    data = seg.read_bytes()
    truth = {(r.seq, r.time_ns, r.container, tuple(r.values)) for r in _read(tmp_path / "j")[0]}
    off, n = frame_extents(data)[3]
    for bit in range(n * 8):
        damaged = bytearray(data)
        damaged[off + bit // 8] ^= 1 << (bit % 8)
        seg.write_bytes(bytes(damaged))
        got, problems = _read(tmp_path / "j")
        assert {(r.seq, r.time_ns, r.container, tuple(r.values)) for r in got} < truth, bit
        assert problems, bit
    seg.write_bytes(data)


def test_a_frame_copied_to_another_place_does_not_verify(tmp_path):
    """Its CRC covers its seq and time, which it does not store: a sound frame copied over
    another of the same length fails where it lands."""
    _journal_of_pops(tmp_path / "j", n=20)
    seg = _segment(tmp_path / "j")
    data = bytearray(seg.read_bytes())
    frames = frame_extents(data)[1:]  # the records (seq k at k - 1), after the definition
    # two of the same length (their time differences may take different bytes)
    k, (a, n), (b, m) = next((k, f, g) for k, g in enumerate(frames) for f in frames[:k] if f[1] == g[1])
    data[b : b + m] = data[a : a + n]
    seg.write_bytes(bytes(data))
    got, problems = _read(tmp_path / "j")
    assert [r.seq for r in got] == list(range(1, k + 1))
    assert problems[0].offset == b and "checksum mismatch" in problems[0].reason


def test_a_record_whose_slot_has_no_definition_is_damage(tmp_path):
    """A segment made by hand: a record refers to a slot no definition gave.  It is
    reported and skipped; the records after it (whose definition follows) are read."""
    path = tmp_path / "j"
    with sd.Journal(path):  # a journal with its key
        pass
    crc = google_crc32c.value
    created = 1_000_000_000
    head = fmt.pack_segment_header(crc, 0xABC, 1, created, 1, base_seq=0)
    payload = bytes([fmt.T_INT, 0, fmt.T_LIST, 1, fmt.T_INT, 2])
    frames = [
        fmt.compact_frame(crc, 1, created + 5, fmt.record_body(2, 0, 5, 1, payload)),  # slot 1: undefined
        fmt.compact_frame(crc, 2, created + 5, fmt.define_body(0, 7, 0, b"L")),
        fmt.compact_frame(crc, 2, created + 9, fmt.record_body(2, 0, 4, 0, payload)),
    ]
    (path / f"{fmt.segment_id(0xABC, 1)}.seg").write_bytes(head + b"".join(frames))
    got, problems = _read(path)
    assert [(r.seq, r.container, r.values, r.time_ns, r.thread) for r in got] == [
        (2, "L", [1], created + 9, 7)
    ]
    assert [(p.offset, p.reason) for p in problems] == [
        (64, "record seq 1 skipped: its slot (1) has no definition before it")
    ]


def test_a_torn_tail_of_an_open_segment_is_recovered_to_the_last_whole_frame(tmp_path):
    """The writer publishes a frame by its first byte, written last: a frame cut anywhere
    (here: its bytes but the first zeroed, then its last bytes zeroed) is not read, and
    recovery keeps every frame before it."""
    live = tmp_path / "live"
    j = sd.Journal(live)
    L = sd.SafeList(range(1, 6), name="L", journal=j)  # (no value ends its frame with a zero byte)
    for _ in range(5):
        L.pop()
    (name,) = [p.name for p in live.iterdir() if p.name.endswith(fmt.OPEN_SUFFIX)]
    data = (live / name).read_bytes()
    j.close()
    off, n = frame_extents(data)[-1]
    for cut in (off, off + 1, off + n - 1):  # only its first byte missing; its last bytes
        copy = tmp_path / f"cut{cut}"
        copy.mkdir()
        (copy / "key").write_bytes((live / "key").read_bytes())
        (copy / "key").chmod(0o600)
        torn = bytearray(data)
        torn[cut : off + n] = bytes(off + n - cut)
        if cut > off:  # its length there, its end missing: a torn frame
            torn[off] = data[off]
        (copy / name).write_bytes(bytes(torn))
        got, problems = _read(copy)
        assert [r.values for r in got] == [[5], [4], [3], [2]], cut
        assert _segment(copy).stat().st_size == off  # sealed at the last whole frame
        assert _verify(copy) == []


def test_a_reader_of_version_1_only_refuses_a_compact_segment_by_its_version(tmp_path, monkeypatch):
    """What readers older than revision 6 do (docs/format.md, "Revisions"): they know
    version 1 only, and say so."""
    with sd.Journal(tmp_path / "j") as j:
        sd.SafeList([1], name="L", journal=j).pop()
    data = _segment(tmp_path / "j").read_bytes()
    monkeypatch.setattr(fmt, "VERSIONS", (fmt.CLASSIC_VERSION,))
    with pytest.raises(ValueError, match=r"unsupported segment format version 2 \(this reader knows 1\)"):
        fmt.unpack_segment_header(google_crc32c.value, data)


def test_definitions_are_per_segment(tmp_path):
    """Every segment reads alone: a rotation starts an empty table, so the first record of
    a container in each segment follows its own definition."""
    path = tmp_path / "j"
    with sd.Journal(path, segment_size=4096) as j:
        L = sd.SafeList(["x" * 100] * 200, name="L", journal=j)
        for _ in range(200):
            L.pop()
    segs = sorted(p for p in path.iterdir() if p.name.endswith(fmt.SEALED_SUFFIX))
    assert len(segs) > 3
    for seg in segs:
        data = seg.read_bytes()
        first = frame_extents(data)[0][0]
        body, _ = compact.extent(data, first, len(data))
        assert data[body + 4] == fmt.OP_DEFINE, seg.name
    assert len(_records_of(path)) == 200
    assert _verify(path) == []


def test_the_stream_verifier_refuses_what_the_reader_reports(tmp_path):
    """The backup server's check of a received segment (remote.verify, fed a byte at a
    time and whole) takes the sound compact segment and refuses it with any bit of a
    frame flipped (as a checksum mismatch, past the frame's length), and with a record
    whose slot has no definition."""
    from safe_data.remote.verify import InvalidSegment, SegmentVerifier

    def verdict(data, piece):
        verifier = SegmentVerifier()
        try:
            for i in range(0, len(data), piece):
                verifier.write(data[i : i + piece])
            verifier.close()
        except InvalidSegment as exc:
            return str(exc)
        return None

    _journal_of_pops(tmp_path / "j", n=6)
    data = _segment(tmp_path / "j").read_bytes()
    assert verdict(data, 1) is verdict(data, 1 << 20) is None
    for frame in (0, 3):  # the definition, a record
        off, n = frame_extents(data)[frame]
        for bit in range(n * 8):
            damaged = bytearray(data)
            damaged[off + bit // 8] ^= 1 << (bit % 8)
            found = verdict(bytes(damaged), 1)
            assert found == verdict(bytes(damaged), 1 << 20) is not None, (frame, bit)
            if bit >= 8:  # past the frame's length (one byte here): whatever the flip made
                # the head say (a slot never defined...), it is a checksum mismatch
                assert "checksum mismatch" in found, (frame, bit, found)
    crc, created = google_crc32c.value, 1_000_000_000
    head = fmt.counted_header(crc, fmt.pack_segment_header(crc, 0xABC, 1, created, 1, base_seq=0), 1, 1)
    payload = bytes([fmt.T_INT, 0, fmt.T_LIST, 1, fmt.T_INT, 2])
    undefined = head + fmt.compact_frame(crc, 1, created + 5, fmt.record_body(2, 0, 5, 0, payload))
    assert "no definition" in verdict(undefined, 1) == verdict(undefined, 1 << 20)
