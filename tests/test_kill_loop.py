"""The random SIGKILL loop (docs/guarantees.md): writers killed at random moments, in one
journal directory, cumulatively; then the journal is compared with every acknowledgement.

Each writer (the child of test_crash.py, in _helpers.py: threads discarding from
SafeList/SafeDict/SafeSet into small segments, one line per returned call) is SIGKILLed
either at a random moment after it started (a quarter of the kills: while Python starts,
while ``Journal()`` opens the directory and recovers its predecessor, or already
discarding) or at a random moment after its first acknowledgement.  Each writer recovers
the one killed before it.

``SAFE_DATA_KILLS`` sets the number of kills (20 by default; the figures of
docs/guarantees.md come from 200).  ``SAFE_DATA_FIGURES=<file>`` writes the figures there
as JSON.  ``SAFE_DATA_TEST_SEED`` replays a run.
"""

import json
import os
import random
import time

import safe_data as sd

from ._helpers import check_acknowledged, recovering, run_and_kill, summary

KILLS = int(os.environ.get("SAFE_DATA_KILLS", "20"))


def test_random_sigkill_loop_loses_nothing(tmp_path, child_script):
    seed = int(os.environ.get("SAFE_DATA_TEST_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    journal_dir = tmp_path / "journal"
    acked, early = [], 0
    for kill in range(KILLS):
        if rng.random() < 0.25:
            early += 1
            ids, _ = run_and_kill(
                child_script,
                journal_dir,
                run=f"k{kill}",
                threads=2,
                segment_size=64 * 1024,
                kill_after_start=rng.uniform(0.0, 0.5),
            )
        else:
            ids, _ = run_and_kill(
                child_script,
                journal_dir,
                run=f"k{kill}",
                threads=2,
                segment_size=64 * 1024,
                kill_after_seconds=rng.uniform(0.0, 0.3),
            )
        acked += ids
    report = check_acknowledged(journal_dir, acked)
    figures = {
        "kills": KILLS,
        "kills_before_the_first_ack": early,
        "acknowledged": len(acked),
        "lost": len(report.missing),
        "duplicated": len(report.duplicated),
        "unreadable_segments": len(report.problems),
        "left_open": len(report.open_left),
        "seed": seed,
    }
    if os.environ.get("SAFE_DATA_FIGURES"):
        with open(os.environ["SAFE_DATA_FIGURES"], "w") as f:
            json.dump(figures, f, indent=1)
    assert report.lost_nothing, f"seed {seed}: {summary(report)}"
    assert len(acked) > KILLS  # the kills did not all land before any work


def test_recovery_time_of_a_dead_writers_segment(tmp_path, child_script):
    """Recovery reads a dead writer's whole open segment once; its speed is a figure of
    docs/guarantees.md (seconds per GiB), bounded here only loosely."""
    journal_dir = tmp_path / "journal"
    run_and_kill(child_script, journal_dir, threads=2, segment_size=64 << 20, kill_after_seconds=1.0)
    [segment] = list(journal_dir.glob("*.open"))
    size = segment.stat().st_size
    started = time.perf_counter()
    with recovering(), sd.Journal(journal_dir):
        seconds = time.perf_counter() - started
    assert not segment.exists() and segment.with_suffix(".seg").exists()  # recovered: sealed
    per_gib = seconds * (1 << 30) / size
    if os.environ.get("SAFE_DATA_FIGURES"):
        with open(os.environ["SAFE_DATA_FIGURES"] + ".recovery", "w") as f:
            json.dump({"segment_bytes": size, "seconds": seconds, "seconds_per_gib": per_gib}, f)
    assert per_gib < 120, f"recovery took {seconds:.2f} s for {size} bytes"
