"""``Journal(path, readonly=True)``: reads everything, a killed writer's segment included
(recovered in memory only), and never writes: not on a real read-only filesystem, not in
a writable directory (nothing created, recovered or changed)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import safe_data as sd
from safe_data.journal import format as fmt

from ._helpers import mounted_tmpfs

WRITER = r"""
import sys, time, safe_data as sd
journal = sd.Journal(sys.argv[1], segment_size=1 << 16)
items = sd.SafeList(range(10**6), name="items", journal=journal)
for _ in range(int(sys.argv[2])):
    print(items.pop(), flush=True)
time.sleep(3600)  # killed here, its last segment open
"""


def killed_writer(path, acks=3000) -> list[int]:
    """A real writer killed with SIGKILL after ``acks`` acknowledged pops: its last
    segment stays ``.open``.  Returns what it acknowledged."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(acks)], stdout=subprocess.PIPE, text=True
    )
    acked = [int(writer.stdout.readline()) for _ in range(acks)]
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    return acked


def snapshot(path) -> dict:
    """Every entry under ``path``: its bytes (files) and modification time."""
    found = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            data = Path(full).read_bytes() if name in files else None
            found[os.path.relpath(full, path)] = (data, os.stat(full).st_mtime_ns)
    return found


def read_only_view(path):
    with sd.Journal(path, readonly=True) as journal:
        assert journal.recovered == []
        return [r.values[0] for r in journal.records(on_error="raise")], journal.verify()


def test_readonly_reads_a_killed_writers_segment_and_changes_nothing(tmp_path):
    path = tmp_path / "journal"
    acked = killed_writer(path)
    assert list(path.glob("*" + fmt.OPEN_SUFFIX))  # left open by the dead writer
    before = snapshot(path)
    values, problems = read_only_view(path)
    assert values[: len(acked)] == acked and problems == []
    assert snapshot(path) == before  # nothing recovered, created or touched

    with sd.Journal(path, readonly=True) as journal:
        items = sd.SafeList([1, 2], name="items", journal=journal)
        with pytest.raises(sd.JournalReadOnlyError, match="read-only"):
            items.pop()
        assert items == [1, 2]  # nothing discarded
    assert snapshot(path) == before

    (path / "key").unlink()  # without a key: still read, no key created
    del before["key"]
    assert read_only_view(path)[0] == values and snapshot(path) == before
    with pytest.raises(FileNotFoundError, match="no journal at"):
        sd.Journal(tmp_path / "elsewhere", readonly=True)
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.root
def test_a_journal_on_a_read_only_filesystem(tmp_path):
    with mounted_tmpfs(tmp_path / "fs", 4096) as mnt:
        path = mnt / "journal"
        acked = killed_writer(path)
        before = snapshot(path)
        remount = subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True, text=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
        with pytest.raises(OSError, match="read-only filesystem: open it with readonly=True") as exc:
            sd.Journal(path)
        assert exc.value.errno == errno.EROFS
        values, problems = read_only_view(path)
        assert values[: len(acked)] == acked and problems == []
        for command in (["log", "--limit", "1"], ["verify"], ["restore", "items", "--discarded"]):
            proc = subprocess.run(
                [sys.executable, "-m", "safe_data", "--journal", str(path), *command],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 0, (command, proc.stderr)
        assert snapshot(path) == before
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        with sd.Journal(path) as journal:  # writable again: recovery, the same records
            assert [r.values[0] for r in journal.records(on_error="raise")] == values
