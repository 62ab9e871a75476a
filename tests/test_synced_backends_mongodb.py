"""The MongoDB backend against mongomock, an in-memory stand-in for a MongoDB server
(none can be installed here): these tests check the backend's own logic (the document
it writes, its uid rules, the records' names), not MongoDB's behaviour."""

import copy

import pytest

mongomock = pytest.importorskip("mongomock")

from safe_data.synced.backends.collection_mongodb import MongoDBDict, MongoDBList  # noqa: E402

from ._helpers import records  # noqa: E402


@pytest.fixture
def collection():
    return mongomock.MongoClient().db.collections


def test_the_document_is_the_uid_and_the_data(collection, journal):
    doc = MongoDBDict(collection, {"project": "p", "name": "doc"}, journal=journal)
    doc["a"] = {"b": [1]}
    stored = collection.find_one({"project": "p", "name": "doc"}, {"_id": False})
    assert stored == {"project": "p", "name": "doc", "data": {"a": {"b": [1]}}}
    assert collection.count_documents({}) == 1
    assert doc.collection is collection and doc.uid == {"project": "p", "name": "doc"}


def test_uids_select_their_own_documents(collection, journal):
    MongoDBList(collection, {"name": "one"}, journal=journal).append(1)
    MongoDBList(collection, {"name": "two"}, journal=journal).append(2)
    assert MongoDBList(collection, {"name": "one"}, journal=journal)() == [1]
    assert collection.count_documents({}) == 2


def test_records_name_the_collection_and_the_uid(collection, journal):
    doc = MongoDBDict(collection, {"name": "doc", "n": 1}, journal=journal)
    doc["a"] = 1
    doc["a"] = 2
    [record] = records(journal)
    assert record.container == 'mongodb:db.collections#{"n": 1, "name": "doc"}'
    assert record.values == {"a": 1}


def test_the_uid_may_not_use_the_data_field(collection):
    with pytest.raises(ValueError, match="'data' may not be part of the uid"):
        MongoDBDict(collection, {"data": 1})


def test_a_root_needs_a_collection_and_a_uid(collection):
    with pytest.raises(ValueError, match="needs a MongoDB collection and a uid"):
        MongoDBDict()
    with pytest.raises(ValueError, match="needs a MongoDB collection and a uid"):
        MongoDBList(collection)


def test_deep_copy_is_refused(collection, journal):
    with pytest.raises(TypeError, match="cannot be deep-copied"):
        copy.deepcopy(MongoDBDict(collection, {"name": "doc"}, journal=journal))
