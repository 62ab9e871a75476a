"""Each destructive operation journals exactly what it discards, and behaves like the builtin."""

from collections import OrderedDict

import pytest

import safe_data
from safe_data.journal.format import MAX_NAME_LEN

from ._helpers import discarded, records


def one_record(journal, container=None):
    recs = records(journal, container)
    assert len(recs) == 1, recs
    return recs[0]


# --- list -----------------------------------------------------------------------------------

LIST_CASES = [
    # (action, op, key, values)
    (lambda x: x.clear(), "clear", None, [10, 11, 12, 13, 14]),
    (lambda x: x.pop(), "pop", 4, [14]),
    (lambda x: x.pop(1), "pop", 1, [11]),
    (lambda x: x.pop(-2), "pop", 3, [13]),
    (lambda x: x.remove(12), "remove", 2, [12]),
    (lambda x: x.__delitem__(0), "del", 0, [10]),
    (lambda x: x.__delitem__(-1), "del", 4, [14]),
    (lambda x: x.__delitem__(slice(1, 3)), "del", slice(1, 3, 1), [11, 12]),
    (lambda x: x.__delitem__(slice(None, None, 2)), "del", slice(0, 5, 2), [10, 12, 14]),
    (lambda x: x.__delitem__(slice(-2, None)), "del", slice(3, 5, 1), [13, 14]),
    (lambda x: x.__setitem__(0, 99), "set", 0, [10]),
    (lambda x: x.__setitem__(-1, 99), "set", 4, [14]),
    (lambda x: x.__setitem__(slice(1, 3), [7]), "set", (slice(1, 3, 1), 1), [11, 12]),
    (lambda x: x.__setitem__(slice(None, None, 2), "abc"), "set", (slice(0, 5, 2), 3), [10, 12, 14]),
    (lambda x: x.__imul__(0), "*=", None, [10, 11, 12, 13, 14]),
    (lambda x: x.__imul__(-3), "*=", None, [10, 11, 12, 13, 14]),
    (lambda x: x.__init__([1]), "init", None, [10, 11, 12, 13, 14]),
]


@pytest.mark.parametrize("action,op,key,values", LIST_CASES)
def test_list_discards_are_journaled(impl, journal, action, op, key, values):
    safe = impl.SafeList([10, 11, 12, 13, 14], name="L", journal=journal)
    plain = [10, 11, 12, 13, 14]
    assert action(safe) == action(plain) or op in ("*=", "init")
    assert safe == plain
    rec = one_record(journal)
    assert (rec.container, rec.kind, rec.op, rec.key, rec.values) == ("L", "list", op, key, values)


@pytest.mark.parametrize(
    "action",
    [
        lambda x: x.append(1),
        lambda x: x.extend([1, 2]),
        lambda x: x.insert(0, 1),
        lambda x: x.__iadd__([1]),
        lambda x: x.__imul__(2),
        lambda x: x.sort(),
        lambda x: x.reverse(),
        lambda x: x.__setitem__(slice(5, 5), [1, 2]),
        lambda x: x.__delitem__(slice(3, 1)),
        lambda x: x.__setitem__(0, x[0]),  # the same object: nothing is lost
    ],
    ids=[
        "append",
        "extend",
        "insert",
        "iadd",
        "imul2",
        "sort",
        "reverse",
        "insert-slice",
        "empty-del",
        "same-object",
    ],
)
def test_list_non_discarding_operations_write_nothing(impl, journal, action):
    safe = impl.SafeList([3, 1, 2, 5, 4], journal=journal)
    plain = [3, 1, 2, 5, 4]
    action(safe)
    action(plain)
    assert safe == plain
    assert records(journal) == []


@pytest.mark.parametrize(
    "action,exc",
    [
        (lambda x: type(x)(journal=x.journal).pop(), IndexError),
        (lambda x: x.pop(10), IndexError),
        (lambda x: x.pop("a"), TypeError),
        (lambda x: x.pop(2**70), OverflowError),
        (lambda x: x.pop(index=0), TypeError),  # list.pop() takes no keyword arguments
        (lambda x: x.remove(42), ValueError),
        (lambda x: x.__delitem__(10), IndexError),
        (lambda x: x.__setitem__(10, 1), IndexError),
        (lambda x: x.__setitem__(slice(None, None, 2), [1]), ValueError),
    ],
)
def test_list_errors_match_the_builtin_and_journal_nothing(impl, journal, action, exc):
    safe = impl.SafeList([1, 2, 3], journal=journal)
    with pytest.raises(exc):
        action(safe)
    assert safe == [1, 2, 3]
    assert records(journal) == []


def test_list_remove_uses_equality_and_journals_the_stored_object(impl, journal):
    safe = impl.SafeList([1.0, 2, 3], journal=journal)
    safe.remove(1)
    assert type(one_record(journal).values[0]) is float


# --- dict -----------------------------------------------------------------------------------

DICT_CASES = [
    (lambda d: d.clear(), "clear", None, {"a": 1, "b": 2, "c": 3}),
    (lambda d: d.pop("b"), "pop", "b", {"b": 2}),
    (lambda d: d.popitem(), "popitem", "c", {"c": 3}),
    (lambda d: d.__delitem__("a"), "del", "a", {"a": 1}),
    (lambda d: d.__setitem__("a", 9), "set", "a", {"a": 1}),
    (lambda d: d.update({"a": 9, "z": 0}), "update", None, {"a": 1}),
    (lambda d: d.update([("b", 9)], c=8), "update", None, {"b": 2, "c": 3}),
    (lambda d: d.__ior__({"c": 9}), "|=", None, {"c": 3}),
    (lambda d: d.__init__(a=5), "init", None, {"a": 1}),
]


@pytest.mark.parametrize("action,op,key,values", DICT_CASES)
def test_dict_discards_are_journaled(impl, journal, action, op, key, values):
    safe = impl.SafeDict({"a": 1, "b": 2, "c": 3}, name="D", journal=journal)
    plain = {"a": 1, "b": 2, "c": 3}
    result, expected = action(safe), action(plain)
    if op not in ("|=", "init"):
        assert result == expected
    assert safe == plain and list(safe) == list(plain)
    rec = one_record(journal)
    assert (rec.container, rec.kind, rec.op, rec.key, rec.values) == ("D", "dict", op, key, values)


@pytest.mark.parametrize(
    "action",
    [
        lambda d: d.__setitem__("new", 1),
        lambda d: d.update(new=1),
        lambda d: d.setdefault("a", 5),
        lambda d: d.setdefault("n", 5),
        lambda d: d.pop("missing", None),
        lambda d: d.__ior__({"n": 1}),
        lambda d: d.update(a=d["a"]),
    ],
    ids=[
        "add",
        "update-new",
        "setdefault-existing",
        "setdefault-new",
        "pop-default",
        "ior-new",
        "same-object",
    ],
)
def test_dict_non_discarding_operations_write_nothing(impl, journal, action):
    safe = impl.SafeDict({"a": 1}, journal=journal)
    plain = {"a": 1}
    assert action(safe) == action(plain) or True
    assert safe == plain
    assert records(journal) == []


@pytest.mark.parametrize(
    "action,exc",
    [
        (lambda d: d.pop("zz"), KeyError),
        (lambda d: d.__delitem__("zz"), KeyError),
        (lambda d: type(d)(journal=d.journal).popitem(), KeyError),
        (lambda d: d.__setitem__([], 1), TypeError),
        (lambda d: d.update([(1, 2, 3)]), ValueError),
        (lambda d: d.update({}, {}), TypeError),
    ],
)
def test_dict_errors_match_the_builtin_and_journal_nothing(impl, journal, action, exc):
    safe = impl.SafeDict({"a": 1}, journal=journal)
    with pytest.raises(exc):
        action(safe)
    assert safe == {"a": 1}
    assert records(journal) == []


def test_dict_constructor_forms(impl, journal):
    assert impl.SafeDict(journal=journal) == {}
    assert impl.SafeDict({"a": 1}, b=2, journal=journal) == {"a": 1, "b": 2}
    assert impl.SafeDict([("a", 1)], journal=journal) == {"a": 1}
    assert impl.SafeDict(a=1, journal=journal) == {"a": 1}
    assert impl.SafeDict(zip("ab", range(2), strict=True), journal=journal) == {"a": 0, "b": 1}
    assert records(journal) == []


def test_dict_update_from_a_generator_is_consumed_once(impl, journal):
    safe = impl.SafeDict({"a": 1}, journal=journal)
    safe.update((k, 2) for k in "ab")
    assert safe == {"a": 2, "b": 2}
    assert one_record(journal).values == {"a": 1}


# --- set ------------------------------------------------------------------------------------

SET_CASES = [
    (lambda s: s.clear(), "clear", {1, 2, 3}),
    (lambda s: s.remove(2), "remove", {2}),
    (lambda s: s.discard(3), "discard", {3}),
    (lambda s: s.difference_update([1, 9], {2}), "difference_update", {1, 2}),
    (lambda s: s.intersection_update([1, 9]), "intersection_update", {2, 3}),
    (lambda s: s.symmetric_difference_update([3, 4]), "symmetric_difference_update", {3}),
    (lambda s: s.__isub__({1}), "-=", {1}),
    (lambda s: s.__iand__({1}), "&=", {2, 3}),
    (lambda s: s.__ixor__({1, 7}), "^=", {1}),
    (lambda s: s.__init__([5]), "init", {1, 2, 3}),
]


@pytest.mark.parametrize("action,op,values", SET_CASES)
def test_set_discards_are_journaled(impl, journal, action, op, values):
    safe = impl.SafeSet({1, 2, 3}, name="S", journal=journal)
    plain = {1, 2, 3}
    action(safe)
    action(plain)
    assert safe == plain
    rec = one_record(journal)
    assert (rec.container, rec.kind, rec.op, rec.key, rec.values) == ("S", "set", op, None, values)


def test_set_pop_journals_the_popped_element(impl, journal):
    safe = impl.SafeSet({1, 2, 3}, journal=journal)
    value = safe.pop()
    assert value not in safe and len(safe) == 2
    assert one_record(journal).values == {value}


@pytest.mark.parametrize(
    "action",
    [
        lambda s: s.add(1),
        lambda s: s.update({7}),
        lambda s: s.__ior__({8}),
        lambda s: s.discard(42),
        lambda s: s.difference_update({42}),
        lambda s: s.intersection_update({1, 2, 3}),
        lambda s: s.__isub__(set()),
        lambda s: s.symmetric_difference_update({9}),
    ],
)
def test_set_non_discarding_operations_write_nothing(impl, journal, action):
    safe, plain = impl.SafeSet({1, 2, 3}, journal=journal), {1, 2, 3}
    action(safe)
    action(plain)
    assert safe == plain
    assert records(journal) == []


def test_set_errors_match_the_builtin(impl, journal):
    safe = impl.SafeSet({1}, journal=journal)
    with pytest.raises(KeyError):
        safe.remove(2)
    with pytest.raises(KeyError):
        impl.SafeSet(journal=journal).pop()
    with pytest.raises(TypeError):
        safe -= [1]
    assert safe == {1} and records(journal) == []


def test_in_place_operators_keep_the_safe_type(impl, journal):
    s = impl.SafeSet({1, 2}, journal=journal)
    s -= {1}
    s |= {5}
    assert type(s) is impl.SafeSet and s == {2, 5}
    d = impl.SafeDict({"a": 1}, journal=journal)
    d |= {"a": 2}
    assert type(d) is impl.SafeDict
    lst = impl.SafeList([1], journal=journal)
    lst += [2]
    lst *= 0
    assert type(lst) is impl.SafeList and lst == []
    assert discarded(journal) == [1, 1, 1, 2]  # s -= {1}; d |= {"a": 2}; lst *= 0


# --- what a record holds ----------------------------------------------------------------------


def test_a_record_is_a_snapshot_of_the_moment(impl, journal):
    item = {"qty": 1, "tags": ["a"]}
    safe = impl.SafeList([item], journal=journal)
    popped = safe.pop()
    popped["qty"] = 2
    popped["tags"].append("b")
    assert one_record(journal).values == [{"qty": 1, "tags": ["a"]}]


def test_record_fields(impl, journal):
    import os
    import threading
    import time

    before = time.time_ns()
    safe = impl.SafeDict({"k": "v"}, name="orders", journal=journal)
    del safe["k"]
    rec = one_record(journal)
    assert rec.container == "orders" and rec.op == "del" and rec.key == "k"
    assert rec.seq >= 1 and before <= rec.time_ns <= time.time_ns()
    assert rec.pid == os.getpid() and rec.thread == threading.get_ident()
    assert rec.caller is None
    assert rec.time.timestamp() == pytest.approx(rec.time_ns / 1e9)


def test_caller_is_captured_on_request(impl, journal):
    safe = impl.SafeList([1, 2], journal=journal, capture_caller=True)

    def remove_first():
        del safe[0]

    remove_first()
    filename, line, function = one_record(journal).caller
    assert filename == __file__ and function == "remove_first"
    import inspect

    assert line == inspect.getsourcelines(remove_first)[1] + 1


def test_sequence_numbers_increase(impl, journal):
    safe = impl.SafeList(range(5), journal=journal)
    for _ in range(5):
        safe.pop()
    seqs = [r.seq for r in records(journal)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5


def test_default_name_says_where_the_container_was_made(impl, journal):
    safe = impl.SafeList(journal=journal)
    line = test_default_name_says_where_the_container_was_made.__code__.co_firstlineno + 1
    assert safe.name == f"list@{__name__}:{line}"


def test_values_of_many_types_round_trip(impl, journal):
    from decimal import Decimal

    values = [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**80,
        -(2**100),
        1.5,
        float("inf"),
        "",
        "héllo ✓",
        "\ud800",
        b"\x00\xff",
        bytearray(b"ab"),
        (1, (2,)),
        [1, [2]],
        {"a": {1: None}},
        {1, 2},
        frozenset({3}),
        slice(1, None, -1),
        Decimal("1.10"),
        complex(1, 2),
        impl.SafeList([1], journal=journal),
        impl.SafeDict({"x": 1}, journal=journal),
    ]
    safe = impl.SafeList(values, journal=journal)
    safe.clear()
    got = one_record(journal).values
    assert got == values
    assert [type(v) for v in got[:-2]] == [type(v) for v in values[:-2]]
    assert type(got[-2]) is list and type(got[-1]) is dict  # nested safe containers: their contents


def test_a_nested_safe_container_is_recorded_as_nested(impl, journal):
    """Its contents, marked with its number: each implementation's writer knows its own containers."""
    inner = impl.SafeList([1], name="inner", journal=journal)
    impl.SafeList([inner], journal=journal).clear()
    (record,) = journal.records(nested_ids=True, on_error="raise")
    assert record.values == [(inner.container_id, [1])] and inner.container_id != 0


def test_deep_and_cyclic_values_are_preserved(impl, journal):
    deep = current = []
    for _ in range(100):
        current.append([])
        current = current[0]
    cyclic = [1]
    cyclic.append(cyclic)
    safe = impl.SafeList([deep, cyclic], journal=journal)
    safe.clear()
    got = one_record(journal).values
    assert got[0] == deep
    assert got[1][0] == 1 and got[1][1] is got[1]


def test_large_values_are_compressed_and_round_trip(impl, tmp_path):
    import os

    big = ["x" * 100] * 10_000  # a 1 MB payload of repeats
    with safe_data.Journal(tmp_path / "j") as j:
        impl.SafeList(big, journal=j).clear()
    sealed = [n for n in os.listdir(j.path) if n.endswith(".seg")]
    assert len(sealed) == 1 and os.path.getsize(os.path.join(j.path, sealed[0])) < 64 << 10
    with safe_data.Journal(j.path) as reopened:
        assert one_record(reopened).values == big


def test_a_record_larger_than_a_segment_gets_its_own(impl, tmp_path):
    with safe_data.Journal(tmp_path / "j", segment_size=4096) as j:
        data = [os_random(200) for _ in range(100)]  # incompressible, ~20 kB
        safe = impl.SafeList(data, journal=j)
        safe.pop()
        safe.clear()
        assert discarded(j) == [data[-1]] + data[:-1]


def os_random(n):
    import os

    return os.urandom(n)


@pytest.mark.parametrize(
    "source", [dict, lambda d: list(d.items()), OrderedDict], ids=["dict", "pairs", "OrderedDict"]
)
@pytest.mark.parametrize("versioned", [False, True])
def test_update_journals_the_same_whatever_the_source(impl, journal, source, versioned):
    # a plain dict takes the C build's fast path (the dict's own loops), the others go
    # through pairs: the records must not tell them apart
    d = impl.SafeDict({1: "a", 2: "b"}, name="u", journal=journal, versioned=versioned)
    d.update(source({2: "B", 3: "c", 1: "a"}))
    assert d == {1: "a", 2: "B", 3: "c"}
    written = [(r.op, r.values) for r in records(journal) if r.op not in ("snapshot",)]
    assert written == [("update", {2: "b"})] + ([("assign", {2: "B", 3: "c", 1: "a"})] if versioned else [])


@pytest.mark.parametrize("versioned", [False, True])
def test_update_of_an_empty_dict_from_a_dict(impl, journal, versioned):
    # nothing is overwritten, so nothing is journaled (versioned: the assignment only),
    # and the caller's dict stays the caller's
    source = {1: "a", 2: "b"}
    built = impl.SafeDict(source, name="u", journal=journal, versioned=versioned)
    updated = impl.SafeDict(name="u", journal=journal, versioned=versioned)
    updated.update(source)
    source[3] = "c"
    assert built == updated == {1: "a", 2: "b"}
    written = [(r.op, r.values) for r in records(journal) if r.op != "snapshot"]
    assert written == ([("assign", {1: "a", 2: "b"})] if versioned else [])


# --- construction ---------------------------------------------------------------------------

KINDS = ["SafeList", "SafeDict", "SafeSet"]


def holding(kind, value):
    """What a container of ``kind`` can be built from to hold ``value``."""
    return {"x": value} if kind == "SafeDict" else [value]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", [1, b"x", ["x"]], ids=["int", "bytes", "list"])
def test_a_name_that_is_not_a_str_is_a_type_error(impl, journal, kind, name):
    with pytest.raises(TypeError, match="Expected str, got"):
        getattr(impl, kind)(name=name, journal=journal)


@pytest.mark.parametrize("kind", KINDS)
def test_the_default_journal_is_looked_up_at_each_construction(impl, tmp_path, kind):
    cls = getattr(impl, kind)
    first = safe_data.configure(tmp_path / "first")
    a = cls(name="a")
    second = safe_data.configure(tmp_path / "second")
    b = cls(name="b")
    assert a.journal is first and b.journal is second
    first.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_default_journal_that_closed_is_not_used_again(impl, tmp_path, kind):
    cls = getattr(impl, kind)
    first = safe_data.configure(tmp_path / "first")
    a = cls(name="a")
    first.close()
    b = cls(name="b")  # on the journal at default_path(), opened for it
    assert a.journal is first and b.journal is safe_data.default_journal()
    assert b.journal is not first and not b.journal.closed


@pytest.mark.parametrize("kind", KINDS)
def test_a_default_journal_swapped_in_for_a_block_is_used_in_it_only(impl, tmp_path, kind):
    from safe_data.testing import temporary_journal

    cls = getattr(impl, kind)
    outer = safe_data.configure(tmp_path / "outer")
    with temporary_journal(tmp_path / "inner") as inner:
        a = cls(holding(kind, 1), name="a")
        a.clear()
        assert a.journal is inner and discarded(inner) == [1]
    b = cls(holding(kind, 2), name="b")
    b.clear()
    assert b.journal is outer and discarded(outer) == [2]


@pytest.mark.parametrize("kind", KINDS)
def test_containers_of_one_name_are_two_containers(impl, journal, kind):
    cls = getattr(impl, kind)
    name = "twins"  # the same str object for both
    a, b = (cls(holding(kind, n), name=name, journal=journal) for n in (1, 2))
    assert a.container_id != b.container_id
    b.clear()
    a.clear()
    assert [(r.container, r.container_id) for r in records(journal)] == [
        (name, b.container_id),
        (name, a.container_id),
    ]
    assert discarded(journal) == [2, 1]


@pytest.mark.parametrize("kind", KINDS)
def test_a_name_that_cannot_be_stored_is_refused_at_every_construction(impl, journal, kind):
    # (the same str object each time: a name encoded once is not taken on trust again)
    cls = getattr(impl, kind)
    longest = "é" * (MAX_NAME_LEN // 2)  # its UTF-8 bytes are counted, not its characters
    too_long, unencodable = longest + "é", "lone \udc80 surrogate"
    assert [cls(name=longest, journal=journal).name for _ in range(2)] == [longest, longest]
    for _ in range(2):
        with pytest.raises(ValueError, match=f"container name longer than {MAX_NAME_LEN} bytes"):
            cls(name=too_long, journal=journal)
    for _ in range(2):
        with pytest.raises(UnicodeEncodeError):
            cls(name=unencodable, journal=journal)


CONSTRUCTIONS = [
    # (class, positional arguments, keywords besides name and journal, contents)
    ("SafeList", lambda: (), {}, []),
    ("SafeList", lambda: ([1, 2],), {}, [1, 2]),
    ("SafeList", lambda: ((i for i in range(3)),), {"capture_caller": True}, [0, 1, 2]),
    ("SafeList", lambda: ((1,),), {"deep": True}, [1]),
    ("SafeList", lambda: ([[1]],), {"versioned": 1}, [[1]]),
    ("SafeDict", lambda: (), {}, {}),
    ("SafeDict", lambda: ({"a": 1},), {"b": 2}, {"a": 1, "b": 2}),
    ("SafeDict", lambda: ([("a", 1)],), {"deep": True}, {"a": 1}),
    ("SafeDict", lambda: ({"a": {}},), {"versioned": True}, {"a": {}}),
    ("SafeSet", lambda: (), {}, set()),
    ("SafeSet", lambda: ("aab",), {"versioned": True}, {"a", "b"}),
    ("SafeSet", lambda: (iter([1]),), {"capture_caller": 0}, {1}),
]


@pytest.mark.parametrize("kind, args, kwargs, contents", CONSTRUCTIONS)
def test_every_way_of_calling_the_class_builds_the_same(impl, journal, kind, args, kwargs, contents):
    # SafeX(...) takes the class's own vectorcall in the C build; type.__call__ is the
    # generic tp_new + tp_init, and a subclass always takes that one (a versioned one's
    # snapshot would pickle a class made here: not for the subclass)
    cls = getattr(impl, kind)
    made = [
        cls(*args(), name="c", journal=journal, **kwargs),
        type.__call__(cls, *args(), name="c", journal=journal, **kwargs),
    ]
    assert type(made[0]) is type(made[1])
    if not kwargs.get("versioned"):
        sub = type("Sub", (cls,), {})
        made.append(sub(*args(), name="c", journal=journal, **kwargs))
        assert type(made[2]) is sub
    expected = ("c", journal, *(bool(kwargs.get(k)) for k in ("deep", "capture_caller", "versioned")))
    for x in made:
        assert x == contents and isinstance(x, cls)
        assert (x.name, x.journal, getattr(x, "deep", False), x.capture_caller, x.versioned) == expected
    assert len({x.container_id for x in made}) == len(made)


@pytest.mark.parametrize(
    "kind, args, kwargs",
    [
        ("SafeList", (1, 2), {}),
        ("SafeList", (5,), {}),
        ("SafeList", (), {"foo": 1}),
        ("SafeSet", (), {"deep": True}),
        ("SafeSet", ([], []), {}),
        ("SafeDict", ({}, {}), {}),
        ("SafeDict", ([1],), {}),
    ],
)
def test_constructor_errors_are_the_generic_calls(impl, journal, kind, args, kwargs):
    cls = getattr(impl, kind)
    with pytest.raises(TypeError) as direct:
        cls(*args, journal=journal, **kwargs)
    with pytest.raises(TypeError) as generic:
        type.__call__(cls, *args, journal=journal, **kwargs)
    assert str(direct.value) == str(generic.value)


def test_a_subclass_init_with_arguments_of_its_own(impl, journal):
    class Tagged(impl.SafeDict):
        def __init__(self, tag, *args, **kwargs):
            super().__init__(*args, name=tag, journal=journal, **kwargs)
            self.tag = tag

    t = Tagged("t", {"a": 1}, b=2)
    assert (t, t.tag, t.name) == ({"a": 1, "b": 2}, "t", "t")
    t.pop("a")
    assert one_record(journal).values == {"a": 1}


# --- nothing is lost when journaling fails ------------------------------------------------------


class Unpicklable:
    def __reduce__(self):
        raise TypeError("no pickling here")


@pytest.mark.parametrize(
    "action",
    [
        lambda c: c.pop(),
        lambda c: c.clear(),
        lambda c: c.__delitem__(0),
        lambda c: c.__setitem__(0, 1),
    ],
)
def test_unpicklable_values_raise_and_change_nothing(impl, journal, action):
    import threading

    lock = threading.Lock()
    safe = impl.SafeList([lock], journal=journal)
    with pytest.raises(safe_data.UnpicklableValueError, match="not picklable.*not changed"):
        action(safe)
    assert safe == [lock] and records(journal) == []


def test_unpicklable_dict_and_set_values(impl, journal):
    d = impl.SafeDict({"a": Unpicklable()}, journal=journal)
    with pytest.raises(safe_data.UnpicklableValueError):
        d.pop("a")
    assert "a" in d
    s = impl.SafeSet({Unpicklable()}, journal=journal)
    with pytest.raises(safe_data.UnpicklableValueError):
        s.pop()
    assert len(s) == 1
    assert records(journal) == []


def test_a_popitem_that_cannot_be_journaled_leaves_the_dict_as_it_was(impl, journal):
    last = Unpicklable()
    d = impl.SafeDict({"a": 1, "b": 2, "c": last}, journal=journal)
    with pytest.raises(safe_data.UnpicklableValueError):
        d.popitem()
    assert list(d.items()) == [("a", 1), ("b", 2), ("c", last)]  # the same order too
    assert records(journal) == []


def test_a_closed_journal_refuses_and_changes_nothing(impl, tmp_path):
    j = safe_data.Journal(tmp_path / "j")
    safe = impl.SafeList([1, 2], journal=j)
    safe.pop()
    j.close()
    with pytest.raises(safe_data.JournalClosedError):
        safe.pop()
    assert safe == [1]
    safe.append(3)  # adding needs no journal
    assert safe == [1, 3]
