"""``DirectorySink``: sealed segments into a local or mounted directory (docs/remote.md)."""

from __future__ import annotations

import asyncio
import builtins
import functools
import os
from typing import Any

from ...server.stores import ConflictError, NotFound
from ...server.stores.directory import DirectoryStore
from ..protocol import (
    MAX_SEGMENT_BYTES,
    check_stored,
    committed,
    list_committed,
    valid_namespace,
    valid_segment_id,
)
from . import RejectedError, Sink, TransientError, check_id, check_sha

__all__ = ["DirectorySink"]


class DirectorySink(Sink):
    """Store segments in ``<path>/<namespace>/`` as ``<id>.seg.zst`` + ``<id>.sha256``.

    Written through the backup server's
    :class:`~safe_data.server.stores.directory.DirectoryStore` (its layout, its commit
    order, its locks), so a directory filled by either can be read by the other, and a
    sink and a server may share one.  Writes are atomic and durable; the hash file,
    written last, commits an entry, so a crash at any point leaves nothing a retry does
    not complete.  The body is decompressed (with a size limit) and its hash checked
    before anything is written; an encrypted body, its form and the hash of its ciphertext.

    Same id and same hash again: acknowledged, nothing written.  Same id, another hash:
    :class:`RejectedError`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        namespace: str = "default",
        max_segment_bytes: int = MAX_SEGMENT_BYTES,
    ) -> None:
        if not valid_namespace(namespace):
            raise ValueError(f"invalid namespace {namespace!r}")
        self.root = os.path.abspath(os.fspath(path))
        self.namespace = namespace
        self.directory = os.path.join(self.root, namespace)
        self.max_segment_bytes = max_segment_bytes

    def __repr__(self) -> str:
        return f"DirectorySink({self.root!r}, namespace={self.namespace!r})"

    @functools.cached_property
    def _store(self) -> DirectoryStore:
        # on first put: the store creates its root, which a sink only read from must not
        return DirectoryStore(self.root)

    async def put(self, segment_id: str, body: bytes, sha256: str) -> None:
        check_id(segment_id)
        check_sha(sha256)
        await asyncio.get_running_loop().run_in_executor(None, self._put, segment_id, bytes(body), sha256)

    def _put(self, segment_id: str, body: bytes, sha256: str) -> None:
        try:
            check_stored(body, sha256, self.max_segment_bytes)
        except ValueError as exc:
            raise RejectedError(f"segment {segment_id}: {exc}") from None
        try:
            self._store.put(self.namespace, segment_id, body, sha256)
        except ConflictError as exc:
            raise RejectedError(
                f"segment {segment_id} is already stored with another content "
                f"(sha256 {exc.stored_sha256}); it is never overwritten"
            ) from None
        except OSError as exc:  # disk full, permissions, ...: maybe better later
            raise TransientError(f"cannot write segment {segment_id} to {self.directory}: {exc}") from exc

    async def delete(
        self, segment_id: str, reason: str | None = None, replaced_by: str | None = None
    ) -> dict[str, Any]:
        """Delete a stored segment, leaving a tombstone, as a server's DELETE does
        (:meth:`HttpSink.delete <safe_data.remote.sinks.http.HttpSink.delete>`); KeyError
        if it is not stored."""
        check_id(segment_id)
        why = reason or "deleted"
        return await asyncio.get_running_loop().run_in_executor(
            None, self._delete, segment_id, why, replaced_by
        )

    def _delete(self, segment_id: str, reason: str, replaced_by: str | None) -> dict[str, Any]:
        try:
            return self._store.delete(self.namespace, segment_id, reason, replaced_by)
        except NotFound:
            raise KeyError(segment_id) from None

    async def list(self) -> builtins.list[dict[str, Any]]:
        return await asyncio.get_running_loop().run_in_executor(None, list_committed, self.directory)

    async def deletions(self) -> builtins.list[dict[str, Any]]:
        """The tombstones the store keeps beside the segments, sorted by id."""
        if not os.path.isdir(self.directory):  # (the store would create its root)
            return []
        return await asyncio.get_running_loop().run_in_executor(None, self._store.deletions, self.namespace)

    async def get(self, segment_id: str) -> bytes:
        if not valid_segment_id(segment_id):
            raise KeyError(segment_id)
        return await asyncio.get_running_loop().run_in_executor(None, self._get, segment_id)

    def _get(self, segment_id: str) -> bytes:
        entry = committed(self.directory, segment_id)
        if entry is None:
            raise KeyError(segment_id)
        try:
            with open(entry[0], "rb") as f:
                return f.read()
        except FileNotFoundError:  # removed meanwhile
            raise KeyError(segment_id) from None
