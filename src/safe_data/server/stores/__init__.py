"""The backup server's stores (docs/remote.md, "Layout in a store"): where it keeps the
segments of every namespace, and the refusals they share.

:class:`~.directory.DirectoryStore` (a directory; its methods block) and
:class:`~.s3.S3Store` (an S3 bucket; its methods are coroutines) have the same methods:
``put``, ``get``, ``list``, ``delete`` and ``deletions`` (the tombstones of
:mod:`safe_data.remote.tombstones`), and ``retention_entries`` (the entries with the
time retention goes by, :mod:`safe_data.server.retention`).
"""

from __future__ import annotations

import hmac

from ...remote import tombstones
from ...remote.protocol import valid_namespace, valid_segment_id, valid_sha256

__all__ = ["StoreError", "ConflictError", "NotFound", "StoreUnavailable", "checked_sha256", "upload_answer"]


class StoreError(Exception):
    """Base class of the store's refusals."""


class ConflictError(StoreError):
    """Another content is already stored under this segment id."""

    def __init__(self, segment_id: str, stored_sha256: str, new_sha256: str):
        super().__init__(f"segment {segment_id} is already stored with another hash")
        self.segment_id = segment_id
        self.stored_sha256 = stored_sha256
        self.new_sha256 = new_sha256


class NotFound(StoreError, KeyError):
    """No committed entry under this segment id."""


class StoreUnavailable(StoreError):
    """The storage behind the store failed for now (e.g. the object store of an
    :class:`~safe_data.server.stores.s3.S3Store` answered 5xx): try again later."""


def check_names(namespace: str, segment_id: str | None = None) -> None:
    """ValueError unless the namespace (and the segment id, if given) are valid."""
    if not valid_namespace(namespace):
        raise ValueError(f"invalid namespace {namespace!r}")
    if segment_id is not None and not valid_segment_id(segment_id):
        raise ValueError(f"invalid segment id {segment_id!r}")


def checked_sha256(sha256: str) -> str:
    """``sha256`` in lower case; ValueError unless it is 64 hex digits."""
    sha256 = sha256.lower()
    if not valid_sha256(sha256):
        raise ValueError("sha256 must be 64 hex digits")
    return sha256


def upload_answer(segment_id: str, sha256: str, stored: str | None, tombstone: dict | None) -> str | None:
    """What a put of ``sha256`` under ``segment_id`` answers, given the hash stored there
    (None: nothing committed) and, when nothing is, its tombstone (None: never deleted):
    ``"duplicate"`` (the same content is stored), ``"deleted"`` (the same content was
    stored and deleted since: not stored again) or None (store it).  Raise
    :class:`ConflictError` if other content is stored, or was deleted without naming
    this content as its replacement."""
    if stored is not None:
        if not hmac.compare_digest(stored, sha256):
            raise ConflictError(segment_id, stored, sha256)
        return "duplicate"
    if tombstone is None:
        return None
    admitted = tombstones.admits(tombstone, sha256)
    if admitted is None:
        raise ConflictError(segment_id, tombstone["sha256"], sha256)
    return "deleted" if admitted == "deleted" else None
