"""The earlier contents of a file, read back from the journal, and putting one back.

Each commit that replaced a file left a ``file``/``replace`` record: key the file's
absolute path, values ``[the content it replaced]``.  A file's versions are those
records, oldest first.
"""

from __future__ import annotations

import os
import reprlib
import warnings
from collections import namedtuple
from datetime import datetime, timezone

from ..containers import _support
from ..errors import JournalWarning
from ..journal.journal import to_ns
from .replace import replace_file


class FileVersion(namedtuple("FileVersion", "path content time_ns record")):
    """An earlier content of a file: ``path`` held ``content`` (bytes) until ``time_ns``,
    when a commit replaced it; ``record`` is the journal record that keeps it."""

    __slots__ = ()

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ns / 1e9, tz=timezone.utc)


def versions(path, journal=None, *, name=None) -> list[FileVersion]:
    """The earlier contents of the file at ``path`` that ``journal`` holds, oldest first.

    ``name`` is the store's ``name=`` if it was opened with one.
    """
    file = os.path.realpath(path)
    journal = _support.resolve_journal(journal)
    return versions_in(journal.records(file if name is None else name), file)


def versions_in(records, file: str, report=None) -> list[FileVersion]:
    """The versions of ``file`` (absolute, symlinks resolved) among ``records``.

    A record that says it replaced ``file`` but does not hold one content (``[bytes]``:
    forged, or written by something else) is no version: it is left out, and
    ``report(message)`` says so (default: a JournalWarning).
    """
    found = []
    for r in records:
        if r.kind != "file" or r.op != "replace" or r.key != file:
            continue
        if type(r.values) is list and len(r.values) == 1 and type(r.values[0]) is bytes:
            found.append(FileVersion(file, r.values[0], r.time_ns, r))
        else:
            (report or _warn)(
                f"the record at {r.segment}:{r.offset} (seq {r.seq}) says it replaced "
                f"{file} but holds no file content ({reprlib.repr(r.values)}); it is "
                f"not listed as a version"
            )
    return found


def _warn(message: str) -> None:
    warnings.warn(message, JournalWarning, stacklevel=3)


def pick(found: list[FileVersion], file: str, version: int | None = None, at=None) -> FileVersion:
    """The version numbered ``version`` (an index into ``found``: 0 the oldest, -1 the
    newest), or the content ``file`` had at time ``at``; raise LookupError if there is none."""
    if version is not None and at is not None:
        raise TypeError("give version or at, not both")
    if not found:
        raise LookupError(f"the journal holds no earlier version of {file}")
    if at is None:
        version = -1 if version is None else version
        if not -len(found) <= version < len(found):
            raise LookupError(f"the journal holds only {len(found)} earlier version(s) of {file}")
        return found[version]
    at_ns = to_ns(at)
    later = [v for v in found if v.time_ns > at_ns]  # the first replace after `at` kept it
    if not later:
        raise LookupError(f"{file} has not been replaced since {at}: it holds what it held then")
    return later[0]


def restore_version(path, version: int | None = None, *, at=None, journal=None, name=None) -> FileVersion:
    """Put an earlier content of the file at ``path`` back, and return it.

    ``version`` indexes :func:`versions` (default -1: the newest, what the file held
    before its last replace); ``at`` (a datetime or nanoseconds) picks the content it had
    at that time instead.  The file is replaced as a commit replaces it, so what it holds
    now is journaled first: restoring can be undone by restoring again.
    """
    file = os.path.realpath(path)
    journal = _support.resolve_journal(journal)
    chosen = pick(versions(file, journal, name=name), file, version, at)
    replace_file(file, chosen.content, journal=journal, container=file if name is None else name)
    return chosen
