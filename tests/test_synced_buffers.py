"""safe_data.synced buffering: per-instance and per-class contexts, capacities, sharing,
and outside changes to a buffered file (the disk wins; the buffered data is journaled)."""

import json
import os
from pathlib import Path

import pytest

from safe_data.synced.backends.collection_json import (
    BufferedJSONAttrDict,
    BufferedJSONDict,
    BufferedJSONList,
    MemoryBufferedJSONAttrDict,
    MemoryBufferedJSONDict,
    MemoryBufferedJSONList,
)
from safe_data.synced.buffers.buffered_collection import BufferedCollection
from safe_data.synced.errors import BufferedError, MetadataError

from ._helpers import on_disk, records

DICTS = [BufferedJSONDict, MemoryBufferedJSONDict]


@pytest.fixture(params=DICTS, ids=["serialized", "memory"])
def cls(request):
    return request.param


@pytest.fixture
def doc(cls, tmp_path, journal):
    d = cls(tmp_path / "doc.json", journal=journal)
    d["a"] = 1
    return d


def test_buffered_writes_reach_the_file_at_exit(doc):
    with doc.buffered:
        doc["a"] = 2
        doc["b"] = {"c": [1]}
        doc["b"]["c"].append(2)
        assert on_disk(doc) == {"a": 1} and doc() == {"a": 2, "b": {"c": [1, 2]}}
    assert on_disk(doc) == {"a": 2, "b": {"c": [1, 2]}}


def test_nested_contexts_flush_when_the_last_exits(cls, doc):
    assert isinstance(doc, BufferedCollection) and not cls.backend_is_buffered()
    with cls.buffer_backend():
        assert cls.backend_is_buffered()
        with doc.buffered:
            doc["a"] = 2
        assert on_disk(doc) == {"a": 1}  # the class is still buffered
        doc["a"] = 3
    assert on_disk(doc) == {"a": 3}


def test_discards_are_journaled_while_buffered(doc, journal):
    with doc.buffered:
        doc["a"] = 2
        del doc["a"]
        assert [(r.op, r.values) for r in records(journal)] == [("set", {"a": 1}), ("del", {"a": 2})]


def test_collections_of_one_file_share_the_buffer(cls, tmp_path, journal):
    first = cls(tmp_path / "shared.json", journal=journal)
    with cls.buffer_backend():
        second = cls(tmp_path / "shared.json", journal=journal)
        first["x"] = 1
        second["y"] = 2
        assert first() == second() == {"x": 1, "y": 2}
    assert on_disk(first) == {"x": 1, "y": 2}
    first["z"] = 3  # after the flush each goes to the file again
    assert second() == {"x": 1, "y": 2, "z": 3}


def test_an_outside_change_wins_and_the_buffered_data_is_journaled(doc, journal):
    path = doc.filename
    with pytest.raises(MetadataError) as caught:
        with doc.buffered:
            doc["a"] = 2
            doc["mine"] = True
            with open(path, "w") as f:
                json.dump({"theirs": True}, f)
    assert caught.value.buffer_contents == {"a": 2, "mine": True}
    assert str(os.path.abspath(path)) in str(caught.value)
    assert on_disk(doc) == doc() == {"theirs": True}
    last = records(journal)[-1]
    assert (last.op, last.key, last.values) == ("replace", (), {"a": 2, "mine": True})


def test_an_outside_change_during_class_buffering_raises_buffered_error(cls, doc):
    with pytest.raises(BufferedError) as caught:
        with cls.buffer_backend():
            doc["a"] = 5
            os.replace(_json_file(doc.filename.parent / "other", [1]), doc.filename)
    ((name, reason),) = caught.value.files.items()
    assert name == doc.filename and isinstance(reason, MetadataError)
    assert json.loads(Path(doc.filename).read_text()) == [1]


def _json_file(path, data):
    path.write_text(json.dumps(data))
    return path


def test_another_writer_using_the_lock_is_detected_too(cls, doc, tmp_path):
    plain = BufferedJSONDict if cls is MemoryBufferedJSONDict else MemoryBufferedJSONDict
    with pytest.raises(MetadataError):
        with doc.buffered:
            doc["a"] = 2
            other = plain(doc.filename)  # unbuffered, same file
            other["a"] = 3
    assert on_disk(doc) == {"a": 3}


def test_reading_only_writes_nothing(doc):
    before = os.stat(doc.filename).st_mtime_ns
    with doc.buffered:
        assert doc["a"] == 1
    assert os.stat(doc.filename).st_mtime_ns == before


def test_buffer_capacity(cls, tmp_path, journal):
    original = cls.get_buffer_capacity()
    assert cls.get_current_buffer_size() == 0
    docs = [cls(tmp_path / f"d{i}.json", journal=journal) for i in range(3)]
    unit = 1 if cls is MemoryBufferedJSONDict else len(json.dumps({"k": 0}))  # files or bytes
    with cls.buffer_backend(buffer_capacity=2 * unit):
        assert cls.get_buffer_capacity() == 2 * unit
        docs[0]["k"] = 0
        docs[1]["k"] = 0
        assert not os.path.exists(docs[0].filename)
        docs[2]["k"] = 0  # over capacity: everything is written out
        assert on_disk(docs[0]) == {"k": 0} and cls.get_current_buffer_size() <= 2 * unit
    assert cls.get_buffer_capacity() == original and cls.get_current_buffer_size() == 0
    assert all(on_disk(d) == {"k": 0} for d in docs)


def test_set_buffer_capacity_below_the_current_size_flushes(cls, doc):
    original = cls.get_buffer_capacity()
    try:
        with cls.buffer_backend():
            doc["a"] = 7
            assert cls.get_current_buffer_size() > 0
            cls.set_buffer_capacity(0)
            assert on_disk(doc) == {"a": 7}
    finally:
        cls.set_buffer_capacity(original)


@pytest.mark.parametrize("list_cls", [BufferedJSONList, MemoryBufferedJSONList])
def test_buffered_lists(list_cls, tmp_path):
    lst = list_cls(tmp_path / "l.json")
    with lst.buffered:
        lst.extend([1, 2, {"a": 1}])
        lst[2]["a"] = 2
        lst.pop(0)
    assert on_disk(lst) == [2, {"a": 2}]


@pytest.mark.parametrize("attr_cls", [BufferedJSONAttrDict, MemoryBufferedJSONAttrDict])
def test_buffered_attr_dicts(attr_cls, tmp_path):
    doc = attr_cls(tmp_path / "a.json")
    with doc.buffered:
        doc.x = {"y": 1}
        doc.x.y = 2
    assert on_disk(doc) == {"x": {"y": 2}} and doc.buffered is not None


def test_nested_children_keep_their_identity_through_buffering(cls, doc, tmp_path):
    doc["n"] = {"x": 1}
    child = doc["n"]
    with doc.buffered:
        child["x"] = 2
    with cls.buffer_backend():  # a later flush of the class must leave doc alone
        cls(tmp_path / "other.json")["y"] = 1
    assert doc["n"] is child and on_disk(doc) == {"a": 1, "n": {"x": 2}}
    child["x"] = 3
    assert on_disk(doc) == {"a": 1, "n": {"x": 3}}
