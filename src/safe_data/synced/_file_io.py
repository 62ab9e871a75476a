"""Reading a file with its version, and replacing its contents atomically.

A version is ``(st_dev, st_ino, st_size, st_mtime_ns)`` of the file as read or written.
Equal versions mean equal contents unless the file was rewritten in place within one
mtime tick to the same size; the write generation of the lock file (_file_lock.py)
covers that for our own writers.

:func:`replace_file` writes the new contents into a swap file next to the target,
``.<name>.swap``, then swaps the two names in one atomic ``renameat2(RENAME_EXCHANGE)``:
the target holds the old or the new contents, never a mix, whenever the process dies.
The swap file then holds the previous version, and its inode is overwritten by the next
write.  This costs no new inode per write: creating one (what a temporary file renamed
over the target needs) is ~10 times slower than the exchange on ext4.  Where the
exchange is unavailable (no ``renameat2`` in libc, a filesystem without it, or no target
yet) the swap file is renamed over the target instead and recreated by the next write.

With ``durable=True`` the new contents are fsynced before the exchange and the directory
after it, so they survive a power loss.  Without it they survive the process being
killed, not necessarily a power loss (see docs/synced.md).
"""

from __future__ import annotations

import ctypes
import errno
import os

from .._fs import fdatasync, fsync_dir

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
#: errors meaning "this system or filesystem cannot exchange": fall back to a rename
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}


def _find_renameat2():
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28 (or not Linux)
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


_renameat2 = _find_renameat2()


def _exchange(a: str, b: str) -> bool:
    """Swap the names ``a`` and ``b`` atomically; False if that is not possible here."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.ENOENT or code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), a, None, b)


def version_of(st: os.stat_result) -> tuple:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def stat_version(path: str):
    """The version of ``path`` now, or None if it does not exist."""
    try:
        return version_of(os.stat(path))
    except FileNotFoundError:
        return None


def read_file(path: str):
    """``(contents, version)`` of ``path``, or ``(None, None)`` if it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    try:
        version = version_of(os.fstat(fd))
        chunks = []
        while True:
            chunk = os.read(fd, max(version[2], 65536))
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks), version
    finally:
        os.close(fd)


def swap_path_for(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.swap")


def _open_swap(swap: str) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(swap, flags, 0o666)
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
    os.unlink(swap)  # a symbolic link (a target that was one, swapped out): never write through it
    return os.open(swap, flags | os.O_EXCL, 0o666)


def replace_file(path: str, blob: bytes, durable: bool) -> tuple:
    """Atomically replace the contents of ``path`` by ``blob``; return the new version.

    The caller holds the file's lock: the swap file has one writer at a time.
    """
    swap = swap_path_for(path)
    fd = _open_swap(swap)
    try:
        view = memoryview(blob)
        offset = 0
        while offset < len(view):
            offset += os.pwrite(fd, view[offset:], offset)
        os.ftruncate(fd, len(blob))
        if durable:
            fdatasync(fd)
        version = version_of(os.fstat(fd))  # a rename or exchange keeps inode, size, mtime
    finally:
        os.close(fd)
    if not _exchange(swap, path):
        os.replace(swap, path)
    if durable:
        fsync_dir(os.path.dirname(path) or ".")
    return version
