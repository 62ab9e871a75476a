"""Group 7: getting values back out of the journal (C decoder).

``discarded``   ``safe_data.discarded(name)`` of a container whose ``clear()`` journaled 1M
                small ints (one record): values read back per second.
``restore``     ``safe_data.restore(name)`` of a versioned list of 1M small ints (its
                creation snapshot) followed by 1,000 journaled pops: the state rebuilt
                from the snapshot and the replayed records.
Target: >= 1M values/s.  ``ops`` = values returned, so ``ops_per_s`` is values per second.
"""

from benchutil import run

import safe_data

N = 1_000_000


def test_discarded(benchmark, tmp_path):
    with safe_data.Journal(tmp_path / "j", segment_size=64 << 20) as journal:
        safe_data.SafeList(range(N), name="big", journal=journal).clear()
        result = run(
            benchmark,
            safe_data.discarded,
            group="7 restore: 1M small ints",
            variant="discarded",
            ops=N,
            rounds=5,
            args=("big", journal),
        )
        assert len(result) == N


def test_restore_versioned(benchmark, tmp_path):
    with safe_data.Journal(tmp_path / "j", segment_size=64 << 20) as journal:
        lst = safe_data.SafeList(range(N), name="v", journal=journal, versioned=True)
        for _ in range(1000):
            lst.pop()
        result = run(
            benchmark,
            lambda: safe_data.restore("v", journal=journal),
            group="7 restore: 1M small ints",
            variant="restore",
            ops=N - 1000,
            rounds=5,
        )
        assert result == lst
