"""safe_data.synced: the data types, validators, utilities, NumPy conversion, journaling
and thread safety, on the JSON backend (the real one) and a small in-memory backend."""

import json
import threading
import warnings

import pytest

import safe_data
from safe_data.errors import JournalClosedError
from safe_data.synced import SyncedCollection, SyncedDict, SyncedList
from safe_data.synced.backends.collection_json import (
    JSONAttrDict,
    JSONAttrList,
    JSONCollection,
    JSONDict,
    JSONList,
)
from safe_data.synced.errors import InvalidKeyError, KeyTypeError
from safe_data.synced.numpy_utils import NumpyConversionWarning
from safe_data.synced.utils import AbstractTypeResolver, SyncedCollectionJSONEncoder
from safe_data.synced.validators import (
    json_format_validator,
    no_dot_in_key,
    require_string_key,
)

from ._helpers import UnlockedJSONDict, on_disk, records


class MemoryCollection(SyncedCollection):
    """A backend keeping its 'resource' in a dict of this class: the base contract alone
    (no _lock_id, no resource lock, no cache)."""

    _backend = __name__ + ".memory"
    store: dict = {}

    def __init__(self, key=None, *args, **kwargs):
        self._key = key
        super().__init__(**kwargs)

    def _load_from_resource(self):
        return json.loads(self.store[self._key]) if self._key in self.store else None

    def _save_to_resource(self):
        self.store[self._key] = json.dumps(self._to_base())


class MemoryDict(MemoryCollection, SyncedDict):
    pass


class MemoryList(MemoryCollection, SyncedList):
    pass


@pytest.fixture
def jdict(tmp_path, journal):
    return JSONDict(tmp_path / "doc.json", journal=journal)


@pytest.fixture
def jlist(tmp_path, journal):
    return JSONList(tmp_path / "list.json", journal=journal)


def synced_records(journal):
    return [(r.op, r.key, r.values) for r in records(journal) if r.kind == "synced"]


# --- the dict API --------------------------------------------------------------------------


def test_dict_api_matches_dict(jdict):
    plain = {}
    for target in (jdict, plain):
        target["a"] = 1
        target.update({"b": 2}, c=3)
        target.update([("d", 4)])
        target.setdefault("e", [1])
        target.setdefault("a", 99)
        del target["b"]
        target.pop("c")
    assert jdict() == plain == on_disk(jdict)
    assert jdict.pop("missing") is None and jdict.pop("missing", 5) == 5  # as synced_collections
    assert jdict.popitem() == ("e", [1]) and plain.popitem() == ("e", [1])
    assert len(jdict) == 2 and list(jdict) == ["a", "d"] and "a" in jdict and "zz" not in jdict
    assert list(jdict.keys()) == ["a", "d"] and list(jdict.values()) == [1, 4]
    assert dict(jdict.items()) == {"a": 1, "d": 4} and jdict.get("zz", 0) == 0
    with pytest.raises(KeyError):
        del jdict["zz"]
    jdict.clear()
    assert jdict() == {} == on_disk(jdict)
    with pytest.raises(KeyError):
        jdict.popitem()


def test_not_a_dict_but_equal_and_plain_when_called(jdict):
    jdict["a"] = {"b": [1, 2]}
    assert not isinstance(jdict, dict) and isinstance(jdict["a"], SyncedDict)
    plain = jdict()
    assert type(plain) is dict and type(plain["a"]["b"]) is list
    assert jdict == {"a": {"b": [1, 2]}} and jdict != {"a": 1}
    assert jdict == JSONDict(jdict.filename)
    with pytest.raises(TypeError):
        hash(jdict)


def test_repr_round_trips(jdict):
    jdict.update(a=1, b=[1, {"c": None}], d="x", e=1.5, f=True)
    assert eval(repr(jdict)) == jdict() and str(jdict) == repr(jdict)


def test_nested_values_are_converted_and_sync_through_the_root(jdict):
    jdict["a"] = {"b": {"c": [1, [2, {"d": 3}]]}}
    inner = jdict["a"]["b"]["c"][1][1]
    assert isinstance(inner, JSONDict) and isinstance(jdict["a"]["b"]["c"], JSONList)
    inner["d"] = 4
    assert on_disk(jdict) == {"a": {"b": {"c": [1, [2, {"d": 4}]]}}}


def test_nested_children_keep_their_identity_across_outside_changes(jdict):
    jdict["a"] = {"b": 1}
    child = jdict["a"]
    other = JSONDict(jdict.filename)
    other["a"]["b"] = 2
    other["x"] = 1
    assert jdict["a"] is child and child["b"] == 2
    child["c"] = 3
    assert on_disk(jdict) == {"a": {"b": 2, "c": 3}, "x": 1}


def test_reset_replaces_and_rejects_other_types(jdict):
    jdict.update(a=1, b={"c": 2})
    child = jdict["b"]
    jdict.reset({"b": {"c": 5}, "z": 0})
    assert on_disk(jdict) == {"b": {"c": 5}, "z": 0} and jdict["b"] is child
    with pytest.raises(ValueError):
        jdict.reset([1, 2])
    with pytest.raises(ValueError):
        jdict["b"].reset("not a mapping")


def test_data_given_with_the_resource_is_not_written_until_a_change(tmp_path):
    path = tmp_path / "given.json"
    d = JSONDict(path, data={"a": 1})
    assert d() == {"a": 1} and not path.exists()
    d["b"] = 2
    assert on_disk(d) == {"a": 1, "b": 2}


# --- the list API --------------------------------------------------------------------------


def test_list_api_matches_list(jlist):
    plain = []
    for target in (jlist, plain):
        target.append(1)
        target.extend([2, 3, 4, 5])
        target.insert(0, 0)
        target += [6]
        target[1] = 10
        target[2:4] = [7]
        target[::2] = [0, 0, 0]
        del target[0]
        del target[1:2]
        target.remove(0)
        target.reverse()
    assert jlist() == plain == on_disk(jlist)
    assert jlist.pop() == plain.pop() and jlist.pop(0) == plain.pop(0)
    assert jlist() == plain
    jlist.extend([3, 1, 3])
    plain.extend([3, 1, 3])
    assert jlist.index(3) == plain.index(3) and jlist.count(3) == plain.count(3)
    assert list(reversed(jlist)) == list(reversed(plain)) and 1 in jlist
    assert jlist < [99] and jlist <= plain and jlist > [] and jlist >= plain and jlist == plain
    with pytest.raises(IndexError):
        jlist[99] = 1
    with pytest.raises(ValueError):
        jlist[::2] = [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError):
        jlist.remove("absent")
    jlist.clear()
    assert jlist() == [] == on_disk(jlist)
    with pytest.raises(IndexError):
        jlist.pop()
    with pytest.raises(ValueError):
        jlist.reset({"a": 1})


def test_list_nested_and_removed_by_value(jlist):
    jlist.extend([{"a": 1}, [1, 2]])
    jlist[0]["a"] = 2
    jlist[1].append(3)
    jlist.remove({"a": 2})
    assert on_disk(jlist) == [[1, 2, 3]]
    assert not isinstance(jlist, list) and type(jlist()) is list


# --- journaling ----------------------------------------------------------------------------


def test_dict_overwrites_and_deletes_are_journaled_with_their_path(jdict, journal):
    jdict["a"] = 1
    jdict["n"] = {"m": {"k": [1, 2]}}
    assert synced_records(journal) == []  # adds discard nothing
    jdict["a"] = 2
    jdict["n"]["m"]["k"] = "replaced"
    del jdict["n"]["m"]
    jdict.update(a=3, new=1)
    jdict.pop("new")
    jdict.popitem()
    jdict.clear()
    assert synced_records(journal) == [
        ("set", (), {"a": 1}),
        ("set", ("n", "m"), {"k": [1, 2]}),
        ("del", ("n",), {"m": {"k": "replaced"}}),
        ("set", (), {"a": 2}),
        ("del", (), {"new": 1}),
        ("del", (), {"n": {}}),
        ("clear", (), {"a": 3}),
    ]
    assert {r.container for r in records(journal)} == {str(jdict._abspath)}


def test_list_discards_are_journaled_by_index(jlist, journal):
    jlist.extend([0, 1, 2, [3, 4], 5])
    jlist[-1] = 50
    jlist[3][0] = 30
    jlist[0:2] = ["x"]
    del jlist[-2]
    jlist.pop(0)
    jlist.remove(2)
    jlist.clear()
    jlist.clear()  # empty: nothing more
    assert synced_records(journal) == [
        ("set", (), {4: 5}),
        ("set", (3,), {0: 3}),
        ("set", (), {0: 0, 1: 1}),
        ("del", (), {2: [30, 4]}),
        ("del", (), {0: "x"}),
        ("del", (), {0: 2}),
        ("clear", (), [50]),
    ]


def test_reset_journals_the_whole_collection_before(jdict, journal):
    jdict.reset({"a": 1, "b": {"c": 2}})
    assert synced_records(journal) == []  # it was empty
    jdict["b"].reset({"c": 3})
    jdict.reset({"z": 0})
    assert synced_records(journal) == [
        ("set", (), {"b": {"c": 2}}),  # a nested reset overwrites the parent's key
        ("replace", (), {"a": 1, "b": {"c": 3}}),
    ]


def test_journal_by_path_and_the_default_journal(tmp_path):
    by_path = JSONDict(tmp_path / "a.json", journal=tmp_path / "j")
    by_path["k"] = 1
    by_path["k"] = 2
    default = JSONDict(tmp_path / "b.json")
    default["k"] = 1
    del default["k"]
    assert by_path._journal.path == str(tmp_path / "j")
    assert [r.values for r in records(by_path._journal)] == [{"k": 1}]
    assert [r.values for r in records(safe_data.default_journal())] == [{"k": 1}]


def test_a_closed_journal_refuses_the_change(tmp_path):
    journal = safe_data.Journal(tmp_path / "j")
    d = JSONDict(tmp_path / "d.json", journal=journal)
    d.update(a=1, b=[1])
    journal.close()
    d["c"] = 3  # adds discard nothing: allowed
    with pytest.raises(JournalClosedError):
        d["a"] = 2
    with pytest.raises(JournalClosedError):
        d["b"].clear()
    assert d() == on_disk(d) == {"a": 1, "b": [1], "c": 3}


def test_journal_name_defaults_for_other_backends(journal):
    d = MemoryDict(key="k", journal=journal)
    d["a"] = 1
    d["a"] = 2
    assert [(r.container, r.values) for r in records(journal)] == [(MemoryCollection._backend, {"a": 1})]


# --- validators ----------------------------------------------------------------------------


def test_validators_reject_bad_data_before_anything_changes(jdict, journal):
    jdict["ok"] = 1
    for bad in ({1: "int key"}, {"s": {1, 2}}, {"b": b"bytes"}, {"c": 1j}, {"o": object()}):
        with pytest.raises(TypeError):
            jdict.update(bad)
    with pytest.raises(KeyTypeError):
        jdict[1] = 1
    attr = JSONAttrDict(jdict.filename.parent / "attr.json", journal=journal)
    with pytest.raises(InvalidKeyError):
        attr["a.b"] = 1
    with pytest.raises(InvalidKeyError):
        attr["a"] = [{"x.y": 1}]
    assert on_disk(jdict) == {"ok": 1} and synced_records(journal) == []


def test_standard_validators():
    no_dot_in_key({"a": [{"b": 1}]})
    with pytest.raises(InvalidKeyError):
        no_dot_in_key({"a": [{"b.c": 1}]})
    with pytest.raises(KeyTypeError):
        no_dot_in_key({1: 2})
    require_string_key({"a": {"b": 1}})
    with pytest.raises(KeyTypeError):
        require_string_key([{"a": {2: 1}}])  # inside lists too
    json_format_validator({"a": [1, 2.5, None, True, "s", {"b": []}]})
    with pytest.raises(TypeError):
        json_format_validator({"a": (1, {2})})


def test_validators_are_collected_along_the_mro_at_class_creation():
    def positive(data):
        if isinstance(data, int) and data < 0:
            raise ValueError("negative")

    def small(data):
        if isinstance(data, int) and data > 100:
            raise ValueError("too big")

    class Positive(MemoryCollection):
        _validators = (positive,)

    class PositiveList(Positive, SyncedList):
        _validators = (small,)

    class OnlySmall(PositiveList):
        _all_validators = (small,)

    assert PositiveList._all_validators == [small, positive]
    assert "_all_validators" not in Positive.__dict__ or Positive._all_validators == [positive]
    assert OnlySmall._all_validators == (small,)
    lst = PositiveList(key="v")
    lst.append(5)
    for bad in (-1, 101):
        with pytest.raises(ValueError):
            lst.append(bad)
    only = OnlySmall(key="w")
    only.append(-1)


def test_the_registry_resolves_nested_types_per_backend(tmp_path):
    attr = JSONAttrDict(tmp_path / "a.json")
    attr["x"] = [{"y": 1}]
    assert type(attr["x"]) is JSONAttrList and type(attr["x"][0]) is JSONAttrDict
    assert attr.x[0].y == 1
    assert JSONDict in SyncedCollection.registry[JSONCollection._backend]


# --- attribute access ----------------------------------------------------------------------


def test_attr_dict(tmp_path):
    doc = JSONAttrDict(tmp_path / "attr.json")
    doc.foo = {"bar": 1}
    doc.foo.bar = 2
    assert doc["foo"]["bar"] == 2 and doc.filename == tmp_path / "attr.json"
    del doc.foo
    assert "foo" not in doc
    with pytest.raises(AttributeError):
        doc.missing
    with pytest.raises(AttributeError):
        doc.__missing_dunder__
    assert on_disk(doc) == {}


# --- NumPy ---------------------------------------------------------------------------------


def test_numpy_values_are_converted_with_a_warning(jdict):
    np = pytest.importorskip("numpy")
    with pytest.warns(NumpyConversionWarning):
        jdict["array"] = np.arange(3)
    with pytest.warns(NumpyConversionWarning):
        jdict["matrix"] = np.ones((2, 2), dtype=np.int32)
    with pytest.warns(NumpyConversionWarning):
        jdict["scalar"] = np.float64(1.5)
    with pytest.warns(NumpyConversionWarning):
        jdict["zero_d"] = np.array(7)
    with pytest.warns(NumpyConversionWarning):
        jdict["bool"] = np.bool_(True)
    assert on_disk(jdict) == {
        "array": [0, 1, 2],
        "matrix": [[1, 1], [1, 1]],
        "scalar": 1.5,
        "zero_d": 7,
        "bool": True,
    }
    assert type(jdict["scalar"]) is float and isinstance(jdict["array"], JSONList)
    with pytest.raises(TypeError):
        jdict["c"] = np.complex128(1j)
    if hasattr(np, "float128"):
        with pytest.raises(TypeError):
            jdict["long"] = np.float128(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumpyConversionWarning)
        lst = JSONList(jdict.filename.parent / "np.json", data=np.arange(2))
        lst.reset(np.array([5, 6]))
    assert lst() == [5, 6]


def test_json_encoder_handles_synced_collections_and_numpy(jdict):
    jdict["a"] = {"b": [1]}
    encoded = json.dumps({"doc": jdict}, cls=SyncedCollectionJSONEncoder)
    assert json.loads(encoded) == {"doc": {"a": {"b": [1]}}}
    np = pytest.importorskip("numpy")
    with pytest.warns(NumpyConversionWarning):
        assert json.dumps(np.arange(2), cls=SyncedCollectionJSONEncoder) == "[0, 1]"
    with pytest.raises(TypeError):
        json.dumps(object(), cls=SyncedCollectionJSONEncoder)


def test_abstract_type_resolver_caches_per_type_except_blocklisted():
    calls = []

    def is_small(obj):
        calls.append(obj)
        return isinstance(obj, int) and obj < 10

    resolver = AbstractTypeResolver({"SMALL": is_small})
    assert resolver.get_type(1) == "SMALL" and resolver.get_type(100) == "SMALL"  # cached by type
    assert resolver.get_type("s") is None and len(calls) == 2
    blocked = AbstractTypeResolver({"SMALL": is_small}, cache_blocklist=(int,))
    assert blocked.get_type(1) == "SMALL" and blocked.get_type(100) is None


# --- threads -------------------------------------------------------------------------------


def _write_from_threads(collection, n_threads=8, n_keys=40):
    errors = []

    def worker(t):
        try:
            for i in range(n_keys):
                collection[f"t{t}-{i}"] = i
        except Exception as exc:  # the negative control collects what breaks
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors, n_threads * n_keys


def test_threads_writing_one_collection_lose_nothing(tmp_path, journal):
    shared = JSONDict(tmp_path / "threads.json", journal=journal)
    errors, expected = _write_from_threads(shared)
    assert errors == [] and len(on_disk(shared)) == expected == len(shared)


def test_negative_control_threads_without_locks_break(tmp_path, journal):
    """Without thread locks (and without the file lock, which would also serialize them)
    the same workload loses keys or fails: the test above can fail."""
    UnlockedJSONDict.disable_multithreading()
    try:
        for attempt in range(5):
            shared = UnlockedJSONDict(tmp_path / f"unsafe-{attempt}.json", journal=journal)
            errors, expected = _write_from_threads(shared)
            try:
                complete = len(on_disk(shared)) == expected
            except ValueError:  # a torn file
                complete = False
            if errors or not complete:
                return
        pytest.fail("unsynchronized threads never lost a write")
    finally:
        UnlockedJSONDict.enable_multithreading()
    assert UnlockedJSONDict._threading_support_is_active


def test_multithreading_switches():
    assert JSONDict._threading_support_is_active
    with pytest.raises(ValueError):
        MemoryDict.enable_multithreading()
