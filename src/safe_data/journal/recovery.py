"""Recovery: sealing the segments that dead writers left open (docs/format.md, "Recovery").

Opening a journal takes each ``.open`` segment whose lock it can get (its writer died),
keeps the frames that verify, copies any non-zero bytes after them to ``damaged/``,
truncates it and renames it to ``.seg``.  Recovery never destroys a byte it could not
read, and never appends to a recovered segment.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import time

from . import format as fmt
from .reader import Problem, is_zero, scan_frames, segment_paths
from .segments import NEW_SUFFIX, STALE_NEW_SECONDS, fsync_dir

DAMAGED_DIR = "damaged"


def recover_dead_segments(directory: str, crc32c, durable: bool) -> list[Problem]:
    """Seal every ``.open`` segment whose writer died; return what had to be set aside.

    Valid frames are kept; any non-zero bytes after them are copied to ``damaged/`` before
    the segment is truncated, so recovery never destroys a byte it could not read.
    """
    problems = []
    _remove_stale_new_files(directory)
    for path in segment_paths(directory):
        if not path.endswith(fmt.OPEN_SUFFIX):
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its writer is alive
            if not os.path.exists(path):  # sealed by its writer while we waited
                continue
            problem = _recover_one(directory, path, fd, crc32c, durable)
            if problem is not None:
                problems.append(problem)
        finally:
            os.close(fd)
    if problems or durable:
        fsync_dir(directory)
    return problems


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


def _recover_one(directory, path, fd, crc32c, durable):
    name = os.path.basename(path)
    size = os.fstat(fd).st_size
    data = mmap.mmap(fd, size, prot=mmap.PROT_READ) if size else b""
    try:
        try:
            fmt.unpack_segment_header(crc32c, data)
        except ValueError as exc:
            if is_zero(data, 0):  # died before writing its header: nothing to keep
                os.unlink(path)
                return None
            _set_aside(directory, name, 0, data[:])
            os.unlink(path)
            return Problem(name, 0, f"{exc}; moved to damaged/")
        scan = scan_frames(data, crc32c, name, sealed=False)
        while True:
            try:
                next(scan)
            except StopIteration as stop:
                end, problem = stop.value
                break
        tail = bytes(data[end:]).rstrip(b"\0")
    finally:
        if size:
            data.close()
    if tail:
        saved = _set_aside(directory, name, end, tail)
        problem = Problem(name, end, f"{problem.reason if problem else 'unreadable tail'}; "
                                     f"{len(tail)} bytes saved to {saved}")
    else:
        problem = None
    os.ftruncate(fd, end)
    if durable:
        os.fsync(fd)
    os.rename(path, path[: -len(fmt.OPEN_SUFFIX)] + fmt.SEALED_SUFFIX)
    return problem


def _set_aside(directory, name, offset, data) -> str:
    damaged = os.path.join(directory, DAMAGED_DIR)
    os.makedirs(damaged, mode=0o700, exist_ok=True)
    target = os.path.join(damaged, f"{name}.{offset}.bin")
    with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return os.path.relpath(target, directory)
