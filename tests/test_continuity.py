"""What vanished from a journal is reported: a sealed segment cut short at a frame
boundary (its header counts its records).

Real files throughout.  Every "reported" test has its control: the same journal before
the damage verifies clean.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import safe_data as sd
from safe_data.journal import format as fmt

SEGMENT_SIZE = 4096  # about 90 small records a segment


def records_text(first, last):
    """How reports name a run of records."""
    return f"1 record (seq {first})" if first == last else f"{last - first + 1} records (seq {first}-{last})"


def write_records(path, n=1000, segment_size=SEGMENT_SIZE):
    """n pops into a fresh journal, sealed; returns the popped values in order."""
    values = [f"value-{i:04d}" for i in range(n)]
    with sd.Journal(path, segment_size=segment_size) as journal:
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
    verify = subprocess.run([sys.executable, "-m", "safe_data", "--journal", str(path), "verify",
                             "--json"], capture_output=True, text=True, timeout=60)
    report = json.loads(verify.stdout)
    assert sorted((p["segment"], p["offset"], p["reason"]) for p in report["problems"]) == \
           sorted((p.segment, p.offset, p.reason) for p in problems)  # command and library agree
    return values, problems, verify.returncode


def test_a_segment_cut_at_a_frame_boundary_is_reported(tmp_path):
    """Truncated to its header, or to any frame boundary: the header counts the records."""
    values = write_records(tmp_path / "j")
    segment = sealed(tmp_path / "j")[2]
    first, last = seqs_in(segment)
    data = segment.read_bytes()
    boundaries, pos = [], fmt.SEGMENT_HEADER_SIZE
    while pos < len(data):
        boundaries.append(pos)
        pos += int.from_bytes(data[pos:pos + 4], "little")
    for keep, cut in enumerate([boundaries[0], boundaries[len(boundaries) // 2], boundaries[-1]]):
        segment.write_bytes(data[:cut])
        kept = [0, len(boundaries) // 2, len(boundaries) - 1][keep]
        got, problems, code = check(tmp_path / "j")
        assert got == values[:first - 1 + kept] + values[last:]
        assert code == 1 and [(p.segment, p.offset) for p in problems] == [(segment.name, cut)]
        assert problems[0].reason.startswith(f"{records_text(first + kept, last)} missing: the "
                                             f"segment ends there, its header counts")
    segment.write_bytes(data)
    assert check(tmp_path / "j") == (values, [], 0)
