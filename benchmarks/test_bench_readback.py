"""Group 13: reading everything back at least as fast as it was written.

Rows (N = 300,000 records each round; ``ops`` = N, so ``ops_per_s`` is records per second):

* ``write``: group 2's single discard, ``SafeList.pop()`` of small ints one call at a time
  (C containers, durability "process"), the list refilled outside the timing;
* ``records``: ``for record in journal.records(): pass`` over a journal of N such
  records in sealed segments of the default size (16 MiB), their indexes built (the first
  read builds them, docs/history.md): every Record made by the C frame decoder;
* ``record_batches``: ``for batch in journal.record_batches(): pass``, the same records
  in columns (RecordBatch), decoded into them in C;
* ``export jsonl``: ``safe-data export --format jsonl`` of that journal, in process.

``read_over_write``: the write row's time per record over this row's (>= 1: read back at
least as fast as written, in the same run).  Target: ``records`` >= 1.0.
``record_batches`` is the bulk readers' way if Records cannot get there.
"""

import pytest
from benchutil import container_factory, run
from test_bench_discards import pop_loop

import safe_data as sd
from safe_data.cli import main

N = 300_000
INTS = list(range(N))
ROUNDS = {"write": 15, "records": 15, "record_batches": 15, "export jsonl": 3}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A journal of N list.pop() records of small ints, sealed, its indexes built."""
    path = tmp_path_factory.mktemp("readback") / "journal"
    journal = sd.Journal(path)
    queue = sd.SafeList(INTS, name="queue", journal=journal)
    pop_loop(queue, N)
    journal.close()
    journal = sd.Journal(path, readonly=True)
    assert sum(1 for _ in journal.records()) == N
    return journal


def read_all(journal):
    for _ in journal.records():
        pass


def read_batches(journal):
    for _ in journal.record_batches():
        pass


def export_jsonl(journal, output):
    main(
        ["--journal", journal.path, "export", "--format", "jsonl", "--output", output], standalone_mode=False
    )


@pytest.mark.parametrize("variant", list(ROUNDS))
def test_read_back(benchmark, journals, written, tmp_path, variant):
    group = "13 read-back: list.pop() small int"
    if variant == "write":
        new = container_factory("c", journals)
        run(
            benchmark,
            pop_loop,
            group=group,
            variant=variant,
            ops=N,
            rounds=ROUNDS[variant],
            setup=lambda: ((new("list", INTS), N), {}),
        )
    elif variant in ("records", "record_batches"):
        run(
            benchmark,
            read_all if variant == "records" else read_batches,
            group=group,
            variant=variant,
            ops=N,
            rounds=ROUNDS[variant],
            args=(written,),
        )
    else:
        output = tmp_path / "records.jsonl"
        run(
            benchmark,
            export_jsonl,
            group=group,
            variant=variant,
            ops=N,
            rounds=ROUNDS[variant],
            args=(written, str(output)),
        )
        assert sum(1 for _ in output.open()) == N
