"""The process-wide lock of a file-backed collection, and the file's write generation.

``<dir>/.<name>.lock`` sits next to ``<dir>/<name>``.  A writer holds an exclusive
``fcntl.flock`` on it from the load to the save of every change, so concurrent
load-modify-save cycles of different processes (and of different collections of one
process) on the same file never interleave: no lost update.  The lock file is not the
data file itself because every save replaces the data file with a new inode, which
would leave the lock on the old one.  Lock files are never deleted (deleting one while
another process waits on it would let two writers in).

The lock file also holds a 64-bit write generation, incremented by each save under the
lock.  A reader compares it, with the data file's (device, inode, size, mtime), to what
it last read or wrote: the stat alone can be fooled when a just-freed inode number is
reused by the next replace within one mtime tick and with the same size.

flock locks belong to an open file description: the lock is released when its one
descriptor is closed, including when the process dies.  The descriptor is opened per
locked operation, never kept (thousands of collections must not hold thousands of
descriptors).  NFS and some FUSE filesystems emulate or lack flock: see docs/synced.md.
"""

from __future__ import annotations

import fcntl
import os
import struct

_GENERATION = struct.Struct("<Q")


def lock_path_for(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.lock")


def _read_generation(fd: int) -> int:
    data = os.pread(fd, _GENERATION.size, 0)
    return _GENERATION.unpack(data)[0] if len(data) == _GENERATION.size else 0


class FileLock:
    """A reentrant exclusive flock on ``path`` (created if needed) for one owner.

    Not shared between threads: the owner's thread lock serializes its users.
    """

    __slots__ = ("path", "_fd", "_depth", "_generation", "_pid")

    def __init__(self, path: str):
        self.path = path
        self._fd = -1
        self._depth = 0
        self._generation = 0
        self._pid = 0  # of the process that holds it

    @property
    def held(self) -> bool:
        return self._depth > 0 and self._pid == os.getpid()

    def __enter__(self):
        if self._depth and self._pid != os.getpid():
            # forked while a thread of the parent held it: the lock is the parent's
            os.close(self._fd)
            self._depth = 0
        if self._depth == 0:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._generation = _read_generation(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            self._pid = os.getpid()
        self._depth += 1
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self._depth -= 1
        if self._depth == 0:
            fd, self._fd = self._fd, -1
            os.close(fd)  # releases the flock

    def generation(self):
        """The write generation: exact while held, else read without the lock (0 if
        there is no lock file yet)."""
        if self.held:
            return self._generation
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, PermissionError):
            return 0
        try:
            return _read_generation(fd)
        finally:
            os.close(fd)

    def advance(self) -> int:
        """Count one more write (only while held); return the new generation."""
        self._generation += 1
        os.pwrite(self._fd, _GENERATION.pack(self._generation), 0)
        return self._generation
