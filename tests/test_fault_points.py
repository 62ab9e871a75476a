"""Fail the n-th pass through every protocol step, and check nothing acknowledged is lost.

SQLite's "fail the n-th I/O" loop (docs/guarantees.md): a worker process journals a seeded
mix of list/dict/set discards on a journal with tiny segments in "fsync" mode, ships them
with an uploader to a directory, and prints each discarded value once the call returned
(acknowledged).  With ``SAFE_DATA_FAULT=<site>:<n>:<how>`` the n-th pass through one
site fails: the process aborts (as in a crash), or the step raises EIO/ENOSPC.  Then this
process opens the journal (recovering it) and checks:

* every acknowledged value is in the journal or in the backup, exactly once overall;
* no value is anywhere twice, and nothing the worker never discarded appears;
* the journal verifies clean after recovery, and takes new records.

A first run with ``SAFE_DATA_FAULT_TRACE`` lists the sites the workload passes; the test
fails if a site of ``_faults.SITES`` (but the atomic store's and the segment rewrite's,
tested with them) is missing.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import safe_data
from safe_data import _faults
from safe_data.remote.protocol import decompress_segment

from ._helpers import recovering

pytest.importorskip("zstandard")

WORKER = textwrap.dedent("""
    import os, random, sys
    import safe_data
    from safe_data import DirectorySink, SafeDict, SafeList, SafeSet, Uploader

    journal_dir, store_dir, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if sys.argv[4:] == ["delete-before-ack"]:  # the negative control's broken uploader
        import safe_data.remote.uploader as uploader_module
        read = uploader_module._prepare
        def read_and_delete(path, *options):
            prepared = read(path, *options)
            os.unlink(path)
            return prepared
        uploader_module._prepare = read_and_delete
    rng = random.Random(seed)
    journal = safe_data.Journal(journal_dir, segment_size=4096, durability="fsync")
    values = [f"v{seed}-{i:04d}-" + "x" * rng.randrange(10, 400) for i in range(150)]
    lst = SafeList(values[:50], name="l", journal=journal)
    dct = SafeDict({v: v for v in values[50:100]}, name="d", journal=journal)
    st = SafeSet(values[100:], name="s", journal=journal)
    out = sys.stdout
    with Uploader(DirectorySink(store_dir), journal, seal_every=None, backoff=(0.01, 0.05)) as up:
        for step in range(150):
            kind = rng.choice([k for k, c in (("l", lst), ("d", dct), ("s", st)) if c])
            if kind == "l":
                value = lst.pop(rng.randrange(len(lst)))
            elif kind == "d":
                value = dct.pop(rng.choice(list(dct)))
            else:
                value = st.pop()
            out.write("ack " + value + "\\n")
            out.flush()
            if step % 50 == 49:
                up.flush(timeout=30)
        up.flush(timeout=30)
    journal.close()
    out.write("done\\n")
""")

#: sites the workload above does not pass through (tested where they live)
# tested with the atomic store, in test_forget.py and test_shred.py
ELSEWHERE = {"atomic.replace", "segment.rewrite", "forget.replace", "forget.shred"}


def run_worker(tmp_path, fault=None, trace=None, seed=1, *extra):
    journal_dir, store_dir = tmp_path / "journal", tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFE_DATA_FAULT")}
    if fault:
        env["SAFE_DATA_FAULT"] = fault
    if trace:
        env["SAFE_DATA_FAULT_TRACE"] = str(trace)
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(journal_dir), str(store_dir), str(seed), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    acked = [line[4:] for line in proc.stdout.splitlines() if line.startswith("ack ")]
    return proc, acked, journal_dir, store_dir


def everything_kept(journal_dir, store_dir, sound=True):
    """Every value in the recovered journal and in its backup taken together (a segment
    both still local and backed up, its acknowledgement lost in the crash, counted once:
    the same bytes).  With ``sound``, the journal and that union must verify clean: no
    segment is missing, none is there twice."""
    with recovering(), safe_data.Journal(journal_dir) as journal:  # opening recovers the crashed writer
        if sound:
            assert journal.verify() == []
        journal.record("list", "pop", "after", None, ["the next process writes"])
    union = store_dir.parent / "union"
    union.mkdir()
    for body in (store_dir / "default").glob("*.seg.zst"):
        (union / body.name[: -len(".zst")]).write_bytes(decompress_segment(body.read_bytes()))
    for segment in journal_dir.glob("*.seg"):
        if (union / segment.name).exists():
            assert (union / segment.name).read_bytes() == segment.read_bytes()
        else:
            shutil.copy(segment, union)
    (union / "key").write_bytes((journal_dir / "key").read_bytes())
    with safe_data.Journal(union) as journal:
        if sound:
            assert journal.verify() == []
        found = {}
        for record in journal.records(on_error="ignore" if not sound else "raise"):
            values = record.values
            found[record.writer, record.seq] = list(values.values() if isinstance(values, dict) else values)
    return [v for values in found.values() for v in values if v != "the next process writes"]


def check(acked, journal_dir, store_dir, seed, sound=True):
    kept = everything_kept(journal_dir, store_dir, sound)
    duplicates = {v for v in kept if kept.count(v) > 1}
    assert not duplicates, f"stored twice: {sorted(duplicates)[:3]}"
    lost = set(acked) - set(kept)
    assert not lost, f"{len(lost)} acknowledged values lost, e.g. {sorted(lost)[:3]}"
    assert all(v.startswith(f"v{seed}-") for v in kept)


def test_the_workload_passes_every_site(tmp_path):
    trace = tmp_path / "trace"
    proc, acked, journal_dir, store_dir = run_worker(tmp_path, trace=trace)
    assert proc.returncode == 0 and proc.stdout.endswith("done\n"), proc.stderr
    reached = set(trace.read_text().split())
    assert reached == set(_faults.SITES) - ELSEWHERE, (
        f"never reached: {set(_faults.SITES) - ELSEWHERE - reached}"
    )
    assert len(acked) == 150
    check(acked, journal_dir, store_dir, 1)


SITES = [s for s in _faults.SITES if s not in ELSEWHERE]


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("nth", [1, 3])
def test_a_crash_at_any_step_loses_nothing_acknowledged(tmp_path, site, nth):
    seed = 7 + nth
    proc, acked, journal_dir, store_dir = run_worker(tmp_path, fault=f"{site}:{nth}:abort", seed=seed)
    assert proc.returncode == -6, (site, nth, proc.returncode, proc.stderr[-2000:])  # SIGABRT
    check(acked, journal_dir, store_dir, seed)


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("how", ["eio", "enospc"])
def test_a_failing_step_is_an_error_and_loses_nothing(tmp_path, site, how):
    """A disk error at any step reaches the caller as an error (or is retried by the
    uploader); whatever was acknowledged before is kept."""
    proc, acked, journal_dir, store_dir = run_worker(tmp_path, fault=f"{site}:2:{how}", seed=3)
    if proc.returncode != 0:
        assert "Traceback" in proc.stderr and ("Error" in proc.stderr), proc.stderr[-2000:]
    check(acked, journal_dir, store_dir, 3)


def test_negative_control_an_uploader_deleting_before_the_ack_is_caught(tmp_path):
    """The same check fails for an uploader that deletes a segment before its ack."""
    proc, acked, journal_dir, store_dir = run_worker(
        tmp_path, "upload.send:1:abort", None, 5, "delete-before-ack"
    )
    assert proc.returncode == -6 and acked
    # verify reports the vanished segments when a later segment of the writer is there;
    # when the crash came before one was (a flush had just sealed the last), nothing in
    # the journal can tell, and the values check below catches it
    vanished = "segments? 1(-[0-9]+)? of writer [0-9a-f]+ missing"
    with pytest.raises(AssertionError, match=f"{vanished}|acknowledged values lost"):
        check(acked, journal_dir, store_dir, 5)
    shutil.rmtree(store_dir.parent / "union", ignore_errors=True)
    with pytest.raises(AssertionError, match="acknowledged values lost"):
        check(acked, journal_dir, store_dir, 5, sound=False)  # and the values are gone
