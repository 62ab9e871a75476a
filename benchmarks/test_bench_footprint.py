"""Group 5: what safe_data costs besides time per operation.

Import time
    Rows ``python -c pass`` and ``import safe_data``: wall time of a fresh interpreter
    (``sys.executable``), ROUNDS each.  ``import_ms`` (ratio summary) = median(import) -
    median(pass).  The bytecode cache is warm (warm-up rounds write it under a temporary
    PYTHONPYCACHEPREFIX: nothing is written into the source tree, and a
    PYTHONDONTWRITEBYTECODE in the environment cannot turn every run into a compile).
    ``importtime_cumulative_ms`` = median over IMPORTTIME_RUNS of the cumulative time
    ``python -X importtime`` reports for the ``safe_data`` package.

Python heap growth over 1M journaled discards
    1M ``pop()`` of small ints from a list of CHUNK values, refilled with the base-class
    ``list.extend`` after every CHUNK pops, so the list's own storage is the same at the
    start and the end and any growth is the journaling's.  Timed row: the 1M pops without
    tracing (ns_per_op; ``rss_anon_growth_kib`` = growth of RssAnon, which also sees C
    allocations and leaks that tracemalloc cannot).  Then the same 1M pops under tracemalloc:
    ``heap_current_growth_kib`` (retained after the loop) and ``heap_peak_growth_kib``
    (transient high-water mark), both relative to the start; the twin is traced over
    100k pops only (``heap_traced_pops``: tracemalloc makes it ~15x slower).  The builtin
    row is the control: the harness's own noise.  The journal segment (256 MiB, file-backed mmap) is
    not on the Python heap nor in RssAnon.

Disk bytes per small-int discard
    DISK_POPS ``pop()`` of small ints (0..63) from a list of 1,000 (its indexes take 2
    bytes) named ``bench-list``, timed; ``disk_bytes_per_discard`` = the journal's frame bytes
    (``bytes_written``) / DISK_POPS, for compact frames (format version 2, the default)
    and version-1 frames (``compact=False``).  A compact record's time difference to the
    one before takes 1 or 2 bytes when pops are less than 8 us apart (the C rows), 3
    beyond (the twin's).
"""

import gc
import os
import statistics
import subprocess
import sys
import tracemalloc

import pytest
from benchutil import container_factory, run

ROUNDS = 15
IMPORTTIME_RUNS = 7
TOTAL = 1_000_000
CHUNK = 10_000
TRACED = {"builtin": TOTAL, "c": TOTAL, "twin": 100_000}  # tracemalloc makes the twin ~15x slower
VALUES = list(range(CHUNK))
DISK_POPS = 100_000
SMALL = [i % 64 for i in range(1000)]


# --- import time -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def python_env(tmp_path_factory):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDONTWRITEBYTECODE", "SAFE_DATA_NO_EXTENSIONS", "PYTHONPROFILEIMPORTTIME")
    }
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    return env


def run_python(env, *args):
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def importtime_ms(env, package="safe_data") -> float:
    """Cumulative import time of ``package`` reported by ``-X importtime``, in ms."""
    stderr = run_python(env, "-X", "importtime", "-c", f"import {package}").stderr
    for line in stderr.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == package:
            return int(parts[1]) / 1000
    raise AssertionError(f"{package} not in -X importtime output:\n{stderr}")


@pytest.mark.parametrize("variant", ["python -c pass", "import safe_data"])
def test_import_time(benchmark, python_env, variant):
    code = "pass" if variant == "python -c pass" else "import safe_data"
    run(
        benchmark,
        run_python,
        args=(python_env, "-c", code),
        group="5 footprint: import",
        variant=variant,
        ops=1,
        rounds=ROUNDS,
        warmup_rounds=2,
    )
    if variant == "import safe_data" and benchmark.enabled:
        samples = [importtime_ms(python_env) for _ in range(IMPORTTIME_RUNS)]
        benchmark.extra_info["importtime_cumulative_ms"] = round(statistics.median(samples), 2)


# --- heap growth -------------------------------------------------------------------------------


def rss_anon_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def pops(x, total=TOTAL):
    for _ in range(total // CHUNK):
        for _ in range(CHUNK):
            x.pop()
        list.extend(x, VALUES)


def untraced_pops(x):
    gc.collect()
    before = rss_anon_kib()
    pops(x)
    return rss_anon_kib() - before


def traced_pops(x, total):
    gc.collect()
    tracemalloc.start()
    try:
        pops(x, CHUNK)  # re-allocates the list's storage under tracing: start from steady state
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        pops(x, total)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return current - start, peak - start


@pytest.mark.parametrize("variant", ["builtin", "c", "twin"])
def test_heap_growth(benchmark, journals, variant):
    x = container_factory(variant, journals)("list", VALUES)
    pops(x, CHUNK)  # opens the journal's segment, warms every cache on the path
    rss = run(
        benchmark,
        untraced_pops,
        args=(x,),
        group="5 footprint: heap (1M pops)",
        variant=variant,
        ops=TOTAL,
        rounds=1,
        warmup_rounds=0,
    )
    current, peak = traced_pops(x, TRACED[variant])
    benchmark.extra_info.update(
        rss_anon_growth_kib=rss,
        heap_traced_pops=TRACED[variant],
        heap_current_growth_kib=round(current / 1024, 1),
        heap_peak_growth_kib=round(peak / 1024, 1),
    )


def disk_pops(x, n):
    for _ in range(n // len(SMALL)):
        list.extend(x, SMALL)  # (the base class's: journals nothing)
        for _ in range(len(SMALL)):
            x.pop()


@pytest.mark.parametrize("frames", ["compact", "version 1"])
@pytest.mark.parametrize("variant", ["c", "twin"])
def test_disk_bytes_per_discard(benchmark, journals, variant, frames):
    new = container_factory(variant, journals, compact=frames == "compact")
    x, journal = new("list"), new.journal
    disk_pops(x, len(SMALL))  # opens the segment
    before = journal._writer.bytes_written
    run(
        benchmark,
        disk_pops,
        args=(x, DISK_POPS),
        group="5 footprint: disk bytes per small-int discard",
        variant=f"{variant} {frames}",
        ops=DISK_POPS,
        rounds=1,
        warmup_rounds=0,
    )
    written = journal._writer.bytes_written - before
    benchmark.extra_info.update(disk_bytes_per_discard=round(written / DISK_POPS, 2))
