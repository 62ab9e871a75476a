"""Group 12: reading one container back costs what its records cost, not the journal.

A journal holds one versioned list ("target", 100 records) among N records of another
container, in sealed 16 MiB segments (``sealed``) or in the writer's open segment
(``open``).  Each row is one call (``ops`` = 1, so ``ns_per_op`` is the call's time) of
``history("target")`` or ``restore("target")``, the segment indexes already built (the
first read builds them; see docs/history.md).  ``x_fewest``: this row's time over the same
call's with the fewest others (3k) in the same run.  Target: 300k others <= 3x 3k others.
"""

import pytest

import safe_data

from benchutil import run

OTHERS = {"3k": 3_000, "30k": 30_000, "300k": 300_000, "1M": 1_000_000}
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
    result = run(benchmark, read, group=f"12 {call}: one container, {where} segments",
                 variant=size, ops=1, rounds=7)
    assert len(result) == (TARGET_RECORDS + 1 if call == "history" else len(target))
    journal.close()
