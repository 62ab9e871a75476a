"""Group 1: reads and adds, which must cost (almost) nothing over the builtins.

Each round runs N = 100,000 operations in a ``for`` loop inside one function call, so the
per-operation cost dominates the call overhead.  The figure includes the loop itself (what
user code pays); ``net_x_builtin`` in the ratio summary subtracts the bare loop, timed by
``test_empty_loop`` in the same run.

Variants (see conftest.py): builtin, pysubclass (``class PyList(list): pass``), c
(``safe_data._core``), twin (``safe_data._core_py`` on the pure-Python writer).  None of
these operations journals anything; reads are not overridden by either implementation, so
c/twin vs pysubclass isolates safe_data's own overhead from the generic subclass penalty.
"""

import pytest
from benchutil import container_factory, run

N = 100_000
ROUNDS = 25
VARIANTS = ["builtin", "pysubclass", "c", "twin"]

INTS = list(range(N))
KEYS = [f"key-{i:06d}" for i in range(N)]
MISSES = [f"nokey-{i:06d}" for i in range(N // 2)]
PROBES = KEYS[: N // 2] + MISSES  # half hits, half misses for `in`
INT_PROBES = INTS[: N // 2] + list(range(N, N + N // 2))


# --- the timed loops (locals only: no global lookups in the loop) ---------------------------


def loop_only(seq):
    for i in seq:
        pass


def getitem_loop(x, seq):
    for i in seq:
        x[i]


def append_loop(x, seq):
    for v in seq:
        x.append(v)


def iterate(x):
    for v in x:
        pass


def contains_loop(x, seq):
    for k in seq:
        k in x


def get_loop(d, seq):
    for k in seq:
        d.get(k)


def insert_loop(d, seq):
    for k in seq:
        d[k] = k


# --- benchmarks ------------------------------------------------------------------------------


def test_empty_loop(benchmark):
    """Calibration: the bare ``for i in seq: pass`` over a 100k list."""
    run(
        benchmark,
        loop_only,
        group="0 calibration: empty for loop",
        variant="loop",
        ops=N,
        rounds=ROUNDS,
        args=(INTS,),
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_list_getitem(benchmark, journals, variant):
    x = container_factory(variant, journals)("list", INTS)
    run(
        benchmark,
        getitem_loop,
        group="1 read: list x[i]",
        variant=variant,
        ops=N,
        rounds=ROUNDS,
        args=(x, INTS),
        loop_overhead=True,
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_list_append(benchmark, journals, variant):
    new = container_factory(variant, journals)
    # a fresh empty container each round, built outside the timing
    run(
        benchmark,
        append_loop,
        group="1 add: list.append",
        variant=variant,
        ops=N,
        rounds=ROUNDS,
        setup=lambda: ((new("list"), INTS), {}),
        loop_overhead=True,
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_list_iterate(benchmark, journals, variant):
    x = container_factory(variant, journals)("list", INTS)
    run(benchmark, iterate, group="1 read: list iteration", variant=variant, ops=N, rounds=ROUNDS, args=(x,))


@pytest.mark.parametrize("variant", VARIANTS)
def test_set_contains(benchmark, journals, variant):
    s = container_factory(variant, journals)("set", INTS)
    run(
        benchmark,
        contains_loop,
        group="1 read: set `x in s` (half hits)",
        variant=variant,
        ops=N,
        rounds=ROUNDS,
        args=(s, INT_PROBES),
        loop_overhead=True,
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_dict_contains(benchmark, journals, variant):
    d = container_factory(variant, journals)("dict", dict.fromkeys(KEYS, 0))
    run(
        benchmark,
        contains_loop,
        group="1 read: dict `k in d` (half hits)",
        variant=variant,
        ops=N,
        rounds=ROUNDS,
        args=(d, PROBES),
        loop_overhead=True,
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_dict_getitem(benchmark, journals, variant):
    d = container_factory(variant, journals)("dict", zip(KEYS, INTS, strict=True))
    run(
        benchmark,
        getitem_loop,
        group="1 read: dict d[k]",
        variant=variant,
        ops=N,
        rounds=ROUNDS,
        args=(d, KEYS),
        loop_overhead=True,
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_dict_get(benchmark, journals, variant):
    d = container_factory(variant, journals)("dict", zip(KEYS, INTS, strict=True))
    run(
        benchmark,
        get_loop,
        group="1 read: dict d.get(k) (half hits)",
        variant=variant,
        ops=N,
        rounds=ROUNDS,
        args=(d, PROBES),
        loop_overhead=True,
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_dict_insert(benchmark, journals, variant):
    """``d[k] = v`` of new keys: the safe __setitem__ looks the key up first (nothing to
    journal: no old value)."""
    new = container_factory(variant, journals)
    run(
        benchmark,
        insert_loop,
        group="1 add: dict d[k] = v (new keys)",
        variant=variant,
        ops=N,
        rounds=ROUNDS,
        setup=lambda: ((new("dict"), KEYS), {}),
        loop_overhead=True,
    )
