"""The SQLite backend on real database files: its transactions against other threads and
processes, a writer killed mid-write, fork, the table layout, the attribute dicts and
the examples of docs/synced-backends.md."""

import contextlib
import doctest
import os
import signal
import sqlite3
import subprocess
import textwrap
import threading

import pytest

from safe_data.synced.backends.collection_sqlite import (
    SQLiteAttrDict,
    SQLiteCollection,
    SQLiteDict,
    SQLiteList,
)
from safe_data.synced.errors import InvalidKeyError

from ._helpers import discarded, expect_line, finish, python


@pytest.fixture
def db(tmp_path):
    return tmp_path / "collections.db"


def child(db, journal_dir, body: str, *args: str) -> subprocess.Popen:
    """A :func:`python` child that runs ``body`` with ``items``, a SQLiteList on ``db``,
    and ``args`` (the strings given)."""
    setup = textwrap.dedent("""
        from safe_data.synced.backends.collection_sqlite import SQLiteList

        items = SQLiteList(sys.argv[1], "items", journal=sys.argv[2])
        args = sys.argv[3:]
    """)
    return python(setup + textwrap.dedent(body), str(db), str(journal_dir), *args)


def test_two_processes_appending_to_one_list_lose_no_update(db, tmp_path):
    go = tmp_path / "go"
    body = """
        import os, time
        name, go = args
        say("ready")
        while not os.path.exists(go):
            time.sleep(0.001)
        for i in range(100):
            items.append([name, i])
    """
    procs = [child(db, tmp_path / "journal", body, name, str(go)) for name in ("a", "b")]
    for proc in procs:
        expect_line(proc, "ready")
    go.touch()
    for proc in procs:
        finish(proc)
    items = SQLiteList(db, "items")()
    assert len(items) == 200
    for name in ("a", "b"):
        assert [i for n, i in items if n == name] == list(range(100))


@pytest.mark.parametrize("round_", range(3))
def test_processes_opening_a_fresh_database_together_all_get_in(tmp_path, round_):
    # Switching a new database to WAL fails at once, without SQLite's busy wait, while
    # another process opens it: before the retry most such rounds lost a child.
    go = tmp_path / "go"
    procs = [
        python(
            """
        import os
        from safe_data.synced.backends.collection_sqlite import SQLiteList
        db, journal, go, name = sys.argv[1:]
        say("ready")
        while not os.path.exists(go):
            pass
        SQLiteList(db, "items", journal=journal).append(name)
    """,
            str(tmp_path / "fresh.db"),
            str(tmp_path / "journal"),
            str(go),
            str(n),
        )
        for n in range(6)
    ]
    for proc in procs:
        expect_line(proc, "ready")
    go.touch()
    for proc in procs:
        finish(proc)
    assert sorted(SQLiteList(tmp_path / "fresh.db", "items")()) == [str(n) for n in range(6)]


def hold_a_write_while_another_process_appends(db, tmp_path, journal):
    """Open a write of ``items`` here, let a child process append "theirs" meanwhile,
    append "ours" and close the write; return the list, whether the child finished while
    the write was open, and the journal's discarded values."""
    items = SQLiteList(db, "items", journal=journal)
    items.append("first")
    with items._load_and_save:
        proc = child(
            db,
            tmp_path / "journal",
            """
            say("ready")
            items.append("theirs")
        """,
        )
        expect_line(proc, "ready")
        try:
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        finished_meanwhile = proc.returncode is not None
        items._data.append("ours")
    finish(proc)
    return SQLiteList(db, "items")(), finished_meanwhile


def test_a_write_waits_for_another_process_write_and_keeps_its_update(db, tmp_path, journal):
    result, finished_meanwhile = hold_a_write_while_another_process_appends(db, tmp_path, journal)
    assert not finished_meanwhile
    assert result == ["first", "ours", "theirs"]


def test_negative_control_without_the_transaction_an_update_is_lost(db, tmp_path, journal, monkeypatch):
    monkeypatch.setattr(SQLiteCollection, "_resource_lock", lambda self: contextlib.nullcontext())
    result, finished_meanwhile = hold_a_write_while_another_process_appends(db, tmp_path, journal)
    assert finished_meanwhile
    assert result == ["first", "ours"]  # "theirs" was overwritten, and journaled by nobody
    assert "theirs" not in discarded(journal)


def test_a_writer_killed_mid_write_leaves_a_whole_value(db, tmp_path):
    proc = child(
        db,
        tmp_path / "journal",
        """
        i = 0
        while True:
            i += 1
            items.reset([i, "x" * 200_000, i])
            if i == 3:
                say("writing")
    """,
    )
    expect_line(proc, "writing")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    n, padding, m = SQLiteList(db, "items")()
    assert n == m >= 3 and padding == "x" * 200_000


def test_threads_appending_through_their_own_handles_lose_no_update(db, journal):
    def append(name):
        items = SQLiteList(db, "items", journal=journal)
        for i in range(50):
            items.append([name, i])

    threads = [threading.Thread(target=append, args=(name,)) for name in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    items = SQLiteList(db, "items")()
    assert sorted(items) == sorted([name, i] for name in "abcd" for i in range(50))


def test_a_forked_child_writes_through_its_own_connection(db, journal):
    doc = SQLiteDict(db, "doc", journal=journal)
    doc["parent"] = 1
    pid = os.fork()
    if pid == 0:  # the child: inherited the parent's connection, must not use it
        status = 1
        try:
            doc["child"] = 2
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    doc["parent"] = 3
    assert SQLiteDict(db, "doc")() == {"parent": 3, "child": 2}


def test_the_database_is_one_wal_table_of_json_rows(db, journal):
    SQLiteDict(db, "doc", journal=journal)["a"] = {"b": [1, "two"]}
    SQLiteList(db, "items", journal=journal).append(None)
    with contextlib.closing(sqlite3.connect(db)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = connection.execute("SELECT key, data FROM synced_collections ORDER BY key")
        assert rows.fetchall() == [("doc", '{"a":{"b":[1,"two"]}}'), ("items", "[null]")]
        query = "SELECT json_extract(data, '$.a.b[1]') FROM synced_collections WHERE key = 'doc'"
        assert connection.execute(query).fetchone() == ("two",)


def test_records_name_the_database_and_the_key(db, journal):
    doc = SQLiteDict(db, "doc", journal=journal)
    doc["a"] = {"b": 1}
    doc["a"]["b"] = 2
    [record] = journal.records()
    assert record.container == f"sqlite:{os.path.realpath(db)}#doc"
    assert record.key == ("a",) and record.values == {"b": 1}


def test_a_root_needs_a_filename_and_a_str_key(db):
    with pytest.raises(ValueError, match="needs a database filename and a str key"):
        SQLiteDict(db)
    with pytest.raises(ValueError, match="needs a database filename and a str key"):
        SQLiteList(db, 3)
    with pytest.raises(sqlite3.OperationalError):
        SQLiteDict(db.parent / "missing-directory" / "x.db", "doc")


def test_attr_dict_reads_and_writes_keys_as_attributes(db, journal):
    doc = SQLiteAttrDict(db, "doc", journal=journal)
    doc.foo = {"bar": 1}
    doc.foo.bar = 2
    assert doc["foo"]["bar"] == 2 and SQLiteAttrDict(db, "doc")() == {"foo": {"bar": 2}}
    assert doc.key == "doc" and doc.filename == str(db)
    del doc.foo
    assert doc() == {} and discarded(journal) == [1, {"bar": 2}]
    with pytest.raises(AttributeError):
        doc.missing
    with pytest.raises(InvalidKeyError):
        doc["a.b"] = 1


def test_the_docs_examples_run():
    page = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "synced-backends.md")
    result = doctest.testfile(
        page, module_relative=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0 and result.failed == 0
