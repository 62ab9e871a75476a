"""safe_data.synced JSON backend: atomic replace, the cache of unchanged files, the file
lock between processes (with negative controls), write_concern, filename changes."""

import copy
import json
import multiprocessing
import os
from pathlib import Path

import pytest

import safe_data
from safe_data.synced.backends.collection_json import (
    BufferedJSONDict,
    JSONDict,
    JSONList,
    MemoryBufferedJSONDict,
)

from ._helpers import UnlockedJSONDict, on_disk, records

FORK = multiprocessing.get_context("fork")


def test_file_is_plain_json_replaced_atomically(tmp_path):
    tmp_path = tmp_path / "files"
    tmp_path.mkdir()
    d = JSONDict(tmp_path / "doc.json")
    d["a"] = {"b": [1, "x"]}
    assert (tmp_path / "doc.json").read_text() == json.dumps({"a": {"b": [1, "x"]}})
    inode = os.stat(tmp_path / "doc.json").st_ino
    d["a"] = 2
    assert os.stat(tmp_path / "doc.json").st_ino != inode  # a new file, never rewritten in place
    # what lies next to it: the lock file and the swap file (the previous version)
    assert sorted(os.listdir(tmp_path)) == [".doc.json.lock", ".doc.json.swap", "doc.json"]
    assert json.loads((tmp_path / ".doc.json.swap").read_text()) == {"a": {"b": [1, "x"]}}


def test_outside_changes_are_seen(tmp_path):
    path = tmp_path / "doc.json"
    d = JSONDict(path)
    d["n"] = 1
    path.write_text(json.dumps({"n": 2}))  # same size, rewritten in place by another program
    os.utime(path, ns=(1, 1))  # even with a timestamp older than ours
    assert d["n"] == 2
    os.replace(_write(tmp_path / "new", {"m": 3}), path)
    assert d() == {"m": 3}
    os.unlink(path)
    assert d() == {"m": 3}  # a missing file leaves memory as it is (as synced_collections)


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_unchanged_files_are_not_read_again(tmp_path, monkeypatch):
    from safe_data.synced.backends import collection_json

    d = JSONDict(tmp_path / "doc.json")
    d["a"] = 1
    reads = []
    real_read = collection_json.read_file
    monkeypatch.setattr(collection_json, "read_file", lambda path: reads.append(path) or real_read(path))
    for _ in range(10):
        assert d["a"] == 1
    d["a"] = 2
    assert reads == []
    JSONDict(tmp_path / "doc.json")["b"] = 1  # another writer (it reads the file once)
    assert d() == {"a": 2, "b": 1} and len(reads) == 2


def test_write_concern_and_filename_change(tmp_path):
    d = JSONDict(tmp_path / "a.json", write_concern=True)
    d["x"] = 1
    assert on_disk(d) == {"x": 1}
    d.filename = str(tmp_path / "b.json")
    d["y"] = 2
    assert on_disk(d) == {"x": 1, "y": 2}
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}


def test_a_failed_write_leaves_the_file_alone(tmp_path):
    path = tmp_path / "doc.json"
    d = JSONDict(path)
    d["a"] = 1
    before = os.stat(path)
    with pytest.raises(KeyError):
        del d["missing"]
    with pytest.raises(TypeError):
        d["b"] = {1, 2}
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_corrupt_file_raises_and_is_read_again(tmp_path):
    path = tmp_path / "doc.json"
    d = JSONDict(path)
    path.write_text("{not json")
    with pytest.raises(ValueError):
        d()
    path.write_text('{"ok": true}')
    assert d() == {"ok": True}


def test_list_root(tmp_path):
    lst = JSONList(tmp_path / "l.json")
    lst.extend([1, {"a": [2]}])
    lst[1]["a"].append(3)
    assert on_disk(lst) == [1, {"a": [2, 3]}]


def test_locked_makes_read_modify_write_atomic(tmp_path):
    d = JSONDict(tmp_path / "c.json")
    with d.locked():
        d["n"] = d.get("n", 0) + 1
        d["n"] += 1
    assert on_disk(d) == {"n": 2}


# --- processes -------------------------------------------------------------------------------


def test_a_child_forked_while_a_thread_writes_can_write(tmp_path):
    """Fork safety: the locks a parent's thread held at the fork are free in the child."""
    import signal
    import threading

    d = JSONDict(tmp_path / "f.json")
    d["a"] = 1
    inside, release = threading.Event(), threading.Event()

    def hold():
        with d.locked():
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: the parent's thread never releases its locks here
            signal.alarm(10)  # a deadlock kills the child instead of hanging the test
            try:
                d["b"] = 2  # waits for the parent's flock, then writes
            finally:
                os._exit(0 if d() == {"a": 1, "b": 2} else 1)
    finally:
        release.set()
        holder.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and on_disk(d) == {"a": 1, "b": 2}


def _increment(path, journal_dir, times, use_lock, start):
    journal = safe_data.Journal(journal_dir)
    counter = JSONDict(path, journal=journal)
    start.wait()
    for _ in range(times):
        if use_lock:
            with counter.locked():
                counter["n"] += 1
        else:
            counter["n"] += 1
    journal.close()


def _run_incrementers(tmp_path, use_lock, processes=4, times=60):
    path = str(tmp_path / "counter.json")
    JSONDict(path)["n"] = 0
    start = FORK.Event()
    workers = [
        FORK.Process(target=_increment, args=(path, str(tmp_path / f"journal-{i}"), times, use_lock, start))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    return json.loads(Path(path).read_text())["n"], processes * times


def test_processes_incrementing_under_the_lock_lose_no_update(tmp_path):
    total, expected = _run_incrementers(tmp_path, use_lock=True)
    assert total == expected
    # every increment overwrote the previous value, and each process journaled its own
    old_values = []
    for i in range(4):
        with safe_data.Journal(tmp_path / f"journal-{i}") as journal:
            old_values += [r.values["n"] for r in records(journal)]
    assert sorted(old_values) == list(range(expected))


def test_negative_control_processes_without_the_lock_lose_updates(tmp_path):
    """The same increments, each a separate read and write: updates are lost, so the test
    above can fail."""
    for attempt in range(3):
        (tmp_path / str(attempt)).mkdir()
        total, expected = _run_incrementers(tmp_path / str(attempt), use_lock=False)
        if total < expected:
            return
    pytest.fail("unlocked read-modify-writes never lost an update")


def _append(path, cls_name, times, start):
    cls = {"locked": JSONDict, "unlocked": UnlockedJSONDict}[cls_name]
    d = cls(path, journal=os.path.join(os.path.dirname(path), f"journal-{os.getpid()}"))
    start.wait()
    errors = 0
    for i in range(times):
        try:
            d[f"{os.getpid()}-{i}"] = i
        except ValueError:  # read a torn file
            errors += 1
    os._exit(min(errors, 100))


def _run_appenders(tmp_path, cls_name, processes=4, times=60):
    tmp_path.mkdir(exist_ok=True)
    path = str(tmp_path / "keys.json")
    start = FORK.Event()
    workers = [FORK.Process(target=_append, args=(path, cls_name, times, start)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    start.set()
    errors = 0
    for worker in workers:
        worker.join(60)
        errors += worker.exitcode
    try:
        keys = len(json.loads(Path(path).read_text()))
    except ValueError:
        keys = -1
    return keys, errors, processes * times


def test_processes_writing_one_file_lose_no_key(tmp_path):
    keys, errors, expected = _run_appenders(tmp_path, "locked")
    assert (keys, errors) == (expected, 0)


def test_negative_control_processes_without_the_file_lock_lose_keys(tmp_path):
    """Without the flock each process's load-modify-save races the others."""
    for attempt in range(3):
        keys, errors, expected = _run_appenders(tmp_path / str(attempt), "unlocked")
        if keys < expected or errors:
            return
    pytest.fail("writers without the file lock never lost a key")


def test_the_tour_of_docs_synced_runs(tmp_path, monkeypatch):
    import doctest

    monkeypatch.chdir(tmp_path)
    page = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "synced.md")
    result = doctest.testfile(
        page, module_relative=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("cls,empty", [(JSONDict, {}), (JSONList, [])])
def test_clear_on_an_empty_collection_still_saves(tmp_path, cls, empty):
    """As the original does: code calls clear() to create the file."""
    path = tmp_path / "new.json"
    cls(path).clear()
    assert json.loads(path.read_text()) == empty


@pytest.mark.parametrize("cls", [JSONDict, BufferedJSONDict, MemoryBufferedJSONDict])
def test_a_deep_copy_is_a_new_collection_of_the_same_file(tmp_path, journal, cls):
    """As in synced_collections (whose tests deep-copy a collection and reload it): the
    copy holds the data, and shares the file and the journal, which are not copied."""
    doc = cls(tmp_path / "doc.json", journal=journal)
    doc["a"] = {"b": 1}
    twin = copy.deepcopy(doc)
    assert type(twin) is cls and twin is not doc and twin == {"a": {"b": 1}}
    assert twin.filename == doc.filename and twin._journal is journal
    twin["a"] = 2  # through the copy: saved to the file, the overwritten value journaled
    assert doc == {"a": 2} and on_disk(doc) == {"a": 2}
    assert [(r.op, r.values) for r in records(journal)] == [("set", {"a": {"b": 1}})]
    doc["n"] = {"m": 1}
    with pytest.raises(TypeError, match="deep-copy its root"):
        copy.deepcopy(doc["n"])  # a nested collection alone: its root is not copied
