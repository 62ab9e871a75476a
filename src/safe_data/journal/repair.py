"""Repairing a damaged journal: cut what cannot be read off its segments, keep a copy.

A sealed segment is immutable and readers map it, so a repair never changes one in
place: the whole original is first copied to ``damaged/``, then a file holding only the
frames that verify replaces it by an atomic rename.  A reader that has the old file
mapped keeps reading the old bytes (truncating in place could kill it with SIGBUS), and
a crash at any step leaves either the original or the repaired segment, never neither.

``.open`` segments of dead writers get the journal's own recovery (see
:func:`.recovery.recover_dead_segments`); those of live writers are never touched.
"""

from __future__ import annotations

import mmap
import os
import shutil

from .. import _impl
from . import format as fmt
from .reader import Problem, scan_frames
from .recovery import DAMAGED_DIR, recover_dead_segments
from .segments import NEW_SUFFIX, fsync_dir
_CHUNK = 1 << 20


def repair(directory: str, problems) -> list[str]:
    """Repair the segments named in ``problems``; return what was done.

    Parameters
    ----------
    directory : str
        The journal directory.
    problems : iterable of Problem
        What a check found (``Journal.verify()``, ``safe-data verify``).  Only the segment
        names are used: each segment is checked again here, so a stale list does no harm
        and a second call changes nothing.

    Returns
    -------
    list of str
        One line per segment changed, naming the copy of the original in ``damaged/``.

    Notes
    -----
    * A sealed segment with a damaged tail keeps its frames up to the first one that
      fails; the frames after that point are in the saved copy only.
    * A sealed segment whose header is unreadable is moved to ``damaged/`` whole.
    * A segment whose frames all verify but do not decode (an unknown operation written
      by a newer version, say) is left alone: there is nothing torn to cut.
    * Dead writers' ``.open`` segments are recovered and sealed; live ones are skipped.
    """
    directory = os.fspath(directory)
    done = []
    dead_open = False
    for name in sorted({p.segment for p in problems if not p.live}):
        if name.endswith(fmt.SEALED_SUFFIX):
            message = _repair_sealed(directory, name)
            if message is not None:
                done.append(message)
        elif name.endswith(fmt.OPEN_SUFFIX):
            dead_open = True
    if dead_open:  # recovery takes each segment's lock: a live writer's is never touched
        for problem in recover_dead_segments(directory, _impl.crc32c, durable=True):
            done.append(f"{problem.segment}: sealed after its writer died; {problem.reason}")
    return done


def _repair_sealed(directory: str, name: str) -> str | None:
    path = os.path.join(directory, name)
    try:
        source = open(path, "rb")
    except FileNotFoundError:  # purged or repaired meanwhile
        return None
    with source:
        size = os.fstat(source.fileno()).st_size
        data: mmap.mmap | bytes = (mmap.mmap(source.fileno(), size, prot=mmap.PROT_READ)
                                   if size else b"")
        try:
            try:
                fmt.unpack_segment_header(_impl.crc32c, data)
            except ValueError as exc:
                saved = _save_copy(directory, name, source)
                os.unlink(path)
                fsync_dir(directory)
                return f"{name}: {exc}; the whole segment was moved to {saved}"
            end, problem = _valid_end(data, name)
        finally:
            if isinstance(data, mmap.mmap):
                data.close()
        if problem is None:
            return None
        saved = _save_copy(directory, name, source)
        _replace_with_prefix(directory, path, source, end)
    return (f"{name}: cut {size - end} bytes from byte {end} ({problem.reason}); "
            f"the original was saved to {saved}")


def _valid_end(data, name: str) -> tuple[int, Problem | None]:
    """(end of the last frame that verifies, the problem that stopped the scan or None)."""
    scan = scan_frames(data, _impl.crc32c, name, sealed=True)
    while True:
        try:
            next(scan)
        except StopIteration as stop:
            return stop.value


def _save_copy(directory: str, name: str, source) -> str:
    """Copy all of ``source`` to ``damaged/<name>.0.bin`` (the bytes from offset 0, as
    recovery names what it saves); an earlier copy is never overwritten."""
    damaged = os.path.join(directory, DAMAGED_DIR)
    os.makedirs(damaged, mode=0o700, exist_ok=True)
    fd, target = _exclusive_file(damaged, f"{name}.0", ".bin")
    with os.fdopen(fd, "wb") as out:
        source.seek(0)
        shutil.copyfileobj(source, out, _CHUNK)
        out.flush()
        os.fsync(out.fileno())
    fsync_dir(damaged)
    return os.path.relpath(target, directory)


def _exclusive_file(directory: str, stem: str, suffix: str) -> tuple[int, str]:
    """Create ``stem + suffix``, or ``stem.2 + suffix``, ... whichever is free first."""
    n = 1
    while True:
        path = os.path.join(directory, f"{stem}{suffix}" if n == 1 else f"{stem}.{n}{suffix}")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path
        except FileExistsError:
            n += 1


def _replace_with_prefix(directory: str, path: str, source, end: int) -> None:
    """Atomically replace ``path`` by its first ``end`` bytes."""
    # The .new suffix is the journal's own for files being built: should we crash before
    # the rename, recovery removes the leftover once it is stale.
    building = path + NEW_SUFFIX
    fd = os.open(building, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        source.seek(0)
        remaining = end
        while remaining:
            chunk = source.read(min(_CHUNK, remaining))
            if not chunk:
                raise OSError(f"{path} shrank while it was being repaired")
            out.write(chunk)
            remaining -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.rename(building, path)
    fsync_dir(directory)
