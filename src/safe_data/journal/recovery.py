"""Recovery: sealing the segments that dead writers left open (docs/format.md, "Recovery").

Opening a journal takes each ``.open`` segment whose lock it can get (its writer died),
keeps the frames that verify, copies any non-zero bytes after them to ``damaged/``,
truncates it, states in its header what it holds and renames it to ``.seg``.  Recovery
never destroys a byte it could not read, and never appends to a recovered segment.  A
full disk stops it before anything changes (:class:`~safe_data.errors.JournalFullError`):
the segment stays as it was, for the next open once space is freed.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import time

from .._fs import fsync, fsync_dir
from ..errors import JournalFullError
from . import format as fmt
from . import ledger
from .reader import Problem, is_zero, scan_to_end, segment_frames, segment_paths
from .segments import NEW_SUFFIX, STALE_NEW_SECONDS, state_counts

DAMAGED_DIR = "damaged"
_ENOSPC = (errno.ENOSPC, errno.EDQUOT)


def recover_dead_segments(directory: str, crc32c, durable: bool) -> list[Problem]:
    """Seal every ``.open`` segment whose writer died; return what had to be set aside
    or skipped."""
    problems = []
    _remove_stale_new_files(directory)
    for path in segment_paths(directory):
        if path.endswith(fmt.OPEN_SUFFIX):
            problems.extend(_recover_if_dead(directory, path, crc32c, durable))
    if problems or durable:
        fsync_dir(directory)
    return problems


def _recover_if_dead(directory: str, path: str, crc32c, durable: bool) -> list[Problem]:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []  # its writer is alive
        if not os.path.exists(path):  # sealed by its writer while we waited
            return []
        try:
            return _recover_one(directory, path, fd, crc32c, durable)
        except OSError as exc:
            if exc.errno in _ENOSPC:
                raise JournalFullError(
                    exc.errno,
                    f"no space left in {directory} to recover "
                    f"{os.path.basename(path)}, a segment a process that died left "
                    f"open; it was left as it was, nothing is lost. Free some space "
                    f"and open the journal again",
                ) from exc
            raise
    finally:
        os.close(fd)


def _remove_stale_new_files(directory: str) -> None:
    """Segments whose writer died while building them hold no record: remove them."""
    for name in os.listdir(directory):
        if not name.endswith(NEW_SUFFIX):
            continue
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if time.time() - os.fstat(fd).st_mtime < STALE_NEW_SECONDS:
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(path)
        except (BlockingIOError, FileNotFoundError):
            pass
        finally:
            os.close(fd)


def _recover_one(directory, path, fd, crc32c, durable) -> list[Problem]:
    name = os.path.basename(path)
    size = os.fstat(fd).st_size
    data = mmap.mmap(fd, size, prot=mmap.PROT_READ) if size else b""
    try:
        try:
            header = fmt.unpack_segment_header(crc32c, data)
        except ValueError as exc:
            return _remove_headerless(directory, path, data, exc)
        scan = scan_to_end(segment_frames(data, crc32c, name, False, header))
        tail = bytes(data[scan.end :]).rstrip(b"\0")
    finally:
        if isinstance(data, mmap.mmap):
            data.close()
    problems = [p for p in scan.problems if p is not scan.stopped]  # skipped frames stay
    if tail:
        saved = _set_aside(directory, name, scan.end, tail)
        reason = scan.stopped.reason if scan.stopped else "unreadable tail"
        problems.append(Problem(name, scan.end, f"{reason}; {len(tail)} bytes saved to {saved}"))
    os.ftruncate(fd, scan.end)
    if scan.first_seq is not None and scan.last_seq is not None:  # no records: nothing to state
        state_counts(fd, crc32c, scan.last_seq - scan.first_seq + 1, scan.last_seq)
    if durable:
        fsync(fd)
    os.rename(path, path[: -len(fmt.OPEN_SUFFIX)] + fmt.SEALED_SUFFIX)
    return problems


def _remove_headerless(directory: str, path: str, data, exc: ValueError) -> list[Problem]:
    """A file without a valid header: removed if it is all zeros (its writer died before
    any of it reached the disk), else moved to damaged/ whole; recorded in the ledger."""
    name = os.path.basename(path)
    if is_zero(data, 0):
        ledger.remove_segments(
            directory,
            [path],
            "recovered: all zeros, its writer died before any of it reached the disk",
            durable=False,
        )
        return []
    saved = _set_aside(directory, name, 0, data[:])
    ledger.remove_segments(directory, [path], f"recovered: {exc}; moved to {saved}", durable=False)
    return [Problem(name, 0, f"{exc}; moved to damaged/")]


def _set_aside(directory: str, name: str, offset: int, data) -> str:
    """Save ``data`` (bytes of segment ``name`` from ``offset``) to damaged/, durably;
    return its path relative to ``directory``.  On failure nothing is left behind."""
    damaged = os.path.join(directory, DAMAGED_DIR)
    os.makedirs(damaged, mode=0o700, exist_ok=True)
    target = os.path.join(damaged, f"{name}.{offset}.bin")
    try:
        with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(data)
            f.flush()
            fsync(f.fileno())
    except BaseException:
        try:
            os.unlink(target)
        except FileNotFoundError:
            pass
        raise
    return os.path.relpath(target, directory)
