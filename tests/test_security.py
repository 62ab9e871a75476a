"""Reading a journal never runs code its reader did not write: pickles need a valid MAC."""

import os
import shutil
from pathlib import Path

import pytest

import safe_data
from safe_data import SafeList, UnverifiedPickle

from ._helpers import Canary, plant


class Point:
    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return isinstance(other, Point) and other.x == self.x


def test_a_planted_pickle_is_never_executed(tmp_path, journal):
    canary = tmp_path / "canary"
    for seg in plant(tmp_path, Canary(str(canary))):
        shutil.copy(seg, journal.path)
    assert not canary.exists()  # writing it pickled it; nothing ran
    (rec,) = journal.records()
    assert isinstance(rec.values[0], UnverifiedPickle)
    assert journal.verify() == []  # the frame itself is sound: the pickle is just not trusted
    assert not canary.exists()
    rec.values[0].load()  # the explicit opt-in does run it: the test above could have failed
    assert canary.exists()


def test_own_pickles_verify_and_load(journal):
    SafeList([Point(3)], journal=journal).pop()
    (rec,) = journal.records()
    assert rec.values == [Point(3)]


def test_a_journal_moved_without_its_key_needs_explicit_trust(tmp_path, journal):
    SafeList([Point(1)], journal=journal).pop()
    journal.close()
    moved = tmp_path / "moved"
    shutil.copytree(journal.path, moved)
    os.unlink(moved / "key")
    (rec,) = safe_data.Journal(moved, readonly=True).records()
    assert isinstance(rec.values[0], UnverifiedPickle)
    (rec,) = safe_data.Journal(moved, readonly=True, trust_pickles=True).records()
    assert rec.values == [Point(1)]


def test_plain_values_need_no_key(tmp_path, journal):
    """Builtin types decode without running code, so they read back anywhere."""
    SafeList([{"a": [1, "x"]}], journal=journal).pop()
    journal.close()
    moved = tmp_path / "moved"
    shutil.copytree(journal.path, moved)
    os.unlink(moved / "key")
    with safe_data.Journal(moved, readonly=True) as reader:
        (rec,) = reader.records()
    assert rec.values == [{"a": [1, "x"]}]


def test_key_file_is_secret_and_stable(journal):
    path = os.path.join(journal.path, "key")
    assert os.stat(path).st_mode & 0o777 == 0o600 and os.path.getsize(path) == 32
    before = Path(path).read_bytes()
    with safe_data.Journal(journal.path) as reopened:
        assert Path(reopened.path, "key").read_bytes() == before


def test_a_damaged_key_file_is_a_clear_error(tmp_path):
    d = tmp_path / "j"
    d.mkdir(mode=0o700)
    (d / "key").write_bytes(b"short")
    with pytest.raises(safe_data.SafeDataError, match="key file .* damaged"):
        safe_data.Journal(d)


def test_a_verified_pickle_whose_class_is_gone_is_kept_not_fatal(tmp_path, journal, monkeypatch):
    """The record stays readable: its value is an UnloadablePickle holding the bytes and the
    reason, and the other records are read as usual; load() works once the class is back."""
    import importlib
    import sys as _sys

    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    (module_dir / "gone_soon.py").write_text("class Thing:\n    def __init__(self, n):\n        self.n = n\n")
    monkeypatch.syspath_prepend(str(module_dir))
    gone_soon = importlib.import_module("gone_soon")
    SafeList([gone_soon.Thing(3)], name="things", journal=journal).pop()
    SafeList(["plain"], name="plain", journal=journal).pop()
    del _sys.modules["gone_soon"]
    (module_dir / "gone_soon.py").unlink()
    importlib.invalidate_caches()

    values = {r.container: r.values[0] for r in journal.records(on_error="raise")}
    assert values["plain"] == "plain"
    kept = values["things"]
    assert isinstance(kept, safe_data.UnloadablePickle) and "gone_soon" in kept.error
    (module_dir / "gone_soon.py").write_text("class Thing:\n    def __init__(self, n):\n        self.n = n\n")
    importlib.invalidate_caches()
    assert kept.load().n == 3
