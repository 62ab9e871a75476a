"""make_safe and its wrappers of deque, OrderedDict, defaultdict and bytearray."""

import copy
import doctest
import inspect
import os
import pickle
import threading
from collections import Counter, OrderedDict, UserDict, defaultdict, deque
from itertools import product

import pytest

import safe_data
from safe_data.containers.patching import patched
from safe_data.containers.protect import SafeBytearray, SafeDefaultDict, SafeDeque, SafeOrderedDict, make_safe
from safe_data.containers.proxies import proxy
from safe_data.errors import JournalClosedError, UnpicklableValueError

from ._helpers import CLASSIFICATION, OBJECT_PROTOCOL, discarded, records

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "protecting.md")

WRAPPERS = {
    deque: SafeDeque,
    OrderedDict: SafeOrderedDict,
    defaultdict: SafeDefaultDict,
    bytearray: SafeBytearray,
}

_LIST, _DICT = CLASSIFICATION[list], CLASSIFICATION[dict]
#: every method of each wrapped type, by what it does to the values (house rule 3)
WRAPPED_CLASSIFICATION = {
    deque: {
        "reading": _LIST["reading"] | {"__copy__", "maxlen", "__bool__"},  # (__bool__: CPython < 3.12)
        "adding": {"insert"},  # a full bounded deque refuses to insert (IndexError)
        "reordering": {"reverse", "rotate"},
        # with maxlen, what overflows at the other end is dropped
        "discarding": _LIST["discarding"]
        | {"popleft", "append", "appendleft", "extend", "extendleft", "__iadd__"},
    },
    OrderedDict: {**_DICT, "reading": _DICT["reading"] | {"__dict__"}, "reordering": {"move_to_end"}},
    defaultdict: {
        **_DICT,
        "reading": _DICT["reading"] | {"__copy__", "default_factory"},
        "adding": _DICT["adding"] | {"__missing__"},
    },
    bytearray: {
        # bytes is immutable: its methods, on a bytearray, only read
        # (__release_buffer__: the buffer protocol, in dir() since CPython 3.13)
        "reading": set(dir(bytes)) - {"__init__"} | {"__alloc__", "copy", "__release_buffer__"},
        "adding": _LIST["adding"],
        "reordering": {"reverse"},
        "discarding": _LIST["discarding"],
    },
}

#: one call of each discarding method: (call, op, key, values).  Sequences start as
#: [1, 2, 3] (a deque with maxlen=3), mappings as {"a": 1, "b": 2, "c": 3}.
SEQUENCE_DISCARDS = {
    "clear": (lambda s: s.clear(), "clear", None, [1, 2, 3]),
    "pop": (lambda s: s.pop(), "pop", 2, [3]),
    "remove": (lambda s: s.remove(2), "remove", 1, [2]),
    "__delitem__": (lambda s: s.__delitem__(1), "del", 1, [2]),
    "__setitem__": (lambda s: s.__setitem__(-1, 9), "set", 2, [3]),
    "__imul__": (lambda s: s.__imul__(0), "*=", None, [1, 2, 3]),
    "__init__": (lambda s: s.__init__([7]), "init", None, [1, 2, 3]),
}
DEQUE_DISCARDS = {
    **SEQUENCE_DISCARDS,
    "__init__": (lambda s: s.__init__([7], 3), "init", None, [1, 2, 3]),
    "popleft": (lambda s: s.popleft(), "pop", 0, [1]),
    "append": (lambda s: s.append(4), "del", 0, [1]),
    "appendleft": (lambda s: s.appendleft(0), "del", 3, [3]),
    "extend": (lambda s: s.extend([4, 5]), "del", slice(0, 2, 1), [1, 2]),
    "extendleft": (lambda s: s.extendleft([4, 5]), "del", slice(3, 5, 1), [2, 3]),
    "__iadd__": (lambda s: s.__iadd__([4]), "del", 0, [1]),
}
MAPPING_DISCARDS = {
    "clear": (lambda m: m.clear(), "clear", None, {"a": 1, "b": 2, "c": 3}),
    "pop": (lambda m: m.pop("b"), "pop", "b", {"b": 2}),
    "popitem": (lambda m: m.popitem(), "popitem", "c", {"c": 3}),
    "__delitem__": (lambda m: m.__delitem__("a"), "del", "a", {"a": 1}),
    "__setitem__": (lambda m: m.__setitem__("a", 9), "set", "a", {"a": 1}),
    "update": (lambda m: m.update({"a": 9}, z=0), "update", None, {"a": 1}),
    "__ior__": (lambda m: m.__ior__({"b": 9}), "|=", None, {"b": 2}),
    "__init__": (lambda m: m.__init__(c=0), "init", None, {"c": 3}),
}
BYTEARRAY_DISCARDS = {
    name: (call, op, key, bytes(values)) for name, (call, op, key, values) in SEQUENCE_DISCARDS.items()
}
DISCARDS = {
    deque: DEQUE_DISCARDS,
    OrderedDict: MAPPING_DISCARDS,
    defaultdict: MAPPING_DISCARDS,
    bytearray: BYTEARRAY_DISCARDS,
}

PLAIN = {
    deque: lambda: deque([1, 2, 3], maxlen=3),
    OrderedDict: lambda: OrderedDict(a=1, b=2, c=3),
    defaultdict: lambda: defaultdict(int, a=1, b=2, c=3),
    bytearray: lambda: bytearray([1, 2, 3]),
}

TYPES = pytest.mark.parametrize("base", list(WRAPPERS), ids=lambda t: t.__name__)


def overrides(wrapper, base, name):
    """Whether ``wrapper`` defines ``name`` itself rather than inheriting the base type's."""
    return any(name in vars(cls) for cls in wrapper.__mro__[: wrapper.__mro__.index(base)])


@TYPES
def test_every_method_of_the_wrapped_types_is_classified(base):
    classified = set().union(*WRAPPED_CLASSIFICATION[base].values())
    unknown = sorted(set(dir(base)) - classified - OBJECT_PROTOCOL)
    assert not unknown, f"classify these {base.__name__} methods: {unknown}"


@TYPES
def test_every_discarding_method_is_overridden_and_exercised(base):
    wrapper = WRAPPERS[base]
    discarding = WRAPPED_CLASSIFICATION[base]["discarding"] & set(dir(base))
    for name in discarding:
        assert overrides(wrapper, base, name), f"{wrapper.__name__} does not override {name}"
    assert set(DISCARDS[base]) == discarding  # each one has a journaling test below


@TYPES
def test_reading_methods_stay_the_builtins_except_copies(base):
    wrapper = WRAPPERS[base]
    reading = WRAPPED_CLASSIFICATION[base]["reading"] - OBJECT_PROTOCOL
    overridden = {name for name in reading if overrides(wrapper, base, name)}
    assert overridden <= {"copy", "__copy__"}  # copies keep the name and journal


@pytest.mark.parametrize(
    "base, method", [(b, m) for b in WRAPPERS for m in DISCARDS[b]], ids=lambda x: getattr(x, "__name__", x)
)
def test_each_discarding_method_journals_what_it_discards(journal, base, method):
    call, op, key, values = DISCARDS[base][method]
    safe, plain = make_safe(PLAIN[base](), name="c", journal=journal), PLAIN[base]()
    assert call(safe) == call(plain)  # the builtin's result and effect
    assert safe == plain and type(safe) is WRAPPERS[base]
    [r] = records(journal, "c")
    assert (r.kind, r.op, r.key, r.values) == ("dict" if isinstance(plain, dict) else "list", op, key, values)


def test_nothing_is_journaled_when_nothing_is_discarded(journal):
    d = make_safe(deque([1, 2], maxlen=3), journal=journal)
    d.append(3)
    d.rotate(1)
    d.reverse()
    d[0] = d[0]
    od = make_safe(OrderedDict(a=1), journal=journal)
    od.move_to_end("a")
    od.update(b=2)
    od.setdefault("a", 5)
    od |= {"c": 3}
    ba = make_safe(bytearray(b"ab"), journal=journal)
    ba += b"c"
    ba.insert(0, 0)
    ba.reverse()
    ba[1:1] = b""
    make_safe(deque(maxlen=0), journal=journal).extend([])
    assert records(journal) == []


def test_a_bounded_deque_journals_every_eviction(journal):
    """Against a model: every item that leaves is journaled once, at its position."""
    for maxlen, n, m, left in product(range(4), range(4), range(5), (False, True)):
        if n > maxlen:
            continue
        name = f"d{maxlen}{n}{m}{left}"
        items = [f"new{j}" for j in range(m)]
        safe = make_safe(deque(range(n), maxlen=maxlen), name=name, journal=journal)
        plain = deque(range(n), maxlen=maxlen)
        (safe.extendleft if left else safe.extend)(items)
        (plain.extendleft if left else plain.extend)(items)
        assert safe == plain
        combined = items[::-1] + list(range(n)) if left else list(range(n)) + items
        overflow = len(combined) - maxlen
        found = records(journal, name)
        if overflow <= 0:
            assert found == []
            continue
        [r] = found
        start = maxlen if left else 0
        assert r.values == combined[start : start + overflow]
        assert r.key == (start if overflow == 1 else slice(start, start + overflow, 1))
        assert Counter(r.values) + Counter(safe) == Counter(combined)


def test_a_full_bounded_deque_refuses_insert_and_loses_nothing(journal):
    d = make_safe(deque([1, 2], maxlen=2), journal=journal)
    with pytest.raises(IndexError):
        d.insert(0, 0)
    assert d == deque([1, 2]) and records(journal) == []


def test_concurrent_appends_to_a_bounded_deque_lose_nothing(journal):
    d = make_safe(deque(maxlen=10), name="ring", journal=journal)

    def work(t):
        for i in range(200):
            d.append((t, i))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = Counter(discarded(journal, "ring")) + Counter(d)
    assert everything == Counter((t, i) for t in range(4) for i in range(200))


def test_ordered_dict_keeps_its_api(journal):
    od = make_safe(OrderedDict(a=1, b=2, c=3), name="od", journal=journal)
    assert od.popitem(last=False) == ("a", 1)
    od.move_to_end("b")
    assert list(od) == ["c", "b"]
    assert od != OrderedDict(b=2, c=3) and od == OrderedDict(c=3, b=2)  # order matters
    assert isinstance(od, OrderedDict)
    assert [(r.op, r.key, r.values) for r in records(journal, "od")] == [("popitem", "a", {"a": 1})]


def test_defaultdict_factory_values_are_safe_when_deep(journal):
    groups = make_safe(defaultdict(list), name="groups", journal=journal)
    made = groups["fruit"]
    assert made is groups["fruit"] and isinstance(made, safe_data.SafeList)
    assert made.name == 'groups["fruit"]'
    made.append("fig")
    made.pop()
    assert discarded(journal, 'groups["fruit"]') == ["fig"]
    shallow = make_safe(defaultdict(list), journal=journal, deep=False)
    assert type(shallow["x"]) is list
    with pytest.raises(KeyError):
        make_safe(defaultdict(None), journal=journal)["missing"]


def test_bytearray_validates_before_journaling(journal):
    ba = make_safe(bytearray(b"abc"), name="ba", journal=journal)
    with pytest.raises(ValueError):
        ba[0] = 256
    with pytest.raises(TypeError):
        ba[0:1] = 5
    with pytest.raises(ValueError):
        ba[::2] = b"xyz"
    with pytest.raises(TypeError):
        ba.remove(b"b")  # bytearray.remove takes a byte value, not a subsequence
    ba[0:2] = [120, 121, 122]
    assert ba == bytearray(b"xyzc")
    assert [(r.key, r.values) for r in records(journal, "ba")] == [((slice(0, 2, 1), 3), b"ab")]


@pytest.mark.parametrize("base", list(WRAPPERS), ids=lambda t: t.__name__)
def test_a_failed_journal_write_changes_nothing(journal, base):
    safe = make_safe(PLAIN[base](), journal=journal)
    before = copy.copy(safe)
    journal.close()
    for name, (call, *_rest) in DISCARDS[base].items():
        with pytest.raises(JournalClosedError):
            call(safe)
        assert safe == before, name


def test_an_unpicklable_value_is_never_discarded(journal):
    od = make_safe(OrderedDict(f=lambda: 1), journal=journal)
    old = od["f"]
    with pytest.raises(UnpicklableValueError):
        od["f"] = 2
    assert od["f"] is old


def test_make_safe_converts_builtins_and_nested_containers(journal):
    data = {"orders": [{"items": ["tea"]}], "recent": deque([1], maxlen=2), "tags": {"a"}}
    safe = make_safe(data, name="db", journal=journal)
    assert isinstance(safe, safe_data.SafeDict) and safe == data
    assert isinstance(safe["orders"][0]["items"], safe_data.SafeList)
    assert safe["orders"][0]["items"].name == 'db["orders"][0]["items"]'
    assert type(safe["recent"]) is SafeDeque and safe["recent"].name == 'db["recent"]'
    assert isinstance(safe["tags"], safe_data.SafeSet)
    safe["recent"].extend([2, 3])
    assert discarded(journal, 'db["recent"]') == [1]
    shallow = make_safe([[1]], journal=journal, deep=False)
    assert type(shallow[0]) is list and not shallow.deep
    assert isinstance(make_safe({1, 2}, journal=journal), safe_data.SafeSet)


def test_make_safe_returns_safe_objects_as_they_are(journal):
    for obj in (
        safe_data.SafeList(journal=journal),
        SafeDeque(journal=journal),
        proxy(UserDict(), journal=journal),
    ):
        assert make_safe(obj, name="ignored") is obj


def test_make_safe_default_name_is_where_it_was_called(journal):
    d = make_safe(deque(), journal=journal)
    line = inspect.currentframe().f_lineno - 1
    assert d.name == f"deque@{__name__}:{line}"


@pytest.mark.parametrize(
    "obj", [UserDict(), Counter(), type("MyList", (list,), {})(), (1,), 3], ids=lambda o: type(o).__name__
)
def test_make_safe_refuses_other_types_and_suggests_proxy(obj):
    with pytest.raises(TypeError, match=r"safe_data\.proxy\(obj\)"):
        make_safe(obj)


@TYPES
def test_wrappers_pickle_and_copy_with_their_settings(journal, base):
    safe = make_safe(PLAIN[base](), name="w", journal=journal, capture_caller=True)
    for again in (pickle.loads(pickle.dumps(safe)), copy.copy(safe), copy.deepcopy(safe), safe.copy()):
        assert type(again) is type(safe) and again == safe and again is not safe
        assert (again.name, again.journal, again.capture_caller) == ("w", journal, True)
    if base is deque:
        assert pickle.loads(pickle.dumps(safe)).maxlen == 3
    if base is defaultdict:
        assert copy.deepcopy(safe).default_factory is int
    assert records(journal) == []  # copying discards nothing


def test_capture_caller_names_the_line_that_discarded(journal):
    d = make_safe(deque([1]), journal=journal, capture_caller=True)
    d.pop()
    line = inspect.currentframe().f_lineno - 1
    [r] = records(journal)
    assert r.caller == (__file__, line, "test_capture_caller_names_the_line_that_discarded")


def test_docs_examples_run():
    """docs/protecting.md is doctested; it spells the public names, safe_data.make_safe & co."""
    assert safe_data.make_safe is make_safe and safe_data.proxy is proxy and safe_data.patched is patched
    result = doctest.testfile(DOCS, module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 20
