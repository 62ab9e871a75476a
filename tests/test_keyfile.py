"""The journal's key file: what sits at its path is refused at once unless it is a plain
private file; an empty key (a creator killed before writing it) is written; a key lost
while segments hold pickles it signed is an error, never a silent new key.

Openings that could hang run in a child process with a timeout: a hang is a failure
here, not a stuck test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import safe_data as sd
from safe_data.journal import format as fmt

OPEN = r"""
import sys, safe_data as sd
try:
    sd.Journal(sys.argv[1]).close()
except sd.SafeDataError as exc:
    print("refused:", exc)
"""


class Point:
    """A value of a class of its own: journaled as a pickle signed with the key."""

    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return isinstance(other, Point) and other.n == self.n


def run(*args, timeout=20):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - started


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_fifo_or_a_directory_at_the_key_path_is_refused_at_once(tmp_path, kind):
    journal = tmp_path / "journal"
    journal.mkdir(mode=0o700)
    key = journal / "key"
    if kind == "fifo":
        os.mkfifo(key, 0o600)  # no writer will ever open it: a blocking open never returns
    else:
        key.mkdir(mode=0o700)
    expected = "a FIFO" if kind == "fifo" else "a directory"
    proc, took = run("-c", OPEN, str(journal))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("refused:") and f"is {expected}, not a regular file" in proc.stdout
    assert took < 10
    for command in (["log"], ["verify"]):  # the commands that read the key
        cli, took = run("-m", "safe_data", "--journal", str(journal), *command)
        assert cli.returncode == 1 and f"is {expected}, not a regular file" in cli.stderr, cli.stderr
        assert "Traceback" not in cli.stderr and took < 10


def test_an_empty_key_left_by_a_killed_creator_is_written(tmp_path):
    """A creator killed between creating the file and writing it leaves 0 bytes, which
    signed nothing: the next processes to open the journal write it, all the same key."""
    journal = tmp_path / "journal"
    journal.mkdir(mode=0o700)
    (journal / "key").touch(mode=0o600)
    script = tmp_path / "pop.py"
    script.write_text(
        "import sys, safe_data as sd\n"
        "from tests.test_keyfile import Point\n"
        "with sd.Journal(sys.argv[1]) as j:\n"
        "    sd.SafeList([Point(int(sys.argv[2]))], name='points', journal=j).pop()\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH")])
        ),
    }  # for tests.*
    children = [
        subprocess.Popen(
            [sys.executable, str(script), str(journal), str(n)], env=env, stderr=subprocess.PIPE, text=True
        )
        for n in range(4)
    ]
    for child in children:  # opening together: one writes the key, the others wait for it
        assert child.wait(timeout=60) == 0, child.stderr.read()
        child.stderr.close()
    assert len((journal / "key").read_bytes()) == 32
    with sd.Journal(journal) as j:
        values = [r.values[0] for r in j.records(on_error="raise")]
    assert sorted(v.n for v in values) == [0, 1, 2, 3]  # every pickle verifies under the key


def test_a_key_deleted_while_segments_exist_is_an_error_not_a_new_key(tmp_path):
    journal = tmp_path / "journal"
    with sd.Journal(journal) as j:
        sd.SafeList([Point(1), "plain"], name="items", journal=j).clear()
    (journal / "key").unlink()
    with pytest.raises(sd.SafeDataError, match="key .* is missing, but the journal holds 1 segment"):
        sd.Journal(journal)
    assert not (journal / "key").exists()  # no new key that would orphan the pickles
    with sd.Journal(journal, readonly=True) as j:  # what the error suggests: still readable
        (record,) = j.records(on_error="raise")
    assert isinstance(record.values[0], sd.UnverifiedPickle) and record.values[1] == "plain"
    proc, _ = run("-m", "safe_data", "--journal", str(journal), "log")  # the command reads too
    assert proc.returncode == 0 and "plain" in proc.stdout


def test_a_journal_without_segments_gets_a_new_key(tmp_path):
    """The control: with no segment, nothing was signed, so a missing key is created."""
    journal = tmp_path / "journal"
    with sd.Journal(journal) as j:
        sd.SafeList([Point(1)], name="items", journal=j).pop()
    for segment in journal.glob("*" + fmt.SEALED_SUFFIX):
        segment.unlink()
    (journal / "key").unlink()
    with sd.Journal(journal) as j:
        sd.SafeList([Point(2)], name="items", journal=j).pop()
        assert [r.values for r in j.records(on_error="ignore")] == [[Point(2)]]
    assert len((journal / "key").read_bytes()) == 32
