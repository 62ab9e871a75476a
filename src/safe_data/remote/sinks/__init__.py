"""Where the uploader ships sealed segments: the sink interface (docs/remote.md).

A sink stores whole sealed segments.  The :class:`~safe_data.remote.uploader.Uploader`
calls :meth:`Sink.put` with the segment id, the zstd-compressed segment and the SHA-256
of the raw (uncompressed) segment (with recipients: the age file of the compressed
segment and the SHA-256 of that ciphertext), and reads the outcome:

* ``put`` returns: the sink **acknowledges** the segment: that exact content is durably
  stored (or already was).  Only then may the local copy go.
* ``put`` raises :class:`TransientError`: not stored this time (server down, timeout,
  connection reset, overloaded...); the uploader retries later, after
  ``retry_after`` seconds if the sink knows how long to wait.
* ``put`` raises :class:`RejectedError`: the sink refuses this content for good (another
  content under that id, an invalid segment, a wrong token, a body too large).  The
  segment stays on local disk and is reported; it is never deleted.

The sinks: :class:`~.directory.DirectorySink` (a local or mounted directory, written
through the backup server's directory store), :class:`~.http.HttpSink` (the backup
server, ``safe-data serve``) and :class:`~.s3.S3Sink` (any S3-compatible object store).
Each imports its heavy dependencies (aiohttp, zstandard) only when used.
"""

from __future__ import annotations

import abc
import builtins
from typing import Any

from ...errors import SafeDataError
from ..protocol import valid_segment_id, valid_sha256

__all__ = ["Sink", "SinkError", "TransientError", "RejectedError"]


class SinkError(SafeDataError):
    """A sink did not acknowledge a segment."""


class TransientError(SinkError):
    """Not stored this time; try again later (after ``retry_after`` seconds if not None)."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RejectedError(SinkError):
    """The sink refuses this content for good; the local segment must be kept."""


class Sink(abc.ABC):
    """A place that stores sealed segments.  Subclasses implement :meth:`put`.

    Methods are coroutines and are called from one event loop (the uploader's).
    """

    @abc.abstractmethod
    async def put(self, segment_id: str, body: bytes, sha256: str) -> None:
        """Store one segment: ``body`` is the zstd-compressed segment, ``sha256`` the hex
        SHA-256 of the raw segment; or ``body`` is an age file of the compressed segment
        (it starts with ``age-encryption.org/v1``), ``sha256`` the SHA-256 of that body.
        Return only once it is durably stored (or already was, with that hash); raise
        :class:`TransientError` or :class:`RejectedError`."""

    async def check(self) -> None:  # noqa: B027 - optional: most sinks have nothing to check
        """Raise :class:`TransientError` if the sink cannot be reached now, or
        :class:`RejectedError` if it refuses this client; a sink with nothing to check
        returns (``safe-data push`` and ``pull`` call it before they start)."""

    async def close(self) -> None:  # noqa: B027 - optional: most sinks hold nothing
        """Release connections and other resources (the sink may be used again later)."""

    async def list(self) -> builtins.list[dict[str, Any]]:
        """Optional: ``[{"id", "sha256", "size"}]`` of the stored segments."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its segments")

    async def get(self, segment_id: str) -> bytes:
        """Optional: the zstd-compressed segment (KeyError if absent)."""
        raise NotImplementedError(f"{type(self).__name__} cannot read segments back")

    async def deletions(self) -> builtins.list[dict[str, Any]]:
        """The tombstones (:mod:`safe_data.remote.tombstones`) of the segments deleted from
        the store, sorted by id; none for a sink that keeps none (a segment gone from it is
        then reported missing, never taken for deleted)."""
        return []


def check_id(segment_id: str) -> None:
    """RejectedError unless ``segment_id`` is a segment id (sent nowhere otherwise)."""
    if not valid_segment_id(segment_id):
        raise RejectedError(f"invalid segment id {segment_id!r}")


def check_sha(sha256: str) -> None:
    """RejectedError unless ``sha256`` is 64 lowercase hex digits."""
    if not valid_sha256(sha256):
        raise RejectedError(f"invalid sha256 {sha256!r} (64 lowercase hex digits expected)")
