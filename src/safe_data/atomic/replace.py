"""Replacing a file atomically and durably, journaling what it held.

:func:`replace_file` is the only way this package writes a file.  Its steps, with the
syscalls (docs/atomic.md explains what each one guarantees):

1. ``open(directory, O_RDONLY | O_DIRECTORY)``: the directory's descriptor, for its lock,
   for every name below (``*at`` calls, so a renamed parent cannot redirect them) and for
   its fsync.
2. Under ``flock(directory, LOCK_EX)``: ``open(temp, O_CREAT | O_EXCL | O_WRONLY)``, then
   ``flock(temp, LOCK_EX)``.  A temp file is locked from its birth until its writer exits,
   so :func:`remove_dead_temps`, which takes the directory lock too, tells a dead writer's
   leftover (lock free) from a live writer's (lock held) without guessing from its age.
3. ``fchown``/``fchmod`` to the old file's owner and mode, one ``write`` of the whole
   content, ``fsync`` (``F_FULLFSYNC`` on macOS, where fsync leaves the drive's cache).
4. Under the journal's operation lock, then ``flock(directory, LOCK_EX)``: read the old
   content, compare its revision (if asked), journal it, ``rename(temp, file)``.  Every
   writer of this package holds the directory lock from reading the old content to the
   rename, so each content that was ever in place is read, and journaled, by the writer
   that replaces it: two processes committing at once lose nothing.
5. ``fsync(directory)``: the rename itself is on disk when the call returns.

The journal's lock is taken before the directory's, by every path, so the two never
deadlock.  The slow part (writing and syncing the temp file) holds neither.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import stat

from .. import _faults
from .._fs import fsync as _fsync  # (its own name here: the crash tests trace it)
from .._fs import write_all
from ..errors import RevisionConflictError

TEMP_PREFIX = ".safe-data-tmp-"
#: our temp files, and nothing else, match this
TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"[0-9a-f]{16}")


class _AnyRevision:
    def __repr__(self):
        return "ANY_REVISION"


#: ``expected=ANY_REVISION``: replace whatever the file holds
ANY_REVISION = _AnyRevision()


def revision_of(content: bytes | None) -> str | None:
    """The revision token of a file's content (None: there is no file)."""
    return None if content is None else hashlib.blake2b(content, digest_size=16).hexdigest()


def read_file(path: str) -> bytes | None:
    """The content of the file at ``path``, or None if there is none."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def replace_file(path: str, data: bytes, *, journal, container: str, expected=ANY_REVISION) -> None:
    """Make ``data`` the content of the file at ``path`` (an absolute path, symlinks
    resolved), atomically and durably, journaling its previous content first.

    Raise :class:`~safe_data.errors.RevisionConflictError` (writing nothing) if
    ``expected`` is a revision and the file is not at it.
    """
    directory, name = os.path.split(path)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        before = _stat_or_none(name, dir_fd)
        with _locked(dir_fd):
            temp = TEMP_PREFIX + os.urandom(8).hex()
            fd = os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if before is None else 0o600, dir_fd=dir_fd
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if before is not None:
                _copy_owner_and_mode(fd, before)
            write_all(fd, data)
            _fsync(fd)
            with journal.operation_lock, _locked(dir_fd):
                old, now = _read_at(name, dir_fd)
                if expected is not ANY_REVISION and revision_of(old) != expected:
                    raise RevisionConflictError(path, expected, revision_of(old))
                if now is not None and _owner_and_mode(now) != _owner_and_mode(before):
                    _copy_owner_and_mode(fd, now)  # changed since step 3: follow it
                    _fsync(fd)
                if old is not None and old != data:
                    journal.record("file", "replace", container, path, [old])
                _faults.point("atomic.replace")
                os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        finally:
            os.close(fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_dead_temps(directory: str) -> None:
    """Delete the temp files that writers which died left in ``directory``.

    Only names matching :data:`TEMP_NAME` are considered, and of those only files whose
    lock is free: a live writer holds its temp file's lock.  Best effort: a file that
    cannot be opened or removed (another user's) stays.
    """
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return  # nothing of ours can be there
    try:
        names = [name for name in os.listdir(dir_fd) if TEMP_NAME.fullmatch(name)]
        if names:
            with _locked(dir_fd):
                for name in names:
                    _remove_if_dead(name, dir_fd)
    finally:
        os.close(dir_fd)


def _remove_if_dead(name: str, dir_fd: int) -> None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(name, dir_fd=dir_fd)
    except OSError:  # BlockingIOError: a live writer's
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(fd: int):
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _stat_or_none(name: str, dir_fd: int):
    try:
        return os.stat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


def _read_at(name: str, dir_fd: int):
    """(content, stat) of the file ``name``, or (None, None)."""
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    except FileNotFoundError:
        return None, None
    with open(fd, "rb") as f:
        return f.read(), os.fstat(fd)


def _owner_and_mode(st):
    return None if st is None else (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))


def _copy_owner_and_mode(fd: int, st) -> None:
    """Give the temp file ``st``'s owner, group and mode, as far as we may.

    The owner first: changing it clears the setuid and setgid bits, which fchmod then sets.
    """
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
    except PermissionError:  # not root: keeping the group is allowed to its members
        with contextlib.suppress(PermissionError):
            os.fchown(fd, -1, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
