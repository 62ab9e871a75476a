"""Group 17: a plain dict watched by ``safe_data.watch()`` (CPython 3.12+, the C extension).

* ``17 watch: read d[k]``: 100k lookups in a watched dict and in a plain one (``x_builtin``,
  target <= 1.05: CPython calls the watcher on changes only).
* ``17 watch: overwrite``: 100k overwrites of existing keys, each losing a small int, in a
  plain dict (``builtin``), a ``SafeDict`` (``c``) and a watched dict (``watched``), whose
  round ends with ``flush_watched()`` so that every record it owes is written inside it.
"""

import sys

import pytest
from benchutil import run

import safe_data
from safe_data import _impl

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 12) or not _impl.EXTENSION,
    reason="dict watchers: CPython 3.12+ and the C extension",
)

N = 100_000
KEYS = [f"key-{i:06d}" for i in range(1000)] * (N // 1000)


def read_loop(d, keys):
    for k in keys:
        d[k]


def overwrite_loop(d, keys):
    for i, k in enumerate(keys):
        d[k] = i


@pytest.mark.parametrize("variant", ["builtin", "watched"])
def test_watched_reads(benchmark, tmp_path, variant):
    journal = safe_data.Journal(tmp_path / "j", segment_size=256 << 20)
    d = dict.fromkeys(KEYS, 0)
    if variant == "watched":
        safe_data.watch(d, "d", journal=journal)
    run(benchmark, read_loop, args=(d, KEYS), group="17 watch: read d[k]", variant=variant, ops=N, rounds=25)
    if variant == "watched":
        safe_data.unwatch(d)
    journal.close()


@pytest.mark.parametrize("variant", ["builtin", "c", "watched"])
def test_watched_overwrites(benchmark, tmp_path, variant):
    journal = safe_data.Journal(tmp_path / "j", segment_size=256 << 20)
    d = dict.fromkeys(KEYS, -1)
    if variant == "c":
        d = safe_data.SafeDict(d, name="d", journal=journal)
    elif variant == "watched":
        safe_data.watch(d, "d", journal=journal)

    def overwrite(d, keys):
        overwrite_loop(d, keys)
        safe_data.flush_watched()

    run(benchmark, overwrite, args=(d, KEYS), group="17 watch: overwrite", variant=variant, ops=N, rounds=10)
    if variant == "watched":
        safe_data.unwatch(d)
    journal.close()
