"""What vanished from a journal is reported: segments missing, cut short at a frame
boundary or copied in twice, told apart from segments that left it on purpose (purged after
a backup acknowledged them, set aside by a repair), which the ledger records.

Real files throughout; the killed writer is a real process killed with SIGKILL.  Every
"reported" test has its control: the same journal before the damage verifies clean.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import safe_data as sd
from safe_data import _impl
from safe_data.journal import format as fmt
from safe_data.remote.sinks.directory import DirectorySink

from ._helpers import wait_until

SEGMENT_SIZE = 4096  # about 90 small records a segment
LEDGER = "ledger"


def records_text(first, last):
    """How reports name a run of records."""
    return f"1 record (seq {first})" if first == last else f"{last - first + 1} records (seq {first}-{last})"


def write_records(path, n=1000, segment_size=SEGMENT_SIZE, compact=True):
    """n pops into a fresh journal, sealed; returns the popped values in order."""
    values = [f"value-{i:04d}" for i in range(n)]
    with sd.Journal(path, segment_size=segment_size, compact=compact) as journal:
        items = sd.SafeList(reversed(values), name="items", journal=journal)
        for value in values:
            assert items.pop() == value
    return values


def sealed(path) -> list[Path]:
    return sorted(Path(path).glob("*" + fmt.SEALED_SUFFIX))


def seqs_in(segment: Path) -> tuple[int, int]:
    """(first, last) seq of the records of a sealed segment (of a sound journal)."""
    with sd.Journal(segment.parent) as journal:
        seqs = [r.seq for r in journal.records(on_error="raise") if r.segment == segment.name]
    return seqs[0], seqs[-1]


def check(path):
    """(values readable, problems of Journal.verify(), exit code of `safe-data verify`)."""
    with sd.Journal(path) as journal:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sd.JournalWarning)
            values = [r.values[0] for r in journal.records()]
        problems = journal.verify()
    verify = subprocess.run(
        [sys.executable, "-m", "safe_data", "--journal", str(path), "verify", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(verify.stdout)
    assert sorted((p["segment"], p["offset"], p["reason"]) for p in report["problems"]) == sorted(
        (p.segment, p.offset, p.reason) for p in problems
    )  # command and library agree
    return values, problems, verify.returncode


def test_a_deleted_segment_is_reported_with_the_records_it_held(tmp_path):
    values = write_records(tmp_path / "j", n=1500)
    assert check(tmp_path / "j") == (values, [], 0)  # the control: sound before
    segments = sealed(tmp_path / "j")
    assert len(segments) >= 8
    seqs = {segment: seqs_in(segment) for segment in segments}
    for victims in ([segments[3]], [segments[5], segments[6]], [segments[0]]):
        journal = tmp_path / f"without-{victims[0].name}"
        shutil.copytree(tmp_path / "j", journal)
        for victim in victims:
            (journal / victim.name).unlink()
        first, last = seqs[victims[0]][0], seqs[victims[-1]][1]
        got, problems, code = check(journal)
        assert got == values[: first - 1] + values[last:]
        numbers = [int(v.name[17:23]) for v in victims]
        which = f"segment {numbers[0]}" if len(numbers) == 1 else f"segments {numbers[0]}-{numbers[-1]}"
        assert code == 1 and [(p.segment, p.reason) for p in problems] == [
            (
                victims[0].name,
                f"{which} of writer {victims[0].name[:16]} missing: not in the "
                f"journal, and not in its ledger as purged or set aside: "
                f"{records_text(first, last)} lost",
            )
        ]


def test_a_segment_cut_at_a_frame_boundary_is_reported(tmp_path):
    """Truncated to its header, or to any frame boundary: the header counts the records."""
    values = write_records(tmp_path / "j")
    segment = sealed(tmp_path / "j")[2]
    first, last = seqs_in(segment)
    data = segment.read_bytes()
    boundaries, pos = [], fmt.SEGMENT_HEADER_SIZE
    while pos < len(data):
        boundaries.append(pos)
        pos += int.from_bytes(data[pos : pos + 4], "little")
    for keep, cut in enumerate([boundaries[0], boundaries[len(boundaries) // 2], boundaries[-1]]):
        segment.write_bytes(data[:cut])
        kept = [0, len(boundaries) // 2, len(boundaries) - 1][keep]
        got, problems, code = check(tmp_path / "j")
        assert got == values[: first - 1 + kept] + values[last:]
        assert code == 1 and [(p.segment, p.offset) for p in problems] == [(segment.name, cut)]
        assert problems[0].reason.startswith(
            f"{records_text(first + kept, last)} missing: the segment ends there, its header counts"
        )
    segment.write_bytes(data)
    assert check(tmp_path / "j") == (values, [], 0)


def test_the_same_segment_copied_in_twice_is_reported_and_read_once(tmp_path):
    values = write_records(tmp_path / "j")
    original = sealed(tmp_path / "j")[4]
    copy = original.with_name("copy-of-" + original.name)
    shutil.copy(original, copy)
    got, problems, code = check(tmp_path / "j")
    assert got == values and code == 1  # each record once
    assert [(p.segment, p.reason) for p in problems] == [
        (
            copy.name,
            f"the same segment as {original.name} (writer and number "
            f"{original.name[:-4]}) copied in again: its records are read once, from "
            f"{original.name}",
        )
    ]
    repaired = subprocess.run(
        [sys.executable, "-m", "safe_data", "--journal", str(tmp_path / "j"), "verify", "--repair"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert not copy.exists() and (tmp_path / "j" / "damaged" / f"{copy.name}.0.bin").exists()
    assert check(tmp_path / "j") == (values, [], 0)


def test_a_renamed_segment_is_read_and_reported(tmp_path):
    """Its header says which segment it is: it fills its place in the chain, and the name
    that disagrees is reported."""
    values = write_records(tmp_path / "j")
    segment = sealed(tmp_path / "j")[1]
    renamed = segment.with_name("0000000000000000-000001.seg")
    segment.rename(renamed)
    got, problems, _ = check(tmp_path / "j")
    assert got == values
    assert [(p.segment, p.reason) for p in problems] == [
        (
            renamed.name,
            f"named {renamed.name} but its header says it is segment {segment.name[:-4]} (renamed?)",
        )
    ]


# --- what left on purpose ------------------------------------------------------------------------


def test_segments_purged_after_a_backup_acknowledged_them_are_not_reported(tmp_path):
    """An uploader deletes what its sink acknowledged (at once, or after keep_for), purge
    deletes acknowledged segments and, with --force, others: none of it is reported, and
    the same deletions by hand are (the control)."""
    path = tmp_path / "j"
    # version-1 frames: the sizes below (purge --max-bytes) are theirs
    with sd.Journal(path, segment_size=SEGMENT_SIZE, compact=False) as journal:
        items = sd.SafeList(range(3000), name="items", journal=journal)
        for _ in range(400):
            items.pop()
        with sd.Uploader(DirectorySink(tmp_path / "store"), journal, seal_every=None) as up:
            up.flush(timeout=30)  # keep_for=0: deleted once acknowledged
        assert not sealed(path)
        for _ in range(400):
            items.pop()
        with sd.Uploader(DirectorySink(tmp_path / "store"), journal, seal_every=None, keep_for=0.2) as up:
            up.flush(timeout=30)  # marked, deleted 0.2 s later
            wait_until(
                lambda: not sealed(path),
                30,
                lambda: f"the acknowledged segments were not deleted: {sealed(path)}",
            )
        for _ in range(400):
            items.pop()
    purge = subprocess.run(
        [sys.executable, "-m", "safe_data", "--journal", str(path), "purge", "--max-bytes", "8k", "--force"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert purge.returncode == 0, purge.stderr
    left = sealed(path)
    assert left
    got, problems, code = check(path)
    assert (problems, code) == ([], 0)
    assert got == list(range(2999, 2999 - 1200, -1))[-len(got) :]  # the newest records, in order
    lines = (path / LEDGER).read_text().splitlines()
    whys = [json.loads(line.split(" ", 1)[1])["why"] for line in lines]
    assert any(w.startswith("acknowledged by DirectorySink") for w in whys)
    assert any("purge --force" in w for w in whys)

    # the control: deleting the oldest segment left by hand is reported
    left[0].unlink()
    _, problems, code = check(path)
    assert code == 1 and [p.segment for p in problems] == [left[0].name]


def test_the_ledger_ignores_a_torn_last_line_and_reports_a_corrupt_one(tmp_path):
    from safe_data.journal import ledger

    path = tmp_path / "j"
    write_records(path)
    first, second, *_ = sealed(path)
    ledger.remove_segments(str(path), [str(first)], "uploaded")
    with open(path / LEDGER, "ab") as f:
        f.write(b'0badc0de {"segment": "' + second.name[:-4].encode())  # a crash while appending
    second.unlink()
    _, problems, _ = check(path)
    assert [p.segment for p in problems] == [second.name]  # the torn line purged nothing
    data = (path / LEDGER).read_bytes()
    (path / LEDGER).write_bytes(data.replace(b"uploaded", b"uploadeD", 1))
    _, problems, _ = check(path)
    # the line that does not verify, and the segment it no longer accounts for
    assert sorted((p.segment, p.offset) for p in problems) == [(first.name, 0), (LEDGER, 0)]
    assert "segments 1-2" in [p.reason for p in problems if p.segment == first.name][0]


# --- real crashes, and journals written before segments counted their records -----------------

WRITER = r"""
import sys, safe_data as sd
journal = sd.Journal(sys.argv[1], segment_size=4096)
items = sd.SafeList(range(10**6), name="items", journal=journal)
while True:
    print(items.pop(), flush=True)
"""


def test_a_killed_writer_reports_nothing_and_what_vanishes_after_is_found(tmp_path):
    path = tmp_path / "j"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    acked = []
    for line in writer.stdout:
        acked.append(int(line))
        if len(acked) == 2000:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    with sd.Journal(path) as journal:  # recovers the dead writer's segment
        assert journal.verify() == []
        popped = [r.values[0] for r in journal.records(on_error="raise")]
    assert popped[: len(acked)] == acked  # everything acknowledged, in order
    victim = sealed(path)[len(sealed(path)) // 2]
    victim.unlink()
    _, problems, code = check(path)
    assert code == 1 and [p.segment for p in problems] == [victim.name]


def as_revision_1(segment: Path) -> None:
    """Rewrite a segment as the first revision of the format wrote it: no counts."""
    data = segment.read_bytes()
    header = fmt.unpack_segment_header(_impl.crc32c, data)
    head = fmt.pack_segment_header(
        _impl.crc32c, header.writer_id, header.segment_no, header.created_ns, header.pid
    )
    segment.write_bytes(head + data[fmt.SEGMENT_HEADER_SIZE :])


def test_revision_1_segments_read_and_are_checked_by_their_sequence_numbers(tmp_path):
    values = write_records(tmp_path / "j", compact=False)
    segments = sealed(tmp_path / "j")
    for segment in segments:
        as_revision_1(segment)
    assert check(tmp_path / "j") == (values, [], 0)
    # a segment cut at a frame boundary: the next segment's first seq tells
    victim = segments[3]
    data = victim.read_bytes()
    victim.write_bytes(data[: fmt.SEGMENT_HEADER_SIZE])
    got, problems, code = check(tmp_path / "j")
    missing = sorted(set(values) - set(got))
    first, last = values.index(missing[0]) + 1, values.index(missing[-1]) + 1
    assert code == 1 and [(p.segment, p.reason) for p in problems] == [
        (
            segments[4].name,
            f"{records_text(first, last)} missing before this segment (the one "
            f"before it ends at seq {first - 1})",
        )
    ]
    # a segment deleted: its number tells
    victim.unlink()
    _, problems, _ = check(tmp_path / "j")
    assert [p.segment for p in problems] == [victim.name]
