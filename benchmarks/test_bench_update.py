"""Group 16: ``update()`` with new keys, and ``SafeDict(mapping)``, against the builtin.

Each round updates an empty dict (built in ``setup``, outside the timing) with a plain
dict of 10 or 1,000 new int keys, or builds one from it; nothing is overwritten, so nothing
is journaled: what is measured is what the journaling costs when there is nothing to
keep.  ``x_builtin``: time per call over ``dict``'s.  Target: <= 2x for 1,000 keys.
"""

import pytest
from benchutil import run

import safe_data

SIZES = {"10": 10, "1000": 1_000}
CALLS = 1_000


@pytest.mark.parametrize("variant", ["builtin", "c"])
@pytest.mark.parametrize("size", list(SIZES))
def test_update_with_new_keys(benchmark, tmp_path, size, variant):
    journal = safe_data.Journal(tmp_path / "j")
    new = {i: i for i in range(SIZES[size])}

    def setup():
        if variant == "builtin":
            return ([{} for _ in range(CALLS)],), {}
        return ([safe_data.SafeDict(journal=journal) for _ in range(CALLS)],), {}

    def update_each(dicts):
        for d in dicts:
            d.update(new)

    run(
        benchmark,
        update_each,
        group=f"16 update: {size} new keys",
        variant=variant,
        ops=CALLS,
        rounds=7,
        setup=setup,
    )
    journal.close()
