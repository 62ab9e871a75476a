"""The journal's ``key`` file: 32 random bytes that sign its pickles (docs/format.md).

Whoever controls the key can sign pickles that readers will run, so the key must be a
regular file (not a symlink), owned by this user (or root) and writable by nobody else.
A writer creates it when the journal has none; a reader never does.
"""

from __future__ import annotations

import errno
import os
import stat

from ..errors import SafeDataError

KEY_FILE = "key"
KEY_SIZE = 32


def read_key_file(key_path: str) -> bytes:
    """The bytes of a journal key file; SafeDataError if the file could have been planted.

    Whoever controls the key can sign pickles that readers will run, so the key must be
    a regular file (not a symlink), owned by this user (or root) and writable by nobody
    else.
    FileNotFoundError if there is none.
    """
    try:
        fd = os.open(key_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise SafeDataError(f"journal key {key_path} is a symlink: refusing a key that is not a "
                            f"plain file of this journal (it could sign forged pickles)") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SafeDataError(f"journal key {key_path} is not a regular file; refusing to use it")
        if hasattr(os, "getuid") and (st.st_uid not in (os.getuid(), 0) or st.st_mode & 0o022):
            raise SafeDataError(
                f"journal key {key_path} is owned by another user or writable by others (mode "
                f"{st.st_mode & 0o777:o}): it could have been replaced to forge pickles; refusing "
                f"to use it. Check the file, then `chmod 600` it")
        return f.read(KEY_SIZE + 1)


def load_or_create_key(path: str) -> bytes:
    """The journal's secret MAC key: authenticates its pickles (see codec)."""
    key_path = os.path.join(path, KEY_FILE)
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:  # written whole or not at all: see below
            f.write(os.urandom(KEY_SIZE))
            f.flush()
            os.fsync(f.fileno())
    key = read_key_file(key_path)
    if len(key) != KEY_SIZE:
        # Another process is between O_EXCL and its write; retry briefly.
        import time

        for _ in range(100):
            time.sleep(0.01)
            key = read_key_file(key_path)
            if len(key) == KEY_SIZE:
                break
        else:
            raise SafeDataError(f"journal key file {key_path} is damaged ({len(key)} bytes, "
                                f"expected {KEY_SIZE}); restore it from a backup or move the journal aside")
    return key


def read_key(directory: str) -> bytes | None:
    """The key of the journal at ``directory`` for reading only, or None if it has no
    usable one (its pickles then read as UnverifiedPickle); a key that could have been
    planted is refused (SafeDataError)."""
    try:
        key = read_key_file(os.path.join(directory, KEY_FILE))
    except FileNotFoundError:
        return None
    return key if len(key) == KEY_SIZE else None
