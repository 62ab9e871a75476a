"""What every synced-collection backend must do, run on each: SQLite (real files), Redis
(a real redis-server), Zarr (zarr 2 on a directory store) and MongoDB.

MongoDB runs against mongomock, an in-memory stand-in for a server (none can be
installed here): these tests check the backend's logic, not MongoDB's behaviour.

Backend-specific behaviour is in tests/test_synced_backends_<backend>.py.
"""

import importlib.metadata
import json

import pytest

from ._helpers import discarded, finish, python, records


@pytest.fixture(params=["sqlite", "redis", "zarr", "mongodb (mongomock stand-in)"])
def backend(request, tmp_path, journal):
    """``(open, prefix)``: ``open("dict" | "list", name)`` makes a new handle on the
    resource ``name`` (a second call with that name opens the same resource through new
    client objects); ``prefix`` starts the journal's container name of its records."""
    kind = request.param.split()[0]
    if kind == "sqlite":
        from safe_data.synced.backends.collection_sqlite import SQLiteDict, SQLiteList

        types = SQLiteDict, SQLiteList

        def resource(name):
            return tmp_path / "collections.db", name

        prefix = "sqlite:"
    elif kind == "redis":
        port = request.getfixturevalue("redis_client").connection_pool.connection_kwargs["port"]
        import redis

        from safe_data.synced.backends.collection_redis import RedisDict, RedisList

        types = RedisDict, RedisList

        def resource(name):
            client = redis.Redis(port=port)
            request.addfinalizer(client.close)
            return client, name

        prefix = f"redis://localhost:{port}/0#"
    elif kind == "zarr":
        zarr = pytest.importorskip("zarr")
        from safe_data.synced.backends.collection_zarr import ZarrDict, ZarrList

        types = ZarrDict, ZarrList

        def resource(name):
            return zarr.open_group(str(tmp_path / "collections.zarr"), mode="a"), name

        prefix = "zarr:"
    else:
        mongomock = pytest.importorskip("mongomock")
        from safe_data.synced.backends.collection_mongodb import MongoDBDict, MongoDBList

        types = MongoDBDict, MongoDBList
        server = mongomock.MongoClient()

        def resource(name):
            return server.db.collections, {"name": name}

        prefix = "mongodb:db.collections#"

    def open_(kind, name):
        return types[kind == "list"](*resource(name), journal=journal)

    return open_, prefix


def test_dict_set_get_delete_and_plain_data(backend):
    open_, _ = backend
    doc = open_("dict", "doc")
    assert doc() == {} and len(doc) == 0
    doc["a"] = 1
    doc["b"] = {"c": [1, 2, {"d": None}]}
    doc.update(e="f")
    assert doc["a"] == 1 and "b" in doc and "x" not in doc and len(doc) == 3
    assert doc.get("x", 7) == 7
    del doc["a"]
    assert doc.pop("e") == "f"
    plain = doc()
    assert plain == {"b": {"c": [1, 2, {"d": None}]}}
    assert type(plain) is dict and type(plain["b"]) is dict and type(plain["b"]["c"]) is list
    assert repr(doc) == repr(plain) and str(doc) == str(plain)
    assert doc == plain


def test_dict_nested_changes_reach_the_resource(backend):
    open_, _ = backend
    doc = open_("dict", "doc")
    doc["outer"] = {"inner": {"list": [1]}}
    doc["outer"]["inner"]["list"].append(2)
    doc["outer"]["inner"]["x"] = True
    assert open_("dict", "doc")() == {"outer": {"inner": {"list": [1, 2], "x": True}}}


def test_list_operations_and_plain_data(backend):
    open_, _ = backend
    items = open_("list", "items")
    assert items() == []
    items.append(1)
    items.extend([2, 3])
    items.insert(0, 0)
    items[1] = "one"
    items += [[4, {"five": 5}]]
    assert items() == [0, "one", 2, 3, [4, {"five": 5}]]
    items[4][1]["five"] = 55
    del items[0]
    assert items.pop() == [4, {"five": 55}]
    items.remove(2)
    plain = items()
    assert plain == ["one", 3] and type(plain) is list
    assert repr(items) == repr(plain) and len(items) == 2 and items[-1] == 3


def test_a_second_instance_sees_the_data_and_the_first_sees_its_changes(backend):
    open_, _ = backend
    first = open_("dict", "shared")
    first["x"] = {"y": 1}
    second = open_("dict", "shared")
    assert second() == {"x": {"y": 1}}
    second["x"]["y"] = 2
    del second["x"]["y"]
    second["z"] = [1]
    assert first() == {"x": {}, "z": [1]}
    assert first["z"] == [1]


def test_resources_are_independent(backend):
    open_, _ = backend
    open_("dict", "one")["k"] = 1
    open_("list", "two").append(2)
    assert open_("dict", "one")() == {"k": 1}
    assert open_("list", "two")() == [2]
    assert open_("dict", "three")() == {}


def test_reset_replaces_everything(backend):
    open_, _ = backend
    doc = open_("dict", "doc")
    doc["old"] = 1
    doc.reset({"new": [2]})
    assert open_("dict", "doc")() == {"new": [2]}
    items = open_("list", "items")
    items.extend([1, 2])
    items.reset([3])
    assert open_("list", "items")() == [3]
    with pytest.raises(ValueError):
        doc.reset([1])


def test_invalid_data_is_refused_before_anything_changes(backend):
    open_, _ = backend
    doc = open_("dict", "doc")
    doc["kept"] = 1
    with pytest.raises(TypeError):
        doc[1] = "a non-str key"
    with pytest.raises(TypeError):
        doc["x"] = {1: "a non-str key, nested"}
    assert open_("dict", "doc")() == {"kept": 1}


def test_overwrites_and_deletions_are_journaled(backend, journal):
    open_, prefix = backend
    doc = open_("dict", "doc")
    doc["a"] = {"b": [1, 2]}
    doc["a"]["b"][0] = "one"  # overwrites 1
    doc["a"] = "replaced"  # overwrites {"b": ["one", 2]}
    del doc["a"]  # deletes "replaced"
    items = open_("list", "items")
    items.extend(["p", "q"])
    items.pop(0)  # deletes "p"
    items.clear()  # discards "q"
    assert discarded(journal) == [1, {"b": ["one", 2]}, "replaced", "p", "q"]
    names = {r.container for r in records(journal)}
    assert len(names) == 2 and all(name.startswith(prefix) for name in names)
    assert [r.op for r in records(journal)] == ["set", "set", "del", "del", "clear"]


def test_writes_that_discard_nothing_journal_nothing(backend, journal):
    open_, _ = backend
    doc = open_("dict", "doc")
    doc["a"] = 1
    doc.setdefault("b", 2)
    open_("list", "items").append(1)
    assert records(journal) == []


def test_modules_import_without_their_optional_packages_and_say_what_to_install(tmp_path):
    """In a child interpreter where redis, pymongo, zarr and numcodecs cannot be
    imported: every module imports, its flag (``MONGO``, ``ZARR``) says so, and using one
    names the package to install."""
    proc = python(
        """
        import json

        for name in ("redis", "pymongo", "bson", "zarr", "numcodecs"):
            sys.modules[name] = None  # import raises ImportError, find_spec says absent
        from safe_data.synced.backends import (
            collection_mongodb, collection_redis, collection_sqlite, collection_zarr)

        errors = {"flags": [collection_mongodb.MONGO, collection_zarr.ZARR]}
        for name, make in [
            ("redis", lambda: collection_redis.RedisDict(None, "key")),
            ("mongodb", lambda: collection_mongodb.MongoDBDict(object(), {"name": "x"})),
            ("zarr", lambda: collection_zarr.ZarrList(object(), "name")),
        ]:
            try:
                make()
            except Exception as error:
                errors[name] = [type(error).__name__, str(error)]
        doc = collection_sqlite.SQLiteDict(sys.argv[1], "doc", journal=sys.argv[2])
        doc["works"] = True
        errors["sqlite"] = doc()
        say(json.dumps(errors))
        """,
        str(tmp_path / "x.db"),
        str(tmp_path / "journal"),
    )
    errors = json.loads(finish(proc))
    assert errors["flags"] == [False, False]
    assert errors["redis"][0] == "ValueError" and "pip install 'safe_data[redis]'" in errors["redis"][1]
    assert errors["mongodb"] == ["ImportError", "MongoDBDict needs PyMongo: pip install 'safe_data[mongodb]'"]
    assert errors["zarr"] == [
        "ImportError",
        "ZarrList needs zarr 2 and numcodecs: pip install 'safe_data[zarr]'",
    ]
    assert errors["sqlite"] == {"works": True}


@pytest.mark.parametrize("extra,package", [("redis", "redis"), ("zarr", "zarr"), ("mongodb", "pymongo")])
def test_the_extras_the_errors_name_install_the_backends_package(extra, package):
    requires = importlib.metadata.requires("safe_data") or []
    assert extra in importlib.metadata.metadata("safe_data").get_all("Provides-Extra")
    assert any(r.startswith(package) and f'extra == "{extra}"' in r for r in requires), requires
