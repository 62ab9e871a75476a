"""proxy(): journaling for mutable mappings and sequences that cannot be converted."""

import inspect
import shelve
import threading
from collections import UserDict, UserList
from collections.abc import MutableMapping, MutableSequence

import pytest

import safe_data
from safe_data.containers.proxies import SafeMappingProxy, SafeSequenceProxy, proxy
from safe_data.errors import JournalClosedError

from ._helpers import CLASSIFICATION, OBJECT_PROTOCOL, discarded, records


class DictBacked(MutableMapping):
    """A user-defined mapping: only the five abstract methods, the ABC's mixins for the rest."""

    def __init__(self, *args, **kwargs):
        self.data = {}
        self.update(*args, **kwargs)

    def __getitem__(self, key):
        return self.data[key]

    def __setitem__(self, key, value):
        self.data[key] = value

    def __delitem__(self, key):
        del self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


class ListBacked(MutableSequence):
    """A user-defined sequence: only the abstract methods, the ABC's mixins for the rest."""

    def __init__(self, items=()):
        self.data = list(items)

    def __getitem__(self, index):
        return self.data[index]

    def __setitem__(self, index, value):
        self.data[index] = value

    def __delitem__(self, index):
        del self.data[index]

    def __len__(self):
        return len(self.data)

    def insert(self, index, value):
        self.data.insert(index, value)


@pytest.fixture(params=["DictBacked", "UserDict", "shelve"])
def mapping(request, tmp_path):
    """A factory of mappings holding {"a": 1, "b": 2, "c": 3}, one kind per parameter."""
    shelves = []

    def make():
        if request.param == "shelve":
            shelf = shelve.open(str(tmp_path / f"shelf{len(shelves)}"))
            shelves.append(shelf)
            shelf.update(a=1, b=2, c=3)
            return shelf
        return {"DictBacked": DictBacked, "UserDict": UserDict}[request.param](a=1, b=2, c=3)

    yield make
    for shelf in shelves:
        shelf.close()


@pytest.fixture(params=[ListBacked, UserList], ids=lambda c: c.__name__)
def sequence(request):
    return lambda: request.param([1, 2, 3])


def abc_methods(abc) -> set:
    """The methods an ABC defines, abstract and mixin (``None`` marks an absent one)."""
    return {name for cls in abc.__mro__[:-1] for name, value in vars(cls).items() if callable(value)}


ABCS = {MutableMapping: (dict, SafeMappingProxy), MutableSequence: (list, SafeSequenceProxy)}
ABC_PARAMS = pytest.mark.parametrize("abc", list(ABCS), ids=lambda a: a.__name__)

#: one call of each discarding method of the ABC: (call, op, key, values)
MAPPING_DISCARDS = {
    "__setitem__": (lambda m: m.__setitem__("a", 9), "set", "a", {"a": 1}),
    "__delitem__": (lambda m: m.__delitem__("b"), "del", "b", {"b": 2}),
    "pop": (lambda m: m.pop("c"), "pop", "c", {"c": 3}),
    "popitem": (lambda m: m.popitem(), "popitem", "a", {"a": 1}),  # the first key, as the ABC
    "clear": (lambda m: m.clear(), "clear", None, {"a": 1, "b": 2, "c": 3}),
    "update": (lambda m: m.update({"a": 9, "z": 0}, b=8), "update", None, {"a": 1, "b": 2}),
}
SEQUENCE_DISCARDS = {
    "__setitem__": (lambda s: s.__setitem__(-1, 9), "set", 2, [3]),
    "__delitem__": (lambda s: s.__delitem__(0), "del", 0, [1]),
    "pop": (lambda s: s.pop(), "pop", 2, [3]),
    "remove": (lambda s: s.remove(2), "remove", 1, [2]),
    "clear": (lambda s: s.clear(), "clear", None, [1, 2, 3]),
}
#: the ABC methods that must journal nothing, with a call
MAPPING_OTHERS = {
    "__getitem__": lambda m: m["a"],
    "__iter__": lambda m: list(m),
    "__len__": len,
    "__contains__": lambda m: "a" in m,
    "get": lambda m: m.get("a"),
    "keys": lambda m: list(m.keys()),
    "items": lambda m: list(m.items()),
    "values": lambda m: list(m.values()),
    "__eq__": lambda m: m == {"a": 1, "b": 2, "c": 3},
    "setdefault": lambda m: (m.setdefault("a", 5), m.setdefault("n", 5)),
}
SEQUENCE_OTHERS = {
    "__getitem__": lambda s: s[0],
    "__iter__": lambda s: list(s),
    "__len__": len,
    "__contains__": lambda s: 2 in s,
    "__reversed__": lambda s: list(reversed(s)),
    "index": lambda s: s.index(2),
    "count": lambda s: s.count(2),
    "insert": lambda s: s.insert(0, 0),
    "append": lambda s: s.append(4),
    "extend": lambda s: s.extend([5, 6]),
    "__iadd__": lambda s: s.__iadd__([7]),
    "reverse": lambda s: s.reverse(),
    "__eq__": lambda s: s == [1, 2, 3],
}


@ABC_PARAMS
def test_every_abc_method_is_classified(abc):
    builtin, _ = ABCS[abc]
    classified = set().union(*CLASSIFICATION[builtin].values())
    unknown = sorted(abc_methods(abc) - classified - OBJECT_PROTOCOL)
    assert not unknown, f"classify these {abc.__name__} methods: {unknown}"


@ABC_PARAMS
def test_the_proxy_implements_every_abc_method_itself(abc):
    """No ABC mixin runs on the proxy: each method delegates to the wrapped object's own
    (or journals, then changes it through its primitives)."""
    _, proxy_class = ABCS[abc]
    assert issubclass(proxy_class, abc) and not proxy_class.__abstractmethods__
    for name in abc_methods(abc) - OBJECT_PROTOCOL | {"__eq__"}:
        owner = next(cls for cls in proxy_class.__mro__ if name in vars(cls))
        assert owner.__module__ == "safe_data.containers.proxies", f"{name} comes from {owner}"


@ABC_PARAMS
def test_every_discarding_and_every_other_method_is_exercised(abc):
    builtin, _ = ABCS[abc]
    discards, others = (
        (MAPPING_DISCARDS, MAPPING_OTHERS) if abc is MutableMapping else (SEQUENCE_DISCARDS, SEQUENCE_OTHERS)
    )
    methods = abc_methods(abc) - OBJECT_PROTOCOL
    assert set(discards) == methods & CLASSIFICATION[builtin]["discarding"]
    assert set(others) == methods - set(discards) | {"__eq__"}


@pytest.mark.parametrize("method", list(MAPPING_DISCARDS))
def test_mapping_proxy_journals_each_discard(journal, mapping, method):
    call, op, key, values = MAPPING_DISCARDS[method]
    target, reference = mapping(), DictBacked(a=1, b=2, c=3)  # the ABC's own mixins
    p = proxy(target, name="m", journal=journal)
    assert call(p) == call(reference)
    assert dict(target) == dict(reference)
    [r] = records(journal, "m")
    assert (r.kind, r.op, r.key, r.values) == ("dict", op, key, values)


@pytest.mark.parametrize("method", list(SEQUENCE_DISCARDS))
def test_sequence_proxy_journals_each_discard(journal, sequence, method):
    call, op, key, values = SEQUENCE_DISCARDS[method]
    target, reference = sequence(), [1, 2, 3]
    p = proxy(target, name="s", journal=journal)
    assert call(p) == call(reference)
    assert list(target) == reference
    [r] = records(journal, "s")
    assert (r.kind, r.op, r.key, r.values) == ("list", op, key, values)


def test_mapping_proxy_other_methods_journal_nothing(journal, mapping):
    target = mapping()
    p = proxy(target, journal=journal)
    for call in MAPPING_OTHERS.values():
        call(p)
    p["a"] = 1  # the same value again: nothing is lost
    assert records(journal) == [] and dict(target) == {"a": 1, "b": 2, "c": 3, "n": 5}


def test_sequence_proxy_other_methods_journal_nothing(journal, sequence):
    target = sequence()
    p = proxy(target, journal=journal)
    results = [call(p) for call in SEQUENCE_OTHERS.values()]
    assert results[:7] == [1, [1, 2, 3], 3, True, [3, 2, 1], 1, 1]
    p.extend(p)  # itself: read once, as the ABC's extend does
    assert list(target) == [7, 6, 5, 4, 3, 2, 1, 0] * 2 and records(journal) == []


def test_sequence_proxy_slices(journal):
    target = UserList(range(6))
    p = proxy(target, name="s", journal=journal)
    p[1:3] = iter("ab")
    del p[::2]
    with pytest.raises(ValueError):
        p[::2] = [1]  # extended slice of another size: refused before journaling
    assert list(target) == ["a", 3, 5]
    assert [(r.op, r.key, r.values) for r in records(journal, "s")] == [
        ("set", (slice(1, 3, 1), 2), [1, 2]),
        ("del", slice(0, 6, 2), [0, "b", 4]),
    ]


def test_missing_keys_and_indices_raise_and_journal_nothing(journal, mapping):
    m, s = proxy(mapping(), journal=journal), proxy(ListBacked(), journal=journal)
    for call in (
        lambda: m.pop("zz"),
        lambda: m.__delitem__("zz"),
        lambda: s.pop(),
        lambda: s.remove(1),
        lambda: s.__delitem__(0),
    ):
        with pytest.raises((KeyError, IndexError, ValueError)):
            call()
    m.clear()
    m.clear()
    with pytest.raises(KeyError):
        m.popitem()
    assert m.pop("zz", "default") == "default"
    assert [r.op for r in records(journal)] == ["clear"]


def test_a_failed_journal_write_changes_nothing(journal, mapping, sequence):
    m, s = mapping(), sequence()
    pm, ps = proxy(m, journal=journal), proxy(s, journal=journal)
    journal.close()
    for p, target, discards in ((pm, m, MAPPING_DISCARDS), (ps, s, SEQUENCE_DISCARDS)):
        before = list(target.items()) if p is pm else list(target)
        for name, (call, *_rest) in discards.items():
            with pytest.raises(JournalClosedError):
                call(p)
            assert (list(target.items()) if p is pm else list(target)) == before, name


def test_concurrent_pops_journal_each_item_once(journal):
    target = UserList(range(2000))
    p = proxy(target, name="work", journal=journal)

    def work():
        while True:
            try:
                p.pop()
            except IndexError:
                return

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(discarded(journal, "work")) == list(range(2000))


def test_proxy_delegates_and_keeps_the_object(journal):
    target = UserDict(a=1)
    p = proxy(target, journal=journal)
    assert p.target is target and p == {"a": 1} and p == proxy(UserDict(a=1), journal=journal)
    assert isinstance(p, MutableMapping) and not isinstance(p, dict)
    target["b"] = 2  # changes through the object itself are seen (and not journaled)
    assert p["b"] == 2 and repr(p).startswith("SafeMappingProxy({'a': 1, 'b': 2}, name=")
    with pytest.raises(AttributeError, match=r"\.target\.data"):
        p.data
    with pytest.raises(TypeError):
        hash(p)


def test_proxy_names_journal_and_caller(journal):
    p = proxy(ListBacked([1]), journal=journal, capture_caller=True)
    line = inspect.currentframe().f_lineno - 1
    assert p.name == f"list@{__name__}:{line}" and p.journal is journal and p.capture_caller
    p.pop()
    line = inspect.currentframe().f_lineno - 1
    [r] = records(journal)
    assert r.caller == (__file__, line, "test_proxy_names_journal_and_caller")
    assert proxy(DictBacked(), journal=journal).name.startswith("dict@")
    assert safe_data.default_journal() is proxy(DictBacked()).journal
    direct = SafeSequenceProxy(ListBacked())
    line = inspect.currentframe().f_lineno - 1
    assert direct.name == f"list@{__name__}:{line}"
    with pytest.raises(TypeError, match="wraps a MutableMapping"):
        SafeMappingProxy(ListBacked())


def test_proxy_returns_what_already_journals_and_refuses_the_rest(journal):
    already = [safe_data.SafeList(journal=journal), proxy(UserList(), journal=journal)]
    for obj in already:
        assert proxy(obj) is obj
    for obj in ({1}, (1,), 3, "text"):
        with pytest.raises(TypeError, match="MutableMapping or MutableSequence"):
            proxy(obj)


def test_plain_builtins_can_be_proxied_in_place(journal):
    shared = [1, 2]
    alias = shared
    p = proxy(shared, name="shared", journal=journal)
    p.remove(1)
    assert alias == [2] and discarded(journal, "shared") == [1]
