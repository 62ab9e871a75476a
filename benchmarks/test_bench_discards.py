"""Group 2: single discards, each journaled (durability "process") before it happens.

Each round discards N = 100,000 values one call at a time; the container is rebuilt
(refilled from the same value objects, so nothing is deallocated by the discard) in
``setup``, outside the timing.  ``ops_per_s`` is the figure; ``x_builtin`` compares with
the same loop on the builtin, which journals nothing.

Variants: builtin (no journal), c (C containers + C writer), twin (pure-Python containers +
pure-Python writer, i.e. SAFE_DATA_NO_EXTENSIONS=1), twin-cw (pure-Python containers + C
writer).  One journal (256 MiB segments) per test.
"""

import pytest
from benchutil import container_factory, records_written, run

N = 100_000
VARIANTS = ["builtin", "c", "twin", "twin-cw"]
ROUNDS = {"builtin": 20, "c": 30, "twin": 5, "twin-cw": 10}

INTS = list(range(N))
KEYS = [f"key-{i:06d}" for i in range(N)]
RECORD = {"id": 0, "name": "item-000123", "price": 9.99, "qty": 3, "active": True}
DICTS = [dict(RECORD, id=i, name=f"item-{i:06d}") for i in range(N)]
NEW_VALUE = -1  # an object distinct from every old value: each overwrite journals


def pop_loop(x, n):
    for _ in range(n):
        x.pop()


def del_loop(d, keys):
    for k in keys:
        del d[k]


def overwrite_loop(d, keys, value):
    for k in keys:
        d[k] = value


def discard_loop(s, values):
    for v in values:
        s.discard(v)


def bench(benchmark, journals, variant, group, kind, data, target, args):
    new = container_factory(variant, journals)
    run(
        benchmark,
        target,
        group=group,
        variant=variant,
        ops=N,
        rounds=ROUNDS[variant],
        setup=lambda: ((new(kind, data), *args), {}),
        durability="process",
    )
    if variant != "builtin":  # every timed discard (and the warm-up round's) was journaled
        calls = ROUNDS[variant] + 1 if benchmark.enabled else 1  # --benchmark-disable: one call
        assert records_written(new) == N * calls


@pytest.mark.parametrize("variant", VARIANTS)
def test_pop_small_ints(benchmark, journals, variant):
    bench(benchmark, journals, variant, "2 discard: list.pop() small int", "list", INTS, pop_loop, (N,))


@pytest.mark.parametrize("variant", VARIANTS)
def test_pop_5field_dicts(benchmark, journals, variant):
    bench(benchmark, journals, variant, "2 discard: list.pop() 5-field dict", "list", DICTS, pop_loop, (N,))


@pytest.mark.parametrize("variant", VARIANTS)
def test_dict_del(benchmark, journals, variant):
    bench(
        benchmark,
        journals,
        variant,
        "2 discard: del d[k] (str key, int value)",
        "dict",
        dict(zip(KEYS, INTS, strict=True)),
        del_loop,
        (KEYS,),
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_dict_overwrite(benchmark, journals, variant):
    bench(
        benchmark,
        journals,
        variant,
        "2 discard: d[k] = v overwrite",
        "dict",
        dict(zip(KEYS, INTS, strict=True)),
        overwrite_loop,
        (KEYS, NEW_VALUE),
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_set_discard(benchmark, journals, variant):
    bench(
        benchmark, journals, variant, "2 discard: s.discard(x) small int", "set", INTS, discard_loop, (INTS,)
    )
