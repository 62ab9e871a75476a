"""Group 12: reading one container back costs what its records cost, not the journal.

A journal holds one versioned list ("target", 100 records) among N records of another
container, in sealed 16 MiB segments (``sealed``) or in the writer's open segment
(``open``).  Each row is one call (``ops`` = 1, so ``ns_per_op`` is the call's time) of
``history("target")`` or ``restore("target")``, the segment indexes already built (the
first read builds them; see docs/history.md).  ``x_fewest``: this row's time over the same
call's with the fewest others (3k) in the same run.  Target: 300k others <= 3x 3k others.
"""

import os

import pytest
from benchutil import run

import safe_data

OTHERS = {"3k": 3_000, "30k": 30_000, "300k": 300_000, "1M": 1_000_000}
# SAFE_DATA_BENCH_10M=1: 10M others too (half a gigabyte of journal, minutes to write)
if os.environ.get("SAFE_DATA_BENCH_10M"):
    OTHERS["10M"] = 10_000_000
TARGET_RECORDS = 100


def _journal(path, others: int, sealed: bool):
    journal = safe_data.Journal(path, segment_size=16 << 20)
    target = safe_data.SafeList(range(1000), name="target", journal=journal, versioned=True)
    noise = safe_data.SafeDict(name="noise", journal=journal)
    every = others // TARGET_RECORDS
    for i in range(others):
        noise[i % 1000] = i
        if i % every == 0:
            target.pop()
    if sealed:
        journal.seal()
    return journal, target


@pytest.mark.parametrize("where", ["sealed", "open"])
@pytest.mark.parametrize("size", list(OTHERS))
@pytest.mark.parametrize("call", ["history", "restore"])
def test_one_container_among_others(benchmark, tmp_path, call, size, where):
    journal, target = _journal(tmp_path / "j", OTHERS[size], where == "sealed")
    if call == "history":

        def read():
            return safe_data.history("target", journal)
    else:

        def read():
            return safe_data.restore("target", journal=journal)

    read()  # builds the indexes
    result = run(
        benchmark, read, group=f"12 {call}: one container, {where} segments", variant=size, ops=1, rounds=7
    )
    assert len(result) == (TARGET_RECORDS + 1 if call == "history" else len(target))
    journal.close()


# --- group 14: the whole application at once, and what a transaction costs ---------------------
# "14 restore_all: N containers": restore_all() of N versioned lists of 20 records each
# ("all") against restore() of each one by one ("each", through the segment indexes);
# ``x_each`` = all / each.  Target: restore_all of 100 containers <= 0.5x restoring each.
# "14 transaction": a versioned list's append outside any transaction ("op"), inside an open
# one ("op in a transaction": the record watcher's cost), and a transaction holding one
# append ("transaction of 1 op": its two markers); ``x_op`` = time per op / "op".

CONTAINERS = {"100 containers": 100, "1000 containers": 1000}
RECORDS_EACH = 20


def _many_containers(path, n: int):
    journal = safe_data.Journal(path, segment_size=16 << 20)
    lists = [safe_data.SafeList(name=f"c{i}", journal=journal, versioned=True) for i in range(n)]
    for r in range(RECORDS_EACH - 1):
        for lst in lists:
            lst.append(r)
    journal.seal()
    return journal


@pytest.mark.parametrize("how", ["all", "each"])
@pytest.mark.parametrize("size", list(CONTAINERS))
def test_restore_all(benchmark, tmp_path, size, how):
    n = CONTAINERS[size]
    journal = _many_containers(tmp_path / "j", n)
    if how == "all":

        def read():
            return dict(safe_data.restore_all(journal=journal))
    else:

        def read():
            return {f"c{i}": safe_data.restore(f"c{i}", journal=journal) for i in range(n)}

    read()  # builds the indexes
    result = run(
        benchmark, read, group=f"14 restore_all: {size}", variant=how, ops=1, rounds=3 if n > 100 else 7
    )
    assert len(result) == n and result["c0"] == list(range(RECORDS_EACH - 1))
    journal.close()


OPS_PER_ROUND = 2000


@pytest.mark.parametrize("how", ["op", "op in a transaction", "transaction of 1 op"])
def test_transaction_cost(benchmark, tmp_path, how):
    journal = safe_data.Journal(tmp_path / "j", segment_size=256 << 20)
    lst = safe_data.SafeList(name="l", journal=journal, versioned=True)
    append, transaction = lst.append, safe_data.transaction
    if how == "op":

        def work():
            for i in range(OPS_PER_ROUND):
                append(i)
    elif how == "op in a transaction":

        def work():
            with transaction(note="bench", journal=journal):
                for i in range(OPS_PER_ROUND):
                    append(i)
    else:

        def work():
            for i in range(OPS_PER_ROUND):
                with transaction(note="bench", journal=journal):
                    append(i)

    run(benchmark, work, group="14 transaction", variant=how, ops=OPS_PER_ROUND, rounds=15)
    journal.close()
