"""Durable file helpers: the syscalls every writer of this package shares.

Platform differences are chosen once, here.  On macOS ``fsync`` only hands the data to
the drive, whose cache may still lose it on power failure; ``fcntl(F_FULLFSYNC)`` asks
the drive to flush it, so :func:`fsync` and :func:`fdatasync` use it there (and fall back
to ``fsync`` on a filesystem without it: network, FAT).  Directories are synced with a
plain ``fsync``, as SQLite does: what a rename needs is the directory entry, which
``fsync`` on the directory writes.
"""

from __future__ import annotations

import os
import sys

from . import _faults

__all__ = ["write_all", "write_temp", "fsync", "fdatasync", "fsync_dir"]

if sys.platform == "darwin":
    import fcntl

    def fsync(fd: int) -> None:
        try:
            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
        except OSError:
            os.fsync(fd)

    fdatasync = fsync  # macOS has no fdatasync
else:
    fsync = os.fsync
    fdatasync = os.fdatasync


def write_all(fd: int, data) -> None:
    """Write the whole of ``data`` at the descriptor's position (os.write may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_temp(directory: str, name: str, data) -> str:
    """Write ``data`` to a new private (0600) temp file in ``directory``, fsynced, and
    return its path: the caller renames or links it into place (then fsyncs the directory)."""
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, data)
        fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def fsync_dir(path: str) -> None:
    """Make the entries of directory ``path`` (a rename, a new or deleted file) durable."""
    _faults.point("dir.fsync")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
