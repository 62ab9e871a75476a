"""A full disk and a full quota: JournalFullError, nothing discarded, nothing corrupted.

The disk-full tests mount a real 256 KiB tmpfs (needs root) and fill it with 64 KiB
segments.  The filling runs in a child process, so that a SIGBUS (a write into a mapped
page the filesystem could not back) shows up as return code -7 instead of killing pytest.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

import safe_data as sd
from safe_data.journal import format as fmt
from safe_data.journal.ledger import remove_segments

from ._helpers import mounted_tmpfs

SEGMENT = 64 * 1024

FILL = r"""
import errno, os, sys
import safe_data as sd

path, filler, durability, segment_size = sys.argv[1:5]
j = sd.Journal(path, segment_size=int(segment_size), durability=durability)
L = sd.SafeList(name="L", journal=j)
D = sd.SafeDict(name="D", journal=j)
S = sd.SafeSet(name="S", journal=j)


def expect_full(op, container, before):
    try:
        op()
    except sd.JournalFullError as exc:
        assert exc.errno == errno.ENOSPC, exc
    else:
        raise AssertionError(f"no JournalFullError from {op}")
    assert container == before, (container, before)  # unchanged


acked = []
for i in range(100_000):
    v = f"v{i:06d}-" + os.urandom(60).hex()
    L.append(v)
    try:
        got = L.pop()
    except sd.JournalFullError as exc:
        full = exc
        break
    assert got == v
    acked.append(v)
else:
    raise AssertionError("the filesystem never filled up")
print("FULL", len(acked), full.errno, str(full).replace("\n", " "), flush=True)
assert isinstance(full, OSError) and full.errno == errno.ENOSPC
assert list(L) == [v]  # the failing pop changed nothing

# every destructive operation of every container refuses and changes nothing
expect_full(L.pop, L, [v])
expect_full(lambda: L.pop(0), L, [v])
expect_full(lambda: L.remove(v), L, [v])
expect_full(lambda: L.__delitem__(0), L, [v])
expect_full(lambda: L.__delitem__(slice(None)), L, [v])
expect_full(lambda: L.__setitem__(0, "other"), L, [v])
expect_full(L.clear, L, [v])
expect_full(lambda: L.__imul__(0), L, [v])
D["k"] = "dv"  # adding discards nothing: it works on a full disk
S.add("sv")
expect_full(lambda: D.pop("k"), D, {"k": "dv"})
expect_full(lambda: D.__delitem__("k"), D, {"k": "dv"})
expect_full(lambda: D.__setitem__("k", "other"), D, {"k": "dv"})
expect_full(lambda: D.update(k="other"), D, {"k": "dv"})
expect_full(D.popitem, D, {"k": "dv"})
expect_full(D.clear, D, {"k": "dv"})
expect_full(S.pop, S, {"sv"})
expect_full(lambda: S.remove("sv"), S, {"sv"})
expect_full(lambda: S.discard("sv"), S, {"sv"})
expect_full(lambda: S.__isub__({"sv"}), S, {"sv"})
expect_full(lambda: S.intersection_update(set()), S, {"sv"})
expect_full(S.clear, S, {"sv"})
print("UNCHANGED", flush=True)

# everything journaled before is readable and sound
recs = list(j.records(on_error="raise"))
assert [r.values for r in recs] == [[a] for a in acked]
assert j.verify() == []
print("READABLE", len(recs), flush=True)

# free space: journaling resumes where it stopped
os.unlink(filler)
assert L.pop() == v
assert D.pop("k") == "dv"
assert S.pop() == "sv"
more = []
for i in range(200):
    w = f"w{i:06d}-" + os.urandom(60).hex()
    L.append(w)
    assert L.pop() == w
    more.append(w)
recs = list(j.records(on_error="raise"))
assert [r.values for r in recs if r.container == "L"] == [[a] for a in acked + [v] + more]
assert [r.values for r in recs if r.container != "L"] == [{"k": "dv"}, {"sv"}]
assert j.verify() == []
j.close()
print("RESUMED", len(recs), flush=True)
"""


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 256 KiB tmpfs."""
    with mounted_tmpfs(tmp_path / "tmpfs", 256) as mnt:
        yield mnt


def fill_to_the_last_block(mnt: Path) -> Path:
    """Fill the filesystem at ``mnt`` with a file until ENOSPC; return the file."""
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\xff" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def fs_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.mark.root
@pytest.mark.parametrize("durability", ["process", "batch", "fsync"])
def test_full_disk_raises_changes_nothing_and_resumes_after_freeing_space(tmp_path, small_tmpfs, durability):
    filler = small_tmpfs / "filler"
    filler.write_bytes(os.urandom(SEGMENT))  # freed later to make room again
    assert fs_free(small_tmpfs) < 4 * SEGMENT  # room for the key and ~2 segments only
    fill_check_and_resume(tmp_path, small_tmpfs, filler, durability, min_acked=100)


@pytest.mark.root
@pytest.mark.parametrize("size_kib", [128, 192, 320, 512, 768, 1024])
def test_full_disk_sweep(tmp_path, size_kib):
    """Filesystems from 128 KiB to 1 MiB, nearly full: the disk fills at every possible
    point of a segment's life (creation, preallocation, the key file...), and each time
    it is the documented error, never a SIGBUS, and journaling resumes."""
    segment = 16 * 1024
    with mounted_tmpfs(tmp_path / "tmpfs", size_kib) as mnt:
        filler = mnt / "filler"
        # all but two or three segments' worth, at an offset that varies with the size;
        # freeing it later makes room for new segments
        filler.write_bytes(bytes(fs_free(mnt) - 2 * segment - size_kib * 97 % segment))
        fill_check_and_resume(tmp_path, mnt, filler, "process", min_acked=1, segment=segment)


def fill_check_and_resume(tmp_path, mnt, filler, durability, min_acked, segment=SEGMENT):
    journal_dir = mnt / "journal"
    script = tmp_path / "fill.py"
    script.write_text(FILL)

    proc = subprocess.run(
        [sys.executable, str(script), str(journal_dir), str(filler), durability, str(segment)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"filling child exited with {proc.returncode} (-7 is SIGBUS)\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    lines = dict(line.partition(" ")[::2] for line in proc.stdout.splitlines())
    n_acked, err, message = lines["FULL"].split(" ", 2)
    assert int(n_acked) >= min_acked  # it did journal until the disk was full
    assert int(err) == errno.ENOSPC
    assert "no space left" in message and "nothing was discarded" in message
    assert "UNCHANGED" in lines and int(lines["READABLE"]) == int(n_acked)
    assert int(lines["RESUMED"]) == int(n_acked) + 1 + 200 + 2

    # a fresh reader agrees, and no failed segment file was left behind
    assert not filler.exists()
    names = os.listdir(journal_dir)
    assert not [n for n in names if n.endswith(fmt.OPEN_SUFFIX)]
    with sd.Journal(journal_dir) as j:
        assert j.recovered == [] and j.verify() == []
        recs = list(j.records(on_error="raise"))
    assert len(recs) == int(n_acked) + 1 + 200 + 2
    assert all(Path(journal_dir, r.segment).exists() for r in recs)


@pytest.mark.root
def test_full_disk_when_the_first_segment_cannot_be_created(tmp_path, small_tmpfs):
    """The very first discard needs a segment: it fails cleanly, in this process."""
    journal_dir = small_tmpfs / "journal"
    with sd.Journal(journal_dir, segment_size=SEGMENT) as j:
        filler = fill_to_the_last_block(small_tmpfs)
        L = sd.SafeList(["keep"], name="L", journal=j)
        with pytest.raises(sd.JournalFullError, match="no space left") as exc:
            L.pop()
        assert exc.value.errno == errno.ENOSPC
        assert L == ["keep"]
        assert [n for n in os.listdir(journal_dir) if n.endswith((fmt.OPEN_SUFFIX, fmt.SEALED_SUFFIX))] == []
        filler.unlink()
        assert L.pop() == "keep"
        assert [r.values for r in j.records(on_error="raise")] == [["keep"]]


def fill_until_full(j, prefix="v"):
    L = sd.SafeList(name="L", journal=j)
    acked = []
    for i in range(100_000):
        v = f"{prefix}{i:06d}-" + os.urandom(60).hex()
        L.append(v)
        try:
            assert L.pop() == v
        except sd.JournalFullError as exc:
            return L, v, acked, exc
        acked.append(v)
    raise AssertionError("never full")


def test_quota_raises_journal_full_naming_the_quota(tmp_path):
    journal_dir = tmp_path / "journal"
    quota = 200_000  # three 64 KiB segments fit, a fourth does not
    j = sd.Journal(journal_dir, segment_size=SEGMENT, max_bytes=quota)
    try:
        L, v, acked, exc = fill_until_full(j)
        assert isinstance(exc, OSError) and exc.errno == errno.ENOSPC
        message = str(exc)
        assert "quota" in message and str(quota) in message, message
        assert "nothing was discarded" in message
        assert list(L) == [v]  # unchanged
        with pytest.raises(sd.JournalFullError, match="quota"):
            L.pop()
        assert list(L) == [v]
        sealed = sorted(journal_dir.glob("*" + fmt.SEALED_SUFFIX))
        assert len(sealed) == 3
        assert [r.values for r in j.records(on_error="raise")] == [[a] for a in acked]
        assert j.verify() == []

        # purging a sealed segment (after uploading it, say) makes room again; the
        # ledger records it, so that it is not reported missing
        purged = {r.values[0] for r in j.records(on_error="raise") if r.segment == sealed[0].name}
        remove_segments(str(journal_dir), [str(sealed[0])], "uploaded")
        assert L.pop() == v
        left = [a for a in acked if a not in purged] + [v]
        assert [r.values[0] for r in j.records(on_error="raise")] == left
        assert j.verify() == []
    finally:
        j.close()


def test_quota_smaller_than_one_segment_refuses_the_first_discard(tmp_path):
    with sd.Journal(tmp_path / "journal", segment_size=SEGMENT, max_bytes=SEGMENT - 1) as j:
        D = sd.SafeDict({"k": 1}, name="D", journal=j)
        with pytest.raises(sd.JournalFullError, match=f"quota of {SEGMENT - 1} bytes"):
            del D["k"]
        assert D == {"k": 1}
        assert list(j.records(on_error="raise")) == [] and j.verify() == []


WRITER = r"""
import sys, time, safe_data as sd
journal = sd.Journal(sys.argv[1], segment_size=64 * 1024)
items = sd.SafeList(range(10**6), name="items", journal=journal)
for _ in range(int(sys.argv[2])):
    print(items.pop(), flush=True)
time.sleep(3600)  # killed here, its last segment open
"""


@pytest.mark.root
def test_full_disk_during_recovery_is_journal_full_and_changes_nothing(tmp_path, small_tmpfs):
    """Recovering a killed writer's segment must save the bytes after its frames to
    damaged/ first; on a full disk that is JournalFullError (not a raw OSError), the
    segment is left as it was, and the next open, with space again, recovers it all."""
    journal_dir = small_tmpfs / "journal"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(journal_dir), "500"], stdout=subprocess.PIPE, text=True
    )
    acked = [int(writer.stdout.readline()) for _ in range(500)]
    writer.kill()  # SIGKILL
    writer.wait()
    writer.stdout.close()
    (segment,) = journal_dir.glob("*" + fmt.OPEN_SUFFIX)
    with open(segment, "r+b") as f:  # a page of garbage after the frames (a torn write)
        f.seek(48 * 1024)
        f.write(os.urandom(4096))
    before = segment.read_bytes()
    filler = fill_to_the_last_block(small_tmpfs)

    with pytest.raises(sd.JournalFullError, match="no space left .* to recover") as exc:
        sd.Journal(journal_dir)
    assert exc.value.errno == errno.ENOSPC and "nothing is lost" in str(exc.value)
    assert segment.read_bytes() == before  # left as it was, for the next open
    assert not any((journal_dir / "damaged").glob("*"))  # no partial copy left behind

    filler.unlink()
    with pytest.warns(sd.JournalWarning, match="bytes saved to damaged/"):
        journal = sd.Journal(journal_dir)
    with journal:
        assert [r.values[0] for r in journal.records(on_error="raise")] == acked
        assert journal.verify() == []
