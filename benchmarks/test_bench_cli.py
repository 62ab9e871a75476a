"""Group 6: the ``safe-data`` command on a journal of 1M records.

The journal is written once per session by WRITERS processes at the same time (so
``log`` merges interleaved writers, as it would in production), each popping 2-field
dicts from a ``SafeList`` and overwriting ``SafeDict`` keys: 1M records, 68 MiB in 8
segments (the default segment size, 16 MiB).

First page (target: < 0.5 s)
    Rows ``6 cli: log first page`` [plain, json, table]: wall time from starting
    ``python -m safe_data --journal J log`` (a fresh interpreter: imports included) until
    its first page has been read, after which the process is killed.  A page is
    PAGE_LINES lines on a pipe (plain, ``--json``) and one screen of the rich table on a
    pseudo-terminal PAGE_HEIGHT lines high (table).  ``ops`` = 1: ns_per_op is the
    latency.

Full listing (target: flat memory)
    Row ``6 cli: log --json, full listing`` [json]: ``log --json`` of every record into a
    pipe the benchmark drains.  ``ops`` = records, so ops_per_s is records per second.
    ``rss_anon_growth_kib`` = peak RssAnon (the process's own memory: heap, C
    allocations) during the listing minus RssAnon when the first line arrived, sampled
    from /proc every 10 ms; ``peak_rss_anon_kib`` and ``vm_hwm_kib`` (which also counts
    the pages of the memory-mapped segments, page cache rather than process memory) are
    kept in extra_info.

Checks
    Rows ``6 cli: stats`` and ``6 cli: verify`` [plain]: one full pass each (``ops`` =
    records).

Run with the rest of the suite, or alone:
``python -m pytest benchmarks/test_bench_cli.py --benchmark-only -p no:cacheprovider``;
``python benchmarks/test_bench_cli.py [RECORDS]`` prints the same figures as a plain report.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import threading
import time

import pytest
from benchutil import run

RECORDS = 1_000_000
WRITERS = 4
PAGE_LINES = 50
PAGE_HEIGHT = 50  # rows of the pseudo-terminal; log's first table page is 4 fewer
PAGE_WIDTH = 150
ROUNDS = 5
FIRST_PAGE_TARGET_S = 0.5

_WRITER = textwrap.dedent("""
    import sys, safe_data
    path, n = sys.argv[1], int(sys.argv[2])
    journal = safe_data.Journal(path)
    orders = safe_data.SafeList(({"id": i, "sku": f"sku-{i % 1000}"} for i in range(n)),
                                name="orders", journal=journal)
    stock = safe_data.SafeDict({f"sku-{k}": -1 for k in range(1000)}, name="stock", journal=journal)
    for i in range(n):
        if i % 10:
            orders.pop()
        else:
            stock[f"sku-{i % 1000}"] = i  # every key exists: each assignment journals the old value
    journal.close()
""")


def build_journal(path: str, records: int = RECORDS, writers: int = WRITERS) -> str:
    """Write ``records`` records into ``path`` from ``writers`` concurrent processes."""
    share = records // writers
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, path, str(share + (w < records % writers))])
        for w in range(writers)
    ]
    for proc in procs:
        if proc.wait():
            raise RuntimeError(f"journal writer failed with {proc.returncode}")
    return path


def _cli(journal: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "safe_data", "--journal", journal, *args]


# --- first page ----------------------------------------------------------------------------------


def first_page_seconds(journal: str, mode: str) -> float:
    """Seconds until the first page of ``log`` is read (mode: plain, json or table)."""
    if mode == "table":
        return _first_table_page_seconds(journal)
    args = _cli(journal, "log", *(["--json"] if mode == "json" else []))
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for _ in range(PAGE_LINES):
            if not proc.stdout.readline():
                raise RuntimeError("log ended before its first page")
        return time.perf_counter() - start
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def _first_table_page_seconds(journal: str) -> float:
    # Rows of the first page plus the header and its rule; the page is one screen minus 4.
    wanted = PAGE_HEIGHT - 4 + 2
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", PAGE_HEIGHT, PAGE_WIDTH, 0, 0))
    start = time.perf_counter()
    proc = subprocess.Popen(
        _cli(journal, "log"),
        stdin=slave,
        stdout=slave,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, TERM="xterm-256color"),
    )
    os.close(slave)
    try:
        seen = 0
        while seen < wanted:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                raise RuntimeError("no table page within 30 s")
            seen += os.read(master, 1 << 16).count(b"\n")
        return time.perf_counter() - start
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


# --- full listing --------------------------------------------------------------------------------


def _status_kib(pid: int) -> dict[str, int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            return {
                k: int(v.split()[0])
                for k, v in (line.split(":", 1) for line in f)
                if k in ("RssAnon", "VmHWM")
            }
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return {}


def full_listing(journal: str) -> dict:
    """List every record with ``log --json`` into a pipe; return lines, seconds and memory."""
    samples: list[dict[str, int]] = []
    start = time.perf_counter()
    proc = subprocess.Popen(_cli(journal, "log", "--json"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    stop = threading.Event()

    def sample():
        while not stop.wait(0.01):
            status = _status_kib(proc.pid)
            if status:
                samples.append(status)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines, first_line_sample = 0, None
    while chunk := proc.stdout.read1(1 << 20):
        if first_line_sample is None:
            first_line_sample = len(samples)
        lines += chunk.count(b"\n")
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    proc.wait()
    proc.stdout.close()
    if proc.returncode:
        raise RuntimeError(f"log --json exited with {proc.returncode}")
    anon = [s["RssAnon"] for s in samples if "RssAnon" in s]
    at_first_line = anon[min(first_line_sample or 0, len(anon) - 1)] if anon else 0
    return {
        "lines": lines,
        "seconds": seconds,
        "peak_rss_anon_kib": max(anon, default=0),
        "rss_anon_at_first_line_kib": at_first_line,
        "rss_anon_growth_kib": max(anon, default=0) - at_first_line,
        "vm_hwm_kib": max((s.get("VmHWM", 0) for s in samples), default=0),
    }


def command_seconds(journal: str, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(_cli(journal, *args), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


# --- pytest-benchmark rows -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_journal(tmp_path_factory):
    return build_journal(str(tmp_path_factory.mktemp("cli") / "journal"))


@pytest.mark.parametrize("mode", ["plain", "json", "table"])
def test_log_first_page(benchmark, big_journal, mode):
    seconds = []
    run(
        benchmark,
        lambda: seconds.append(first_page_seconds(big_journal, mode)),
        group="6 cli: log first page",
        variant=mode,
        ops=1,
        rounds=ROUNDS,
        records=RECORDS,
        writers=WRITERS,
        target_s=FIRST_PAGE_TARGET_S,
    )
    benchmark.extra_info["first_page_s_max"] = round(max(seconds), 3)


def test_log_full_listing(benchmark, big_journal):
    figures = {}
    run(
        benchmark,
        lambda: figures.update(full_listing(big_journal)),
        group="6 cli: log --json, full listing",
        variant="json",
        ops=RECORDS,
        rounds=1,
        warmup_rounds=0,
    )
    assert figures["lines"] == RECORDS
    benchmark.extra_info.update({k: v for k, v in figures.items() if k != "seconds"})


@pytest.mark.parametrize("command", ["stats", "verify"])
def test_full_pass(benchmark, big_journal, command):
    run(
        benchmark,
        lambda: command_seconds(big_journal, command),
        group=f"6 cli: {command}",
        variant="plain",
        ops=RECORDS,
        rounds=1,
        warmup_rounds=0,
    )


# --- plain report --------------------------------------------------------------------------------


def report(records: int = RECORDS) -> None:
    with tempfile.TemporaryDirectory(prefix="safe-data-bench-cli-") as tmp:
        journal = os.path.join(tmp, "journal")
        start = time.perf_counter()
        build_journal(journal, records)
        print(f"journal: {records:,} records from {WRITERS} writers in {time.perf_counter() - start:.1f} s")
        for mode in ("plain", "json", "table"):
            times = sorted(first_page_seconds(journal, mode) for _ in range(ROUNDS))
            print(
                f"log first page ({mode}): median {times[len(times) // 2]:.3f} s, "
                f"max {times[-1]:.3f} s (target < {FIRST_PAGE_TARGET_S} s)"
            )
        figures = full_listing(journal)
        print(
            f"log --json, all {figures['lines']:,} records: {figures['seconds']:.1f} s "
            f"({figures['lines'] / figures['seconds']:,.0f} records/s); RssAnon "
            f"{figures['rss_anon_at_first_line_kib']:,} KiB at the first line, peak "
            f"{figures['peak_rss_anon_kib']:,} KiB "
            f"(growth {figures['rss_anon_growth_kib']:,} KiB); "
            f"VmHWM with mapped segments {figures['vm_hwm_kib']:,} KiB"
        )
        for command in ("stats", "verify"):
            print(f"{command}: {command_seconds(journal, command):.1f} s")


if __name__ == "__main__":
    report(int(sys.argv[1]) if len(sys.argv) > 1 else RECORDS)
