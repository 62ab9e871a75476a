"""Crash durability: SIGKILL, torn tails, torn writes and bit flips, on real files.

The SIGKILL tests run a child Python process (a script written to ``tmp_path``) that
discards values from SafeList/SafeDict/SafeSet and prints one acknowledgement line per
discarding call *after* the call returned.  The parent kills it with SIGKILL, then opens
the journal (which recovers the dead writer's ``.open`` segment) and checks with
:func:`check_acknowledged` that every acknowledged value is in the journal exactly once.
Two negative controls prove that this checker does detect loss.  The child and the checker
are in _helpers.py (test_kill_loop.py runs them too).

The torn-tail and bit-flip tests damage segment files byte by byte and check what the
readers, ``verify()`` and recovery report.  Frame offsets are found by parsing the file
with the constants of ``safe_data.journal.format``, independently of the reader.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import time
import warnings
from pathlib import Path

import pytest

import safe_data as sd
from safe_data.journal import compact
from safe_data.journal import format as fmt

from ._helpers import check_acknowledged, frame_extents, run_and_kill, summary

# --- SIGKILL --------------------------------------------------------------------------------


@pytest.mark.parametrize("durability", ["process", "batch", "fsync"])
@pytest.mark.parametrize("kill_after_acks", [1, 40, 3000])
def test_sigkill_after_n_acknowledgements_loses_nothing(tmp_path, child_script, kill_after_acks, durability):
    journal_dir = tmp_path / "journal"
    acked, pid = run_and_kill(
        child_script, journal_dir, kill_after_acks=kill_after_acks, durability=durability
    )
    assert len(acked) >= kill_after_acks
    report = check_acknowledged(journal_dir, acked)
    assert report.lost_nothing, summary(report)
    assert report.pids == {pid}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_a_random_moment_loses_nothing(tmp_path, child_script, seed):
    rng = random.Random(seed)
    journal_dir = tmp_path / "journal"
    delay = rng.uniform(0.0, 0.3)
    acked, _ = run_and_kill(
        child_script, journal_dir, threads=2, segment_size=64 * 1024, kill_after_seconds=delay
    )
    report = check_acknowledged(journal_dir, acked)
    assert report.lost_nothing, f"killed {delay:.3f}s after the first ack: {summary(report)}"


def test_sigkill_under_heavy_load_repeatedly_in_one_directory(tmp_path, child_script):
    """Five writers in turn, each killed mid-stream while three threads discard into 64 KiB
    segments (frequent rotation, so kills land in rotations too).  Each new writer recovers
    its predecessor's segment; the last recovery is the checker's own open."""
    seed = int(os.environ.get("SAFE_DATA_TEST_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    journal_dir = tmp_path / "journal"
    acked, pids = [], set()
    for loop in range(5):
        ids, pid = run_and_kill(
            child_script,
            journal_dir,
            run=f"loop{loop}",
            threads=3,
            segment_size=64 * 1024,
            kill_after_seconds=rng.uniform(0.05, 0.4),
        )
        acked += ids
        pids.add(pid)
        # the previous writer's segment was recovered by this writer's Journal(), so only
        # the segment of the writer just killed may be left open
        open_segments = list(journal_dir.glob("*" + fmt.OPEN_SUFFIX))
        assert len(open_segments) <= 1, (seed, open_segments)
    report = check_acknowledged(journal_dir, acked)
    assert report.lost_nothing, f"seed {seed}: {summary(report)}"
    assert report.pids == pids, f"seed {seed}"
    assert len(report.writers) == 5


# --- negative controls: the checker detects loss -------------------------------------------


def test_negative_control_plain_containers_are_reported_lost(tmp_path, child_script):
    journal_dir = tmp_path / "journal"
    acked, _ = run_and_kill(child_script, journal_dir, mode="plain", kill_after_acks=50)
    report = check_acknowledged(journal_dir, acked)
    assert not report.lost_nothing
    assert report.missing == set(acked) and len(report.missing) >= 50


def test_negative_control_acknowledging_before_journaling_is_reported_lost(tmp_path, child_script):
    journal_dir = tmp_path / "journal"
    # the value of call 20 is acknowledged before it is journaled; kill right after that
    premature = "r0.0.20.a"
    acked, _ = run_and_kill(child_script, journal_dir, mode="ack-first", kill_after_id=premature)
    assert acked[-1] == premature and len(acked) > 20
    report = check_acknowledged(journal_dir, acked)
    assert not report.lost_nothing
    assert report.missing == {premature}  # exactly that one, the other 20 calls are there
    assert not report.duplicated and not report.problems


def test_negative_control_duplicate_is_reported(tmp_path):
    journal_dir = tmp_path / "journal"
    with sd.Journal(journal_dir) as j:
        for _ in range(2):  # the same value discarded twice: two records
            L = sd.SafeList(["r0.0.0.a"], name="L", journal=j)
            L.pop()
    report = check_acknowledged(journal_dir, ["r0.0.0.a"])
    assert not report.lost_nothing and report.duplicated == {"r0.0.0.a"}


# --- segment files: helpers -----------------------------------------------------------------


class Pickled:
    """A value of a class of its own: journaled as a signed pickle."""

    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return isinstance(other, Pickled) and other.n == self.n

    def __hash__(self):
        return hash(self.n)


def parse_frames(path):
    """[(offset, length)] of the record frames in a segment file (a compact segment's
    definitions left out: frame k is record k), up to the first zero length."""
    data = Path(path).read_bytes()
    return [(pos, n) for pos, n in frame_extents(data) if not _is_definition(data, pos)]


def _is_definition(data, pos):
    if struct.unpack_from("<H", data, 8)[0] == fmt.CLASSIC_VERSION:
        return False
    body, _ = compact.extent(data, pos, len(data))
    return data[body + 4] == fmt.OP_DEFINE


def segments(journal_dir, suffix=fmt.SEALED_SUFFIX):
    return sorted(Path(journal_dir).glob("*" + suffix))


def make_sealed_journal(journal_dir, n=10, name="L", segment_size=64 * 1024, compact=True):
    """n pop records in one sealed segment; returns the popped values in order."""
    values = [f"v{i}-" + "y" * (i * 7) for i in range(n)]
    with sd.Journal(journal_dir, segment_size=segment_size, compact=compact) as j:
        L = sd.SafeList(reversed(values), name=name, journal=j)
        for v in values:
            assert L.pop() == v
    return values


def popped(journal_dir, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sd.JournalWarning)
        j = sd.Journal(journal_dir)
    try:
        return [r.values[0] for r in j.records(on_error="ignore", **kw)], j.verify()
    finally:
        j.close()


def records_text(first, last):
    """How reports name a run of records."""
    return f"1 record (seq {first})" if first == last else f"{last - first + 1} records (seq {first}-{last})"


def flip_bit(path, offset, bit=0):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))


# --- torn tails -------------------------------------------------------------------------------

# cut positions inside the last frame, relative to its start (None: frame_len - 1)
CUTS = [1, 2, 3, 4, 8, 20, 35, 36, 37, 45, None]


def test_torn_tail_of_a_sealed_segment(tmp_path):
    src = tmp_path / "src"
    values = make_sealed_journal(src)
    (seg,) = segments(src)
    frames = parse_frames(seg)
    assert len(frames) == len(values)
    last_off, last_len = frames[-1]
    assert last_off + last_len == seg.stat().st_size  # sealed: truncated to the last frame
    assert last_len > 46
    for cut in CUTS:
        cut = last_len - 1 if cut is None else cut
        journal_dir = tmp_path / f"cut{cut}"
        shutil.copytree(src, journal_dir)
        os.truncate(journal_dir / seg.name, last_off + cut)

        got, problems = popped(journal_dir)
        assert got == values[:-1], cut  # exactly the frames before the cut
        assert len(problems) == 1, (cut, problems)
        (p,) = problems
        assert (p.segment, p.offset, p.live) == (seg.name, last_off, False), (cut, p)
        lost = f"; 1 record (seq {len(values)}) unreadable from here"  # the header counts it
        if cut < 1:  # (a compact frame's length: 1 byte below 128, a version-1 frame's 4)
            assert p.reason == f"{cut} trailing bytes after the last frame{lost}"
        else:
            assert p.reason == f"torn frame: {last_len} bytes announced, {cut} present{lost}"

        with sd.Journal(journal_dir) as j:
            assert j.recovered == []  # sealed segments are never rewritten
            it = j.records(on_error="raise")
            assert [next(it).values[0] for _ in values[:-1]] == values[:-1]
            with pytest.raises(sd.CorruptSegmentError) as exc:
                next(it)
            assert exc.value.problem == p
            with pytest.warns(sd.JournalWarning, match=f"{seg.name} at byte {last_off}"):
                assert len(list(j.records())) == len(values) - 1
        assert (journal_dir / seg.name).stat().st_size == last_off + cut  # left as found


def test_torn_tail_of_an_earlier_segment_does_not_hide_later_segments(tmp_path):
    journal_dir = tmp_path / "journal"
    values = [f"value-{i:04d}-" + "z" * 300 for i in range(60)]
    with sd.Journal(journal_dir, segment_size=4096) as j:  # ~12 frames per segment
        L = sd.SafeList(reversed(values), name="L", journal=j)
        for _ in values:
            L.pop()
    segs = segments(journal_dir)
    assert len(segs) >= 4
    first = segs[0]
    frames = parse_frames(first)
    last_off, last_len = frames[-1]
    os.truncate(first, last_off + last_len // 2)
    got, problems = popped(journal_dir)
    lost = values[len(frames) - 1]
    assert got == [v for v in values if v != lost]
    assert [(p.segment, p.offset) for p in problems] == [(first.name, last_off)]


def open_segment_from(sealed: Path, data: bytes, size: int) -> Path:
    """Replace a sealed segment by an ``.open`` one holding ``data`` then zeros up to
    ``size``: what a writer that died after the page cache got ``data`` leaves behind."""
    open_path = sealed.with_suffix(fmt.OPEN_SUFFIX)
    open_path.write_bytes(data + bytes(size - len(data)))
    sealed.unlink()
    return open_path


@pytest.mark.parametrize("cut", [0, 2, 4, 30, 40, None])
def test_torn_write_in_an_open_segment_is_recovered_on_open(tmp_path, cut):
    journal_dir = tmp_path / "journal"
    segment_size = 64 * 1024
    values = make_sealed_journal(journal_dir, segment_size=segment_size)
    (seg,) = segments(journal_dir)
    data = seg.read_bytes()
    last_off, last_len = parse_frames(seg)[-1]
    cut = last_len - 1 if cut is None else cut
    open_path = open_segment_from(seg, data[: last_off + cut], segment_size)
    tail = data[last_off : last_off + cut].rstrip(b"\0")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        j = sd.Journal(journal_dir)
    try:
        recovery_warnings = [w for w in caught if issubclass(w.category, sd.JournalWarning)]
        damaged = journal_dir / "damaged" / f"{open_path.name}.{last_off}.bin"
        if tail:
            assert len(j.recovered) == 1 and len(recovery_warnings) == 1
            (p,) = j.recovered
            assert (p.segment, p.offset) == (open_path.name, last_off)
            assert f"{len(tail)} bytes saved to damaged/{damaged.name}" in p.reason
            assert open_path.name in str(recovery_warnings[0].message)
            assert damaged.read_bytes() == tail  # nothing thrown away
            assert damaged.stat().st_mode & 0o777 == 0o600  # and kept as private as the journal
        else:
            assert not damaged.exists()
        assert not open_path.exists()
        assert seg.exists() and seg.stat().st_size == last_off  # truncated, sealed
        assert [r.values[0] for r in j.records(on_error="raise")] == values[:-1]
        assert j.verify() == []

        # appends continue: a new writer, new segment; old records intact
        L = sd.SafeList(["after-1", "after-2"], name="L2", journal=j)
        L.pop()
        L.pop()
        got = [r.values[0] for r in j.records(on_error="raise")]
        assert got == values[:-1] + ["after-2", "after-1"]
    finally:
        j.close()
    with sd.Journal(journal_dir) as j:  # nothing left to recover, everything still readable
        assert j.recovered == [] and j.verify() == []
        assert [r.values[0] for r in j.records(on_error="raise")] == values[:-1] + ["after-2", "after-1"]


def test_garbage_after_the_frames_of_an_open_segment_is_set_aside(tmp_path):
    journal_dir = tmp_path / "journal"
    values = make_sealed_journal(journal_dir)
    (seg,) = segments(journal_dir)
    data = seg.read_bytes()
    garbage = bytes(range(1, 200)) * 3
    open_path = open_segment_from(seg, data + garbage, 64 * 1024)
    with pytest.warns(sd.JournalWarning, match=open_path.name):
        j = sd.Journal(journal_dir)
    try:
        (p,) = j.recovered
        assert (p.segment, p.offset) == (open_path.name, len(data))
        assert (journal_dir / "damaged" / f"{open_path.name}.{len(data)}.bin").read_bytes() == garbage
        assert [r.values[0] for r in j.records(on_error="raise")] == values
        assert j.verify() == []
    finally:
        j.close()


def test_lost_page_in_the_middle_of_an_open_segment(tmp_path):
    """A zeroed page between frames (power loss wrote later pages but not this one):
    frames before it are kept, everything after it goes to damaged/, byte for byte."""
    journal_dir = tmp_path / "journal"
    values = [f"value-{i:04d}-" + "q" * 200 for i in range(80)]  # ~20 KiB of frames
    with sd.Journal(journal_dir) as j:
        L = sd.SafeList(reversed(values), name="L", journal=j)
        for _ in values:
            L.pop()
    (seg,) = segments(journal_dir)
    data = bytearray(seg.read_bytes())
    frames = parse_frames(seg)
    data[8192:12288] = bytes(4096)
    first_bad = next(i for i, (off, n) in enumerate(frames) if off + n > 8192)
    bad_off = frames[first_bad][0]
    open_path = open_segment_from(seg, bytes(data), 64 * 1024)
    with pytest.warns(sd.JournalWarning):
        j = sd.Journal(journal_dir)
    try:
        (p,) = j.recovered
        assert (p.segment, p.offset) == (open_path.name, bad_off)
        saved = (journal_dir / "damaged" / f"{open_path.name}.{bad_off}.bin").read_bytes()
        assert saved == bytes(data[bad_off:]).rstrip(b"\0")
        assert [r.values[0] for r in j.records(on_error="raise")] == values[:first_bad]
        assert j.verify() == []
    finally:
        j.close()


def test_torn_last_frame_in_a_killed_writers_open_segment(tmp_path, child_script):
    """A genuine ``.open`` segment (preallocated, never sealed) from a SIGKILLed writer,
    whose last frame then loses its second half, as in a torn write after power loss."""
    journal_dir = tmp_path / "journal"
    run_and_kill(child_script, journal_dir, kill_after_acks=200)  # one 16 MiB segment
    assert segments(journal_dir) == []
    (open_path,) = segments(journal_dir, fmt.OPEN_SUFFIX)
    assert open_path.stat().st_size == 16 << 20  # preallocated, as the writer left it
    frames = parse_frames(open_path)
    last_off, last_len = frames[-1]
    data = bytearray(open_path.read_bytes())
    data[last_off + last_len // 2 : last_off + last_len] = bytes(last_len - last_len // 2)
    open_path.write_bytes(bytes(data))
    intact_offsets = [off for off, _ in frames[:-1]]

    with pytest.warns(sd.JournalWarning, match="checksum mismatch"):
        j = sd.Journal(journal_dir)
    try:
        (p,) = j.recovered
        assert (p.segment, p.offset) == (open_path.name, last_off)
        saved = (journal_dir / "damaged" / f"{open_path.name}.{last_off}.bin").read_bytes()
        # all that follows is kept: the torn frame, and the body of any frame the killed
        # writer had begun after it (a body is written before the length that commits it)
        assert saved.startswith(bytes(data[last_off : last_off + last_len // 2]).rstrip(b"\0"))
        assert saved == bytes(data[last_off:]).rstrip(b"\0")
        sealed = open_path.with_suffix(fmt.SEALED_SUFFIX)
        assert sealed.stat().st_size == last_off and not open_path.exists()
        recs = list(j.records(on_error="raise"))
        assert [r.offset for r in recs] == intact_offsets
        assert [r.seq for r in recs] == list(range(1, len(frames)))
        assert j.verify() == []
        # appends continue next to the recovered segment
        S = sd.SafeSet({"after"}, name="S-after", journal=j)
        S.pop()
        assert [r.values for r in j.records("S-after", on_error="raise")] == [{"after"}]
        assert [r.offset for r in j.records(on_error="raise") if r.container != "S-after"] == intact_offsets
    finally:
        j.close()


# --- bit flips ----------------------------------------------------------------------------------

# where in frame k the bit is flipped: (label, offset from the frame start; negative: from its end)
FLIPS = [
    ("crc", 4),
    ("seq", 8),
    ("time", 17),
    ("thread", 24),
    ("op", 32),
    ("name", 36),
    ("payload", 38),
    ("payload-end", -1),
]


@pytest.mark.parametrize("label,where", FLIPS, ids=[f[0] for f in FLIPS])
@pytest.mark.parametrize("k", [0, 4, 9])
def test_bit_flip_in_a_frame_costs_that_record_only(tmp_path, k, label, where):
    """A flipped bit anywhere but the length: the frame's CRC fails, the next frame
    (seq + 2, its own CRC sound) proves the length right, so the reader skips that one
    record, reports it and reads on.  The last frame has no next one to prove it: the
    segment's frames end there (the header's count says one record is missing)."""
    journal_dir = tmp_path / "journal"
    # the fields of a version-1 frame (compact ones: test_format_compact.py)
    values = make_sealed_journal(journal_dir, compact=False)
    (seg,) = segments(journal_dir)
    off, n = parse_frames(seg)[k]
    flip_bit(seg, off + (where if where >= 0 else n + where), bit=3)

    got, problems = popped(journal_dir)
    assert got == values[:k] + values[k + 1 :]  # every record but the damaged one
    seq = k + 1
    if k < len(values) - 1:
        reason = f"checksum mismatch: record seq {seq} ({n} bytes) skipped, the frames after it verify"
    else:
        reason = f"checksum mismatch (torn write or corruption); 1 record (seq {seq}) unreadable from here"
    expected = sd.Problem(seg.name, off, reason)
    assert problems == [expected]
    with sd.Journal(journal_dir) as j:
        it = j.records(on_error="raise")
        assert [next(it).values[0] for _ in range(k)] == values[:k]
        with pytest.raises(sd.CorruptSegmentError) as exc:
            list(it)
        assert exc.value.problem == expected
        with pytest.warns(sd.JournalWarning, match=f"{seg.name} at byte {off}: checksum mismatch"):
            list(j.records(on_error="warn"))


def test_two_damaged_frames_in_a_row_stop_the_segment_at_the_first(tmp_path):
    """The control of resynchronisation: a frame is skipped only when the next one proves
    its length right.  With the next one damaged too, nothing proves it: the segment's
    readable frames end at the first."""
    journal_dir = tmp_path / "journal"
    values = make_sealed_journal(journal_dir)
    (seg,) = segments(journal_dir)
    frames = parse_frames(seg)
    for k in (3, 4):
        off, n = frames[k]
        flip_bit(seg, off + n - 1, bit=2)  # payloads only: both lengths are intact
    got, problems = popped(journal_dir)
    assert got == values[:3]
    assert [(p.offset, p.reason) for p in problems] == [
        (
            frames[3][0],
            f"checksum mismatch (torn write or corruption); "
            f"{records_text(4, len(values))} unreadable from here",
        )
    ]


def test_repair_keeps_every_readable_record_and_a_hole_for_each_lost_one(tmp_path):
    """verify --repair (the library's repair()) on a segment with a flipped bit in one
    record, then on the repaired segment damaged again: every readable record stays, each
    lost one has a hole naming the copy that keeps its bytes, and verify is clean."""
    from safe_data import _impl
    from safe_data.journal.reader import scan_to_end, segment_frames
    from safe_data.journal.repair import repair

    def holes():
        data = seg.read_bytes()
        header = fmt.unpack_segment_header(_impl.crc32c, data)
        return scan_to_end(segment_frames(data, _impl.crc32c, seg.name, True, header)).holes

    journal_dir = tmp_path / "journal"
    values = make_sealed_journal(journal_dir, n=30)
    (seg,) = segments(journal_dir)
    off, n = parse_frames(seg)[7]
    flip_bit(seg, off + n - 1)
    damaged = seg.read_bytes()
    with sd.Journal(journal_dir) as j:
        done = repair(j.path, j.verify())
        assert len(done) == 1 and "set aside 1 record (seq 8) at byte" in done[0]
        assert j.verify() == []
        assert [r.values[0] for r in j.records(on_error="raise")] == values[:7] + values[8:]
    (copy,) = (journal_dir / "damaged").iterdir()
    assert copy.read_bytes() == damaged  # the whole original
    (hole,) = holes()
    assert (hole.offset, hole.seq, hole.span) == (off, 8, 1)
    assert hole.saved == {
        "file": f"damaged/{copy.name}",
        "offset": off,
        "bytes": n,
        "reason": hole.saved["reason"],
    }

    # damaged again, at a record after the hole and at the very last one (no next frame
    # proves it: the tail is cut, and a hole stands for it)
    frames = parse_frames(seg)
    for k in (20, len(frames) - 1):
        o, m = frames[k]
        flip_bit(seg, o + m - 1)
    with sd.Journal(journal_dir) as j:
        assert len(repair(j.path, j.verify())) == 1
        assert j.verify() == []
        lost = {7, 20, len(values) - 1}
        assert [r.values[0] for r in j.records(on_error="raise")] == [
            v for i, v in enumerate(values) if i not in lost
        ]
    assert [h.span for h in holes()] == [1, 1, 1]
    assert len(list((journal_dir / "damaged").iterdir())) == 2  # each original kept


def test_frames_swapped_between_segments_are_refused(tmp_path):
    """Two sound frames of the same length exchanged between two segments: each CRC still
    matches, but each frame is out of sequence where it landed.  (Version-1 frames, which
    state their seq; a compact frame copied elsewhere fails its CRC: test_format_compact.py.)"""
    journal_dir = tmp_path / "journal"
    values = [f"v{i:04d}" for i in range(400)]
    with sd.Journal(journal_dir, segment_size=4096, compact=False) as j:
        L = sd.SafeList(reversed(values), name="L", journal=j)
        for v in values:
            assert L.pop() == v
    first, second = segments(journal_dir)[:2]
    (a_off, a_len), (b_off, b_len) = parse_frames(first)[3], parse_frames(second)[5]
    assert a_len == b_len
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(a[:a_off] + b[b_off : b_off + b_len] + a[a_off + a_len :])
    second.write_bytes(b[:b_off] + a[a_off : a_off + a_len] + b[b_off + b_len :])

    got, problems = popped(journal_dir)
    reasons = {(p.segment, p.offset): p.reason for p in problems}
    assert set(reasons) == {(first.name, a_off), (second.name, b_off)}
    assert all("out of sequence" in r for r in reasons.values())
    assert len(got) == len(set(got)) and set(got) <= set(values)  # nothing misplaced, nothing twice


def test_truncation_at_every_offset_of_the_last_records(tmp_path):
    """A sealed segment cut at each byte of its last three frames: the reader returns
    exactly the frames before the cut, and reports the cut, at a frame boundary too (the
    header counts the records)."""
    src = tmp_path / "src"
    values = make_sealed_journal(src)
    (seg,) = segments(src)
    frames = parse_frames(seg)
    data = seg.read_bytes()
    start = frames[-3][0]
    for cut in range(start, len(data)):
        journal_dir = tmp_path / f"cut{cut}"
        journal_dir.mkdir()
        (journal_dir / "key").write_bytes((src / "key").read_bytes())
        (journal_dir / seg.name).write_bytes(data[:cut])
        whole = sum(1 for off, n in frames if off + n <= cut)
        got, problems = popped(journal_dir)
        assert got == values[:whole], cut
        assert (problems == []) == (cut == len(data)), (cut, problems)
        if cut < len(data):
            (problem,) = problems
            assert problem.offset == max(off for off, _ in frames if off <= cut), cut
            assert f"{records_text(whole + 1, len(values))}" in problem.reason, (cut, problem)


def test_every_single_bit_flip_of_a_pickled_record_is_refused_before_unpickling(tmp_path, monkeypatch):
    """A record holding a pickle (a value of a class of its own): flip each bit of its frame
    in turn; the reader refuses every one (CRC or, past it, the pickle's signature) and
    never calls pickle.loads on bytes it has not verified."""
    import pickle

    journal_dir = tmp_path / "journal"
    with sd.Journal(journal_dir) as j:
        L = sd.SafeList([Pickled(7)], name="L", journal=j)
        L.pop()
    (seg,) = segments(journal_dir)
    ((off, n),) = parse_frames(seg)
    data = seg.read_bytes()
    loads, unpickled = pickle.loads, []

    def spy(blob, *args, **kwargs):
        unpickled.append(bytes(blob))
        return loads(blob, *args, **kwargs)

    monkeypatch.setattr(pickle, "loads", spy)  # (the codec imports pickle where it unpickles)
    for bit in range(n * 8):
        damaged = bytearray(data)
        damaged[off + bit // 8] ^= 1 << (bit % 8)
        seg.write_bytes(bytes(damaged))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with sd.Journal(journal_dir) as j:
                assert [r.values for r in j.records(on_error="ignore")] == [], bit
    assert unpickled == []  # not once, whatever bit was flipped
    seg.write_bytes(data)
    with sd.Journal(journal_dir) as j:  # the sound record: verified, then unpickled
        assert [r.values for r in j.records(on_error="raise")] == [[Pickled(7)]]
    assert len(unpickled) == 1


def test_bit_flip_in_a_frame_length_is_reported_at_that_frame(tmp_path):
    journal_dir = tmp_path / "journal"
    values = make_sealed_journal(journal_dir, compact=False)  # (the u32 length of version 1)
    (seg,) = segments(journal_dir)
    frames = parse_frames(seg)
    # (frame, byte of frame_len, bit): +-1, +-16, +-128 (the last frame: past the end), 2**30
    for k, byte, bit in [(3, 0, 0), (5, 0, 4), (9, 0, 7), (2, 3, 6)]:
        copy = tmp_path / f"copy-{k}-{byte}-{bit}"
        shutil.copytree(journal_dir, copy)
        flip_bit(copy / seg.name, frames[k][0] + byte, bit=bit)
        got, problems = popped(copy)
        assert got == values[:k]
        assert [(p.segment, p.offset) for p in problems] == [(seg.name, frames[k][0])], problems


@pytest.mark.parametrize(
    "offset,reason",
    [
        (0, "not a safe_data segment"),
        (9, "segment header checksum mismatch"),
        (16, "segment header checksum mismatch"),
        (33, "segment header checksum mismatch"),
        (48, "segment header checksum mismatch"),
        (61, "segment header checksum mismatch"),
    ],
)
def test_bit_flip_in_a_segment_header(tmp_path, offset, reason):
    journal_dir = tmp_path / "journal"
    with sd.Journal(journal_dir) as j1:  # two writers: two segments
        sd.SafeList(["a1"], name="A", journal=j1).pop()
    with sd.Journal(journal_dir) as j2:
        sd.SafeList(["b1"], name="B", journal=j2).pop()
    with sd.Journal(journal_dir) as j:
        (seg_a,) = {journal_dir / r.segment for r in j.records("A", on_error="raise")}
    flip_bit(seg_a, offset, bit=1)
    with sd.Journal(journal_dir) as j:
        assert [r.values for r in j.records(on_error="ignore")] == [["b1"]]  # the other segment
        problems = j.verify()
        assert [(p.segment, p.offset) for p in problems] == [(seg_a.name, 0)]
        assert problems[0].reason.startswith(reason)
        with pytest.raises(sd.CorruptSegmentError):
            list(j.records(on_error="raise"))


def test_bit_flip_in_the_header_of_a_dead_writers_open_segment_is_set_aside(tmp_path):
    journal_dir = tmp_path / "journal"
    make_sealed_journal(journal_dir)
    (seg,) = segments(journal_dir)
    data = bytearray(seg.read_bytes())
    data[20] ^= 0x10
    open_path = open_segment_from(seg, bytes(data), 64 * 1024)
    with pytest.warns(sd.JournalWarning, match="segment header checksum mismatch"):
        j = sd.Journal(journal_dir)
    try:
        (p,) = j.recovered
        assert (p.segment, p.offset) == (open_path.name, 0)
        saved = journal_dir / "damaged" / f"{open_path.name}.0.bin"
        assert saved.read_bytes()[: len(data)] == bytes(data)  # the whole file, kept
        assert list(j.records(on_error="raise")) == [] and j.verify() == []
    finally:
        j.close()
