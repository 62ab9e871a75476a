"""The backup server's stores (docs/remote.md, "Layout in a store"): where it keeps the
segments of every namespace, and the refusals they share.

:class:`~.directory.DirectoryStore` (a directory; its methods block) and
:class:`~.s3.S3Store` (an S3 bucket; its methods are coroutines) have the same methods:
``put``, ``get``, ``list``, ``delete`` and ``deletions`` (the tombstones of
:mod:`safe_data.remote.tombstones`), and ``retention_entries`` (the entries with the
time retention goes by, :mod:`safe_data.server.retention`).
"""

from __future__ import annotations

from ...remote.protocol import valid_namespace, valid_segment_id

__all__ = ["StoreError", "ConflictError", "NotFound", "StoreUnavailable"]


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
