"""Segment files: create, preallocate, map, seal and recover.  Shared by both writers.

Life of a segment (see docs/format.md, "Segment lifecycle")::

    create  <writer>-<no>.open  O_EXCL, mode 0600, flock(LOCK_EX) held while it is written
    preallocate with posix_fallocate: a full disk is ENOSPC here, never SIGBUS later
    write the header, mmap it MAP_SHARED; the writer appends frames into the mapping
    seal    unmap, truncate to the bytes used, state in the header how many records it
            holds and the seq of the last, fsync (batch/fsync modes), rename to .seg

A process killed while writing leaves an ``.open`` file whose flock died with it; the
next process that opens the journal recovers it: it keeps the valid frames, saves any
bytes after them to ``damaged/`` (nothing is ever silently thrown away), truncates and
seals.  The writer (C or Python) only ever sees (mmap, start, end, fd).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
import time
import warnings

from .. import _faults
from .._fs import fsync, fsync_dir
from ..errors import JournalFullError, JournalWarning
from . import format as fmt

_ENOSPC = (errno.ENOSPC, errno.EDQUOT)
#: a segment being built; renamed to .open once locked and headed
NEW_SUFFIX = ".new"
#: a .new file older than this whose lock is free belongs to a process that died building it
STALE_NEW_SECONDS = 60

if hasattr(os, "posix_fallocate"):

    def _preallocate(fd: int, size: int) -> None:
        os.posix_fallocate(fd, 0, size)
else:  # macOS: write zeros so the blocks exist before they are mapped

    def _preallocate(fd: int, size: int) -> None:
        chunk = bytes(1 << 20)
        for offset in range(0, size, len(chunk)):
            os.pwrite(fd, chunk[: size - offset], offset)


_sync_data = getattr(os, "fdatasync", os.fsync)


class ActiveSegment:
    __slots__ = ("path", "fd", "map", "size", "first_seq", "created_ns")

    def __init__(self, path, fd, map_, size, first_seq, created_ns):
        self.path = path
        self.fd = fd
        self.map = map_
        self.size = size
        self.first_seq = first_seq  # the seq its first record gets
        self.created_ns = created_ns  # as its header states (a compact frame's first dt is from it)


class SegmentManager:
    """Creates and seals the segments of one writer (one process) in a journal directory."""

    def __init__(
        self,
        directory: str,
        *,
        crc32c,
        segment_size: int,
        max_bytes: int | None,
        durable: bool,
        compact: bool = True,
        encrypt_to: list | None = None,
    ):
        self.directory = directory
        self.compact = compact  # version-2 segments (compact frames), else version 1
        self.encrypt_to = encrypt_to  # parsed age recipients: sealed segments are encrypted
        self._crc32c = crc32c
        self.segment_size = segment_size
        self.max_bytes = max_bytes
        self.durable = durable  # fsync on seal and directory changes
        self.lock = threading.Lock()
        self.active: ActiveSegment | None = None
        self._new_writer()

    def _new_writer(self) -> None:
        self.writer_id = int.from_bytes(os.urandom(8), "little")
        self.segment_no = 0

    # --- called by the writer ------------------------------------------------------------

    def open(self, need: int, first_seq: int):
        """Open a new active segment with ``need`` bytes free, its first record to be
        numbered ``first_seq``; the previous one must be sealed (``seal``) first, which the
        writer does apart so that it can note what the seal made durable.

        Returns (mmap, start, end, fd).  Raises JournalFullError if the quota or the disk
        cannot take a new segment.
        """
        _faults.point("segment.rotate")  # the previous one sealed; the next one not yet there
        size = max(self.segment_size, fmt.SEGMENT_HEADER_SIZE + need)
        self._check_quota(size)
        self.active = seg = self._create(size, first_seq)
        return seg.map, fmt.SEGMENT_HEADER_SIZE, size, seg.fd

    def seal(self, used: int, last_seq: int) -> None:
        """Seal the active segment at ``used`` bytes; ``last_seq`` is the writer's last seq.
        When it returns, a durable manager's segment (and all it holds) is on disk."""
        seg, self.active = self.active, None
        if seg is None:
            return
        seg.map.close()
        _faults.point("segment.seal")
        os.ftruncate(seg.fd, used)
        state_counts(seg.fd, self._crc32c, last_seq - seg.first_seq + 1, last_seq)
        if self.durable:
            fsync(seg.fd)
        _faults.point("segment.rename")
        sealed = seg.path[: -len(fmt.OPEN_SUFFIX)] + fmt.SEALED_SUFFIX
        os.rename(seg.path, sealed)
        if self.durable:
            fsync_dir(self.directory)
        os.close(seg.fd)  # releases the flock
        if self.encrypt_to is not None:
            self._encrypt(sealed, self.encrypt_to)

    def _encrypt(self, sealed: str, recipients: list) -> None:
        """Replace a segment just sealed by its age file.  Sealed first, then encrypted: a
        crash in between leaves a plaintext sealed segment, which the next journal opened
        with ``encrypt_to`` encrypts; a failure (a full disk) leaves it so too, and says it."""
        from .encryption import seal_file

        try:
            seal_file(sealed, recipients, self.durable)
        except OSError as exc:
            warnings.warn(
                f"{sealed} stays in plaintext until the journal is opened again: cannot encrypt it: {exc}",
                JournalWarning,
                stacklevel=2,
            )

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's segment without touching it."""
        seg, self.active = self.active, None
        self.lock = threading.Lock()
        if seg is not None:
            seg.map.close()  # unmaps only the child's view
            os.close(seg.fd)  # the parent's descriptor keeps the flock
        self._new_writer()

    # --- internals ---------------------------------------------------------------------

    def _check_quota(self, size: int) -> None:
        if self.max_bytes is None:
            return
        used = directory_bytes(self.directory)
        if used + size > self.max_bytes:
            raise JournalFullError(
                errno.ENOSPC,
                f"journal quota of {self.max_bytes} bytes reached in {self.directory} "
                f"({used} used, a new segment needs {size}); nothing was discarded. "
                f"Upload or purge sealed segments, or raise max_bytes",
            )

    def _create(self, size: int, first_seq: int) -> ActiveSegment:
        # Built under a temporary name and renamed to .open only once it is locked and has
        # its header: a recovering process never sees an unlocked, header-less .open file.
        self.segment_no += 1
        stem = os.path.join(self.directory, fmt.segment_id(self.writer_id, self.segment_no))
        building, path = stem + NEW_SUFFIX, stem + fmt.OPEN_SUFFIX
        fd = os.open(building, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            _faults.point("segment.create")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                _faults.point("segment.preallocate")
                _preallocate(fd, size)
            except OSError as exc:
                if exc.errno in _ENOSPC:
                    raise JournalFullError(
                        exc.errno,
                        f"no space left for a {size}-byte segment in {self.directory}; "
                        f"nothing was discarded. Free disk space, upload or purge sealed "
                        f"segments, or lower segment_size",
                    ) from exc
                raise
            created_ns = time.time_ns()
            header = fmt.pack_segment_header(
                self._crc32c,
                self.writer_id,
                self.segment_no,
                created_ns,
                os.getpid(),
                first_seq - 1 if self.compact else None,
            )
            _faults.point("segment.header")
            os.pwrite(fd, header, 0)
            m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            _faults.point("segment.publish")
            os.rename(building, path)
        except BaseException:
            os.close(fd)
            os.unlink(building)  # a failed fallocate leaves the file extended on ext4
            self.segment_no -= 1  # the number is free again: no gaps after a full disk
            raise
        if self.durable:
            fsync_dir(self.directory)
        return ActiveSegment(path, fd, m, size, first_seq, created_ns)


def state_counts(fd: int, crc32c, records: int, last_seq: int) -> None:
    """Rewrite the header of the segment open at ``fd`` to state that it holds
    ``records`` records, the last numbered ``last_seq`` (docs/format.md, revision 2): a
    reader can then tell a sealed segment cut short at a frame boundary."""
    header = os.pread(fd, fmt.SEGMENT_HEADER_SIZE, 0)
    os.pwrite(fd, fmt.counted_header(crc32c, header, records, last_seq), 0)


def directory_bytes(directory: str) -> int:
    total = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.endswith((fmt.OPEN_SUFFIX, fmt.SEALED_SUFFIX, NEW_SUFFIX)):
                try:
                    total += entry.stat().st_blocks * 512
                except FileNotFoundError:
                    pass
    return total


def sync_data(fd: int) -> None:
    _faults.point("record.sync")
    _sync_data(fd)
