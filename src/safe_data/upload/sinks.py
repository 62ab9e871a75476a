"""Where the uploader ships sealed segments: the sink interface and two sinks.

A sink stores whole sealed segments (docs/remote.md).  The :class:`~safe_data.upload.
uploader.Uploader` calls :meth:`Sink.put` with the segment id, the zstd-compressed
segment and the SHA-256 of the raw (uncompressed) segment, and reads the outcome:

* ``put`` returns: the sink **acknowledges** the segment: that exact content is durably
  stored (or already was).  Only then may the local copy go.
* ``put`` raises :class:`TransientError`: not stored this time (server down, timeout,
  connection reset, overloaded...); the uploader retries later, after
  ``retry_after`` seconds if the sink knows how long to wait.
* ``put`` raises :class:`RejectedError`: the sink refuses this content for good (another
  content under that id, an invalid segment, a wrong token, a body too large).  The
  segment stays on local disk and is reported; it is never deleted.

Two sinks live here: :class:`DirectorySink` (a local or mounted directory, same layout as
the backup server's directory store) and :class:`HttpSink` (the backup server,
``safe-data serve``).  ``safe_data.upload.s3.S3Sink`` stores into S3.  Both import their
heavy dependencies (aiohttp, zstandard) only when used.
"""

from __future__ import annotations

import abc
import asyncio
import email.utils
import os
import time
from typing import Any, List as _List

from ..errors import SafeDataError
from .._fs import fsync_dir, write_temp
from . import requires
from .layout import (BODY_SUFFIX, HASH_SUFFIX, committed, list_committed, read_hash,
                     valid_namespace, valid_segment_id, valid_sha256)

__all__ = ["Sink", "SinkError", "TransientError", "RejectedError", "DirectorySink", "HttpSink",
           "MAX_SEGMENT_BYTES", "decompress_segment"]

#: receivers refuse a segment that decompresses to more than this (docs/remote.md)
MAX_SEGMENT_BYTES = 256 << 20


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
        SHA-256 of the raw segment.  Return only once it is durably stored (or already
        was, with that hash); raise :class:`TransientError` or :class:`RejectedError`."""

    async def check(self) -> None:
        """Raise :class:`TransientError` if the sink cannot be reached now, or
        :class:`RejectedError` if it refuses this client; a sink with nothing to check
        returns (``safe-data push`` and ``pull`` call it before they start)."""

    async def close(self) -> None:
        """Release connections and other resources (the sink may be used again later)."""

    async def list(self) -> _List[dict[str, Any]]:
        """Optional: ``[{"id", "sha256", "size"}]`` of the stored segments."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its segments")

    async def get(self, segment_id: str) -> bytes:
        """Optional: the zstd-compressed segment (KeyError if absent)."""
        raise NotImplementedError(f"{type(self).__name__} cannot read segments back")


def _check_id(segment_id: str) -> None:
    if not valid_segment_id(segment_id):
        raise RejectedError(f"invalid segment id {segment_id!r}")


def _check_sha(sha256: str) -> None:
    if not valid_sha256(sha256):
        raise RejectedError(f"invalid sha256 {sha256!r} (64 lowercase hex digits expected)")


def decompress_segment(body: bytes, limit: int = MAX_SEGMENT_BYTES) -> bytes:
    """Decompress a zstd body, refusing more than ``limit`` bytes whatever the frame header
    claims (ValueError); see :func:`~safe_data.upload.checks.decompress_bounded`."""
    return _decompress(body, limit)[0]


def _decompress(body: bytes, limit: int) -> tuple[bytes, str]:
    from .checks import SegmentTooLarge, decompress_bounded

    try:
        return decompress_bounded(body, limit)
    except SegmentTooLarge:
        raise ValueError(f"segment larger than {limit} bytes once decompressed") from None


# --- DirectorySink ---------------------------------------------------------------------------


class DirectorySink(Sink):
    """Store segments in ``<path>/<namespace>/`` as ``<id>.seg.zst`` + ``<id>.sha256``.

    The layout of the backup server's directory store (docs/remote.md), so a directory
    filled by either can be read by the other.  Writes are atomic and durable (temp file,
    fsync, rename, fsync directory).  The ``.sha256`` file claims the id: it is created
    exclusively (a hard link, so two writers never both win), and the data file is renamed
    into place after it; a claim without data is completed by the next ``put`` of that
    content.  The body is decompressed (with a size limit) and its hash checked before
    anything is written.

    Same id and same hash again: acknowledged, nothing written.  Same id, another hash:
    :class:`RejectedError`.
    """

    def __init__(self, path: str | os.PathLike, *, namespace: str = "default",
                 max_segment_bytes: int = MAX_SEGMENT_BYTES) -> None:
        if not valid_namespace(namespace):
            raise ValueError(f"invalid namespace {namespace!r}")
        self.root = os.path.abspath(os.fspath(path))
        self.namespace = namespace
        self.directory = os.path.join(self.root, namespace)
        self.max_segment_bytes = max_segment_bytes

    def __repr__(self) -> str:
        return f"DirectorySink({self.root!r}, namespace={self.namespace!r})"

    async def put(self, segment_id: str, body: bytes, sha256: str) -> None:
        _check_id(segment_id)
        _check_sha(sha256)
        await asyncio.get_running_loop().run_in_executor(None, self._put, segment_id, bytes(body), sha256)

    def _put(self, segment_id: str, body: bytes, sha256: str) -> None:
        try:
            _raw, digest = _decompress(body, self.max_segment_bytes)
        except ValueError as exc:
            raise RejectedError(f"segment {segment_id}: {exc}") from None
        if digest != sha256:
            raise RejectedError(f"segment {segment_id}: content does not match its sha256")
        try:
            self._store(segment_id, body, sha256)
        except OSError as exc:  # disk full, permissions, ...: maybe better later
            raise TransientError(f"cannot write segment {segment_id} to {self.directory}: {exc}") from exc

    def _store(self, segment_id: str, body: bytes, sha256: str) -> None:
        directory = self.directory
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fsync_dir(self.root)
        data_path = os.path.join(directory, segment_id + BODY_SUFFIX)
        sha_path = os.path.join(directory, segment_id + HASH_SUFFIX)
        existing = read_hash(sha_path)
        if existing is not None:
            if existing != sha256:
                raise RejectedError(f"segment {segment_id} is already stored with another content "
                                    f"(sha256 {existing}); it is never overwritten")
            if os.path.exists(data_path):
                return  # already stored: acknowledged, nothing changes
        data_tmp = write_temp(directory, segment_id + BODY_SUFFIX, body)
        try:
            if existing is None:
                sha_tmp = write_temp(directory, segment_id + HASH_SUFFIX, sha256.encode() + b"\n")
                try:
                    os.link(sha_tmp, sha_path)  # exclusive: fails if another writer claimed the id
                except FileExistsError:
                    existing = read_hash(sha_path)
                    if existing != sha256:
                        raise RejectedError(f"segment {segment_id} is already stored with another "
                                            f"content (sha256 {existing}); it is never overwritten") from None
                finally:
                    os.unlink(sha_tmp)
            os.rename(data_tmp, data_path)
        except BaseException:
            try:
                os.unlink(data_tmp)
            except FileNotFoundError:
                pass
            raise
        fsync_dir(directory)

    async def list(self) -> _List[dict[str, Any]]:
        return await asyncio.get_running_loop().run_in_executor(None, self._list)

    def _list(self) -> _List[dict[str, Any]]:
        return list_committed(self.directory)

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


# --- HttpSink --------------------------------------------------------------------------------


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


_REJECTING = {400: "invalid", 401: "unauthorized", 403: "forbidden", 409: "conflict", 413: "too large"}


class HttpSink(Sink):
    """The backup server (``safe-data serve``, docs/remote.md) over HTTP(S).

    ``PUT {url}/v1/segments/{id}`` with ``Authorization: Bearer <token>`` and
    ``X-Content-SHA256``.  200/201 acknowledge; 400, 401, 403, 409 and 413 reject (with
    the server's message; the token is never shown); 5xx, 429, timeouts and connection
    errors are transient, honouring ``Retry-After``.  The aiohttp session is created
    lazily in the running event loop, on first use.

    ``timeout`` bounds each request, ``connect_timeout`` each connection to the server.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 30,
                 connect_timeout: float = 10) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"HttpSink needs an http:// or https:// URL, not {url!r}")
        if not token or any(c in token for c in "\r\n"):
            raise ValueError("HttpSink needs a non-empty token without line breaks")
        requires.aiohttp("HttpSink")
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._session = None
        self._session_loop = None

    def __repr__(self) -> str:
        return f"HttpSink({self.url!r}, token=<hidden>)"

    def _get_session(self):
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.connect_timeout),
                headers={"Authorization": f"Bearer {self._token}"})
            self._session_loop = loop
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._session_loop is asyncio.get_running_loop():
            await session.close()
        self._session_loop = None

    async def _request(self, method: str, path: str, *, what: str, **kwargs):
        """(status, headers, body bytes); transport problems become TransientError."""
        import aiohttp

        session = self._get_session()
        try:
            async with session.request(method, self.url + path, allow_redirects=False, **kwargs) as resp:
                return resp.status, resp.headers, await resp.read()
        except aiohttp.ServerTimeoutError as exc:  # connecting, or a read, timed out: it says which
            raise TransientError(f"{what}: {exc}") from None
        except asyncio.TimeoutError:
            raise TransientError(f"{what}: no answer from {self.url} within {self.timeout} s") from None
        except aiohttp.ClientError as exc:
            raise TransientError(f"{what}: {type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise TransientError(f"{what}: {exc}") from None

    def _fail(self, what: str, status: int, headers, body: bytes):
        message = _server_message(body)
        if status in (401, 403):
            raise RejectedError(f"{what}: the backup server at {self.url} refused the token "
                                f"({status} {_REJECTING[status]}): check the token configured for "
                                f"this client" + (f"; server says: {message}" if message else ""))
        if status in _REJECTING:
            raise RejectedError(f"{what}: refused by {self.url} ({status} {_REJECTING[status]})"
                                + (f": {message}" if message else ""))
        raise TransientError(f"{what}: {self.url} answered {status}" + (f": {message}" if message else ""),
                             retry_after=parse_retry_after(headers.get("Retry-After")))

    async def check(self) -> None:
        """``GET /health``: the server answers."""
        what = f"GET {self.url}/health"
        status, headers, answer = await self._request("GET", "/health", what=what)
        if status != 200:
            self._fail(what, status, headers, answer)

    async def put(self, segment_id: str, body: bytes, sha256: str) -> None:
        _check_id(segment_id)
        _check_sha(sha256)
        what = f"upload of segment {segment_id}"
        status, headers, answer = await self._request(
            "PUT", f"/v1/segments/{segment_id}", what=what, data=body,
            headers={"X-Content-SHA256": sha256, "Content-Type": "application/zstd"})
        if status in (200, 201):
            return
        self._fail(what, status, headers, answer)

    async def list(self) -> _List[dict[str, Any]]:
        import json

        status, headers, answer = await self._request("GET", "/v1/segments", what="listing segments")
        if status != 200:
            self._fail("listing segments", status, headers, answer)
        try:
            return json.loads(answer)
        except ValueError:
            raise TransientError(f"listing segments: {self.url} answered something else than JSON") from None

    async def get(self, segment_id: str) -> bytes:
        if not valid_segment_id(segment_id):
            raise KeyError(segment_id)
        what = f"download of segment {segment_id}"
        status, headers, answer = await self._request("GET", f"/v1/segments/{segment_id}", what=what)
        if status == 404:
            raise KeyError(segment_id)
        if status != 200:
            self._fail(what, status, headers, answer)
        return answer


def _server_message(body: bytes) -> str:
    """The error text of an answer (JSON ``error``/``message`` or plain text), shortened."""
    import json

    text = body[:2000].decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        pass
    else:
        if isinstance(data, dict):
            text = str(data.get("error") or data.get("message") or data.get("detail") or text)
    text = " ".join(text.split())
    return text[:300]
