"""The journal's ``key`` file: 32 random bytes that sign its pickles (docs/format.md).

Whoever controls the key can sign pickles that readers will run, so the key must be a
regular file (not a symlink), owned by this user (or root) and writable by nobody else;
anything else at its path (a FIFO, a directory) is refused at once, never opened in a way
that could block.  A writer creates it when the journal has none; a reader never does.
Creating and reading happen under a lock on the file (``flock``), so a key is never read
half-written, and a 0-byte key (its creator was killed before writing it, so it signed
nothing) is written then by whoever opens the journal next.  A key that is missing while
segments exist is an error: a new key would make their pickles unverifiable.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from .._fs import fsync, fsync_dir, write_all
from ..errors import JournalFullError, SafeDataError
from . import format as fmt

KEY_FILE = "key"
KEY_SIZE = 32
_OPEN_FLAGS = (
    os.O_NOFOLLOW
    | os.O_NONBLOCK  # a FIFO must not block the open
    | getattr(os, "O_CLOEXEC", 0)
)
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFDIR: "a directory",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def read_key_file(key_path: str) -> bytes:
    """The bytes of a journal key file; SafeDataError if the file could have been planted
    or is no regular file.  FileNotFoundError if there is none."""
    fd = _open_key(key_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # not while a writer fills it
        return os.pread(fd, KEY_SIZE + 1, 0)
    finally:
        os.close(fd)


def read_key(directory: str) -> bytes | None:
    """The key of the journal at ``directory`` for reading only, or None if it has no
    usable one (its pickles then read as UnverifiedPickle); a key that could have been
    planted is refused (SafeDataError)."""
    try:
        key = read_key_file(os.path.join(directory, KEY_FILE))
    except FileNotFoundError:
        return None
    return key if len(key) == KEY_SIZE else None


def load_or_create_key(directory: str) -> bytes:
    """The key of the journal at ``directory`` for writing: created if the journal has
    none and no segment, written if it is empty."""
    key_path = os.path.join(directory, KEY_FILE)
    while True:
        try:
            fd = _open_key(key_path, os.O_RDWR)
        except FileNotFoundError:
            _refuse_lost_key(directory, key_path)
            try:
                fd = os.open(key_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o600)
            except FileExistsError:  # created by another process meanwhile: use theirs
                continue
        try:
            return _key_of(fd, key_path, directory)
        finally:
            os.close(fd)


def _key_of(fd: int, key_path: str, directory: str) -> bytes:
    """The key in the open file ``fd``, written first if the file is empty."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    key = os.pread(fd, KEY_SIZE + 1, 0)
    if not key:  # a creator was killed before writing it (or we just created it)
        key = os.urandom(KEY_SIZE)
        _write_key(fd, key, directory)
    if len(key) != KEY_SIZE:
        raise SafeDataError(
            f"journal key file {key_path} is damaged ({len(key)} bytes, expected "
            f"{KEY_SIZE}); restore it from a backup or move the journal aside"
        )
    return key


def _write_key(fd: int, key: bytes, directory: str) -> None:
    try:
        write_all(fd, key)
        fsync(fd)
        fsync_dir(directory)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            os.ftruncate(fd, 0)  # empty again: the next open writes it
            raise JournalFullError(
                exc.errno, f"no space left in {directory} to write the journal's key; free some space"
            ) from exc
        raise


def _open_key(key_path: str, mode: int) -> int:
    """Open the key file (``mode``: O_RDONLY or O_RDWR) and check it is a plain file of
    this journal; SafeDataError otherwise, FileNotFoundError if it is missing."""
    try:
        fd = os.open(key_path, mode | _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SafeDataError(
                f"journal key {key_path} is a symlink: refusing a key that is not "
                f"a plain file of this journal (it could sign forged pickles)"
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and mode != os.O_RDONLY:
            return _open_key(key_path, os.O_RDONLY)  # a key we may not write: read it
        if exc.errno == errno.EISDIR:
            raise SafeDataError(
                f"journal key {key_path} is a directory, not a regular file; refusing to use it"
            ) from None
        raise
    try:
        _check_key_file(os.fstat(fd), key_path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_key_file(st: os.stat_result, key_path: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise SafeDataError(f"journal key {key_path} is {kind}, not a regular file; refusing to use it")
    if hasattr(os, "getuid") and (st.st_uid not in (os.getuid(), 0) or st.st_mode & 0o022):
        raise SafeDataError(
            f"journal key {key_path} is owned by another user or writable by others (mode "
            f"{st.st_mode & 0o777:o}): it could have been replaced to forge pickles; refusing "
            f"to use it. Check the file, then `chmod 600` it"
        )


def _refuse_lost_key(directory: str, key_path: str) -> None:
    """A journal with segments but no key lost it: a new one would orphan their pickles."""
    segments = [n for n in os.listdir(directory) if n.endswith((fmt.OPEN_SUFFIX, fmt.SEALED_SUFFIX))]
    if segments:
        raise SafeDataError(
            f"journal key {key_path} is missing, but the journal holds {len(segments)} "
            f"segment(s) whose pickled values it signed: a new key would leave them "
            f"unverifiable. Restore `key` from a backup of this journal; to read the records "
            f"without it, open the journal with readonly=True (pickled values then read as "
            f"UnverifiedPickle); to start afresh, move the segments out of {directory}"
        )
