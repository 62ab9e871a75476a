"""Segment indexes: reading one container costs what its records cost, and an index never
hides a record (journal/index.py, docs/format.md "Segment indexes").

The model check compares what a reader finds through the indexes with what a full scan
of the same journal finds, for every container, by name, nested and by identity, while
the journal grows (open segment) and rotates (sealed segments).  The other tests damage
indexes in every way a reader must notice.
"""

import os
import random
import shutil
from array import array

import pytest

import safe_data as sd
from safe_data.journal import format as fmt
from safe_data.journal import index, reader
from safe_data.journal.records import read_records


def _full_scan(journal, keep):
    """Records a reader without indexes finds (every frame read), filtered afterwards."""
    return [_key(r) for r in journal.records() if keep(r)]


def _key(record):
    return (record.writer, record.seq, record.container, record.op, repr(record.values))


def _indexed(journal, **options):
    return [_key(r) for r in journal.records(**options)]


def _workload(journal, rng, steps):
    """Random discards across containers, nested ones included; returns the containers."""
    top = [sd.SafeDict(name=f"d{i}", journal=journal, deep=True) for i in range(3)]
    top += [sd.SafeList(name=f"l{i}", journal=journal, deep=True) for i in range(3)]
    for step in range(steps):
        c = rng.choice(top)
        if isinstance(c, dict):
            key = rng.randrange(8)
            c[key] = {"v": [step, "x" * rng.randrange(200)]} if rng.random() < 0.3 else step
            if rng.random() < 0.2 and isinstance(c.get(key), dict):
                c[key]["v"].append(step)
                c[key]["v"].pop(0)
            if rng.random() < 0.1:
                c.pop(key, None)
        else:
            c.append([step] if rng.random() < 0.3 else step)
            if len(c) > 5:
                item = c[0]
                if isinstance(item, list) and item:
                    item.pop()
                c.pop(0)
    return top


@pytest.mark.parametrize("seed", range(4))
def test_indexed_reads_find_what_a_full_scan_finds(tmp_path, seed):
    rng = random.Random(seed)
    with sd.Journal(tmp_path / "j", segment_size=8 << 10) as journal:
        top = []
        for _ in range(4):  # grow, read, grow: the open segment's index grows, segments seal
            top = _workload(journal, rng, 250)
            for c in top:
                name = c.name
                assert _indexed(journal, container=name) == _full_scan(
                    journal, lambda r, n=name: r.container == n
                )
                assert _indexed(journal, container=name, nested=True) == _full_scan(
                    journal, lambda r, n=name: r.container == n or r.container.startswith(n + "[")
                )
                identity = (journal._manager.writer_id, c.container_id)
                assert _indexed(journal, identity=identity) == _full_scan(
                    journal, lambda r, i=identity: (r.writer, r.container_id) == i
                )
            records = list(journal.records())
            middle = records[len(records) // 2].time_ns
            assert _indexed(journal, container="d0", since=middle) == _full_scan(
                journal, lambda r, t=middle: r.container == "d0" and r.time_ns >= t
            )
        assert len(list(tmp_path.joinpath("j").glob("*.seg"))) > 3  # rotation happened
        assert list(tmp_path.joinpath("j").glob("*" + fmt.INDEX_SUFFIX))


def _sealed_journal(path, segments=6):
    """A journal of several sealed segments, "needle" written in the last one only."""
    journal = sd.Journal(path, segment_size=8 << 10)
    hay = sd.SafeDict(name="hay", journal=journal)
    for i in range(segments * 60):
        hay[i % 7] = f"{i:>100}"  # (an identical object replaced is not a discard)
    needle = sd.SafeList(range(10), name="needle", journal=journal)
    needle.pop()
    needle.pop()
    journal.seal()
    return journal


@pytest.fixture
def needle(tmp_path):
    """(journal of sealed segments, needle's records as a full scan finds them)."""
    journal = _sealed_journal(tmp_path / "j")
    yield journal, _full_scan(journal, lambda r: r.container == "needle")
    journal.close()


def test_a_segment_without_the_container_is_not_read(monkeypatch, needle):
    journal, expected = needle  # (the full scan built the indexes)
    mapped = []
    real = reader.SegmentView.data

    def counting(view):
        mapped.append(view.name)
        return real.fget(view)

    monkeypatch.setattr(reader.SegmentView, "data", property(counting))
    assert _indexed(journal, container="needle") == expected and len(expected) == 2
    assert len(set(mapped)) == 1, mapped  # of six or more segments


def _index_files(path):
    return sorted(path.glob("*" + fmt.INDEX_SUFFIX))


def test_indexes_are_written_beside_sealed_segments_and_leave_with_them(tmp_path):
    journal = _sealed_journal(tmp_path / "j")
    list(journal.records("needle"))
    segments = sorted(tmp_path.joinpath("j").glob("*.seg"))
    assert [p.stem for p in _index_files(tmp_path / "j")] == [p.stem for p in segments]
    journal.purge(containers=["hay"], keep_unsent=False)
    left = {p.stem for p in tmp_path.joinpath("j").glob("*.seg")}
    assert {p.stem for p in _index_files(tmp_path / "j")} <= left
    assert len(left) < len(segments)
    journal.close()


def test_a_read_only_journal_writes_no_index(tmp_path):
    _sealed_journal(tmp_path / "j").close()
    before = sorted(os.listdir(tmp_path / "j"))
    with sd.Journal(tmp_path / "j", readonly=True) as ro:
        assert len(list(ro.records("needle"))) == 2
    assert sorted(os.listdir(tmp_path / "j")) == before


def _rewrite(path, mutate, key, *, sign_with=None):
    """Decode the index at ``path``, let ``mutate`` change its entries, encode it again,
    authenticated with the journal's ``key``: damage only the consistency checks catch
    (as a bug of the indexer would make)."""
    seg = str(path)[: -len(fmt.INDEX_SUFFIX)] + fmt.SEALED_SUFFIX
    view = reader.SegmentView(seg, sd._impl.crc32c)
    found = index.decode(path.read_bytes(), view, key)
    assert found is not None
    mutate(found)
    path.write_bytes(index.encode(found, key if sign_with is None else sign_with))


def _fresh_process_view(monkeypatch):
    """Forget the indexes this process holds, as a new process would."""
    monkeypatch.setattr(index, "_cache", type(index._cache)())


def _last_index(journal_dir):
    return _index_files(journal_dir)[-1]


@pytest.mark.parametrize("damage", ["bit flip", "truncated", "empty", "garbage"])
def test_a_damaged_index_is_rebuilt(tmp_path, monkeypatch, needle, damage):
    journal, expected = needle
    path = _last_index(tmp_path / "j")
    data = bytearray(path.read_bytes())
    if damage == "bit flip":
        data[len(data) // 2] ^= 0x10
    elif damage == "truncated":
        del data[len(data) // 2 :]
    elif damage == "empty":
        data.clear()
    else:
        data[:] = os.urandom(len(data))
    path.write_bytes(bytes(data))
    _fresh_process_view(monkeypatch)
    assert _indexed(journal, container="needle") == expected
    assert path.read_bytes() != bytes(data)  # rebuilt and saved again


def test_an_index_that_leaves_a_record_out_is_refused(tmp_path, monkeypatch, needle):
    journal, expected = needle

    def drop_one(found):
        entry = next(e for e in found.entries if e.name == b"needle")
        entry.offsets.pop()

    _rewrite(_last_index(tmp_path / "j"), drop_one, journal._key)
    _fresh_process_view(monkeypatch)
    assert _indexed(journal, container="needle") == expected
    # negative control: without the count check the forged index would hide the record
    _rewrite(_last_index(tmp_path / "j"), drop_one, journal._key)
    _fresh_process_view(monkeypatch)
    monkeypatch.setattr(index, "_accounts_for_every_record", lambda found, view: True)
    assert _indexed(journal, container="needle") == expected[:-1]


def test_an_index_pointing_elsewhere_is_not_believed(tmp_path, monkeypatch, needle):
    journal, expected = needle

    def swap(found):  # needle's offsets and another container's: counts still add up
        mine = next(e for e in found.entries if e.name == b"needle")
        other = next(e for e in found.entries if e.name != b"needle" and len(e.offsets) >= 2)
        mine.offsets, other.offsets = (
            other.offsets[: len(mine.offsets)],
            (mine.offsets + other.offsets[len(mine.offsets) :]),
        )

    _rewrite(_last_index(tmp_path / "j"), swap, journal._key)
    _fresh_process_view(monkeypatch)
    assert _indexed(journal, container="needle") == expected


def test_the_index_of_another_segment_is_not_believed(tmp_path, monkeypatch, needle):
    journal, expected = needle
    first, last = _index_files(tmp_path / "j")[0], _last_index(tmp_path / "j")
    shutil.copyfile(first, last)  # says: no needle in the last segment
    _fresh_process_view(monkeypatch)
    assert _indexed(journal, container="needle") == expected


def test_an_index_not_made_with_the_journals_key_is_not_used(tmp_path, monkeypatch, needle):
    journal, expected = needle

    def hide_needle(found):
        hidden = next(e for e in found.entries if e.name == b"needle")
        other = next(e for e in found.entries if e.name != b"needle")
        other.offsets = array("I", sorted(other.offsets + hidden.offsets))
        found.entries.remove(hidden)

    path = _last_index(tmp_path / "j")
    _rewrite(path, hide_needle, journal._key, sign_with=os.urandom(32))  # a forger without the key
    _fresh_process_view(monkeypatch)
    assert _indexed(journal, container="needle") == expected
    # negative control: the same forgery under the journal's own key goes unnoticed, which
    # is why only the key's holders may write indexes
    _rewrite(path, hide_needle, journal._key)
    _fresh_process_view(monkeypatch)
    assert _indexed(journal, container="needle") == []


def test_an_open_segment_read_while_it_grows_and_seals(tmp_path):
    with sd.Journal(tmp_path / "j", segment_size=16 << 10) as journal:
        lst = sd.SafeList(name="grow", journal=journal)
        other = sd.SafeDict(name="other", journal=journal)
        for i in range(400):
            lst.append(i)
            lst.pop()
            other[i % 5] = i
            if i % 37 == 0:
                assert [r.values for r in journal.records("grow")] == [[j] for j in range(i + 1)]
        assert [r.values for r in journal.records("grow")] == [[j] for j in range(400)]


def test_records_of_a_directory_without_journal_object(tmp_path):
    journal = _sealed_journal(tmp_path / "j")
    found = list(read_records(str(tmp_path / "j"), sd._impl.crc32c, journal._key, container="needle"))
    assert [r.values for r in found] == [[9], [8]]
    journal.close()


def test_verify_reports_an_index_that_disagrees_and_replaces_it(tmp_path, monkeypatch):
    journal = _sealed_journal(tmp_path / "j")
    assert journal.verify() == []

    def drop_one(found):
        next(e for e in found.entries if e.name == b"needle").offsets.pop()

    path = _last_index(tmp_path / "j")
    monkeypatch.setattr(index, "_accounts_for_every_record", lambda found, view: True)
    _rewrite(path, drop_one, journal._key)
    _fresh_process_view(monkeypatch)
    problems = journal.verify()
    assert [p.reason for p in problems] == ["its index disagreed with its frames (the index was replaced)"]
    assert problems[0].segment == path.stem + fmt.SEALED_SUFFIX
    _fresh_process_view(monkeypatch)
    assert journal.verify() == []
    assert len(list(journal.records("needle"))) == 2
    journal.close()


def test_a_segment_a_backup_acknowledged_leaves_with_its_index(tmp_path):
    from safe_data.remote import _ledger

    journal = _sealed_journal(tmp_path / "j")
    list(journal.records())  # builds every index
    ids = sorted(p.stem for p in tmp_path.joinpath("j").glob("*.seg"))
    assert sorted(p.stem for p in _index_files(tmp_path / "j")) == ids
    assert _ledger.remove_acknowledged(journal.path, ids[:2], "a sink") == ids[:2]
    assert sorted(p.stem for p in _index_files(tmp_path / "j")) == ids[2:]
    journal.close()
