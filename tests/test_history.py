"""Getting data back: history, discarded, undo, restore (exact when versioned) and diff."""

import copy
import datetime
import os
import pickle
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safe_data
from safe_data import IncompleteHistoryError, SafeDict, SafeList, SafeSet, UndoError

from ._helpers import records


def test_history_and_discarded(journal):
    lst = SafeList([1, 2, 3], name="l", journal=journal)
    d = SafeDict(a=1, b=2, name="d", journal=journal)
    lst.pop()
    d["a"] = 5
    lst.clear()
    assert [(r.op, r.values) for r in safe_data.history("l", journal)] == [("pop", [3]), ("clear", [1, 2])]
    assert safe_data.discarded("l", journal) == [3, 1, 2]
    assert safe_data.discarded("d", journal) == [("a", 1)]
    assert safe_data.history("nobody", journal) == []


# --- undo -----------------------------------------------------------------------------------

LIST_UNDO = [
    lambda x: x.pop(),
    lambda x: x.pop(0),
    lambda x: x.remove(12),
    lambda x: x.__delitem__(2),
    lambda x: x.__delitem__(slice(1, 4)),
    lambda x: x.__delitem__(slice(None, None, 2)),
    lambda x: x.__delitem__(slice(None, None, -2)),
    lambda x: x.__setitem__(1, "new"),
    lambda x: x.__setitem__(slice(1, 3), "abcd"),
    lambda x: x.__setitem__(slice(0, 4), []),
    lambda x: x.__setitem__(slice(None, None, 2), "xyz"),
    lambda x: x.clear(),
    lambda x: x.__imul__(0),
    lambda x: x.__init__([7, 8]),
]


@pytest.mark.parametrize("versioned", [False, True])
@pytest.mark.parametrize("action", LIST_UNDO)
def test_list_undo_restores_the_list(journal, action, versioned):
    lst = SafeList([10, 11, 12, 13, 14], name="l", journal=journal, versioned=versioned)
    action(lst)
    changed = list(lst)
    (undone,) = lst.undo()
    assert lst == [10, 11, 12, 13, 14]
    last = records(journal)[-2 if versioned else -1]
    assert (last.op, last.key) == ("undo", undone.seq)
    # what the undo overwrote is journaled too: nothing is lost by undoing
    assert sorted(map(repr, last.values)) == sorted(repr(v) for v in changed if v not in range(10, 15))


@pytest.mark.parametrize(
    "action",
    [
        lambda d: d.pop("a"),
        lambda d: d.popitem(),
        lambda d: d.__delitem__("b"),
        lambda d: d.__setitem__("a", 9),
        lambda d: d.update(a=9, z=1),
        lambda d: d.__ior__({"b": 8}),
        lambda d: d.clear(),
        lambda d: d.__init__(a=0),
    ],
)
def test_dict_undo_restores_the_values(journal, action):
    d = SafeDict({"a": 1, "b": 2}, name="d", journal=journal)
    action(d)
    overwritten = {k: v for k, v in d.items() if (k, v) not in {("a", 1), ("b", 2)} and k in "ab"}
    d.undo()
    assert d["a"] == 1 and d["b"] == 2
    undo_record = records(journal)[-1]
    assert undo_record.op == "undo" and undo_record.values == overwritten


@pytest.mark.parametrize(
    "action",
    [
        lambda s: s.pop(),
        lambda s: s.remove(1),
        lambda s: s.discard(2),
        lambda s: s.clear(),
        lambda s: s.__isub__({1, 2}),
        lambda s: s.__iand__({1}),
        lambda s: s.symmetric_difference_update({1, 9}),
    ],
)
def test_set_undo_puts_elements_back(journal, action):
    s = SafeSet({1, 2, 3}, name="s", journal=journal)
    action(s)
    s.undo()
    assert {1, 2, 3} <= s


def test_undo_n_and_its_limits(journal):
    lst = SafeList([1, 2, 3, 4], name="l", journal=journal)
    lst.pop()
    lst.pop()
    lst.pop()
    assert [r.values for r in lst.undo(2)] == [[2], [3]]
    assert lst == [1, 2, 3]
    lst.undo()
    assert lst == [1, 2, 3, 4]
    with pytest.raises(UndoError, match="0 operation"):
        lst.undo()
    with pytest.raises(ValueError):
        lst.undo(0)


def test_undo_only_touches_its_own_container(journal):
    a = SafeList([1], name="a", journal=journal)
    b = SafeList([2], name="b", journal=journal)
    a.pop()
    b.pop()
    a.undo()
    assert a == [1] and b == []


def test_undone_values_are_never_lost(journal):
    lst = SafeList(["old"], name="l", journal=journal)
    lst[0] = "new"
    lst.undo()
    assert lst == ["old"]
    assert "new" in safe_data.discarded("l", journal)


# --- restore --------------------------------------------------------------------------------


def test_restore_without_versioning_is_a_clear_partial_answer(journal):
    d = SafeDict({"a": 1, "b": 2}, name="d", journal=journal)
    t = time.time_ns()
    d["a"] = 5
    del d["b"]
    with pytest.raises(IncompleteHistoryError, match="versioned=True") as info:
        safe_data.restore("d", at=t, journal=journal)
    assert info.value.partial == {"a": 1, "b": 2}
    with pytest.raises(IncompleteHistoryError) as info:
        safe_data.restore("never-seen", journal=journal)
    assert info.value.partial is None


def test_versioned_restore_at_each_moment(journal):
    lst = SafeList([1], name="v", journal=journal, versioned=True)
    states, times = [], []

    def mark():
        times.append(time.time_ns())
        states.append(list(lst))
        time.sleep(0.001)

    mark()
    for step in (
        lambda: lst.append(2),
        lambda: lst.insert(0, 0),
        lambda: lst.extend([5, 6]),
        lambda: lst.__setitem__(1, "x"),
        lambda: lst.__setitem__(slice(0, 2), "abc"),
        lambda: lst.sort(key=str),
        lambda: lst.reverse(),
        lambda: lst.pop(),
        lambda: lst.remove("a"),
        lambda: lst.__delitem__(slice(None, None, 2)),
        lambda: lst.__iadd__([9]),
        lambda: lst.__imul__(2),
        lambda: lst.clear(),
        lambda: lst.append("end"),
    ):
        step()
        mark()
    for t, state in zip(times, states, strict=True):
        assert safe_data.restore("v", at=t, journal=journal) == state
    assert safe_data.restore("v", journal=journal) == lst


def test_versioned_dict_restore_and_diff(journal):
    d = SafeDict({"a": 1}, name="d", journal=journal, versioned=True)
    t0 = time.time_ns()
    time.sleep(0.001)
    d["b"] = 2
    d["a"] = 10
    d.update(c=3)
    d.setdefault("e", 5)
    del d["c"]
    t1 = time.time_ns()
    assert safe_data.restore("d", at=t0, journal=journal) == {"a": 1}
    assert safe_data.restore("d", at=t1, journal=journal) == {"a": 10, "b": 2, "e": 5}
    assert safe_data.diff("d", t0, t1, journal=journal) == {
        "added": {"b": 2, "e": 5},
        "removed": {},
        "changed": {"a": (1, 10)},
    }
    d.undo()  # puts "c" back; the snapshot after it keeps restore exact
    assert safe_data.restore("d", journal=journal) == d == {"a": 10, "b": 2, "e": 5, "c": 3}


def test_list_diff(journal):
    lst = SafeList(["a", "b"], name="l", journal=journal, versioned=True)
    t0 = time.time_ns()
    time.sleep(0.001)
    lst.append("c")
    result = safe_data.diff("l", t0, None, journal=journal)
    assert result["before"] == ["a", "b"] and result["after"] == ["a", "b", "c"]
    assert ("insert", 2, 2, 2, 3) in result["opcodes"]


def test_versioned_survives_copy_and_pickle(journal):
    lst = SafeList([1], name="v", journal=journal, versioned=True, deep=True)
    for dup in (copy.copy(lst), copy.deepcopy(lst), pickle.loads(pickle.dumps(lst))):
        assert dup.versioned and dup.deep


LIST_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "append",
                "insert",
                "extend",
                "pop",
                "remove",
                "del",
                "del_slice",
                "set",
                "set_slice",
                "sort",
                "reverse",
                "clear",
                "iadd",
                "imul",
                "undo",
            ]
        ),
        st.integers(-6, 6),
        st.integers(-6, 6),
    ),
    max_size=30,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=LIST_OPS)
def test_versioned_list_restore_is_exact(tmp_path_factory, ops):
    with safe_data.Journal(tmp_path_factory.mktemp("j")) as j:
        lst = SafeList(range(5), name="v", journal=j, versioned=True)
        for op, a, b in ops:
            n = len(lst)
            if op == "append":
                lst.append(a)
            elif op == "insert":
                lst.insert(a, b)
            elif op == "extend":
                lst.extend(range(abs(a)))
            elif op == "pop" and n:
                lst.pop(a % n)
            elif op == "remove" and n:
                lst.remove(lst[a % n])
            elif op == "del" and n:
                del lst[a % n]
            elif op == "del_slice":
                del lst[a:b]
            elif op == "set" and n:
                lst[a % n] = b
            elif op == "set_slice":
                lst[a:b] = range(abs(b) % 3)
            elif op == "sort":
                lst.sort(reverse=a > 0)
            elif op == "reverse":
                lst.reverse()
            elif op == "clear":
                lst.clear()
            elif op == "iadd":
                lst += [a]
            elif op == "imul":
                lst *= a % 3
            elif op == "undo":
                try:
                    lst.undo()
                except UndoError:
                    pass
            assert safe_data.restore("v", journal=j) == lst, (op, a, b)


DICT_OPS = st.lists(
    st.tuples(
        st.sampled_from(["set", "del", "pop", "popitem", "update", "ior", "setdefault", "clear", "undo"]),
        st.sampled_from("abcd"),
        st.integers(0, 9),
    ),
    max_size=30,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=DICT_OPS)
def test_versioned_dict_restore_is_exact(tmp_path_factory, ops):
    with safe_data.Journal(tmp_path_factory.mktemp("j")) as j:
        d = SafeDict(a=0, name="v", journal=j, versioned=True)
        for op, k, v in ops:
            if op == "set":
                d[k] = v
            elif op == "del" and k in d:
                del d[k]
            elif op == "pop":
                d.pop(k, None)
            elif op == "popitem" and d:
                d.popitem()
            elif op == "update":
                d.update({k: v, "z": v})
            elif op == "ior":
                d |= {k: v}
            elif op == "setdefault":
                d.setdefault(k, v)
            elif op == "clear":
                d.clear()
            elif op == "undo":
                try:
                    d.undo()
                except UndoError:
                    pass
            assert safe_data.restore("v", journal=j) == d, (op, k, v)


SET_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "add",
                "update",
                "ior",
                "pop",
                "remove",
                "discard",
                "isub",
                "iand",
                "ixor",
                "difference_update",
                "intersection_update",
                "symmetric_difference_update",
                "clear",
                "reinit",
                "undo",
            ]
        ),
        st.frozensets(st.integers(0, 6), max_size=4),
    ),
    max_size=30,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=SET_OPS)
def test_versioned_set_restore_is_exact(tmp_path_factory, ops):
    with safe_data.Journal(tmp_path_factory.mktemp("j")) as j:
        s = SafeSet({0, 1, 2}, name="v", journal=j, versioned=True)
        assert s.versioned
        for op, other in ops:
            some = min(other, default=0)
            if op == "add":
                s.add(some)
            elif op == "update":
                s.update(other, [9])
            elif op == "ior":
                s |= other
            elif op == "pop" and s:
                s.pop()
            elif op == "remove" and some in s:
                s.remove(some)
            elif op == "discard":
                s.discard(some)
            elif op == "isub":
                s -= other
            elif op == "iand":
                s &= other
            elif op == "ixor":
                s ^= other
            elif op == "difference_update":
                s.difference_update(other)
            elif op == "intersection_update":
                s.intersection_update(other, range(4))
            elif op == "symmetric_difference_update":
                s.symmetric_difference_update(other)
            elif op == "clear":
                s.clear()
            elif op == "reinit":
                s.__init__(other)
            elif op == "undo":
                try:
                    s.undo()
                except UndoError:
                    pass
            assert safe_data.restore("v", journal=j) == s, (op, other)


def test_versioned_set_survives_copy_and_pickle(journal):
    s = SafeSet({1}, name="v", journal=journal, versioned=True)
    for dup in (copy.copy(s), copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        assert dup.versioned and dup == {1}
    assert not SafeSet(name="plain", journal=journal).versioned


class Holder:
    def __init__(self, items):
        self.items = items


def test_reading_back_never_creates_live_containers(journal):
    """A safe container inside a pickled value comes back as plain data: reading the
    journal must not bind containers to journals, nor write to one."""
    inner = SafeList([1, 2], name="inner", journal=journal, versioned=True)
    SafeList([Holder(inner)], name="outer", journal=journal).pop()
    before = len(records(journal))
    (holder,) = [r for r in records(journal) if r.container == "outer"][0].values
    assert type(holder.items) is list and holder.items == [1, 2]
    assert len(records(journal)) == before


def test_restore_tells_why_it_cannot_answer(journal):
    with pytest.raises(IncompleteHistoryError, match="no record of a container named 'nobody'") as info:
        safe_data.restore("nobody", journal=journal)
    assert (info.value.reason, info.value.partial) == ("unknown", None)

    before = time.time_ns()
    time.sleep(0.002)
    _v = SafeList([1, 2], name="v", journal=journal, versioned=True)
    with pytest.raises(IncompleteHistoryError, match="did not exist yet") as info:
        safe_data.restore("v", at=before, journal=journal)
    assert (info.value.reason, info.value.partial) == ("not created", [])
    assert safe_data.restore("v", journal=journal) == [1, 2]

    plain = SafeSet({1}, name="p", journal=journal)
    plain.discard(1)
    after = time.time_ns()
    with pytest.raises(IncompleteHistoryError, match="versioned=True") as info:
        safe_data.restore("p", at=after, journal=journal)
    assert (info.value.reason, info.value.partial) == ("not versioned", set())  # known, if empty


def test_restore_takes_the_times_the_command_takes(journal):
    v = SafeDict(a=1, name="v", journal=journal, versioned=True)
    assert safe_data.restore("v", at="0s", journal=journal) == {"a": 1}
    now = datetime.datetime.now(datetime.timezone.utc)
    assert safe_data.restore("v", at=now.replace(tzinfo=None).isoformat(), journal=journal) == {"a": 1}
    assert safe_data.restore("v", at=now.isoformat().replace("+00:00", "Z"), journal=journal) == {"a": 1}
    with pytest.raises(IncompleteHistoryError, match="did not exist yet"):
        safe_data.restore("v", at="1h", journal=journal)
    with pytest.raises(ValueError, match="neither an ISO time"):
        safe_data.restore("v", at="yesterday", journal=journal)
    v["a"] = 2
    assert safe_data.restore("v", journal=journal) == {"a": 2}


def test_restore_refuses_a_name_that_several_processes_changed(journal):
    """A forked child's copy of a versioned container is another container with the same
    name: replaying one process's records would silently give a wrong state."""
    v = SafeList(["a"], name="v", journal=journal, versioned=True)
    pid = os.fork()
    if pid == 0:  # the child changes its copy, and only that
        try:
            v.append("child")
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    v.append("parent")
    with pytest.raises(IncompleteHistoryError, match="more than one container of that name") as info:
        safe_data.restore("v", journal=journal)
    assert info.value.reason == "several writers" and info.value.partial == ["a", "parent"]


NESTED_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "store_dict",
                "store_list",
                "store_set",
                "store_int",
                "del",
                "deeper",
                "child_set",
                "child_del",
                "child_clear",
                "child_add",
                "child_pop",
                "grandchild",
            ]
        ),
        st.sampled_from("abc"),
        st.integers(0, 5),
    ),
    max_size=25,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=NESTED_OPS)
def test_versioned_deep_restore_is_exact_for_the_whole_nested_value(tmp_path_factory, ops):
    """Changes made inside nested containers (a dict's values: dicts, lists, sets, and
    dicts in those) are part of the restored value, after every operation."""
    with safe_data.Journal(tmp_path_factory.mktemp("j")) as j:
        D = SafeDict({"a": {"x": 1}}, name="D", journal=j, versioned=True, deep=True)
        for op, k, v in ops:
            child = D.get(k)
            if op == "store_dict":
                D[k] = {"x": v, "in": {"y": v}}
            elif op == "store_list":
                D[k] = list(range(v))
            elif op == "store_set":
                D[k] = set(range(v))
            elif op == "store_int":
                D[k] = v
            elif op == "del" and k in D:
                del D[k]
            elif op == "deeper" and isinstance(child, dict):
                child["in"] = {"z": [v]}
            elif op == "child_set" and isinstance(child, (dict, list)) and (isinstance(child, dict) or child):
                child[("x" if isinstance(child, dict) else v % len(child))] = -v
            elif op == "child_del" and isinstance(child, dict) and "x" in child:
                del child["x"]
            elif op == "child_clear" and isinstance(child, (dict, list, set)):
                child.clear()
            elif op == "child_add" and isinstance(child, (list, set)):
                child.append(v) if isinstance(child, list) else child.add(v)
            elif op == "child_pop" and isinstance(child, (list, set)) and child:
                child.pop()
            elif op == "grandchild" and isinstance(child, dict) and isinstance(child.get("in"), dict):
                child["in"][str(v)] = v
            assert safe_data.restore("D", journal=j) == D, (op, k, v)


def test_a_versioned_deep_restore_follows_containers_that_moved_inside_a_list(journal):
    """An insert moves the container nested in a list to another index: restore() finds
    it by identity, not by the path it had when it was created."""
    o = SafeList([{"items": ["A"]}], name="o", journal=journal, deep=True, versioned=True)
    o.insert(0, {"items": ["B"]})
    o[1]["items"].pop()
    assert safe_data.restore("o", journal=journal) == [{"items": ["B"]}, {"items": []}]
