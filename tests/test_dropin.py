"""Drop-in: a safe container passes wherever the builtin does."""

import copy
import json
import pickle
import typing

import pytest

import safe_data
from safe_data import SafeDict, SafeList, SafeSet

from ._helpers import records

MAKERS = {
    "list": (lambda j: SafeList([1, "a", [2]], name="n", journal=j, capture_caller=True), [1, "a", [2]]),
    "dict": (
        lambda j: SafeDict({"a": 1, 2: [3]}, name="n", journal=j, capture_caller=True),
        {"a": 1, 2: [3]},
    ),
    "set": (lambda j: SafeSet({1, "a", (2,)}, name="n", journal=j, capture_caller=True), {1, "a", (2,)}),
}


@pytest.fixture(params=sorted(MAKERS))
def pair(request, journal):
    make, plain = MAKERS[request.param]
    return make(journal), plain


def test_isinstance_equality_repr(pair):
    safe, plain = pair
    assert isinstance(safe, type(plain))
    assert safe == plain and plain == safe and not (safe != plain)
    assert repr(safe) == repr(plain) and str(safe) == str(plain)
    assert len(safe) == len(plain) and sorted(map(repr, safe)) == sorted(map(repr, plain))


def test_json(pair):
    safe, plain = pair
    if isinstance(plain, set):  # like the builtin: not JSON serializable
        with pytest.raises(TypeError, match="not JSON serializable"):
            json.dumps(safe)
    else:
        assert json.dumps(safe) == json.dumps(plain)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_round_trip_keeps_contents_and_settings(pair, protocol):
    safe, plain = pair
    back = pickle.loads(pickle.dumps(safe, protocol))
    assert type(back) is type(safe) and back == plain
    assert (back.name, back.capture_caller, back.journal) == (safe.name, safe.capture_caller, safe.journal)


@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
def test_copy_keeps_contents_and_settings(pair, copier):
    safe, plain = pair
    dup = copier(safe)
    assert type(dup) is type(safe) and dup == plain and dup is not safe
    assert (dup.name, dup.capture_caller, dup.journal) == (safe.name, safe.capture_caller, safe.journal)
    if copier is copy.deepcopy and not isinstance(plain, set):
        nested = dup[2]
        assert nested is not (safe[2])
    assert records(safe.journal) == []


def test_pickle_with_the_default_journal():
    safe = SafeList([1, 2], name="x")
    back = pickle.loads(pickle.dumps(safe))
    assert back.journal is safe_data.default_journal() and back == [1, 2]


def test_pickle_of_a_subclass():
    back = pickle.loads(pickle.dumps(MyList([1], name="m")))
    assert type(back) is MyList and back == [1] and back.name == "m"


class MyList(SafeList):
    pass


def test_user_subclass_with_attributes():
    class Tagged(SafeDict):
        def __init__(self, *args, tag=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.tag = tag

    t = Tagged({"a": 1}, tag="x", name="t")
    t.pop("a")
    assert t.tag == "x" and t == {}


def test_generics_and_typing():
    assert SafeList[int].__origin__ is SafeList
    assert SafeDict[str, int].__args__ == (str, int)
    assert SafeSet[str].__origin__ is SafeSet

    def f(x: SafeList[int]) -> SafeDict[str, SafeSet[int]]:
        return SafeDict()

    assert typing.get_type_hints(f)["x"] == SafeList[int]


def test_weak_references(journal):
    import weakref

    for safe in (SafeList(journal=journal), SafeDict(journal=journal), SafeSet(journal=journal)):
        assert weakref.ref(safe)() is safe


def test_builtin_functions_accept_safe_containers(journal):
    lst = SafeList([3, 1, 2], journal=journal)
    assert sorted(lst) == [1, 2, 3] and sum(lst) == 6 and max(lst) == 3
    assert lst + [4] == [3, 1, 2, 4] and lst * 2 == [3, 1, 2] * 2 and lst[::-1] == [2, 1, 3]
    d = SafeDict(a=1, journal=journal)
    assert dict(d) == {"a": 1} and {**d} == {"a": 1} and d | {"b": 2} == {"a": 1, "b": 2}
    s = SafeSet({1, 2}, journal=journal)
    assert s | {3} == {1, 2, 3} and s & {1} == {1} and frozenset(s) == {1, 2}
    assert records(journal) == []


# --- deep=True -------------------------------------------------------------------------------


def test_deep_converts_nested_containers_with_path_names(journal):
    orders = SafeList(
        [{"id": 1, "items": ["a", "b"], "tags": {"x"}}], name="orders", journal=journal, deep=True
    )
    assert type(orders[0]) is SafeDict and orders[0].name == "orders[0]"
    assert isinstance(orders[0]["items"], SafeList) and orders[0]["items"].name == 'orders[0]["items"]'
    assert type(orders[0]["tags"]) is SafeSet
    orders[0]["items"].clear()
    orders[0]["tags"].discard("x")
    recs = records(journal)
    assert [(r.container, r.values) for r in recs] == [
        ('orders[0]["items"]', ["a", "b"]),
        ('orders[0]["tags"]', {"x"}),
    ]


@pytest.mark.parametrize(
    "add",
    [
        lambda c: c.append([1]),
        lambda c: c.extend([[1]]),
        lambda c: c.insert(0, [1]),
        lambda c: c.__iadd__([[1]]),
        lambda c: c.__setitem__(0, [1]),
        lambda c: c.__setitem__(slice(0, 1), [[1]]),
    ],
)
def test_deep_list_converts_on_every_add(journal, add):
    lst = SafeList([0], name="l", journal=journal, deep=True)
    add(lst)
    assert any(isinstance(v, SafeList) for v in lst)


@pytest.mark.parametrize(
    "add",
    [
        lambda d: d.__setitem__("k", {"a": 1}),
        lambda d: d.update(k={"a": 1}),
        lambda d: d.setdefault("k", {"a": 1}),
        lambda d: d.__ior__({"k": {"a": 1}}),
    ],
)
def test_deep_dict_converts_on_every_add(journal, add):
    d = SafeDict(name="d", journal=journal, deep=True)
    add(d)
    assert type(d["k"]) is SafeDict and d["k"].name == 'd["k"]'
    d["k"].clear()
    assert records(journal)[-1].container == 'd["k"]'


def test_without_deep_nested_values_stay_plain(journal):
    d = SafeDict({"a": [1]}, journal=journal)
    assert type(d["a"]) is list


def test_index_errors_are_the_builtins(journal):
    """Out-of-range and too-large indexes raise what list raises (pop: OverflowError past
    ssize_t, as list.pop's argument conversion; del and assignment: IndexError)."""
    calls = [
        lambda L: L.pop(2**70),
        lambda L: L.__delitem__(2**70),
        lambda L: L.__setitem__(2**70, 0),
        lambda L: L.pop(5),
        lambda L: L.__delitem__(-5),
        lambda L: L.__setitem__(5, 0),
        lambda L: L.pop("a"),
    ]
    for call in calls:
        raised = []
        for L in ([1, 2], safe_data.SafeList([1, 2], journal=journal)):
            with pytest.raises(Exception) as info:
                call(L)
            raised.append(type(info.value))
        assert raised[0] is raised[1]
