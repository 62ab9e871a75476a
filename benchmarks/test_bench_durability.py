"""Group 4: the price of durability, ``SafeList.pop()`` of small ints (C containers + C writer).

``process``  the record is in the shared page cache when pop() returns (no syscall)
``batch``    as process, plus a background thread fdatasync()s the segment every
             ``batch_interval`` (default 0.05 s)
``fsync``    fdatasync() of the segment in every pop() (hence far fewer ops per round)

Each round pops N values (the list is rebuilt in ``setup``, outside the timing).  A
process/batch round lasts ~40 ms (about one flush interval) and the figure is the mean of
30 rounds (see benchutil.py), so the flusher's fdatasync and the page faults it causes
(written-back pages are write-protected again) are in the figure.
``batch_over_process`` = batch time per op / process time per op.  Each mode writes to its
own journal, closed after its test (which stops the batch flusher).

Cross-check: rows timed one after the other see the kernel in different states, so the
``batch`` test also alternates INTERLEAVED rounds on a "process" and a "batch" journal in
one loop and stores ``interleaved_batch_over_process`` (ratio of mean round times).

Group commit: ``fsync`` mode with 1, 4 and 8 threads, each popping FSYNC_POPS values from
its own list on one journal.  A pop returns once its record is on disk, but concurrent
pops share an fdatasync, so more threads should get more done: ``speed_over_one_thread``
= the 1-thread row's time per pop / this row's (targets: 2 for 4 threads, 3 for 8), and
``records_per_fdatasync`` shows the grouping.  The rows are timed one after the other, and
a shared disk's fdatasync latency can move several-fold between them; so the multi-thread
rows also alternate INTERLEAVED rounds of one thread and of theirs on one journal and store
``interleaved_speed_over_one_thread`` (ratio of median times per pop).
"""

import statistics
import threading
import time

import pytest
from benchutil import container_factory, run

from safe_data._core import SafeList

MODES = {  # durability: (pops per round, rounds)
    "process": (200_000, 30),
    "batch": (200_000, 30),
    "fsync": (1_000, 5),
}
INTS = list(range(max(n for n, _ in MODES.values())))
INTERLEAVED_ROUNDS = 15
FSYNC_THREADS = (1, 4, 8)
FSYNC_POPS = 250  # per thread and round
FSYNC_THREAD_ROUNDS = 5
FSYNC_INTERLEAVED_ROUNDS = 7


def pop_loop(x, n):
    for _ in range(n):
        x.pop()


@pytest.mark.parametrize("durability", list(MODES))
def test_pop_durability(benchmark, journals, durability):
    n, rounds = MODES[durability]
    new = container_factory("c", journals, durability=durability)
    values = INTS[:n]
    run(
        benchmark,
        pop_loop,
        group="4 durability: SafeList.pop() small int [c]",
        variant=durability,
        ops=n,
        rounds=rounds,
        setup=lambda: ((new("list", values), n), {}),
        batch_interval=new.journal.batch_interval if durability == "batch" else None,
    )
    if durability == "batch" and benchmark.enabled:
        benchmark.extra_info["interleaved_batch_over_process"] = interleaved(journals, n)


def interleaved(journals, n):
    news = {mode: container_factory("c", journals, durability=mode) for mode in ("process", "batch")}
    values = INTS[:n]
    times = {mode: [] for mode in news}
    for _ in range(INTERLEAVED_ROUNDS + 1):  # the first round is a warm-up
        for mode, new in news.items():
            x = new("list", values)
            t0 = time.perf_counter()
            pop_loop(x, n)
            times[mode].append(time.perf_counter() - t0)
    return round(statistics.mean(times["batch"][1:]) / statistics.mean(times["process"][1:]), 3)


def pop_in_threads(lists):
    threads = [threading.Thread(target=pop_loop, args=(x, len(x))) for x in lists]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.mark.parametrize("threads", FSYNC_THREADS)
def test_fsync_pops_from_threads(benchmark, journals, threads):
    journal = journals.open("c", durability="fsync")
    values = INTS[:FSYNC_POPS]
    run(
        benchmark,
        pop_in_threads,
        group="4 durability: fsync SafeList.pop() small int, threads [c]",
        variant=f"{threads} thread" + "s" * (threads > 1),
        ops=threads * FSYNC_POPS,
        rounds=FSYNC_THREAD_ROUNDS,
        setup=lambda: (([SafeList(values, name=f"t{t}", journal=journal) for t in range(threads)],), {}),
    )
    benchmark.extra_info["records_per_fdatasync"] = round(
        journal._writer.seq / max(journal._writer.flushes, 1), 2
    )
    if threads > 1 and benchmark.enabled:
        speed, grouping = interleaved_threads(journal, threads)
        benchmark.extra_info["interleaved_speed_over_one_thread"] = speed
        benchmark.extra_info["interleaved_records_per_fdatasync"] = grouping


def interleaved_threads(journal, threads):
    """Alternating rounds of 1 and ``threads`` threads: (median time per pop of one thread /
    of ``threads``, records per fdatasync in the ``threads`` rounds)."""
    writer = journal._writer
    values = INTS[:FSYNC_POPS]
    per_pop = {1: [], threads: []}
    flushes = 0
    for round_ in range(FSYNC_INTERLEAVED_ROUNDS + 1):  # the first round is a warm-up
        for n in per_pop:
            lists = [SafeList(values, name=f"i{t}", journal=journal) for t in range(n)]
            before = writer.flushes
            t0 = time.perf_counter()
            pop_in_threads(lists)
            per_pop[n].append((time.perf_counter() - t0) / (n * FSYNC_POPS))
            if n == threads and round_:
                flushes += writer.flushes - before
    speed = statistics.median(per_pop[1][1:]) / statistics.median(per_pop[threads][1:])
    grouping = FSYNC_INTERLEAVED_ROUNDS * threads * FSYNC_POPS / max(flushes, 1)
    return round(speed, 3), round(grouping, 2)
