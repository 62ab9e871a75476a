"""The backup server's S3 store (docs/remote.md, "Layout in a store").

``S3Store`` keeps the segments of every namespace in one S3-compatible bucket, with the
layout of :class:`~safe_data.remote.sinks.s3.S3Sink`: object key
``<prefix><namespace>/<segment id>.seg.zst``, the hash of the decompressed segment in the
user metadata ``x-amz-meta-sha256``.  It is built on ``S3Sink`` (one sink, hence one HTTP
session, per namespace), so the signing, conditional ``PUT`` (``If-None-Match: *``) and
error classification are the sink's.

It has the methods of :class:`~safe_data.server.stores.directory.DirectoryStore` (``put``, ``get``,
``list``) but as coroutines: the server awaits them in its own event loop (where the
sinks' aiohttp sessions live) instead of running them in a worker thread.  Call
``await store.aclose()`` when done (the server does it on cleanup).

``put``:

* ``HEAD`` the key first: the same hash is a ``"duplicate"``, another hash (or an object
  without one) a :class:`~safe_data.server.stores.ConflictError`;
* otherwise a conditional ``PUT``; if it loses a race with another writer, the winner's
  hash decides between ``"duplicate"`` and a conflict;
* puts of one id by this process are serialised, so a store that ignores
  ``If-None-Match`` (some SeaweedFS versions) cannot be made to overwrite an object by two
  concurrent uploads to one server.

``put`` keeps the segment's time for retention (:mod:`safe_data.server.retention`) in the
user metadata ``x-amz-meta-newest`` (seconds since the epoch).

``delete`` writes the tombstone (:mod:`safe_data.remote.tombstones`) as the object
``<prefix><namespace>/<segment id>.deleted`` before it deletes the segment's object; a
``put`` of an id without an object looks for a tombstone (one more ``GET``) and answers
``"deleted"`` (same content) or a conflict.

Answers of the object store that mean "not now" (5xx, timeouts, refused credentials, a
missing bucket) raise :class:`~safe_data.server.stores.StoreUnavailable` (the server
answers 503, the uploader retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hmac
import time
from urllib.parse import urlsplit

from ...remote import tombstones
from ...remote.protocol import valid_sha256
from ...remote.sinks import RejectedError, TransientError
from ...remote.sinks.s3 import FileBody, S3Error, S3Sink
from . import ConflictError, NotFound, StoreUnavailable, check_names, checked_sha256, upload_answer

__all__ = ["S3Store", "parse_s3_url"]


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket[/prefix]`` -> ``(bucket, prefix)``; a non-empty prefix ends with ``/``."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"expected s3://bucket[/prefix], got {url!r}")
    bucket = parts.netloc
    prefix = parts.path.strip("/")
    if prefix:
        if any(p in ("", ".", "..") for p in prefix.split("/")):
            raise ValueError(f"invalid prefix in {url!r}")
        prefix += "/"
    return bucket, prefix


#: the user metadata of an object that holds its time for retention (x-amz-meta-newest)
NEWEST_METADATA = "newest"


def _newest(headers) -> float:
    """An object's time for retention from its HEAD: its metadata, else Last-Modified."""
    try:
        return float(headers.get(f"x-amz-meta-{NEWEST_METADATA}") or "")
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(headers.get("Last-Modified") or "").timestamp()
    except (TypeError, ValueError):
        return time.time()  # no time at all: as if just stored, so it is kept


class S3Store:
    """Segments of every namespace in one S3 bucket (see the module docstring)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        timeout: float = 60,
    ) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        # Finds the keys and validates the bucket and endpoint now (ValueError), not on
        # first use; every namespace's sink shares its keys (S3Sink.for_namespace).
        self._probe = S3Sink(
            bucket,
            endpoint_url,
            region=region,
            profile=profile,
            access_key=access_key,
            secret_key=secret_key,
            session_token=session_token,
            prefix=prefix,
            timeout=timeout,
            check_first=False,  # put() does its own HEAD first
        )
        self.bucket = bucket
        self.prefix = prefix
        self._sinks: dict[str, S3Sink] = {}
        self._locks: dict[tuple[str, str], list] = {}

    @classmethod
    def from_url(cls, url: str, **kwargs) -> S3Store:
        """An S3Store for ``s3://bucket[/prefix]``."""
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, **kwargs)

    def __repr__(self) -> str:  # never shows the secret
        return f"S3Store(s3://{self.bucket}/{self.prefix}, endpoint={self._probe.endpoint!r})"

    @property
    def endpoint(self) -> str:
        return self._probe.endpoint

    def _sink(self, namespace: str) -> S3Sink:
        sink = self._sinks.get(namespace)
        if sink is None:
            sink = self._sinks[namespace] = self._probe.for_namespace(namespace)
        return sink

    async def aclose(self) -> None:
        """Close the HTTP sessions (they belong to the event loop that used them)."""
        sinks, self._sinks = list(self._sinks.values()), {}
        for sink in sinks + [self._probe]:
            await sink.close()

    async def check(self) -> None:
        """Raise StoreUnavailable unless the bucket exists and the credentials are accepted."""
        try:
            await self._probe.check()
        except (TransientError, RejectedError) as exc:
            raise StoreUnavailable(str(exc)) from None

    # --- the interface (coroutines) --------------------------------------------------------

    async def _stored_hash(self, sink: S3Sink, segment_id: str) -> str | None:
        try:
            return await sink.head(segment_id)
        except (TransientError, RejectedError) as exc:
            raise StoreUnavailable(str(exc)) from None

    async def put(
        self,
        namespace: str,
        segment_id: str,
        compressed: bytes | FileBody,
        sha256: str,
        newest: float | None = None,
    ) -> str:
        """Store ``compressed`` (whose decompressed SHA-256 is ``sha256``) under the id.

        Return ``"stored"``, ``"duplicate"`` or ``"deleted"`` (stored and deleted since:
        not stored again); raise :class:`ConflictError` if another
        hash is stored under that id, :class:`StoreUnavailable` if the object store fails.
        """
        check_names(namespace, segment_id)
        sha256 = checked_sha256(sha256)
        sink = self._sink(namespace)
        async with self._locked(namespace, segment_id):
            stored = await self._stored_hash(sink, segment_id)
            tombstone = await self._tombstone(sink, segment_id) if stored is None else None
            answer = upload_answer(segment_id, sha256, stored, tombstone)
            if answer is not None:
                return answer
            try:
                metadata = None if newest is None else {NEWEST_METADATA: f"{newest:.3f}"}
                await sink.put(segment_id, compressed, sha256, metadata)
            except RejectedError as exc:
                # lost a race with another writer: its hash decides
                stored = await self._stored_hash(sink, segment_id)
                if stored is not None and not hmac.compare_digest(stored, sha256):
                    raise ConflictError(segment_id, stored, sha256) from None
                raise StoreUnavailable(str(exc)) from None
            except TransientError as exc:
                raise StoreUnavailable(str(exc)) from None
            return "stored"

    @contextlib.asynccontextmanager
    async def _locked(self, namespace: str, segment_id: str):
        """Serialise this process's puts and deletes of one id."""
        key = (namespace, segment_id)
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = [asyncio.Lock(), 0]
        entry[1] += 1  # users of the lock: it is dropped when none is left
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[key]

    async def _tombstone(self, sink: S3Sink, segment_id: str) -> dict | None:
        try:
            data = await sink.get_small(segment_id, tombstones.TOMBSTONE_SUFFIX)
        except (TransientError, RejectedError, S3Error) as exc:
            raise StoreUnavailable(str(exc)) from None
        return None if data is None else tombstones.decode(data, segment_id)

    async def delete(
        self, namespace: str, segment_id: str, reason: str, replaced_by: str | None = None
    ) -> dict:
        """Delete the segment's object, its tombstone written first; return the tombstone
        (``replaced_by``: see :mod:`safe_data.remote.tombstones`).  Raise
        :class:`NotFound` if it is not stored."""
        check_names(namespace, segment_id)
        sink = self._sink(namespace)
        async with self._locked(namespace, segment_id):
            try:
                found = await sink.stat(segment_id)
                if found is None or not valid_sha256(found[0]):
                    raise NotFound(segment_id)
                tombstone = tombstones.make(segment_id, found[0], found[1], reason, replaced_by=replaced_by)
                await sink.put_small(segment_id, tombstones.TOMBSTONE_SUFFIX, tombstones.encode(tombstone))
                await sink.delete(segment_id)
            except (TransientError, RejectedError, S3Error) as exc:
                raise StoreUnavailable(str(exc)) from None
            return tombstone

    async def usage(self, namespace: str) -> int:
        """Bytes of the namespace's stored (compressed) objects (one listing, no HEADs)."""
        check_names(namespace)
        try:
            entries = await self._sink(namespace).list(with_sha256=False)
        except (TransientError, RejectedError, S3Error) as exc:
            raise StoreUnavailable(str(exc)) from None
        return sum(e["size"] for e in entries)

    async def deletions(self, namespace: str) -> list[dict]:
        """The tombstones of the namespace, sorted by id."""
        check_names(namespace)
        try:
            return await self._sink(namespace).deletions()
        except (TransientError, RejectedError, S3Error) as exc:
            raise StoreUnavailable(str(exc)) from None

    async def put_file(
        self, namespace: str, segment_id: str, path: str, sha256: str, newest: float | None = None
    ) -> str:
        """:meth:`put` of the compressed body in the file at ``path``, streamed from it
        (the caller removes the file)."""
        return await self.put(namespace, segment_id, FileBody(path), sha256, newest)

    async def retention_entries(self, namespace: str) -> list[dict]:
        """The entries of the namespace (``{"id", "size", "newest"}``), ``newest`` being
        the segment's time for retention (seconds since the epoch): the object's metadata
        ``x-amz-meta-newest``, its ``Last-Modified`` if the store was not told.  One
        listing and a ``HEAD`` per object."""
        check_names(namespace)
        sink = self._sink(namespace)
        try:
            entries = await sink.list(with_sha256=False)
            found = await asyncio.gather(*(sink.metadata(e["id"]) for e in entries))
        except (TransientError, RejectedError, S3Error) as exc:
            raise StoreUnavailable(str(exc)) from None
        out = []
        for entry, headers in zip(entries, found, strict=True):
            if headers is not None:  # (None: deleted since it was listed)
                out.append({"id": entry["id"], "size": entry["size"], "newest": _newest(headers)})
        return out

    async def get(self, namespace: str, segment_id: str) -> tuple[bytes, str]:
        """Return ``(compressed bytes, sha256)``; raise :class:`NotFound` if absent."""
        check_names(namespace, segment_id)
        sink = self._sink(namespace)
        sha256 = await self._stored_hash(sink, segment_id)
        if sha256 is None or not valid_sha256(sha256):
            raise NotFound(segment_id)
        try:
            return await sink.get(segment_id), sha256
        except KeyError:
            raise NotFound(segment_id) from None
        except (TransientError, RejectedError, S3Error) as exc:
            raise StoreUnavailable(str(exc)) from None

    async def list(self, namespace: str) -> list[dict]:
        """Entries of the namespace, sorted by id: ``{"id", "sha256", "size"}`` (``size``:
        the stored compressed body).  Objects without a valid hash are not entries."""
        check_names(namespace)
        try:
            entries = await self._sink(namespace).list(with_sha256=True)
        except (TransientError, RejectedError, S3Error) as exc:
            raise StoreUnavailable(str(exc)) from None
        return [
            {"id": e["id"], "sha256": e["sha256"], "size": e["size"]}
            for e in entries
            if e["sha256"] and valid_sha256(e["sha256"])
        ]
