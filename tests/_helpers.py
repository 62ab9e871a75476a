"""Plain helpers shared by several test modules (the fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import safe_data
from safe_data.journal import format as fmt
from safe_data.synced.backends.collection_json import JSONDict


def alice_and_bob(impl, path, secret: str, each: int) -> str:
    """A journal at ``path`` where alice (values ``<secret>-<i>``) and bob pop ``each``
    values apiece, in turn, sealed at the half and at the end: two segments, each holding
    records of both.  Its path."""
    with safe_data.Journal(path) as journal:
        alice = impl.SafeList([f"{secret}-{i}" for i in range(each)], name="alice", journal=journal)
        bob = impl.SafeList([f"bob-{i}" for i in range(each)], name="bob", journal=journal)
        for i in range(each):
            alice.pop(0)
            bob.pop(0)
            if i % (each // 2) == each // 2 - 1:
                journal.seal()
    return str(path)


def journal_cli(journal_dir, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    """``safe-data --journal JOURNAL_DIR ARGS...`` in a process of its own, its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "safe_data", "--journal", str(journal_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_until(
    predicate: Callable[[], object], timeout: float, message: str | Callable[[], str], interval: float = 0.02
):
    """Poll ``predicate`` until it is true, and return its value; if it is still false after
    ``timeout`` seconds, fail the test with ``message`` (a callable: what it says then)."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"{message() if callable(message) else message} (waited {timeout} s)")
        time.sleep(interval)
    return result


@contextlib.contextmanager
def recovering():
    """Around opening a journal whose writer was killed: its recovery warns of what a kill
    mid-write left (a torn frame set aside), which such a test expects and inspects itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", safe_data.JournalWarning)
        yield


# The implementation this run must be on: the twin when SAFE_DATA_NO_EXTENSIONS asks for it,
# else the extension wherever it was built (an install on a machine without a C compiler
# has the twin only; with SAFE_DATA_REQUIRE_EXTENSIONS=1, as in CI, a missing extension
# already fails `import safe_data`).
EXTENSION_EXPECTED = (
    os.environ.get("SAFE_DATA_NO_EXTENSIONS", "") in ("", "0")
    and importlib.util.find_spec("safe_data._core") is not None
)


# --- reading what a test's journal holds, and more thread switches --------------------------


@contextlib.contextmanager
def thread_switch_interval(seconds: float):
    """Threads switch every ``seconds`` instead of 5 ms: many more interleavings per run."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def records(journal, container=None):
    return list(journal.records(container, on_error="raise"))


def discarded(journal, container=None):
    """Every discarded value in the journal, flattened (dict records give their values)."""
    out = []
    for r in records(journal, container):
        out.extend(r.values.values() if isinstance(r.values, dict) else r.values)
    return out


# --- the containers' methods (test_methods.py, test_protect.py, test_proxy.py) -----------------

# every method of list, dict and set by what it does to the contents (test_methods.py checks
# that nothing is left out); what the object protocol gives every class is not classified
OBJECT_PROTOCOL = {
    "__class__",
    "__delattr__",
    "__dir__",
    "__doc__",
    "__eq__",
    "__format__",
    "__ge__",
    "__getattribute__",
    "__getstate__",
    "__gt__",
    "__hash__",
    "__init_subclass__",
    "__le__",
    "__lt__",
    "__ne__",
    "__new__",
    "__reduce__",
    "__reduce_ex__",
    "__repr__",
    "__setattr__",
    "__sizeof__",
    "__str__",
    "__subclasshook__",
    "__class_getitem__",
    "__module__",  # listed by dir(collections.deque) since CPython 3.13: an attribute, no behaviour
}

CLASSIFICATION = {
    list: {
        "reading": {
            "__contains__",
            "__getitem__",
            "__iter__",
            "__len__",
            "__reversed__",
            "copy",
            "count",
            "index",
            "__add__",
            "__mul__",
            "__rmul__",
        },
        "adding": {"append", "extend", "insert", "__iadd__"},
        "reordering": {"sort", "reverse"},
        "discarding": {"clear", "pop", "remove", "__delitem__", "__setitem__", "__imul__", "__init__"},
    },
    dict: {
        "reading": {
            "__contains__",
            "__getitem__",
            "__iter__",
            "__len__",
            "__reversed__",
            "copy",
            "get",
            "items",
            "keys",
            "values",
            "fromkeys",
            "__or__",
            "__ror__",
        },
        "adding": {"setdefault"},
        "reordering": set(),
        "discarding": {
            "clear",
            "pop",
            "popitem",
            "__delitem__",
            "__setitem__",
            "update",
            "__ior__",
            "__init__",
        },
    },
    set: {
        "reading": {
            "__contains__",
            "__iter__",
            "__len__",
            "copy",
            "difference",
            "intersection",
            "isdisjoint",
            "issubset",
            "issuperset",
            "symmetric_difference",
            "union",
            "__and__",
            "__or__",
            "__rand__",
            "__ror__",
            "__rsub__",
            "__rxor__",
            "__sub__",
            "__xor__",
        },
        "adding": {"add", "update", "__ior__"},
        "reordering": set(),
        "discarding": {
            "clear",
            "pop",
            "remove",
            "discard",
            "difference_update",
            "intersection_update",
            "symmetric_difference_update",
            "__isub__",
            "__iand__",
            "__ixor__",
            "__init__",
        },
    },
}


# --- planted pickles (test_security.py, test_hostile.py, test_synced_backends_zarr.py) ------


class Canary:
    """Unpickling this makes a directory: proof that a pickle was executed (and, unlike a
    file opened for the proof, nothing left open)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def plant(tmp_path, value):
    """An attacker's journal (its own key) with ``value`` pickled into a valid frame."""
    attacker = safe_data.Journal(tmp_path / "attacker")
    safe_data.SafeList([value], name="planted", journal=attacker).pop()
    attacker.close()
    return [os.path.join(attacker.path, n) for n in os.listdir(attacker.path) if n.endswith(".seg")]


# --- child interpreters (test_synced_backends*.py) ------------------------------------------


def python(code: str, *args: str) -> subprocess.Popen:
    """A child interpreter running ``code`` (dedented), with ``args`` as ``sys.argv[1:]``
    and ``say(text)`` to write a line to its stdout (text mode pipes)."""
    preamble = "import sys\n\ndef say(text):\n    print(text, flush=True)\n\n"
    return subprocess.Popen(
        [sys.executable, "-c", preamble + textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def expect_line(proc: subprocess.Popen, line: str) -> None:
    """Read the next line of a :func:`python` child; fail with its stderr if the line is not
    ``line``."""
    got = proc.stdout.readline()
    if got != line + "\n":
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the child said {got!r}, not {line!r}; its stderr:\n{err}")


def finish(proc: subprocess.Popen) -> str:
    """Wait for a :func:`python` child; return its stdout; fail on a non-zero exit."""
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out


# --- JSON collections (test_synced_core.py, test_synced_buffers.py, test_synced_json.py) -----


def on_disk(collection):
    with open(collection.filename) as f:
        return json.load(f)


class UnlockedJSONDict(JSONDict):
    """A JSONDict without the process lock, for negative controls: only thread locks."""

    def _resource_lock(self):
        from safe_data.synced.data_types.synced_collection import _NULL_CONTEXT

        return _NULL_CONTEXT


# --- a small real filesystem (test_disk_full.py, test_readonly.py) ----------------------------


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size_kib: int):
    """A real tmpfs of ``size_kib`` KiB at ``where``, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)


# --- the SIGKILLed writer and its checker (test_crash.py, test_kill_loop.py) -------------------

KILL_TIMEOUT = 30  # seconds a child may run before the harness gives up on it

# --- the child process ------------------------------------------------------------------------

CHILD = r'''
import os, sys, threading, time
import safe_data as sd

path, mode, run, segment_size, nthreads, durability = sys.argv[1:7]
segment_size, nthreads = int(segment_size), int(nthreads)
journal = sd.Journal(path, segment_size=segment_size, durability=durability)
out_lock = threading.Lock()
started = time.monotonic()


def ack(*ids):
    """Acknowledge: the discarding call that removed these values has returned."""
    line = " ".join(ids) + "\n"
    with out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def value(vid, i, k):
    """Value ids are unique; some values are big (compressed or multi-KB frames)."""
    if i % 53 == 0 and k == "a":
        return vid + "|" + "x" * 3000           # compressible: an lz4 frame
    if i % 71 == 0 and k == "b":
        return vid + "|" + os.urandom(1200).hex()  # incompressible, spans more than a page
    return vid


def containers(t):
    if mode == "plain":  # negative control: builtins journal nothing
        return [], {}, set()
    return (sd.SafeList(name=f"L{t}", journal=journal), sd.SafeDict(name=f"D{t}", journal=journal),
            sd.SafeSet(name=f"S{t}", journal=journal))


def step(L, D, S, t, i):
    ids = {k: f"{run}.{t}.{i}.{k}" for k in "abc"}
    a, b, c = (value(ids[k], i, k) for k in "abc")
    ia, ib, ic = ids["a"], ids["b"], ids["c"]
    key = "k" + ia
    op = i % 13
    if op == 0:
        L.append(a); assert L.pop() == a; ack(ia)
    elif op == 1:
        L.extend([a, b]); L.remove(a); ack(ia); del L[-1]; ack(ib)
    elif op == 2:
        L.append(a); L[-1] = b; ack(ia); assert L.pop(0) == b; ack(ib)
    elif op == 3:
        L.extend([a, b, c]); del L[0:3]; ack(ia, ib, ic)
    elif op == 4:
        L.extend([a, b]); L.clear(); ack(ia, ib)
    elif op == 5:
        D[key] = a; D[key] = b; ack(ia); assert D.pop(key) == b; ack(ib)
    elif op == 6:
        D[key] = a; del D[key]; ack(ia)
    elif op == 7:
        D[key] = a; assert D.popitem() == (key, a); ack(ia)
    elif op == 8:
        D[key] = a; D.update({key: b}); ack(ia); D.clear(); ack(ib)
    elif op == 9:
        S.add(a); S.discard(a); ack(ia)
    elif op == 10:
        S.add(a); S.remove(a); ack(ia)
    elif op == 11:
        S.add(a); assert S.pop() == a; ack(ia)
    else:
        S.update([a, b]); S -= {a, b}; ack(ia, ib)
    assert not L and not D and not S


def worker(t):
    L, D, S = containers(t)
    i = 0
    while time.monotonic() - started < 60:  # never outlive a crashed test run
        if mode == "ack-first" and i == 20:
            # The bug a durability test must catch: acknowledge, then journal.  The
            # parent kills us right after this acknowledgement.
            vid = f"{run}.{t}.{i}.a"
            L.append(vid)
            ack(vid)
            time.sleep(3600)
            L.pop()
        step(L, D, S, t, i)
        i += 1
    os._exit(3)


threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(nthreads)]
for th in threads:
    th.start()
for th in threads:
    th.join()
'''


def run_and_kill(
    script,
    journal_dir,
    *,
    mode="safe",
    run="r0",
    threads=1,
    segment_size=16 << 20,
    durability="process",
    kill_after_acks=None,
    kill_after_seconds=None,
    kill_after_id=None,
    kill_after_start=None,
):
    """Run the child until it has acknowledged ``kill_after_acks`` lines (or the value
    ``kill_after_id``), or for ``kill_after_seconds`` after its first acknowledgement, or
    ``kill_after_start`` seconds after it was started (while it imports, opens and
    recovers the journal, or already discards); SIGKILL it.

    Returns (acknowledged value ids, pid).  Every complete line the child wrote before it
    died counts: each was printed after its discarding call returned.
    """
    stderr_path = Path(script).parent / f"stderr-{run}.txt"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(journal_dir),
                mode,
                run,
                str(segment_size),
                str(threads),
                durability,
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    kill = lambda: proc.send_signal(signal.SIGKILL)  # noqa: E731  (no-op once reaped)
    hung = threading.Event()
    watchdog = threading.Timer(KILL_TIMEOUT, lambda: (hung.set(), kill()))
    watchdog.start()
    timer = None
    if kill_after_start is not None:
        timer = threading.Timer(kill_after_start, kill)
        timer.start()
    acked, lines = [], 0
    try:
        for raw in proc.stdout:
            if not raw.endswith(b"\n"):
                break  # a partial last line: the child died inside write(); not counted
            ids = raw.decode().split()
            acked.extend(ids)
            lines += 1
            if lines == 1 and kill_after_seconds is not None:
                timer = threading.Timer(kill_after_seconds, kill)
                timer.start()
            if lines == kill_after_acks or (kill_after_id is not None and kill_after_id in ids):
                kill()  # keep reading: acknowledgements already in the pipe count too
        proc.wait()
    finally:
        watchdog.cancel()
        if timer is not None:
            timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert not hung.is_set(), f"the kill condition never came; watchdog fired after {KILL_TIMEOUT}s"
    assert proc.returncode == -signal.SIGKILL, (
        f"child exited with {proc.returncode}, not by our SIGKILL:\n{stderr_path.read_text()}"
    )
    assert acked or kill_after_start is not None, (
        f"the child acknowledged nothing:\n{stderr_path.read_text()}"
    )
    return acked, proc.pid


# --- the checker --------------------------------------------------------------------------


def record_values(record):
    v = record.values
    return list(v.values()) if isinstance(v, dict) else list(v)


def value_id(v):
    return v.split("|", 1)[0] if isinstance(v, str) else v


@dataclass
class LossReport:
    acknowledged: int
    missing: set = field(default_factory=set)  # acknowledged but not in the journal
    duplicated: set = field(default_factory=set)  # in the journal more than once
    problems: list = field(default_factory=list)  # verify() after recovery
    recovered: list = field(default_factory=list)  # Journal.recovered
    open_left: list = field(default_factory=list)  # .open segments left after recovery
    writers: set = field(default_factory=set)
    pids: set = field(default_factory=set)

    @property
    def lost_nothing(self):
        return not (self.missing or self.duplicated or self.problems or self.open_left)


def check_acknowledged(journal_dir, acknowledged) -> LossReport:
    """Open the journal (recovering dead writers) and compare it with the acknowledgements."""
    with recovering():  # what recovery set aside is inspected below
        j = safe_data.Journal(journal_dir)
    try:
        counts = Counter()
        report = LossReport(len(acknowledged))
        for r in j.records(on_error="ignore"):
            counts.update(value_id(v) for v in record_values(r))
            report.writers.add(r.writer)
            report.pids.add(r.pid)
        report.missing = {v for v in acknowledged if counts[v] == 0}
        report.duplicated = {v for v, n in counts.items() if n > 1}
        report.problems = j.verify()
        report.recovered = j.recovered
        report.open_left = sorted(p.name for p in Path(journal_dir).glob("*" + fmt.OPEN_SUFFIX))
        return report
    finally:
        j.close()


def summary(report):
    return (
        f"{report.acknowledged} acknowledged, missing {sorted(report.missing)[:10]} "
        f"({len(report.missing)}), duplicated {sorted(report.duplicated)[:10]} "
        f"({len(report.duplicated)}), problems {report.problems}, left open {report.open_left}"
    )


# --- the backup server's tests (test_server.py, test_server_s3.py) ----------------------------


def make_segment(tmp_path, name="j", n=200):
    """A real sealed segment written by safe_data.Journal: (segment id, bytes)."""
    path = tmp_path / name
    journal = safe_data.Journal(path)
    try:
        items = safe_data.SafeList(
            [f"value {i}" for i in range(n)] + [{"k": i} for i in range(20)], journal=journal
        )
        for _ in range(30):
            items.pop()
        items.clear()
    finally:
        journal.close()
    (seg,) = [p for p in os.listdir(path) if p.endswith(".seg")]
    return seg[: -len(".seg")], (path / seg).read_bytes()


# --- the command on a terminal (test_cli.py, test_export.py) ----------------------------------

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(args, cols=120, rows=40) -> tuple[int, str]:
    """Run ``args`` with stdout and stderr on a pseudo-terminal; return (exit code, output
    without its escape sequences)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=dict(os.environ, TERM="xterm"))
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    return proc.wait(timeout=60), ANSI_ESCAPE.sub("", output.decode(errors="replace"))


def frame_extents(data, start: int = fmt.SEGMENT_HEADER_SIZE) -> list[tuple[int, int]]:
    """(offset, length) of each frame of a segment's bytes (either format version), up to
    the first that cannot be located (a zero length: the end)."""
    from safe_data.journal import compact

    classic = struct.unpack_from("<H", data, 8)[0] == fmt.CLASSIC_VERSION
    out, pos = [], start
    while pos < len(data):
        if classic:
            n = struct.unpack_from("<I", data, pos)[0] if len(data) - pos >= 4 else 0
            if not fmt.FRAME_HEADER_SIZE <= n <= len(data) - pos:
                break
        else:
            at = compact.extent(data, pos, len(data))
            if at is None:
                break
            n = at[1] - pos
        out.append((pos, n))
        pos += n
    return out


def timeless(data, offset: int) -> bytes:
    """The compact frame at ``offset`` but for what depends on the clock or the thread:
    its length, CRC, time difference, and a definition's thread."""
    from safe_data.journal import compact

    body, end = compact.extent(data, offset, len(data))
    op, rest = data[body + 4], body + 5
    if op == fmt.OP_DEFINE:
        _, after = compact.varint(data, rest, end)
        return bytes(data[body + 4 : after]) + bytes(data[after + 8 : end])
    _, after = compact.varint(data, rest, end)
    return bytes(data[body + 4 : rest]) + bytes(data[after:end])
