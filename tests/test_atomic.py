"""safe_data.atomic: the API of atomic_store, its README as tests, and what we add to it
(durable replace, mode and owner kept, temp files of dead writers removed, revision
checks, the replaced content journaled, listed and restored).  Crashes: test_atomic_crash.py.
"""

from __future__ import annotations

import doctest
import fcntl
import io
import json
import marshal
import os
import pickle
import stat
import struct
import subprocess
import sys
import threading
from collections import OrderedDict
from decimal import Decimal

import pytest
from click.testing import CliRunner

import safe_data
from safe_data import atomic
from safe_data.atomic.replace import TEMP_NAME, TEMP_PREFIX
from safe_data.cli import main
from safe_data.errors import JournalClosedError, RevisionConflictError, SafeDataError

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs")


def read(path) -> str:
    with open(path) as f:
        return f.read()


def temps(directory) -> list[str]:
    return [name for name in os.listdir(directory) if TEMP_NAME.fullmatch(name)]


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "state.json")


# --- the README of atomic_store, as tests ----------------------------------------------------


def test_readme_context_manager(path):
    assert not os.path.exists(path)
    with atomic.open(path, default=[]) as store:
        assert store.value == [] and not os.path.exists(path)
        store.value.append("1234")
        assert not os.path.exists(path)  # no intermediate value reaches the disk
    assert read(path) == '["1234"]'
    with atomic.open(path, default=[]) as store:
        assert store.value == ["1234"]
        store.value.append("5678")
        assert read(path) == '["1234"]'
    assert read(path) == '["1234", "5678"]'
    assert store.value == ["1234", "5678"]


def test_readme_manual_control(path):
    my_store = atomic.open(path, default=dict())
    my_store.value["state"] = "running"
    my_store.value["thought"] = "I would not eat green eggs and ham."
    assert not os.path.exists(path)  # only commit() writes
    my_store.commit()
    assert json.loads(read(path))["state"] == "running"
    my_store.value["state"] = "done"
    my_store.value["thought"] = "I do so like Green eggs and ham!"
    with my_store:  # commit() is also available in the context manager
        my_store.commit()
    assert json.loads(read(path)) == {"state": "done", "thought": "I do so like Green eggs and ham!"}


def test_readme_format_tweaks(path):
    with atomic.open(path, default={"a": [1, 2]}, dump_kwargs=dict(separators=(",", ":"))):
        pass
    assert read(path) == '{"a":[1,2]}'


def test_json_keeps_insertion_order(path):
    with atomic.open(path, default=dict()) as store:
        store.value.update(b=1337, a=2, c=42, zz=-1, fancy=3)
    assert read(path) == '{"b": 1337, "a": 2, "c": 42, "zz": -1, "fancy": 3}'


def test_readme_reentrancy_commits_at_every_exit(path):
    with open(path, "w") as f:
        f.write('"before"')
    mngr = atomic.open(path, default=[])
    with mngr as store:
        store.value = "outer"
        with mngr as store:
            store.value = "inner"
            assert read(path) == '"before"'
        assert read(path) == '"inner"'  # the inner `with` wrote it
        store.value = "outer again"
        assert read(path) == '"inner"'
    assert read(path) == '"outer again"'


def test_readme_reentrancy_with_ignore_inner_exits(path):
    with open(path, "w") as f:
        f.write('"before"')
    mngr = atomic.open(path, default=[], ignore_inner_exits=True)
    with mngr as store:
        store.value = "outer"
        with mngr as store:
            store.value = "inner"
        assert read(path) == '"before"'  # the manager is still active
    # atomic_store's README says "outer" here, but there is one value and it is "inner"
    # (atomic_store writes "inner" too).
    assert read(path) == '"inner"'
    assert mngr.level == 0


# --- with: an exception keeps the old file ---------------------------------------------------


def test_an_exception_inside_with_keeps_the_old_file(path):
    with atomic.open(path, default={"n": 1}):
        pass
    store = atomic.open(path)
    with pytest.raises(KeyError):
        with store:
            store.value["n"] = 2
            raise KeyError("boom")
    assert json.loads(read(path)) == {"n": 1} and store.level == 0
    with pytest.raises(KeyError):  # nested: neither exit writes
        with store:
            with store:
                store.value["n"] = 3
                raise KeyError("boom")
    assert json.loads(read(path)) == {"n": 1} and store.level == 0


def test_an_exception_caught_between_nested_blocks_does_not_stop_the_outer_commit(path):
    store = atomic.open(path, default=0, ignore_inner_exits=True)
    with store:
        with pytest.raises(ValueError):
            with store:
                store.value = 1
                raise ValueError
        assert not os.path.exists(path)
    assert read(path) == "1"


# --- formats ---------------------------------------------------------------------------------


class Lines(atomic.AbstractFormatFile):
    """A text format on files: one item per line."""

    def dump(self, obj, fp, end="\n"):
        fp.write("".join(f"{item}{end}" for item in obj))

    def load(self, fp, upper=False):
        return [line.upper() if upper else line for line in fp.read().splitlines()]


class PackedInts(atomic.AbstractFormatBstr):
    """A binary format on strings: little-endian int32s."""

    def dumps(self, obj, **kwargs):
        return struct.pack(f"<{len(obj)}i", *obj)

    def loads(self, binary_string, **kwargs):
        return list(struct.unpack(f"<{len(binary_string) // 4}i", binary_string))


class Reversed:
    """Neither module nor abstract class: an object with dumps/loads (text)."""

    @staticmethod
    def dumps(obj):
        return json.dumps(obj)[::-1]

    @staticmethod
    def loads(text):
        return json.loads(text[::-1])


VALUE = {"name": "ä €", "items": [1, 2.5, None, True], "nested": {"k": ["v"]}}

FORMATS = {  # id: (format, open keywords, value, the file's bytes)
    "default": (None, {}, VALUE, json.dumps(VALUE).encode()),
    "json-name": ("json", {}, VALUE, json.dumps(VALUE).encode()),
    "json-module": (json, {}, VALUE, json.dumps(VALUE).encode()),
    "pickle-name": ("pickle", {}, VALUE, pickle.dumps(VALUE)),
    "pickle-module": (pickle, {}, {1, 2, 3}, pickle.dumps({1, 2, 3})),
    "marshal-module": (marshal, {}, (1, b"x"), marshal.dumps((1, b"x"))),
    "format-file-text": (Lines(), {"is_binary": False}, ["a", "b"], b"a\nb\n"),
    "format-bstr": (PackedInts(), {}, [1, -2], struct.pack("<2i", 1, -2)),
    "dumps-loads-text": (Reversed, {"is_binary": False}, [1], b"]1["),
    "wrap-binary": (atomic.WrapBinaryFormat(json), {"is_binary": False}, VALUE, json.dumps(VALUE).encode()),
}


@pytest.mark.parametrize("format, kwargs, value, expected", FORMATS.values(), ids=FORMATS)
def test_every_format_round_trips(path, format, kwargs, value, expected):
    with atomic.open(path, format=format, **kwargs) as store:
        store.value = value
    with open(path, "rb") as f:
        assert f.read() == expected
    assert atomic.open(path, format=format, **kwargs).value == value


def test_bson(path):
    bson = pytest.importorskip("bson")  # the bson package, or pymongo's bson module
    encode = getattr(bson, "dumps", None) or bson.encode
    with atomic.open(path, default={}, format="bson") as store:
        store.value["a"] = [1, "x"]
    with open(path, "rb") as f:
        assert f.read() == encode({"a": [1, "x"]})
    assert atomic.open(path, format="bson").value == {"a": [1, "x"]}
    if hasattr(bson, "dumps"):  # the bson package's module is a format as it is
        assert atomic.open(path, format=bson).value == {"a": [1, "x"]}


def test_text_or_binary_is_inferred_and_is_binary_overrides_it(path):
    assert atomic.open(path).is_binary is False
    assert atomic.open(path, format="pickle").is_binary is True
    assert atomic.open(path, format=PackedInts()).is_binary is True
    assert atomic.open(path, format=Reversed, is_binary=False).is_binary is False
    with pytest.raises(TypeError, match="open it with is_binary=True"):
        atomic.open(path, default=1, format="pickle", is_binary=False).commit()
    with pytest.raises(TypeError, match="open it with is_binary=False"):
        atomic.open(path, default=1, format=Reversed).commit()
    assert not os.path.exists(path)


def test_dump_and_load_kwargs_are_passed_through(path):
    with atomic.open(path, default={"b": 1.5, "a": 2}, dump_kwargs={"indent": 1, "sort_keys": True}):
        pass
    assert read(path) == '{\n "a": 2,\n "b": 1.5\n}'
    store = atomic.open(path, load_kwargs={"parse_float": Decimal, "object_pairs_hook": OrderedDict})
    assert type(store.value) is OrderedDict and store.value["b"] == Decimal("1.5")

    pickled = str(path) + ".pickle"
    with atomic.open(pickled, default=[1], format="pickle", dump_kwargs={"protocol": 2}):
        pass
    with open(pickled, "rb") as f:
        assert f.read(2) == b"\x80\x02"

    lines = str(path) + ".lines"
    with atomic.open(lines, default=["x", "y"], format=Lines(), is_binary=False, dump_kwargs={"end": ";\n"}):
        pass
    assert read(lines) == "x;\ny;\n"
    assert atomic.open(lines, format=Lines(), is_binary=False, load_kwargs={"upper": True}).value == [
        "X;",
        "Y;",
    ]


def test_text_is_utf8_read_with_universal_newlines(path):
    with open(path, "wb") as f:
        f.write("é\r\nü\rz\n".encode())
    assert atomic.open(path, format=Lines(), is_binary=False).value == ["é", "ü", "z"]


def test_unknown_formats_are_refused():
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        atomic.open("x", format="yaml")
    with pytest.raises(ValueError, match="neither dump/load nor dumps/loads"):
        atomic.open("x", format=object())
    with pytest.raises(NotImplementedError, match="must implement dumps"):
        atomic.AbstractFormatBstr().dumps(1)
    with pytest.raises(NotImplementedError, match="must implement load"):
        atomic.AbstractFormatFile().load(io.BytesIO())


def test_same_bytes_and_names_as_atomic_store(tmp_path):
    atomic_store = pytest.importorskip("atomic_store")
    assert set(atomic_store.__all__) <= set(atomic.__all__)
    for fmt_id, (format, kwargs, value, _) in FORMATS.items():
        theirs, ours = tmp_path / f"{fmt_id}.theirs", tmp_path / f"{fmt_id}.ours"
        with atomic_store.open(str(theirs), default=value, format=format, **kwargs):
            pass
        with atomic.open(ours, default=value, format=format, **kwargs):
            pass
        assert theirs.read_bytes() == ours.read_bytes(), fmt_id
        assert atomic_store.open(str(ours), format=format, **kwargs).value == value


# --- the file: durable replace, mode, owner, temp files ---------------------------------------


def test_a_commit_leaves_no_temp_file_and_keeps_the_mode(path, tmp_path):
    with atomic.open(path, default=1):
        pass
    os.chmod(path, 0o640 | stat.S_ISGID)
    with atomic.open(path) as store:
        store.value = 2
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640 | stat.S_ISGID
    assert read(path) == "2" and temps(tmp_path) == []


def test_a_new_file_gets_the_mode_of_the_umask(path):
    old = os.umask(0o027)
    try:
        with atomic.open(path, default=1):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_the_owner_and_group_are_kept(path):
    with atomic.open(path, default=1):
        pass
    os.chown(path, 65534, 65534)
    with atomic.open(path) as store:
        store.value = 2
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, read(path)) == (65534, 65534, "2")


def test_a_symlink_is_followed_and_kept(tmp_path):
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_text("1")
    link.symlink_to(real)
    with atomic.open(link) as store:
        store.value = 2
    assert link.is_symlink() and real.read_text() == "2"
    assert [v.content for v in atomic.versions(link)] == [b"1"] == [v.content for v in atomic.versions(real)]


def test_a_failing_encode_or_journal_changes_nothing(path, tmp_path):
    with atomic.open(path, default=[1]):
        pass
    store = atomic.open(path)
    store.value = {1, 2}  # not JSON
    with pytest.raises(TypeError):
        store.commit()
    journal = safe_data.Journal(tmp_path / "journal")
    journal.close()
    store = atomic.open(path, journal=journal)
    store.value = [2]
    with pytest.raises(JournalClosedError):  # what it would replace cannot be kept
        store.commit()
    assert read(path) == "[1]" and temps(tmp_path) == []


def test_opening_removes_dead_writers_temp_files_and_nothing_else(path, tmp_path):
    dead = tmp_path / (TEMP_PREFIX + "0123456789abcdef")
    live = tmp_path / (TEMP_PREFIX + "fedcba9876543210")
    others = [
        TEMP_PREFIX + "0123456789ABCDEF",
        TEMP_PREFIX + "0123",
        "state.json.tmp",
        "x" + TEMP_PREFIX + "0123456789abcdef",
        TEMP_PREFIX + "0123456789abcdef0",
    ]
    for name in [dead.name, live.name, *others]:
        (tmp_path / name).write_text("leftover")
    with open(live) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a writer at work holds its temp file's lock
        atomic.open(path)
        assert not dead.exists() and live.exists()
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, *others])


def test_opening_in_a_missing_directory_reads_the_default(tmp_path):
    assert atomic.open(tmp_path / "no" / "such.json", default=7).value == 7


# --- revisions --------------------------------------------------------------------------------


def test_check_revision_refuses_to_overwrite_another_writers_update(path):
    with atomic.open(path, default={"n": 0}):
        pass
    mine = atomic.open(path, check_revision=True)
    theirs = atomic.open(path)
    assert mine.revision == theirs.revision is not None
    theirs.value["n"] = 1
    theirs.commit()
    assert theirs.revision != mine.revision
    mine.value["n"] = 2
    with pytest.raises(RevisionConflictError) as caught:
        mine.commit()
    assert isinstance(caught.value, SafeDataError)
    assert (caught.value.path, caught.value.expected, caught.value.found) == (
        os.path.realpath(path),
        mine.revision,
        theirs.revision,
    )
    assert "Open it again" in str(caught.value)
    assert json.loads(read(path)) == {"n": 1}  # nothing was written
    with pytest.raises(RevisionConflictError):  # the `with` exit checks too
        with mine:
            pass
    again = atomic.open(path, check_revision=True)
    again.value["n"] += 1
    again.commit()
    assert json.loads(read(path)) == {"n": 2} and again.revision == atomic.open(path).revision


def test_without_the_check_the_last_commit_wins_and_the_other_update_is_journaled(path):
    with atomic.open(path, default=0):
        pass
    a, b = atomic.open(path), atomic.open(path)
    a.value += 1
    b.value += 2
    a.commit()
    b.commit()  # a's update is overwritten, but not lost:
    assert read(path) == "2"
    assert [v.content for v in atomic.versions(path)] == [b"0", b"1"]


def test_commit_expected_checks_an_explicit_revision(path):
    store = atomic.open(path, default=1)
    assert store.revision is None  # no file yet
    store.commit(expected=None)  # only if there is still no file
    with pytest.raises(RevisionConflictError, match="did not exist when read"):
        store.commit(expected=None)
    token = store.revision
    store.value = 2
    store.commit(expected=token)
    with pytest.raises(RevisionConflictError):
        store.commit(expected=token)
    os.unlink(path)
    with pytest.raises(RevisionConflictError, match="was deleted"):
        store.commit(expected=store.revision)


COUNTER = r"""
import sys
from safe_data import atomic
from safe_data.errors import RevisionConflictError

path, n = sys.argv[1], int(sys.argv[2])
done = 0
while done < n:
    store = atomic.open(path, check_revision=True)
    store.value += 1
    try:
        store.commit()
    except RevisionConflictError:
        continue
    done += 1
"""


def test_processes_incrementing_with_check_revision_lose_no_update(path, tmp_path):
    with atomic.open(path, default=0):
        pass
    script = tmp_path / "counter.py"
    script.write_text(COUNTER)
    env = dict(os.environ, SAFE_DATA_HOME=str(tmp_path / "journal"))
    procs = [subprocess.Popen([sys.executable, str(script), path, "25"], env=env) for _ in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert read(path) == "75"
    with safe_data.Journal(tmp_path / "journal") as journal:
        assert sorted(int(v.content) for v in atomic.versions(path, journal)) == list(range(75))


def test_threads_committing_at_once_lose_no_replaced_content(path):
    with atomic.open(path, default="start"):
        pass
    written = [f"{t}-{i}" for t in range(4) for i in range(15)]

    def writer(t):
        for i in range(15):
            store = atomic.open(path)
            store.value = f"{t}-{i}"
            store.commit()

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replaced = [json.loads(v.content) for v in atomic.versions(path)]
    assert sorted(replaced + [json.loads(read(path))]) == sorted(written + ["start"])


# --- the journal: what a commit replaces, listed and restored ----------------------------------


def test_the_replaced_content_is_journaled_before_the_replace(path, journal):
    store = atomic.open(path, default={"v": 1}, journal=journal)
    store.commit()
    assert list(journal.records()) == []  # a new file: nothing was discarded
    store.value = {"v": 2}
    store.commit()
    store.commit()  # the same content again: nothing discarded either
    (record,) = journal.records()
    file = os.path.realpath(path)
    assert (record.container, record.kind, record.op, record.key, record.values) == (
        file,
        "file",
        "replace",
        file,
        [b'{"v": 1}'],
    )
    named = atomic.open(path, journal=journal, name="settings")
    named.value = 3
    named.commit()
    assert [r.values for r in journal.records("settings")] == [[b'{"v": 2}']]
    assert [v.content for v in atomic.versions(path, journal, name="settings")] == [b'{"v": 2}']


def test_the_default_journal_is_used_without_journal(path):
    with atomic.open(path, default=1) as store:
        store.value = 2
    store.commit()
    store.value = 3
    store.commit()
    assert [r.values for r in safe_data.default_journal().records()] == [[b"2"]]


def test_versions_and_restore_version(path, journal):
    store = atomic.open(path, default=0, journal=journal)
    for n in range(1, 5):
        store.commit()
        store.value = n
    store.commit()  # the file went 0, 1, 2, 3, 4
    found = atomic.versions(path, journal)
    assert [v.content for v in found] == [b"0", b"1", b"2", b"3"]
    assert all(v.path == os.path.realpath(path) for v in found)
    assert [v.time for v in found] == sorted(v.time for v in found)

    assert atomic.restore_version(path, journal=journal).content == b"3"  # the newest
    assert read(path) == "3"
    assert atomic.restore_version(path, journal=journal).content == b"4"  # undone
    assert read(path) == "4"
    atomic.restore_version(path, 0, journal=journal)
    assert read(path) == "0"
    atomic.restore_version(path, at=found[2].time_ns - 1, journal=journal)  # what it held then
    assert read(path) == "2"
    assert [v.content for v in atomic.versions(path, journal)][4:] == [b"4", b"3", b"4", b"0"]
    with pytest.raises(LookupError, match="has not been replaced since"):
        atomic.restore_version(path, at=atomic.versions(path, journal)[-1].time_ns, journal=journal)
    with pytest.raises(LookupError, match="only 8 earlier version"):
        atomic.restore_version(path, 8, journal=journal)
    with pytest.raises(LookupError, match="no earlier version"):
        atomic.restore_version(path + ".other", journal=journal)
    with pytest.raises(TypeError):
        atomic.restore_version(path, 1, at=0, journal=journal)


# --- the safe-data command --------------------------------------------------------------------


def invoke(journal, *args):
    return CliRunner().invoke(main, ["--journal", journal.path, *args], catch_exceptions=False)


def test_cli_file_versions_and_restore_file(path, tmp_path, journal):
    store = atomic.open(path, default="a", journal=journal)
    for value in "bc":
        store.commit()
        store.value = value
    store.commit()  # the file went "a", "b", "c"
    listing = invoke(journal, "file-versions", path)
    assert listing.exit_code == 0
    assert [line.split("\t")[0] for line in listing.output.splitlines()[2:]] == ["1", "2"]
    rows = [json.loads(line) for line in invoke(journal, "file-versions", path, "--json").output.splitlines()]
    assert [(r["version"], r["bytes"], r["path"]) for r in rows] == [
        (1, 3, os.path.realpath(path)),
        (2, 3, os.path.realpath(path)),
    ]

    out = invoke(journal, "restore-file", path, "--version", "1", "--output", "-")
    assert out.exit_code == 0 and out.output == '"a"' and read(path) == '"c"'
    invoke(journal, "restore-file", path, "--version", "2", "-o", str(tmp_path / "copy"))
    assert read(tmp_path / "copy") == '"b"'

    restored = invoke(journal, "restore-file", path)
    assert restored.exit_code == 0 and "restored" in restored.output and read(path) == '"b"'
    invoke(journal, "restore-file", path)
    assert read(path) == '"c"'  # restoring again undid it

    missing = invoke(journal, "restore-file", path, "--version", "9")
    assert missing.exit_code == 3 and "only 4 earlier version" in missing.output
    assert invoke(journal, "file-versions", str(tmp_path / "other")).exit_code == 3
    assert invoke(journal, "restore-file", path, "--version", "1", "--at", "1h").exit_code == 2

    restored = json.loads(invoke(journal, "restore-file", path, "--json").output)
    assert read(path) == '"b"' and restored["output"] is None
    assert (restored["path"], restored["bytes"]) == (os.path.realpath(path), 3)
    written = json.loads(invoke(journal, "restore-file", path, "-o", str(tmp_path / "c"), "--json").output)
    assert read(tmp_path / "c") == '"c"' and written["output"] == str(tmp_path / "c")
    assert invoke(journal, "restore-file", path, "-o", "-", "--json").exit_code == 2


def test_cli_file_commands_on_forged_records_warn_and_keep_the_versions(path, tmp_path):
    """Records that say they replaced the file but do not hold a content (written by
    something else than a store: forged) are reported and left out, never a traceback;
    the real versions still list and restore.  With only forged ones: exit 3."""
    file = os.path.realpath(path)
    with safe_data.Journal(tmp_path / "journal") as journal:
        journal.record("file", "replace", file, key=file, values=[b"real"])
        for forged in ("text", [], {"k": b"v"}, [1], [b"a", b"b"], None):
            journal.record("file", "replace", file, key=file, values=forged)
    with open(path, "wb") as f:
        f.write(b"now")

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "safe_data", "--journal", str(tmp_path / "journal"), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    listing = run("file-versions", path, "--json")
    assert listing.returncode == 0 and "Traceback" not in listing.stderr
    assert [json.loads(line)["bytes"] for line in listing.stdout.splitlines()] == [4]
    assert listing.stderr.count("holds no file content") == 6
    out = run("restore-file", path, "--output", "-")
    assert out.returncode == 0 and out.stdout == "real" and "Traceback" not in out.stderr
    restored = run("restore-file", path)
    assert restored.returncode == 0 and "Traceback" not in restored.stderr, restored.stderr
    assert read(path) == "real"

    only_forged = tmp_path / "forged-only"
    with safe_data.Journal(only_forged) as journal:
        journal.record("file", "replace", file, key=file, values="text")
    for command in (["file-versions", path], ["restore-file", path], ["restore-file", path, "-o", "-"]):
        proc = subprocess.run(
            [sys.executable, "-m", "safe_data", "--journal", str(only_forged), *command],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 3 and "Traceback" not in proc.stderr, (command, proc.stderr)
        assert "holds no file content" in proc.stderr and "no earlier version" in proc.stderr


# --- docs and imports -------------------------------------------------------------------------


def test_the_doc_examples_run(tmp_path):
    result = doctest.testfile(
        os.path.join(DOCS, "atomic.md"),
        module_relative=False,
        globs={"WORKDIR": str(tmp_path)},
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 0 and result.failed == 0


def test_import_safe_data_does_not_import_the_store_or_bson():
    code = (
        "import sys, safe_data; print('safe_data.atomic' in sys.modules); "
        "import safe_data.atomic; print('bson' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
