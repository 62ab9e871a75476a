"""The Redis backend against a real redis-server: the stored form, the compare-and-set
that refuses to overwrite another client's write, threads and the records' names."""

import copy
import json
import threading

import pytest

from ._helpers import discarded, records

redis = pytest.importorskip("redis")

from safe_data.synced.backends.collection_redis import (  # noqa: E402
    ConcurrentWriteError,
    RedisDict,
    RedisList,
)


@pytest.fixture
def other_client(redis_server):
    """A second client of the same server: another application."""
    client = redis.Redis(port=redis_server.port)
    yield client
    client.close()


def test_the_value_is_the_collection_as_json(redis_client, journal):
    doc = RedisDict(redis_client, "doc", journal=journal)
    doc["a"] = {"b": [1, None]}
    assert json.loads(redis_client.get("doc")) == {"a": {"b": [1, None]}}
    assert doc.client is redis_client and doc.key == "doc"


def test_a_write_never_overwrites_a_change_made_after_its_load(redis_client, other_client, journal):
    doc = RedisDict(redis_client, "doc", journal=journal)
    doc["mine"] = 1
    with pytest.raises(ConcurrentWriteError, match="'doc' was changed by another client"):
        with doc._load_and_save:  # another client writes between this write's load and save
            other_client.set("doc", json.dumps({"theirs": 2}))
            doc._data["mine"] = 3
    assert json.loads(other_client.get("doc")) == {"theirs": 2}
    assert doc() == {"theirs": 2}  # reloaded
    doc["mine"] = 3  # a repeat succeeds
    assert json.loads(other_client.get("doc")) == {"theirs": 2, "mine": 3}


@pytest.mark.parametrize("change", ["create", "delete"])
def test_a_key_created_or_deleted_meanwhile_is_a_conflict_too(redis_client, other_client, journal, change):
    items = RedisList(redis_client, "items", journal=journal)
    if change == "delete":
        items.append("mine")
    with pytest.raises(ConcurrentWriteError):
        with items._load_and_save:
            if change == "create":
                other_client.set("items", '["theirs"]')
            else:
                other_client.delete("items")
            items._data.append("more")
    # nothing was written
    assert other_client.get("items") == (b'["theirs"]' if change == "create" else None)


def test_threads_appending_through_their_own_clients_lose_no_update(redis_server, journal):
    def append(name):
        client = redis.Redis(port=redis_server.port)
        items = RedisList(client, "items", journal=journal)
        for i in range(50):
            items.append([name, i])
        client.close()

    threads = [threading.Thread(target=append, args=(name,)) for name in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    items = RedisList(redis.Redis(port=redis_server.port), "items", journal=journal)()
    assert sorted(items) == sorted([name, i] for name in "abcd" for i in range(50))


def test_records_name_the_server_database_and_key(redis_server, journal):
    client = redis.Redis(port=redis_server.port, db=2)
    doc = RedisDict(client, "doc", journal=journal)
    doc["a"] = [1]
    doc["a"][0] = 2
    [record] = records(journal)
    assert record.container == f"redis://localhost:{redis_server.port}/2#doc"
    assert record.key == ("a",) and record.values == {0: 1}
    assert discarded(journal) == [1]
    client.flushdb()
    client.close()


def test_a_root_needs_a_client_and_a_key(redis_client):
    with pytest.raises(ValueError, match="needs a Redis client"):
        RedisDict()
    with pytest.raises(ValueError, match="needs a Redis client"):
        RedisList(redis_client)


def test_deep_copy_is_refused(redis_client, journal):
    with pytest.raises(TypeError, match="cannot be deep-copied"):
        copy.deepcopy(RedisDict(redis_client, "doc", journal=journal))
