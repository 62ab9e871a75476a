"""The Journal object: where it lives, how it is configured, read, flushed and closed."""

import os
import time
from datetime import datetime, timezone

import pytest

import safe_data
from safe_data import SafeDict, SafeList, SafeSet

from ._helpers import records


def test_default_journal_lives_in_safe_data_home(tmp_path):
    SafeList([1]).pop()
    journal = safe_data.default_journal()
    assert journal.path == str(tmp_path / "default-journal")
    assert [r.values for r in journal.records()] == [[1]]


def test_default_path_without_safe_data_home(monkeypatch):
    monkeypatch.delenv("SAFE_DATA_HOME")
    from safe_data.journal.journal import default_path

    path = default_path()
    assert path.endswith(os.path.join("safe-data", "journal")) and os.path.isabs(path)


def test_configure_sets_the_default(tmp_path):
    j = safe_data.configure(tmp_path / "configured", durability="fsync")
    assert safe_data.default_journal() is j and j.durability == "fsync"
    safe = SafeDict(a=1)
    assert safe.journal is j
    del safe["a"]
    assert records(j)[0].values == {"a": 1}


@pytest.mark.parametrize("durability", ["process", "batch", "fsync"])
def test_every_durability_mode_journals(tmp_path, durability):
    with safe_data.Journal(tmp_path / "j", durability=durability, batch_interval=0.01) as j:
        safe = SafeList(range(50), journal=j)
        for _ in range(50):
            safe.pop()
        time.sleep(0.03)  # let the batch flusher run at least once
        j.flush()
        assert sorted(v for r in records(j) for v in r.values) == list(range(50))


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="durability"):
        safe_data.Journal(tmp_path, durability="sometimes")
    with pytest.raises(ValueError, match="segment_size"):
        safe_data.Journal(tmp_path, segment_size=10)
    with pytest.raises(ValueError, match="on_error"):
        list(safe_data.Journal(tmp_path / "x").records(on_error="shrug"))


def test_filters_by_container_and_time(journal):
    a, b = SafeList([1, 2, 3], name="a", journal=journal), SafeSet({9}, name="b", journal=journal)
    a.pop()
    middle = time.time_ns()
    time.sleep(0.002)
    b.pop()
    a.pop()
    assert [r.values for r in journal.records("a")] == [[3], [2]]
    assert [r.container for r in journal.records(since=middle)] == ["b", "a"]
    assert [r.container for r in journal.records(until=middle)] == ["a"]
    since = datetime.fromtimestamp(middle / 1e9, tz=timezone.utc)
    assert len(list(journal.records(since=since))) == 2
    assert list(journal.records("nobody")) == []


def test_rotation_keeps_every_record_in_order(tmp_path):
    with safe_data.Journal(tmp_path / "j", segment_size=4096) as j:
        safe = SafeList(range(4000), journal=j)
        for _ in range(4000):
            safe.pop()
        segments = [n for n in os.listdir(j.path) if n.endswith((".seg", ".open"))]
        assert len(segments) > 10
        assert [r.values[0] for r in j.records()] == list(range(3999, -1, -1))
        assert [r.seq for r in j.records()] == list(range(1, 4001))
        assert j.verify() == []


def test_records_of_several_journal_objects_merge_by_time(tmp_path):
    one = safe_data.Journal(tmp_path / "j")
    two = safe_data.Journal(tmp_path / "j")  # a second writer on the same directory
    x, y = SafeList([1, 2], journal=one), SafeList([3, 4], journal=two)
    x.pop()
    y.pop()
    x.pop()
    y.pop()
    got = [r.values[0] for r in one.records()]
    assert got == [2, 4, 1, 3]
    assert len({r.writer for r in one.records()}) == 2
    one.close()
    two.close()


def test_close_seals_and_reopening_reads_everything(tmp_path):
    with safe_data.Journal(tmp_path / "j") as j:
        SafeList([1, 2], journal=j).clear()
    assert j.closed
    names = os.listdir(j.path)
    assert any(n.endswith(".seg") for n in names) and not any(n.endswith(".open") for n in names)
    again = safe_data.Journal(j.path)
    assert [r.values for r in again.records()] == [[1, 2]]
    SafeList([3], journal=again).pop()
    assert [r.values for r in again.records()] == [[1, 2], [3]]
    again.close()


def test_journal_repr_and_double_close(tmp_path):
    j = safe_data.Journal(tmp_path / "j")
    assert "process" in repr(j)
    j.close()
    j.close()
    assert "closed" in repr(j)


def test_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises((safe_data.SafeDataError, OSError)):
        safe_data.Journal(f)


def test_memory_stays_flat_over_many_discards(journal):
    import tracemalloc

    safe = SafeList(range(100_000), journal=journal)
    tracemalloc.start()
    for _ in range(100_000):
        safe.pop()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert current < 256 << 10  # records live in the mapping, not in Python objects


def test_record_and_operation_lock_for_integrations(journal):
    with journal.operation_lock:
        with journal.operation_lock:  # reentrant
            seq = journal.record("row", "delete", "users", (1,), {"id": 1, "name": "ada"})
    (rec,) = records(journal)
    assert (rec.seq, rec.kind, rec.op, rec.container, rec.key, rec.values) == (
        seq,
        "row",
        "delete",
        "users",
        (1,),
        {"id": 1, "name": "ada"},
    )
    with pytest.raises(ValueError, match="unknown operation"):
        journal.record("row", "explode", "users")


def test_seal_now_and_keep_writing(journal):
    lst = SafeList([1, 2, 3], journal=journal)
    journal.seal()  # nothing open yet: nothing to do
    lst.pop()
    journal.seal()
    lst.pop()
    names = sorted(os.listdir(journal.path))
    assert sum(n.endswith(".seg") for n in names) == 1 and sum(n.endswith(".open") for n in names) == 1
    assert [r.values for r in records(journal)] == [[3], [2]]


def test_reading_a_journal_of_more_segments_than_open_files_allowed(tmp_path):
    """Readers map one segment per writer at a time, not every segment at once: a journal
    of 300 segments reads in a process allowed 64 open files."""
    import subprocess
    import sys

    with safe_data.Journal(tmp_path / "j", segment_size=4096) as j:
        L = safe_data.SafeList(name="L", journal=j)
        for _ in range(300):
            L.append(os.urandom(3000))  # incompressible: one record a segment
            L.pop()
        assert len(list((tmp_path / "j").glob("*.seg"))) > 250
    code = (
        "import resource, sys, safe_data\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "j = safe_data.Journal(sys.argv[1])\n"
        "print(len(list(j.records(on_error='raise'))), len(j.verify()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "j")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["300", "0"]


def test_a_segment_purged_while_the_others_are_read_is_skipped_not_reported(tmp_path):
    """Segments are mapped when read, not when listed: one purged in between (through
    the ledger, as an uploader purges) is skipped, and the ledger says it left."""
    from safe_data.journal import ledger

    with safe_data.Journal(tmp_path / "j", segment_size=4096) as j:
        L = safe_data.SafeList(name="L", journal=j)
        for _ in range(20):
            L.append(os.urandom(3000))  # incompressible: one record a segment
            L.pop()
        problems = []
        reading = safe_data.journal.records.read_records(
            j.path, safe_data._impl.crc32c, j._key, report=problems.append
        )
        first = next(reading)
        last = sorted((tmp_path / "j").glob("*.seg"))[-1]
        assert ledger.remove_segments(j.path, [str(last)], "test") == [last.name]
        rest = list(reading)
    assert 1 + len(rest) == 19 and first.seq == 1
    assert problems == []
