"""The directory store (docs/remote.md, "Layout in a store"): the backup server's, and the
one the :class:`~safe_data.remote.sinks.directory.DirectorySink` writes through, so a
directory filled by either is read by both.

``<root>/<namespace>/<segment id>.seg.zst`` holds the zstd-compressed segment exactly as
it was uploaded and ``<segment id>.sha256`` the lowercase hex SHA-256 of the
*decompressed* segment (:mod:`safe_data.remote.protocol`, which also reads them).
Directories are created with mode 0700, files with 0600.

Every file is written atomically and durably: a temporary file in the same directory,
write, fsync, rename over the final name, fsync the directory.

The body's modification time is the time of the segment that the server's retention
goes by (:mod:`safe_data.server.retention`): set before the body is fsynced, so it is as
durable as the body and costs no file of its own (an entry stored by a sink keeps the
time it was written).

Order: the body (``.seg.zst``) first, the hash file last.  The hash file is the commit
record of an entry, and a reader (:func:`~safe_data.remote.protocol.committed`) sees an
entry only through it:

* a crash after the body but before the hash leaves a body without a hash.  Such an
  entry was never acknowledged; it is invisible to :meth:`DirectoryStore.list` and
  :meth:`DirectoryStore.get`, and the next upload of that id (whatever its content)
  simply replaces it.  So a crash can never turn a later, different body into a
  "duplicate", nor make the store refuse it as a conflict;
* once the hash file exists, the body it describes is already durable (fsynced and its
  rename fsynced before the hash file was even created), so "duplicate" is only ever
  answered for content that is really stored, and a different body is refused.

Writing the hash first (as the directory sink once did, to claim the id) would be wrong
both ways: after a crash between the two files a hash without a body would make a retry
of the same content look "already stored" (with nothing stored) and a different content
look like a conflict.

Concurrent puts of one id (threads of this process, or other processes sharing the
directory: a server and a sink, two sinks) are serialised by a per-id thread lock (from a
fixed pool) plus an ``flock`` on the namespace directory, so the check-then-write sequence
is atomic.

:meth:`DirectoryStore.delete` writes the tombstone (:mod:`safe_data.remote.tombstones`)
``<segment id>.deleted`` first, then removes the hash file (the entry is gone), then the
body: a crash in between leaves a tombstone and at most an uncommitted body, which no
reader counts.  A put of a deleted id answers ``"deleted"`` (same content) or a conflict.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import threading

from ..._fs import fsync, fsync_dir, write_temp
from ...remote import tombstones
from ...remote.protocol import BODY_SUFFIX, HASH_SUFFIX, committed, list_committed, read_hash
from . import NotFound, check_names, checked_sha256, upload_answer

__all__ = ["DirectoryStore"]


#: where the server receives bodies before they are checked (``<root>/.incoming``): on the
#: store's filesystem, so a checked body is renamed into place; never a namespace (those
#: start with a letter, digit or underscore)
INCOMING = ".incoming"


def _move_into_place(path: str, directory: str, name: str, mtime: float | None = None) -> None:
    """Set the modification time of the file at ``path`` (if given), fsync it, rename it
    to ``name`` in ``directory``, fsync ``directory``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if mtime is not None:
            os.utime(fd, (mtime, mtime))
        fsync(fd)
    finally:
        os.close(fd)
    os.rename(path, os.path.join(directory, name))
    fsync_dir(directory)


def _atomic_write(directory: str, name: str, data: bytes) -> None:
    """temp file in ``directory``, write, fsync, rename to ``name``, fsync ``directory``."""
    tmp = write_temp(directory, name, data)
    try:
        os.rename(tmp, os.path.join(directory, name))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


class DirectoryStore:
    """Segments of every namespace under one root directory."""

    def __init__(self, root: str | os.PathLike):
        self.root = os.fspath(root)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        # a fixed pool (ids hash onto it), so the locks do not grow with the store
        self._locks = [threading.Lock() for _ in range(64)]

    def __repr__(self):
        return f"DirectoryStore({self.root!r})"

    # --- paths and locks -------------------------------------------------------------------

    def _namespace_dir(self, namespace: str, create: bool) -> str:
        path = os.path.join(self.root, namespace)
        if create and not os.path.isdir(path):
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
            else:
                os.chmod(path, 0o700)  # whatever the umask
                fsync_dir(self.root)
        return path

    @contextlib.contextmanager
    def _locked(self, namespace: str, segment_id: str, directory: str):
        with self._locks[hash((namespace, segment_id)) % len(self._locks)]:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # other processes sharing the store
                yield
            finally:
                os.close(fd)  # releases the flock

    # --- the interface ---------------------------------------------------------------------

    def put(self, namespace: str, segment_id: str, compressed: bytes, sha256: str) -> str:
        """Store ``compressed`` (whose decompressed SHA-256 is ``sha256``) under the id.

        Return ``"stored"``, ``"duplicate"`` (the same hash is already stored, nothing
        changed) or ``"deleted"`` (that content was stored and deleted since: it is not
        stored again); raise :class:`ConflictError` if another hash is stored under that id.
        """
        return self._put(namespace, segment_id, sha256, lambda d, name: _atomic_write(d, name, compressed))

    def incoming(self) -> str:
        """The directory for bodies on their way in, to give to :meth:`put_file`."""
        path = os.path.join(self.root, INCOMING)
        os.makedirs(path, mode=0o700, exist_ok=True)
        return path

    def put_file(
        self, namespace: str, segment_id: str, path: str, sha256: str, newest: float | None = None
    ) -> str:
        """:meth:`put` of the compressed body in the file at ``path``, a file of this store's
        filesystem (made in :meth:`incoming`): renamed into place when stored, left where
        it is otherwise (the caller removes it).  ``newest``: the segment's time for
        retention (seconds since the epoch), kept when it is stored."""
        return self._put(
            namespace, segment_id, sha256, lambda d, name: _move_into_place(path, d, name, newest)
        )

    def _put(self, namespace: str, segment_id: str, sha256: str, place) -> str:
        """:meth:`put`, the body written as ``place(directory, name)`` says."""
        check_names(namespace, segment_id)
        sha256 = checked_sha256(sha256)
        directory = self._namespace_dir(namespace, create=True)
        body_name, hash_name = segment_id + BODY_SUFFIX, segment_id + HASH_SUFFIX
        with self._locked(namespace, segment_id, directory):
            stored = read_hash(os.path.join(directory, hash_name))
            tombstone = self._tombstone(directory, segment_id) if stored is None else None
            answer = upload_answer(segment_id, sha256, stored, tombstone)
            if answer == "duplicate" and not os.path.exists(os.path.join(directory, body_name)):
                # The body of a committed entry was lost (deleted by hand): the same
                # content has come back, so put it back.  Still acknowledged as duplicate.
                place(directory, body_name)
            if answer is not None:
                return answer
            # No commit record: any body present is a leftover of a crash, never
            # acknowledged, and is replaced.  Body first, hash (the commit) last.
            place(directory, body_name)
            _atomic_write(directory, hash_name, (sha256 + "\n").encode("ascii"))
            return "stored"

    def locate(self, namespace: str, segment_id: str) -> tuple[str, str]:
        """Return ``(path of the compressed body, sha256)`` of a committed entry; raise
        :class:`NotFound` if absent.  A committed body is never changed, so the file can
        be streamed as it is."""
        check_names(namespace, segment_id)
        entry = committed(self._namespace_dir(namespace, create=False), segment_id)
        if entry is None:
            raise NotFound(segment_id)
        return entry

    def get(self, namespace: str, segment_id: str) -> tuple[bytes, str]:
        """Return ``(compressed bytes, sha256)``; raise :class:`NotFound` if absent."""
        path, sha256 = self.locate(namespace, segment_id)
        try:
            with open(path, "rb") as f:
                return f.read(), sha256
        except FileNotFoundError:
            raise NotFound(segment_id) from None

    def list(self, namespace: str) -> list[dict]:
        """Committed entries of the namespace, sorted by id: ``{"id", "sha256", "size"}``
        where ``size`` is the size of the stored (compressed) body in bytes."""
        check_names(namespace)
        return list_committed(self._namespace_dir(namespace, create=False))

    def usage(self, namespace: str) -> int:
        """Bytes of the namespace's stored (compressed) bodies."""
        return sum(entry["size"] for entry in self.list(namespace))

    def retention_entries(self, namespace: str) -> builtins.list[dict]:
        """The entries of :meth:`list`, each with its ``newest``: the segment's time for
        retention (seconds since the epoch): its body's modification time."""
        directory = self._namespace_dir(namespace, create=False)
        entries = self.list(namespace)
        for entry in entries:
            entry["newest"] = self._newest(directory, entry["id"])
        return entries

    def _newest(self, directory: str, segment_id: str) -> float:
        try:
            return os.stat(os.path.join(directory, segment_id + BODY_SUFFIX)).st_mtime
        except FileNotFoundError:  # deleted since it was listed: it goes nowhere
            return 0.0

    def delete(self, namespace: str, segment_id: str, reason: str, replaced_by: str | None = None) -> dict:
        """Delete a committed entry, its tombstone written first; return the tombstone
        (``replaced_by``: see :mod:`safe_data.remote.tombstones`).  Raise
        :class:`NotFound` if there is no such entry."""
        check_names(namespace, segment_id)
        directory = self._namespace_dir(namespace, create=False)
        if not os.path.isdir(directory):
            raise NotFound(segment_id)
        with self._locked(namespace, segment_id, directory):
            entry = committed(directory, segment_id)
            if entry is None:
                raise NotFound(segment_id)
            path, sha256 = entry
            tombstone = tombstones.make(
                segment_id, sha256, os.stat(path).st_size, reason, replaced_by=replaced_by
            )
            _atomic_write(directory, segment_id + tombstones.TOMBSTONE_SUFFIX, tombstones.encode(tombstone))
            os.unlink(os.path.join(directory, segment_id + HASH_SUFFIX))  # the commit record first
            fsync_dir(directory)
            os.unlink(path)
            fsync_dir(directory)
            return tombstone

    def _tombstone(self, directory: str, segment_id: str) -> dict | None:
        try:
            with open(os.path.join(directory, segment_id + tombstones.TOMBSTONE_SUFFIX), "rb") as f:
                return tombstones.decode(f.read(4096), segment_id)
        except FileNotFoundError:
            return None

    def deletions(self, namespace: str) -> builtins.list[dict]:
        """The tombstones of the namespace, sorted by id."""
        check_names(namespace)
        directory = self._namespace_dir(namespace, create=False)
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if name.endswith(tombstones.TOMBSTONE_SUFFIX):
                tombstone = self._tombstone(directory, name[: -len(tombstones.TOMBSTONE_SUFFIX)])
                if tombstone is not None:
                    out.append(tombstone)
        return out
