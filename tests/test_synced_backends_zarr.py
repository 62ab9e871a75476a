"""The Zarr backend on zarr 2 directory stores: the stored form, codecs, groups left
alone, the records' names and the zarr 3 guard."""

import pytest

zarr = pytest.importorskip("zarr")
numcodecs = pytest.importorskip("numcodecs")

from safe_data.synced.backends.collection_zarr import ZarrDict, ZarrList  # noqa: E402

from ._helpers import (  # noqa: E402
    Canary,
    expect_line,
    finish,
    python,
    records,  # noqa: E402
)


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "collections.zarr")


def test_a_collection_is_a_one_element_object_array(store, journal):
    doc = ZarrDict(zarr.open_group(store, mode="a"), "doc", journal=journal)
    doc["a"] = {"b": [1, 2]}
    array = zarr.open_group(store, mode="r")["doc"]
    assert array.shape == (1,) and array.dtype == object
    assert array[0] == {"a": {"b": [1, 2]}}
    assert doc.name == "doc" and doc.codec == numcodecs.JSON()


def test_two_processes_appending_to_one_list_lose_no_update(store, tmp_path):
    """On a directory store the file lock serializes writers of different processes."""
    go = tmp_path / "go"
    procs = [
        python(
            """
        import os, time, zarr
        from safe_data.synced.backends.collection_zarr import ZarrList

        store, journal, name, go = sys.argv[1:]
        items = ZarrList(zarr.open_group(store, mode="a"), "items", journal=journal)
        say("ready")
        while not os.path.exists(go):
            time.sleep(0.001)
        for i in range(50):
            items.append([name, i])
        """,
            store,
            str(tmp_path / "journal"),
            name,
            str(go),
        )
        for name in ("a", "b")
    ]
    for proc in procs:
        expect_line(proc, "ready")
    go.touch()
    for proc in procs:
        finish(proc)
    items = ZarrList(zarr.open_group(store, mode="r"), "items")()
    assert len(items) == 100
    for name in ("a", "b"):
        assert [i for n, i in items if n == name] == list(range(50))


def test_a_given_codec_encodes_a_new_array(store, journal):
    codec = numcodecs.JSON(sort_keys=False)
    doc = ZarrDict(zarr.open_group(store, mode="a"), "doc", codec=codec, journal=journal)
    doc["z"] = 1
    doc["a"] = 2
    assert zarr.open_group(store, mode="r")["doc"].filters == [codec]
    assert list(ZarrDict(zarr.open_group(store, mode="a"), "doc", journal=journal)()) == ["z", "a"]


def test_a_group_of_the_same_name_is_never_replaced(store, journal):
    group = zarr.open_group(store, mode="a")
    group.create_group("doc").create_group("kept")
    with pytest.raises(zarr.errors.ContainsGroupError):
        ZarrDict(group, "doc", journal=journal)["a"] = 1
    assert list(zarr.open_group(store, mode="r")["doc"].group_keys()) == ["kept"]


def test_records_name_the_store_group_and_array(store, journal):
    items = ZarrList(zarr.open_group(store, mode="a").require_group("sub"), "items", journal=journal)
    items.extend([1, 2])
    del items[0]
    [record] = records(journal)
    assert record.container == f"zarr:{store}/sub/items"
    assert record.op == "del" and record.values == {0: 1}


def test_zarr_3_is_refused_with_what_to_install(store, monkeypatch):
    monkeypatch.setattr(zarr, "__version__", "3.0.0")
    with pytest.raises(
        ImportError,
        match=r"needs zarr 2, and zarr 3.0.0 is installed: "
        r"pip install 'safe_data\[zarr\]'",
    ):
        ZarrDict(zarr.open_group(store, mode="a"), "doc")


def test_a_root_needs_a_group_and_a_name(store):
    with pytest.raises(ValueError, match="needs a zarr group and a name"):
        ZarrDict()
    with pytest.raises(ValueError, match="needs a zarr group and a name"):
        ZarrList(zarr.open_group(store, mode="a"))


def test_a_planted_pickle_codec_is_never_run(store, journal, tmp_path, monkeypatch):
    """An array whose metadata names the pickle codec would run code when read: refused,
    unless the caller passed that codec itself."""

    canary = tmp_path / "canary"
    planted = zarr.open_group(store, mode="a").require_dataset(
        "doc", shape=1, dtype=object, object_codec=numcodecs.Pickle()
    )
    planted[0] = {"x": Canary(str(canary))}
    assert not canary.exists()
    doc = ZarrDict(zarr.open_group(store, mode="a"), "doc", journal=journal)
    with pytest.raises(ValueError, match="'pickle' can run code"):
        doc()
    assert not canary.exists()
    trusted = ZarrDict(zarr.open_group(store, mode="a"), "doc", codec=numcodecs.Pickle(), journal=journal)
    monkeypatch.setattr(numcodecs.pickles, "ALLOW_UNSAFE_PICKLE_DECODE", True, raising=False)
    trusted()  # the explicit choice: decoding runs the pickle (the control)
    assert canary.exists()
