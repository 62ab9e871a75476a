"""Key stores: where each shipped segment's data key lives, so that it can be destroyed
(crypto-shredding, docs/security.md).

With a key store, the uploader encrypts each segment to a fresh X25519 identity of its
own, its *data key*, and to nothing else (:mod:`.data_keys`).  The data key, age-encrypted
to the long-term recipients (*wrapped*: the key store cannot read it), is stored under the
segment's id and the SHA-256 of the ciphertext, durably, before the segment is put: one
key per version of a segment, since a forget's replacement keeps the segment's id.  A key
without its segment is harmless; a segment without its key would be lost.

Destroying a key (:meth:`KeyStore.shred`) makes every copy of that ciphertext unreadable,
wherever it is: tapes, immutable buckets, copies out of reach.  A shred first leaves a
*marker* under the same name (the forget's id and time, and what was forgotten sealed to
the recipients), so that a reader tells a shredded segment from a key store that lost a
key: the first is reported as shredded, never as damaged or missing.

A key store must be mutable and deletable, and kept apart from the segments: a directory
(:mod:`.directory`) or an S3 bucket and prefix (:mod:`.s3`).  The backup server cannot
hold keys: it stores only bodies it verifies as segments.
"""

from __future__ import annotations

import abc
import json

from ...errors import SafeDataError
from ..protocol import valid_segment_id, valid_sha256

__all__ = ["KeyStore", "KeyStoreError", "Shredded", "key_name", "key_store_of"]

#: suffixes of a data key and of its shred's marker
KEY_SUFFIX = ".key"
MARKER_SUFFIX = ".shredded"


class KeyStoreError(SafeDataError):
    """The key store failed to store, read or destroy a data key."""


class Shredded(SafeDataError):
    """A segment's data key was destroyed by a forget: no copy of that version can be read.
    ``segment_id``, ``sha256`` (of the ciphertext), ``forget_id``, ``time`` (ISO UTC),
    ``sealed`` (what was forgotten, age-encrypted to the recipients; see
    :func:`.data_keys.unseal_details`)."""

    def __init__(self, segment_id: str, sha256: str, marker: dict) -> None:
        self.segment_id = segment_id
        self.sha256 = sha256
        self.forget_id = str(marker.get("forget"))
        self.time = str(marker.get("time"))
        self.sealed = marker.get("sealed")
        super().__init__(
            f"segment {segment_id} was shredded by forget {self.forget_id} on {self.time}: its data "
            f"key was destroyed, so no copy of this version can be read"
        )


def key_name(segment_id: str, sha256: str) -> str:
    """``<segment id>.<sha256 of the ciphertext>``: one version of one segment.
    ValueError for anything else (nothing else reaches a path or an object key)."""
    if not (valid_segment_id(segment_id) and valid_sha256(sha256)):
        raise ValueError(f"not a segment id and a SHA-256: {segment_id!r}, {sha256!r}")
    return f"{segment_id}.{sha256}"


class KeyStore(abc.ABC):
    """Wrapped data keys by (segment id, SHA-256 of the ciphertext), and shred markers.

    Subclasses store small objects by name (:func:`key_name` plus a suffix); methods are
    coroutines, called from one event loop.
    """

    @abc.abstractmethod
    async def check(self) -> None:
        """KeyStoreError if there is no key store to read from there (a wrong path or
        bucket would make every segment look shipped without one)."""

    @abc.abstractmethod
    async def _write(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` durably (replacing any)."""

    @abc.abstractmethod
    async def _read(self, name: str) -> bytes | None:
        """The data under ``name``, or None."""

    @abc.abstractmethod
    async def _remove(self, name: str) -> None:
        """Delete ``name`` durably (absent: no error)."""

    async def close(self) -> None:  # noqa: B027 - optional: a directory holds nothing
        """Release connections."""

    async def put(self, segment_id: str, sha256: str, wrapped: bytes) -> None:
        """Store a segment version's wrapped data key durably."""
        await self._write(key_name(segment_id, sha256) + KEY_SUFFIX, wrapped)

    async def get(self, segment_id: str, sha256: str) -> bytes | None:
        """The wrapped data key of a segment version, or None."""
        return await self._read(key_name(segment_id, sha256) + KEY_SUFFIX)

    async def marker(self, segment_id: str, sha256: str) -> dict | None:
        """The marker of a shredded segment version, or None."""
        data = await self._read(key_name(segment_id, sha256) + MARKER_SUFFIX)
        if data is None:
            return None
        try:
            marker = json.loads(data)
        except ValueError:
            marker = None
        return marker if isinstance(marker, dict) else {"forget": "?", "time": "?"}

    async def shred(self, segment_id: str, sha256: str, forget_id: str, time: str, sealed: str) -> None:
        """Destroy a segment version's data key: the marker first, then the key, then
        check that it is gone (KeyStoreError if it is not).  Idempotent: a shred cut
        short is finished by running it again."""
        name = key_name(segment_id, sha256)
        marker = {"forget": forget_id, "time": time, "sealed": sealed}
        await self._write(name + MARKER_SUFFIX, json.dumps(marker, sort_keys=True).encode())
        await self._remove(name + KEY_SUFFIX)
        if await self._read(name + KEY_SUFFIX) is not None:
            raise KeyStoreError(
                f"{self!r} still holds the data key of segment {segment_id} after deleting it"
            )


def key_store_of(value) -> KeyStore:
    """``value`` if it is a KeyStore; a path: a :class:`.directory.DirectoryKeyStore` there."""
    if isinstance(value, KeyStore):
        return value
    from .directory import DirectoryKeyStore

    return DirectoryKeyStore(value)
