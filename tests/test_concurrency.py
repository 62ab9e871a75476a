"""Concurrency: threads sharing containers and a journal, forked and spawned children
sharing a journal directory, and readers running next to a writer.

Threads run with a 10 us switch interval (``sys.setswitchinterval``) so that they
interleave thousands of times per test instead of a few dozen.

Every discarded value is a tuple that names its thread (or child) and is unique, so the
journal can be checked exactly: :func:`check_thread_journal` requires each value once,
nothing else, and each thread's records in the thread's own order when sorted by seq.
Its negative controls show it reports duplicates, losses and reordering.
"""

from __future__ import annotations

import dataclasses
import fcntl
import multiprocessing
import os
import subprocess
import sys
import threading
import traceback
import warnings
from collections import Counter, defaultdict

import pytest

import safe_data as sd
from safe_data.journal import format as fmt

from ._helpers import thread_switch_interval

THREADS = 8
OPS = int(os.environ.get("SAFE_DATA_THREAD_OPS", 20_000))  # per thread; 100000 for the long run


def record_values(record):
    v = record.values
    return list(v.values()) if isinstance(v, dict) else list(v)


def check_thread_journal(records, expected):
    """Compare journal records with what each thread discarded.

    ``expected[t]`` lists, in thread ``t``'s program order, the frozenset of values each of
    its discarding calls removed; every value is a tuple whose first item is ``t``.
    Returns {} when every value is in the journal exactly once and each thread's records,
    sorted by (writer, seq), are its calls in order; else the findings by kind.
    """
    counts = Counter()
    per_thread = defaultdict(list)
    findings = defaultdict(list)
    for r in records:
        values = frozenset(record_values(r))
        counts.update(record_values(r))
        owners = {v[0] for v in values}
        if len(owners) != 1:
            findings["mixed"].append(r)
            continue
        per_thread[owners.pop()].append(((r.writer, r.seq), values))
    wanted = set().union(*(call for calls in expected.values() for call in calls))
    findings["missing"] = sorted(v for v in wanted if counts[v] == 0)
    findings["duplicated"] = sorted(v for v, n in counts.items() if n > 1)
    findings["unexpected"] = sorted(v for v in counts if v not in wanted)
    for t, calls in expected.items():
        got = [values for _, values in sorted(per_thread.get(t, []), key=lambda x: x[0])]
        if got != calls:
            first = next(
                (i for i, (a, b) in enumerate(zip(got, calls, strict=False)) if a != b),
                min(len(got), len(calls)),
            )
            findings["order"].append((t, first, got[first : first + 2], calls[first : first + 2]))
    return {k: v for k, v in findings.items() if v}


# --- threads --------------------------------------------------------------------------------


def thread_ops(t, n, L, D, S, calls):
    """n mixed operations of thread t; L is its own list, D and S are shared by all threads.
    Appends to ``calls`` the values each discarding call removed, after it returned."""
    for i in range(n):
        a, b = (t, i, 0), (t, i, 1)
        op = i % 10
        if op == 0:
            L.append(a)
            L.pop()
            calls.append(frozenset([a]))
        elif op == 1:
            L.extend([a, b])
            del L[:]
            calls.append(frozenset([a, b]))
        elif op == 2:
            L.append(a)
            L[-1] = b
            calls.append(frozenset([a]))
            L.remove(b)
            calls.append(frozenset([b]))
        elif op == 3:
            D[a] = a
            D[a] = b
            calls.append(frozenset([a]))
            D.pop(a)
            calls.append(frozenset([b]))
        elif op == 4:
            D[a] = a
            del D[a]
            calls.append(frozenset([a]))
        elif op == 5:
            D[a] = a
            D.update({a: b})
            calls.append(frozenset([a]))
            D.pop(a)
            calls.append(frozenset([b]))
        elif op == 6:
            S.add(a)
            S.discard(a)
            calls.append(frozenset([a]))
        elif op == 7:
            S.add(a)
            S.remove(a)
            calls.append(frozenset([a]))
        elif op == 8:
            S.update([a, b])
            S -= {a, b}
            calls.append(frozenset([a, b]))
        else:
            S.add(a)
            S ^= {a}
            calls.append(frozenset([a]))


@pytest.fixture
def eager_thread_switching():
    with thread_switch_interval(1e-5):
        yield


def run_threads(target, nthreads=THREADS):
    errors, idents = [], {}

    def run(t):
        idents[t] = threading.get_ident()
        try:
            target(t)
        except BaseException as exc:  # collected: a failing thread must fail the test
            errors.append((t, "".join(traceback.format_exception(exc))))

    threads = [threading.Thread(target=run, args=(t,)) for t in range(nthreads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return errors, idents


@pytest.mark.parametrize("segment_size", [16 << 20, 64 * 1024], ids=["16MiB", "64KiB-rotating"])
def test_threads_on_shared_dict_and_set_journal_each_value_once_in_order(
    tmp_path, segment_size, eager_thread_switching
):
    with sd.Journal(tmp_path / "journal", segment_size=segment_size) as j:
        D = sd.SafeDict(name="D", journal=j)
        S = sd.SafeSet(name="S", journal=j)
        lists = [sd.SafeList(name=f"L{t}", journal=j) for t in range(THREADS)]
        calls = {t: [] for t in range(THREADS)}
        errors, idents = run_threads(lambda t: thread_ops(t, OPS, lists[t], D, S, calls[t]))
        assert errors == []
        assert D == {} and S == set() and all(L == [] for L in lists)
        records = list(j.records(on_error="raise"))  # raises on any torn or corrupt frame

    assert check_thread_journal(records, calls) == {}
    assert sum(map(len, calls.values())) == len(records)
    # one writer (this process): seq is unique and gapless across all threads
    assert sorted(r.seq for r in records) == list(range(1, len(records) + 1))
    assert {r.writer for r in records} == {records[0].writer} and {r.pid for r in records} == {os.getpid()}
    # each record carries the identity of the thread that made it
    for r in records:
        assert r.thread == idents[record_values(r)[0][0]]


@pytest.mark.parametrize(
    "segment_size,capture_caller,pad",
    [
        (4096, False, ""),
        (16 << 20, True, ""),
        (16 << 20, False, "x" * 600),
    ],
    ids=["4KiB-rotating", "capture_caller", "compressed-values"],
)
def test_threads_removing_from_one_shared_list_journal_each_value_once(
    tmp_path, segment_size, capture_caller, pad, eager_thread_switching
):
    """Each thread removes its own values, by value, from one list they all share."""
    n = 1500  # per thread
    with sd.Journal(tmp_path / "journal", segment_size=segment_size) as j:
        L = sd.SafeList(
            [(t, i, 0, pad) for i in range(n) for t in range(THREADS)],
            name="L",
            journal=j,
            capture_caller=capture_caller,
        )
        calls = {t: [] for t in range(THREADS)}
        failed = []  # remove() calls that raised (ValueError: the value had already gone)

        def remove(t, v):
            try:
                L.remove(v)
            except Exception as exc:
                failed.append((v, repr(exc)))
            else:
                calls[t].append(frozenset([v]))

        def work(t):
            for i in range(n):
                remove(t, (t, i, 0, pad))
                L.append((t, i, 1, pad))
                remove(t, (t, i, 1, pad))

        errors, _ = run_threads(work)
        records = list(j.records(on_error="raise"))
    assert errors == []
    findings = check_thread_journal(records, calls)
    journaled = {v for r in records for v in r.values}
    everything = {(t, i, k, pad) for t in range(THREADS) for i in range(n) for k in (0, 1)}
    still_in = [v for v in L if v in journaled]  # journaled as removed, but still there
    lost = sorted(everything - journaled - set(L))  # gone without a record
    assert (failed, still_in, lost, findings) == ([], [], [], {}), (
        f"{len(failed)} remove() calls raised, e.g. {[(v[:3], e) for v, e in failed[:1]]}; "
        f"{len(still_in)} values "
        f"journaled as removed are still in the list, {len(lost)} values left the list "
        f"without a record, e.g. {[v[:3] for v in lost[:3]]}"
    )


# --- negative controls for the checker ---------------------------------------------------------


@pytest.fixture
def small_run(tmp_path):
    """A real small threaded run: (journal, records, calls); the checker finds nothing."""
    j = sd.Journal(tmp_path / "journal")
    D = sd.SafeDict(name="D", journal=j)
    S = sd.SafeSet(name="S", journal=j)
    calls = {t: [] for t in range(4)}
    errors, _ = run_threads(
        lambda t: thread_ops(t, 200, sd.SafeList(name=f"L{t}", journal=j), D, S, calls[t]), 4
    )
    assert errors == []
    records = list(j.records(on_error="raise"))
    assert check_thread_journal(records, calls) == {}
    yield j, records, calls
    j.close()


def test_checker_reports_a_value_journaled_twice(small_run):
    j, _, calls = small_run
    again = (2, 10, 0)  # already discarded once by thread 2: journal it a second time
    sd.SafeList([again], name="again", journal=j).pop()
    findings = check_thread_journal(list(j.records(on_error="raise")), calls)
    assert findings["duplicated"] == [again]
    assert [t for t, *_ in findings["order"]] == [2]


def test_checker_reports_a_lost_record(small_run):
    _, records, calls = small_run
    victim = records[len(records) // 2]
    findings = check_thread_journal([r for r in records if r is not victim], calls)
    assert findings["missing"] == sorted(record_values(victim))
    assert len(findings["order"]) == 1


def with_seq(record, seq):
    if hasattr(record, "_replace"):  # a namedtuple
        return record._replace(seq=seq)
    return dataclasses.replace(record, seq=seq)


def test_checker_reports_reordering_within_a_thread(small_run):
    _, records, calls = small_run
    mine = [r for r in records if record_values(r)[0][0] == 1]
    x, y = mine[3], mine[7]
    swapped = {id(x): with_seq(x, y.seq), id(y): with_seq(y, x.seq)}
    findings = check_thread_journal([swapped.get(id(r), r) for r in records], calls)
    assert list(findings) == ["order"] and findings["order"][0][:2] == (1, 3)


def test_checker_reports_a_value_nobody_discarded(small_run):
    j, _, calls = small_run
    sd.SafeSet({(3, 999_999, 0)}, name="stray", journal=j).pop()
    findings = check_thread_journal(list(j.records(on_error="raise")), calls)
    assert findings["unexpected"] == [(3, 999_999, 0)]


# --- forked and spawned children --------------------------------------------------------------

CHILD_OPS = 3000


def child_journals(journal, c, n=CHILD_OPS, close=True):
    """Discard (c, i, k) values through all three container kinds."""
    if not isinstance(journal, sd.Journal):
        journal = sd.Journal(journal, segment_size=64 * 1024)
    L = sd.SafeList(name=f"L-{c}", journal=journal)
    D = sd.SafeDict(name=f"D-{c}", journal=journal)
    S = sd.SafeSet(name=f"S-{c}", journal=journal)
    for i in range(n):
        a, b = (c, i, 0), (c, i, 1)
        if i % 3 == 0:
            L.extend([a, b])
            L.pop()
            L.pop()
        elif i % 3 == 1:
            D[a] = a
            D[a] = b
            D.pop(a)
        else:
            S.update([a, b])
            S.discard(a)
            S.pop()
    if close:
        journal.close()


def expected_values(c, n=CHILD_OPS):
    return {(c, i, k) for i in range(n) for k in (0, 1)}


def _mp_child(journal, c, close):  # module level: importable by spawned children
    child_journals(journal, c, close=close)


def start_children(method, journal, path):
    """Start three children; return [(name, pid, wait() -> exit code)]."""
    children = []
    if method == "os.fork":
        for c in range(3):
            pid = os.fork()
            if pid == 0:  # child: never return into pytest
                code = 1
                try:
                    child_journals(journal, c, close=(c != 2))  # child 2 exits unsealed
                    code = 0
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(code)
            children.append((c, pid, lambda pid=pid: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])))
    else:
        ctx = multiprocessing.get_context(method)
        for c in range(3):
            # fork: the child uses the inherited Journal object; spawn: it opens the path
            target = journal if method == "fork" else str(path)
            p = ctx.Process(target=_mp_child, args=(target, c, c != 2))
            p.start()
            children.append((c, p.pid, lambda p=p: (p.join(60), p.exitcode)[1]))
    return children


@pytest.mark.parametrize("method", ["os.fork", "fork", "spawn"])
def test_children_journal_into_the_same_directory(tmp_path, method):
    path = tmp_path / "journal"
    j = sd.Journal(path, segment_size=64 * 1024)
    P = sd.SafeList(name="parent", journal=j)
    before, after = 500, 3000
    for i in range(before):  # the parent has an active, half-used segment when it forks
        P.append(("p", i, 0))
        P.pop()
    assert len(list(path.glob("*" + fmt.OPEN_SUFFIX))) == 1

    children = start_children(method, j, path)
    for i in range(before, after):  # and keeps journaling while the children run
        P.append(("p", i, 0))
        P.pop()
    codes = [(c, wait()) for c, _, wait in children]
    assert codes == [(0, 0), (1, 0), (2, 0)]
    for i in range(after, after + 100):  # and after they are gone
        P.append(("p", i, 0))
        P.pop()

    with warnings.catch_warnings():
        warnings.simplefilter("error", sd.JournalWarning)  # no problem may be reported
        records = list(j.records(on_error="raise"))
    assert j.verify() == []
    by_owner = defaultdict(list)
    for r in records:
        (owner,) = {v[0] for v in record_values(r)}
        by_owner[owner].append(r)

    # the parent: one writer, its own pid, gapless seq across the forks, every value once
    mine = by_owner.pop("p")
    assert [r.values for r in mine] == [[("p", i, 0)] for i in range(after + 100)]
    ((parent_writer, parent_pid),) = {(r.writer, r.pid) for r in mine}
    assert parent_pid == os.getpid()
    assert [r.seq for r in mine] == list(range(1, after + 101))
    # each child: its own writer and pid, its own segments, seq from 1, every value once
    writers = {parent_writer}
    for c, pid, _ in children:
        recs = by_owner.pop(c)
        values = Counter(v for r in recs for v in record_values(r))
        assert set(values) == expected_values(c) and set(values.values()) == {1}
        (writer,) = {r.writer for r in recs}
        assert writer not in writers
        writers.add(writer)
        assert {r.pid for r in recs} == {pid}
        assert {r.segment.split("-")[0] for r in recs} == {f"{writer:016x}"}
        assert sorted(r.seq for r in recs) == list(range(1, len(recs) + 1))
    assert by_owner == {}

    # no child sealed or locked the parent's active segment: it is still open and locked
    (active,) = path.glob(f"{parent_writer:016x}-*" + fmt.OPEN_SUFFIX)
    assert mine[-1].segment == active.name
    fd = os.open(active, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    j.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with sd.Journal(path) as j2:  # recovers child 2's unsealed segment, if any
            assert j2.verify() == []
            assert len(list(j2.records(on_error="raise"))) == len(records)
    assert not [w for w in caught if issubclass(w.category, sd.JournalWarning)]
    assert not list(path.glob("*" + fmt.OPEN_SUFFIX))


def test_fork_while_other_threads_journal(tmp_path, eager_thread_switching):
    """A fork while other threads are writing: the child starts a clean writer."""
    path = tmp_path / "journal"
    with sd.Journal(path, segment_size=64 * 1024) as j:
        stop = threading.Event()
        counts = {}

        def busy(t):
            L = sd.SafeList(name=f"busy{t}", journal=j)
            i = 0
            while not stop.is_set():
                L.append(("busy", t, i))
                L.pop()
                i += 1
            counts[t] = i

        threads = [threading.Thread(target=busy, args=(t,)) for t in range(2)]
        for th in threads:
            th.start()
        pids = []
        try:
            for c in range(4):
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        child_journals(j, c, n=300)
                        code = 0
                    except BaseException:
                        traceback.print_exc()
                    finally:
                        os._exit(code)
                pids.append(pid)
            codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
        finally:
            stop.set()
            for th in threads:
                th.join()
        assert codes == [0, 0, 0, 0]
        records = list(j.records(on_error="raise"))
        assert j.verify() == []
    got = Counter(v for r in records for v in record_values(r))
    assert set(got.values()) == {1}
    for c, pid in enumerate(pids):
        assert {v for v in got if v[0] == c} == expected_values(c, 300)
        assert {r.pid for r in records if record_values(r)[0][0] == c} == {pid}
    for t in range(2):
        assert {v for v in got if v[:2] == ("busy", t)} == {("busy", t, i) for i in range(counts[t])}


# --- a reader next to a writer ------------------------------------------------------------------

WRITER = r"""
import os, sys, glob, safe_data as sd
path = sys.argv[1]
j = sd.Journal(path, segment_size=1 << 20)
L = sd.SafeList(name="L", journal=j)
print("ready", flush=True)
i = 0
while True:
    L.append(os.urandom(30_000)); L.pop(); i += 1   # a new segment every ~35 records
    if i % 40 == 0:  # keep the directory small: purge all but the newest sealed segments
        for seg in sorted(glob.glob(os.path.join(path, "*.seg")), key=os.path.getmtime)[:-2]:
            os.unlink(seg)
"""

READER = r"""
import sys, time, warnings, safe_data as sd
warnings.simplefilter("ignore")
j = sd.Journal(sys.argv[1])
deadline = time.monotonic() + float(sys.argv[2])
passes = 0
while time.monotonic() < deadline:
    for r in j.records(on_error="ignore"):
        pass
    j.verify()
    passes += 1
print("passes", passes)
"""


def test_reading_while_another_process_rotates_segments(tmp_path):
    path = tmp_path / "journal"
    (tmp_path / "writer.py").write_text(WRITER)
    (tmp_path / "reader.py").write_text(READER)
    writer = subprocess.Popen(
        [sys.executable, str(tmp_path / "writer.py"), str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline() == "ready\n"
        reader = subprocess.run(
            [sys.executable, str(tmp_path / "reader.py"), str(path), "3"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()
    assert reader.returncode == 0, (
        f"reader exited with {reader.returncode} (-7 is SIGBUS):\n{reader.stderr[-2000:]}"
    )
    assert reader.stdout.startswith("passes")


CLOSE_WHILE_READING = r"""
import sys, safe_data as sd
j = sd.Journal(sys.argv[1])
L = sd.SafeList(["a", "b"], name="L", journal=j)
L.pop(); L.pop()
it = j.records(on_error="raise")
assert next(it).values == ["b"]  # the reader has mapped the live 16 MiB .open segment
j.close()                         # sealing truncates that file to its ~150 used bytes
assert [r.values for r in it] == [["a"]]
print("ok")
"""


def test_closing_the_journal_while_iterating_its_records(tmp_path):
    script = tmp_path / "close_while_reading.py"
    script.write_text(CLOSE_WHILE_READING)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "journal")], capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), (
        f"exit {proc.returncode} (-7 is SIGBUS): {proc.stderr}"
    )
