"""Crash safety of safe_data.atomic: real processes, killed with SIGKILL during commit().

A driver process (a script written to ``tmp_path``) forks writers and kills them:

* ``steps``: before each call a commit makes (os.open, write, fsync, flock, rename, the
  journal's record, ...) in turn, a writer kills itself with SIGKILL, one writer per
  call, so every boundary between two steps is a crash point.  The driver first runs one
  commit to the end and reports the calls it made, in order.
* ``random``: a writer commits versions 1, 2, 3, ... in a loop, acknowledging each after
  commit() returns; the driver kills it at a random moment after it opened the store
  (every other writer after its first commit, so that commits happen however loaded the
  machine is), keeps what the file holds, and starts the next writer on the same file.

The test then checks with :func:`problem` that the file holds exactly one whole version,
the old one or the new one (never a mix, a torn or an empty file), that opening the store
removes every temp file the dead writers left, and that the journal holds every version
that was replaced.  The negative control runs the same driver with a writer that writes
the file in place (truncate, then write and fsync piece by piece): the same checker must
catch it.  Last, the fault point before the rename (``SAFE_DATA_FAULT=atomic.replace:...``,
safe_data._faults) makes it abort there, or fail with EIO.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import safe_data
from safe_data import atomic
from safe_data.atomic.replace import TEMP_NAME


def version(n: int, size: int) -> dict:
    """Version n of the file: its number and a body that only it has (the driver and the
    checker share this definition)."""
    return {"n": n, "body": [f"{n}.{i}" for i in range(size)]}


BODY = 2000  # items: about 20 KiB of JSON, several pages
TIMEOUT = 60

DRIVER = (
    inspect.getsource(version)
    + r'''
import fcntl, json, os, random, signal, sys, time, traceback, warnings
import safe_data
from safe_data import atomic

warnings.simplefilter("ignore")  # the segments of killed writers are recovered: expected
scenario, mode, root, body, seed = sys.argv[1:6]
body = int(body)
rng = random.Random(int(seed))
write = os.write  # the real one, for reports after the traps are set
TRAPPED = [(os, "open"), (os, "stat"), (os, "fstat"), (os, "write"), (os, "fsync"),
           (os, "fchown"), (os, "fchmod"), (os, "replace"), (os, "unlink"), (os, "close"),
           (fcntl, "flock"), (safe_data.Journal, "record"), (atomic.replace, "_fsync")]


def open_store(where):
    journal = safe_data.Journal(os.path.join(where, "journal"))
    return atomic.open(os.path.join(where, "state.json"), journal=journal)


def write_in_place(store):
    """The negative control: no temp file, no rename (the fsyncs do not save it)."""
    data = json.dumps(store.value).encode()
    fd = os.open(store.path, os.O_WRONLY | os.O_TRUNC)
    for start in range(0, len(data), 4096):
        os.write(fd, data[start:start + 4096])
        os.fsync(fd)
    os.close(fd)


commit = atomic.AtomicStore.commit if mode == "atomic" else write_in_place


def trip_at(k, trace):
    """Log each trapped call's name in trace; SIGKILL this process before the k-th."""
    for owner, name in TRAPPED:
        def trapped(*args, _real=getattr(owner, name), _name=name, **kwargs):
            trace.append(_name)
            if len(trace) == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return _real(*args, **kwargs)
        setattr(owner, name, trapped)


def in_child(work):
    """Run work() in a forked child; return (pid, read end of its output pipe)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            work(w)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    os.close(w)
    return pid, r


def finish(pid, r):
    """Wait for the child; return (killed?, everything it wrote)."""
    _, status = os.waitpid(pid, 0)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    return os.WIFSIGNALED(status), out


def one_commit(where, k):
    def work(w):
        store = open_store(where)
        store.value = version(1, body)
        trace = []
        trip_at(k, trace)
        commit(store)
        write(w, json.dumps(trace).encode())
    return finish(*in_child(work))


def steps():
    def fresh(name):
        where = os.path.join(root, name)
        os.makedirs(where)
        with open(os.path.join(where, "state.json"), "w") as f:
            json.dump(version(0, body), f)
        return where

    _, trace = one_commit(fresh("trace"), 0)
    trace = json.loads(trace)
    print(json.dumps({"trace": trace}), flush=True)
    for k in range(1, len(trace) + 2):  # the last one runs to the end
        where = fresh(f"step{k}")
        killed, _ = one_commit(where, k)
        print(json.dumps({"step": k, "dir": where, "killed": killed}), flush=True)


def random_kills(iterations=25, max_delay=0.02):
    with open(os.path.join(root, "state.json"), "w") as f:
        json.dump(version(0, body), f)

    def work(w):
        store = open_store(root)
        os.write(w, b"ready\n")
        while True:
            store.value = version(store.value["n"] + 1, body)
            commit(store)
            os.write(w, b"%d\n" % store.value["n"])

    for i in range(iterations):
        pid, r = in_child(work)
        started = os.read(r, 6)  # the writer has opened the store (or died trying: b"")
        if i % 2 and started:  # every other writer commits at least once, however slow the
            started += os.read(r, 64)  # machine: the run covers kills between commits too
        time.sleep(rng.uniform(0, max_delay))
        os.kill(pid, signal.SIGKILL)
        killed, acks = finish(pid, r)
        with open(os.path.join(root, "state.json"), "rb") as f:
            content = f.read()
        acks = (started + acks).split()[1:]
        print(json.dumps({"acked": int(acks[-1]) if acks else None, "killed": killed,
                          "content": content.decode("latin-1")}), flush=True)
        if not killed:
            break  # the writer could not even load the file


steps() if scenario == "steps" else random_kills()
'''
)


def run_driver(tmp_path, scenario: str, mode: str, seed: int = 0) -> list[dict]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    root = tmp_path / "root"
    root.mkdir()
    proc = subprocess.run(
        [sys.executable, str(script), scenario, mode, str(root), str(BODY), str(seed)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def problem(data: bytes, allowed: set[int]) -> str | None:
    """Why ``data`` is not exactly one whole version numbered in ``allowed`` (None if it is)."""
    if not data:
        return "the file is empty"
    try:
        value = json.loads(data)
    except ValueError as exc:
        return f"the file is not a whole version ({len(data)} bytes): {exc}"
    n = value.get("n")
    if n not in allowed:
        return f"the file holds version {n}, not one of {sorted(allowed)}"
    if value != version(n, BODY):
        return f"the file holds version {n} mixed with another"
    return None


def temps(where) -> list[str]:
    return [name for name in os.listdir(where) if TEMP_NAME.fullmatch(name)]


def version_bytes(n: int) -> bytes:
    return json.dumps(version(n, BODY)).encode()


@pytest.fixture
def quiet_recovery():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", safe_data.JournalWarning)  # killed writers' segments
        yield


def test_a_kill_between_any_two_steps_leaves_the_old_or_the_new_content(tmp_path, quiet_recovery):
    trace, *steps = run_driver(tmp_path, "steps", "atomic")
    calls = trace["trace"]
    # The order that makes it safe: the content is synced before the rename (``_fsync``:
    # fsync, or F_FULLFSYNC on macOS), the old content journaled before it, the directory
    # synced after it.
    replace = calls.index("replace")
    assert calls.index("write") < calls.index("_fsync") < calls.index("record") < replace
    assert calls[replace:].count("fsync") == 1
    assert len(steps) == len(calls) + 1 and all(s["killed"] for s in steps[:-1])
    assert not steps[-1]["killed"]
    outcomes = set()
    temps_left = 0
    for step in steps:
        where = step["dir"]
        data = Path(where, "state.json").read_bytes()
        assert problem(data, {0, 1}) is None, (step, calls[step["step"] - 1 : step["step"]])
        outcomes.add(json.loads(data)["n"])
        temps_left += len(temps(where))
        with safe_data.Journal(os.path.join(where, "journal")) as journal:
            store = atomic.open(os.path.join(where, "state.json"), journal=journal)
            assert temps(where) == []  # opening the store removed the dead writer's temp file
            if store.value["n"] == 1:  # replaced: the old content is in the journal
                assert atomic.versions(store.path, journal)[-1].content == version_bytes(0)
    assert outcomes == {0, 1}  # kills landed on both sides of the rename
    assert temps_left > 0  # and some left a temp file behind


def test_negative_control_in_place_writes_are_caught_at_some_step(tmp_path, quiet_recovery):
    _, *steps = run_driver(tmp_path, "steps", "inplace")
    found = [problem(Path(s["dir"], "state.json").read_bytes(), {0, 1}) for s in steps]
    assert any(p == "the file is empty" for p in found)
    assert any(p and "not a whole version" in p and "0 bytes" not in p for p in found)


def check_random_kills(snapshots) -> list[str]:
    """The problems of a run of random kills; each writer started from the last one's file."""
    problems, previous = [], 0
    for snap in snapshots:
        base = snap["acked"] if snap["acked"] is not None else previous
        data = snap["content"].encode("latin-1")
        found = problem(data, {base, base + 1})
        if found:
            problems.append(found)
            break  # the next writer starts from a damaged file
        previous = json.loads(data)["n"]
    return problems


def test_random_kills_during_commit_leave_a_whole_version_and_lose_nothing(tmp_path, quiet_recovery):
    snapshots = run_driver(tmp_path, "random", "atomic", seed=1)
    assert len(snapshots) == 25 and all(s["killed"] for s in snapshots)
    assert check_random_kills(snapshots) == []
    root = tmp_path / "root"
    final = json.loads(snapshots[-1]["content"])["n"]
    assert final >= 12  # every other writer committed before its kill (random_kills)
    with safe_data.Journal(root / "journal") as journal:
        store = atomic.open(root / "state.json", journal=journal)
        assert store.value["n"] == final and temps(root) == []
        journaled = {json.loads(v.content)["n"] for v in atomic.versions(store.path, journal)}
    assert journaled >= set(range(final))  # every version that was replaced


def test_negative_control_random_kills_catch_in_place_writes(tmp_path, quiet_recovery):
    snapshots = run_driver(tmp_path, "random", "inplace", seed=1)
    assert check_random_kills(snapshots) != []


FAULTED = r"""
import sys
from safe_data import atomic

store = atomic.open(sys.argv[1])
store.value = "new"
try:
    store.commit()
except OSError as exc:
    print(exc)
"""


@pytest.mark.parametrize("how", ["abort", "eio"])
def test_a_fault_at_the_rename_keeps_the_old_file(tmp_path, quiet_recovery, how):
    """The fault point just before the rename (safe_data._faults): a crash there (SIGABRT)
    leaves the old file and a temp file the next open removes; a failing rename (EIO)
    raises, and the commit removes its temp file itself."""
    path = tmp_path / "state.json"
    path.write_text('"old"')
    env = dict(
        os.environ, SAFE_DATA_FAULT=f"atomic.replace:1:{how}", SAFE_DATA_HOME=str(tmp_path / "journal")
    )
    proc = subprocess.run(
        [sys.executable, "-c", FAULTED, str(path)], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert path.read_text() == '"old"'
    if how == "abort":
        assert proc.returncode == -6 and len(temps(tmp_path)) == 1
        atomic.open(path)
    else:
        assert proc.returncode == 0 and "fault injected at atomic.replace" in proc.stdout
    assert temps(tmp_path) == []
