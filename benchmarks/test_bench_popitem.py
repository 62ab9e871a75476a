"""Group 15: ``SafeDict.popitem()`` costs the same per call whatever the dict's size.

Each round drains a dict of 1k or 1M entries, one ``popitem()`` at a time (the dict is
built in ``setup``, outside the timing).  ``x_1k``:
time per call over the 1k dict's in the same run.  Target: 1M entries <= 2x 1k.

Why it is a group: a delete by key leaves a dead slot at the end of a dict's entries, and
a ``popitem()`` that found the last item by walking back from the end paid for every slot
left by the calls before it, so draining a dict was quadratic.
"""

import pytest
from benchutil import run

import safe_data

SIZES = {"1k": 1_000, "1M": 1_000_000}


@pytest.mark.parametrize("size", list(SIZES))
def test_popitem_per_call_by_size(benchmark, tmp_path, size):
    journal = safe_data.Journal(tmp_path / "j", segment_size=64 << 20)
    contents = dict.fromkeys(range(SIZES[size]), 0)

    def setup():
        return (safe_data.SafeDict(contents, name="d", journal=journal),), {}

    def drain(d):
        for _ in range(len(d)):
            d.popitem()

    group = "15 popitem: per call by size"
    run(benchmark, drain, group=group, variant=size, ops=SIZES[size], rounds=5, setup=setup)
    journal.close()
