"""Group commit in "fsync" mode: concurrent operations share fdatasync calls, yet each
returns only once its record is on disk (docs/guarantees.md, "fsync mode and threads").

Real threads, real files; the failing fdatasync comes from the project's fault injection
in a child process (``SAFE_DATA_FAULT`` is read at import), the crash from a real SIGKILL.
"""

import os
import re
import subprocess
import sys
import textwrap
import threading

import pytest

import safe_data

from ._helpers import check_acknowledged, discarded, run_and_kill, summary, thread_switch_interval

THREADS = 8
POPS = 60  # per thread
DEADLOCK_SECONDS = 60  # a test thread still running after this is taken for deadlocked


def run_threads(target, args_list):
    threads = [threading.Thread(target=target, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLOCK_SECONDS)
    assert not any(t.is_alive() for t in threads), "deadlocked"


def test_threads_share_flushes_and_each_returns_with_its_record_on_disk(impl, tmp_path):
    """8 threads pop from their own lists into 4 KiB segments (rotations all the time);
    each pop, once it returns, finds its record counted on disk by the writer."""
    journal = safe_data.Journal(tmp_path / "j", durability="fsync", segment_size=4096)
    writer = journal._writer
    mine = threading.local()
    journal.on_discard(lambda record: setattr(mine, "seq", record.seq))
    lists = [
        impl.SafeList([f"{t}-{i}" for i in range(POPS)], name=f"l{t}", journal=journal)
        for t in range(THREADS)
    ]
    undurable = []

    def work(lst):
        for _ in range(POPS):
            lst.pop()
            if writer.synced < mine.seq:  # returned before its record was on disk
                undurable.append(mine.seq)

    try:
        with thread_switch_interval(1e-6):
            run_threads(work, [(lst,) for lst in lists])
        assert not undurable
        values = discarded(journal)
        expected = [f"{t}-{i}" for t in range(THREADS) for i in range(POPS)]
        assert sorted(values) == sorted(expected)  # every record there, exactly once
        assert len([n for n in os.listdir(journal.path) if n.endswith(".seg")]) > 1  # rotations happened
        assert 0 < writer.flushes < THREADS * POPS  # grouping happened
    finally:
        journal.close()


FINALIZER_IN_FLUSH = textwrap.dedent("""
    import gc, sys
    import safe_data
    from safe_data import _faults

    journal = safe_data.Journal(sys.argv[1], durability="fsync")
    lst = safe_data.SafeList(range(10), name="l", journal=journal)
    lst.pop()  # the segment opened, every site of a record's path traced once

    class Dropper:
        def __init__(self, target):
            self.target = target

        def __del__(self):
            print("finalizer popped", self.target.pop(), flush=True)

    collect = False

    def hook(event, args):
        global collect
        if collect and event == "open" and args[0] == _faults._trace_path:
            collect = False
            gc.collect()  # the dropper's finalizer runs here: in the flushing thread, mid-flush

    sys.addaudithook(hook)
    gc.disable()  # the dropper dies in the hook, nowhere else
    cycle = [Dropper(safe_data.SafeList(["kept", "dropped"], name="target", journal=journal))]
    cycle.append(cycle)
    del cycle
    _faults._traced.discard("record.sync")  # the next flush's trace point opens the trace file
    collect = True
    print("popped", lst.pop(), flush=True)
    journal.close()
""")


def test_a_finalizer_discarding_while_its_thread_flushes_does_not_deadlock(tmp_path):
    """A finalizer that discards runs in the thread that is flushing (the garbage
    collector runs it at the fault-trace point, an audit hook on the trace file's
    opening): the nested discard flushes too, and both return."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFE_DATA_FAULT")}
    env["SAFE_DATA_FAULT_TRACE"] = str(tmp_path / "trace")
    proc = subprocess.run(
        [sys.executable, "-c", FINALIZER_IN_FLUSH, str(tmp_path / "j")],
        capture_output=True,
        text=True,
        env=env,
        timeout=DEADLOCK_SECONDS,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "finalizer popped dropped\npopped 8\n"


FAILING_FLUSH = textwrap.dedent("""
    import sys, threading
    import safe_data

    journal = safe_data.Journal(sys.argv[1], durability="fsync", segment_size=4096)
    mine = threading.local()
    journal.on_discard(lambda record: setattr(mine, "seq", record.seq))
    sys.setswitchinterval(1e-6)
    out = threading.Lock()

    def work(t):
        lst = safe_data.SafeList(range(40), name=f"l{t}", journal=journal)
        for _ in range(40):
            try:
                lst.pop()
                result = "ok"
            except OSError as exc:
                result = f"error {exc.errno} {exc}"
            with out:
                print(mine.seq, result, flush=True)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    journal.close()
""")


@pytest.mark.parametrize("nth", [1, 4, 9])
def test_a_failing_fdatasync_is_an_error_in_every_operation_it_covered(tmp_path, nth):
    """The nth fdatasync fails (EIO): every operation whose record it covered raises
    OSError, even one that a later successful flush would also cover; the others, and
    every later one, succeed (later flushes retry)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFE_DATA_FAULT")}
    env["SAFE_DATA_FAULT"] = f"record.sync:{nth}:eio"
    proc = subprocess.run(
        [sys.executable, "-c", FAILING_FLUSH, str(tmp_path / "j")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [line.split(" ", 1) for line in proc.stdout.splitlines()]
    assert len(results) == 8 * 40
    errors = {int(seq): message for seq, message in results if message != "ok"}
    assert errors, "no operation saw the failure"
    ranges = {re.search(r"records (\d+) to (\d+) ", m).groups() for m in errors.values()}
    assert len(ranges) == 1, ranges  # one failure, reported the same way to each
    (lo, hi) = map(int, ranges.pop())
    assert all(m.startswith("error 5 ") for m in errors.values())  # EIO
    covered = {int(seq) for seq, _ in results if lo <= int(seq) <= hi}
    assert set(errors) == covered  # every covered operation raised, and no other


def test_sigkill_after_acknowledged_discards_from_threads_loses_none(tmp_path, child_script):
    """The kill test's child with 8 threads in "fsync" mode, 64 KiB segments: what a
    returned call acknowledged is in the journal after a SIGKILL, exactly once."""
    journal_dir = tmp_path / "journal"
    acked, pid = run_and_kill(
        child_script,
        journal_dir,
        threads=THREADS,
        segment_size=64 * 1024,
        durability="fsync",
        kill_after_acks=400,
    )
    report = check_acknowledged(journal_dir, acked)
    assert report.lost_nothing, summary(report)
    assert report.pids == {pid}
