"""Model-based: random operation sequences behave like the builtin, and every value that
leaves a container is in the journal exactly once.

Each added value is a fresh object, so "what left" is exact: everything ever added minus
what is still inside must equal what the journal holds.
"""

import itertools
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safe_data

from ._helpers import discarded

_fresh = itertools.count(10_000)


def fresh():
    return next(_fresh) * 1.0  # floats: never cached, each a distinct object


LIST_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "append",
                "extend",
                "insert",
                "pop",
                "pop_i",
                "remove",
                "del_i",
                "del_slice",
                "set_i",
                "set_slice",
                "clear",
                "imul",
                "iadd",
                "sort",
                "reinit",
            ]
        ),
        st.integers(-8, 8),
        st.integers(-8, 8),
        st.integers(-3, 3).filter(bool),
    ),
    max_size=40,
)


def apply_list(x, op, a, b, step):
    n = len(x)
    if op == "append":
        x.append(fresh())
    elif op == "extend":
        x.extend([fresh() for _ in range(abs(a) % 3)])
    elif op == "insert":
        x.insert(a, fresh())
    elif op == "pop" and n:
        x.pop()
    elif op == "pop_i" and n:
        x.pop(a % n)
    elif op == "remove" and n:
        x.remove(x[a % n])
    elif op == "del_i" and n:
        del x[a % n]
    elif op == "del_slice":
        del x[a:b:step]
    elif op == "set_i" and n:
        x[a % n] = fresh()
    elif op == "set_slice":
        size = len(range(*slice(a, b, step).indices(n))) if step != 1 else abs(a) % 3
        x[a:b:step] = [fresh() for _ in range(size)]
    elif op == "clear":
        x.clear()
    elif op == "imul":
        x *= a % 2  # 0 discards, 1 keeps
    elif op == "iadd":
        x += [fresh()]
    elif op == "sort":
        x.sort()
    elif op == "reinit":
        x.__init__([fresh()])


def gone_values(container, ever):
    """Values once inside ``container`` (tracked by identity in ``ever``) that are not now."""
    inside = {id(v) for v in (container.values() if isinstance(container, dict) else container)}
    return Counter(v for i, v in ever.items() if i not in inside)


def track(container, ever):
    for v in container.values() if isinstance(container, dict) else container:
        ever.setdefault(id(v), v)  # holding v keeps its id unique


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=LIST_OPS)
def test_list_accounting(impl, tmp_path_factory, ops):
    with safe_data.Journal(tmp_path_factory.mktemp("j")) as j:
        safe = impl.SafeList([fresh() for _ in range(6)], journal=j)
        ever = {}
        track(safe, ever)
        for op in ops:
            apply_list(safe, *op)
            track(safe, ever)
        assert Counter(discarded(j)) == gone_values(safe, ever), ops


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=LIST_OPS)
def test_list_behaves_like_the_builtin(impl, tmp_path_factory, ops):
    with safe_data.Journal(tmp_path_factory.mktemp("j")) as j:
        global _fresh
        start = next(_fresh)
        _fresh = itertools.count(start)
        safe = impl.SafeList([float(i) for i in range(6)], journal=j)
        for op in ops:
            apply_list(safe, *op)
        _fresh = itertools.count(start)
        plain = [float(i) for i in range(6)]
        for op in ops:
            apply_list(plain, *op)
        assert safe == plain


DICT_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["set", "del", "pop", "pop_default", "popitem", "update", "ior", "setdefault", "clear", "reinit"]
        ),
        st.sampled_from("abcde"),
    ),
    max_size=40,
)


def apply_dict(d, op, k):
    if op == "set":
        d[k] = fresh()
    elif op == "del" and k in d:
        del d[k]
    elif op == "pop" and k in d:
        d.pop(k)
    elif op == "pop_default":
        d.pop(k, None)
    elif op == "popitem" and d:
        d.popitem()
    elif op == "update":
        d.update({k: fresh(), "z": fresh()})
    elif op == "ior":
        d |= [(k, fresh())]
    elif op == "setdefault":
        d.setdefault(k, fresh())
    elif op == "clear":
        d.clear()
    elif op == "reinit":
        d.__init__({k: fresh()})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=DICT_OPS)
def test_dict_accounting_and_behaviour(impl, tmp_path_factory, ops):
    global _fresh
    with safe_data.Journal(tmp_path_factory.mktemp("j")) as j:
        start = next(_fresh)
        _fresh = itertools.count(start)
        safe = impl.SafeDict({"a": fresh(), "b": fresh()}, journal=j)
        ever = {}
        track(safe, ever)
        for op in ops:
            apply_dict(safe, *op)
            track(safe, ever)
        _fresh = itertools.count(start)
        plain = {"a": fresh(), "b": fresh()}
        for op in ops:
            apply_dict(plain, *op)
        assert safe == plain and list(safe) == list(plain)
        assert Counter(discarded(j)) == gone_values(safe, ever), ops


SET_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "add",
                "remove",
                "discard",
                "pop",
                "clear",
                "difference_update",
                "intersection_update",
                "symmetric_difference_update",
                "isub",
                "iand",
                "ixor",
                "update",
                "reinit",
            ]
        ),
        st.frozensets(st.integers(0, 9), max_size=4),
    ),
    max_size=40,
)


def apply_set(s, op, other):
    if op == "add":
        s.add(min(other, default=0))
    elif op == "remove" and other and min(other) in s:
        s.remove(min(other))
    elif op == "discard":
        s.discard(min(other, default=0))
    elif op == "pop" and s:
        s.pop()
    elif op == "clear":
        s.clear()
    elif op in ("difference_update", "intersection_update", "symmetric_difference_update", "update"):
        getattr(s, op)(list(other))
    elif op == "isub":
        s -= set(other)
    elif op == "iand":
        s &= set(other)
    elif op == "ixor":
        s ^= set(other)
    elif op == "reinit":
        s.__init__(other)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=SET_OPS)
def test_set_accounting_and_behaviour(impl, tmp_path_factory, ops):
    with safe_data.Journal(tmp_path_factory.mktemp("j")) as j:
        safe = impl.SafeSet({1, 2, 3}, journal=j)
        model = {1, 2, 3}
        expected = Counter()
        for op in ops:
            before = set(model)
            apply_set(safe, *op)
            if op[0] == "pop":  # arbitrary element: follow the safe set
                model = set(safe)
            else:
                apply_set(model, *op)
            # re-initialising replaces everything: the whole old content is journaled
            expected.update(before if op[0] == "reinit" else before - model)
            assert safe == model
        assert Counter(discarded(j)) == expected, ops
