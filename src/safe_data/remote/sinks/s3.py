"""``S3Sink``: sealed segments into any S3-compatible object store (docs/remote.md).

Objects are stored as ``<prefix><namespace>/<segment id>.seg.zst``, with the segment's
hash in the user metadata ``x-amz-meta-sha256``.

Why a small AWS Signature V4 signer over aiohttp instead of aiobotocore: aiobotocore pins
botocore (and therefore boto3) to narrow version ranges, which routinely conflicts with
whatever else an application installs, and importing it costs about half a second. The
sink needs five calls (PUT, HEAD, GET and DELETE object, ListObjectsV2, plus CreateBucket
for tests and demos); signing them is ~60 lines of ``hmac``/``hashlib`` (:mod:`._sigv4`).

Acknowledgement rules (docs/remote.md):

- ``PUT`` is conditional (``If-None-Match: *``) and carries ``Content-MD5`` and
  ``x-amz-content-sha256`` of the body, so a store never keeps a corrupted transfer;
- ``200`` acknowledges; ``412`` (the key exists) leads to a ``HEAD`` comparing
  ``x-amz-meta-sha256``: the same hash acknowledges, another one is refused for good;
- because some stores (some SeaweedFS versions among them) ignore ``If-None-Match``,
  the sink by default also ``HEAD``\\ s the key *before* writing (``check_first``), so an
  object with other content is never overwritten even by such a store;
- ``5xx``, ``429``, timeouts, resets and unreadable answers are transient (retried,
  honouring ``Retry-After``);
- refused keys (``401``/``403``, or ``400 ExpiredToken``) are renewed from their source
  (:mod:`._aws`) and the request sent once more; keys still expired after
  that are transient (the source has no new ones yet), other refusals are refused.

Keys and region are found as AWS's tools find them (:mod:`._aws`).
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import copy
import datetime as _dt
import hashlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import tombstones
from ..protocol import BODY_SUFFIX, MAX_SEGMENT_BYTES, parse_retry_after, valid_namespace, valid_segment_id
from ..requires import aiohttp as _require
from . import RejectedError, Sink, TransientError, check_id, check_sha
from ._aws import AwsSettings, Keys
from ._sigv4 import sign_v4, uri_encode

aiohttp = _require("S3Sink (an S3 backup)")
from yarl import URL  # noqa: E402 - installed with aiohttp

if TYPE_CHECKING:
    from aiohttp import ClientSession

__all__ = ["S3Sink", "S3Error"]

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_MAX_BODY = MAX_SEGMENT_BYTES + (16 << 20)  # zstd never grows a segment by that much
# 400 answers refusing the keys' session token (401 and 403 refuse the keys too)
_REFUSED_TOKEN = frozenset({"ExpiredToken", "TokenRefreshRequired", "InvalidToken"})
# of those, the ones meaning "expired": keys the source renews later will do
_EXPIRED = frozenset({"ExpiredToken", "TokenRefreshRequired"})


class S3Error(Exception):
    """An S3 answer other than the expected ones (used by ``list``/``get``/``ensure_bucket``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"S3 {status} {code}: {message}".strip())
        self.status = status
        self.code = code


# --------------------------------------------------------------------------- signing


def _error_code(body: bytes) -> tuple[str, str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return "", body[:200].decode("utf-8", "replace")
    return root.findtext("Code") or "", root.findtext("Message") or ""


def _refuses_keys(method: str, status: int, body: bytes) -> bool:
    """Whether an answer may refuse the request's keys.  A HEAD answer has no body to
    tell why: S3 answers a bare 400 to an expired token there."""
    if status in (401, 403):
        return True
    return status == 400 and (method == "HEAD" or _error_code(body)[0] in _REFUSED_TOKEN)


_FILE_CHUNK = 1 << 20


def _body_digests(body: bytes | FileBody) -> tuple[str, str]:
    """(Content-MD5 header value, hex SHA-256) of a request body."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    for chunk in body.read_chunks() if isinstance(body, FileBody) else (body,):
        md5.update(chunk)
        sha256.update(chunk)
    return base64.b64encode(md5.digest()).decode("ascii"), sha256.hexdigest()


class FileBody:
    """A ``PUT`` body read from the file at ``path`` as it is sent, never held whole (the
    backup server's S3 store sends the bodies it received into a file this way)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = os.path.getsize(path)

    def read_chunks(self):
        with open(self.path, "rb") as f:
            while chunk := f.read(_FILE_CHUNK):
                yield chunk

    async def send_chunks(self):
        # a chunk at a time in a worker thread, so the event loop keeps serving
        loop = asyncio.get_running_loop()
        with open(self.path, "rb") as f:
            while chunk := await loop.run_in_executor(None, f.read, _FILE_CHUNK):
                yield chunk


# --------------------------------------------------------------------------- the sink


class S3Sink(Sink):
    """Store segments in an S3 bucket; see the module docstring for the rules.

    Keys: *access_key*/*secret_key*/*session_token*, or *credentials* (botocore's
    ``Credentials``, e.g. ``boto3.Session().get_credentials()``), else found as the AWS
    CLI finds them, in *profile* (default ``$AWS_PROFILE``) with botocore installed
    (:mod:`safe_data.remote.sinks._aws`).  *region*: default ``$AWS_REGION``,
    ``$AWS_DEFAULT_REGION``, the profile's, else ``us-east-1``.  ``ValueError`` if no
    keys are found.

    Use it as ``async with S3Sink(...) as sink:`` or call ``await sink.close()``; the
    HTTP session is created on first use in the running event loop.
    """

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        *,
        region: str | None = None,
        profile: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        credentials: Any = None,
        prefix: str = "",
        namespace: str = "default",
        timeout: float = 30,
        connect_timeout: float = 10,
        check_first: bool = True,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"invalid bucket name {bucket!r}")
        if not valid_namespace(namespace):
            raise ValueError(f"invalid namespace {namespace!r}")
        settings = AwsSettings(profile)
        self.bucket = bucket
        self.region = region = settings.region(region)
        self.prefix = prefix
        self.namespace = namespace
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.check_first = check_first
        self._credentials = settings.credentials(
            access_key=access_key, secret_key=secret_key, session_token=session_token, credentials=credentials
        )
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            # custom endpoints (SeaweedFS, MinIO, ...): path-style URLs
            parts = urlsplit(endpoint.rstrip("/"))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"invalid endpoint URL {endpoint!r}")
            self._origin = f"{parts.scheme}://{parts.netloc}"
            self._host = parts.netloc
            self._base_path = parts.path.rstrip("/") + "/" + uri_encode(bucket, keep_slash=False)
        elif "." in bucket:  # a dotted bucket breaks the virtual host's TLS certificate
            self._host = f"s3.{region}.amazonaws.com"
            self._origin = f"https://{self._host}"
            self._base_path = "/" + uri_encode(bucket, keep_slash=False)
        else:
            self._host = f"{bucket}.s3.{region}.amazonaws.com"
            self._origin = f"https://{self._host}"
            self._base_path = ""
        self._session: ClientSession | None = None

    def __repr__(self) -> str:  # never shows the secret
        return (
            f"S3Sink(bucket={self.bucket!r}, endpoint={self._origin!r}, "
            f"prefix={self.prefix!r}, namespace={self.namespace!r})"
        )

    def for_namespace(self, namespace: str) -> S3Sink:
        """A sink on *namespace* of the same bucket, sharing these keys (and their renewal)."""
        if not valid_namespace(namespace):
            raise ValueError(f"invalid namespace {namespace!r}")
        sink = copy.copy(self)
        sink.namespace = namespace
        sink._session = None
        return sink

    # -- plumbing ---------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self._origin

    def key(self, segment_id: str, suffix: str = BODY_SUFFIX) -> str:
        """The object key of a segment (of its tombstone: ``suffix=".deleted"``)."""
        return f"{self.prefix}{self.namespace}/{segment_id}{suffix}"

    async def __aenter__(self) -> S3Sink:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.connect_timeout),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Content-Type"),
            )
        return self._session

    def _signed(
        self,
        keys: Keys,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: dict[str, str],
        payload_sha256: str,
    ) -> tuple[URL, dict[str, str]]:
        amz_date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        headers = {
            **headers,
            "host": self._host,
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload_sha256,
        }
        if keys.token:
            headers["x-amz-security-token"] = keys.token
        headers["authorization"] = sign_v4(
            method,
            path,
            query,
            headers,
            payload_sha256,
            access_key=keys.access_key,
            secret_key=keys.secret_key,
            region=self.region,
            amz_date=amz_date,
        )
        qs = "&".join(
            f"{uri_encode(k, keep_slash=False)}={uri_encode(v, keep_slash=False)}"
            for k, v in sorted(query.items())
        )
        url = URL(self._origin + path + ("?" + qs if qs else ""), encoded=True)
        return url, headers

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | FileBody = b"",
        body_sha256: str | None = None,
        read_limit: int = 16 * 1024 * 1024,
    ) -> tuple[int, Any, bytes]:
        """One signed request: (status, response headers, body). Network trouble and
        server errors become ``TransientError``; refused keys are renewed and the request
        sent again once (module docstring)."""
        if isinstance(body, FileBody):
            if body_sha256 is None:
                raise ValueError("a FileBody needs its body_sha256")
            payload_sha256 = body_sha256
        else:
            payload_sha256 = body_sha256 or (hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256)
        args = (method, path, query or {}, dict(headers or {}), body, payload_sha256, read_limit)
        keys = await self._credentials.keys()
        status, rheaders, data = await self._send(keys, *args)
        if _refuses_keys(method, status, data):
            renewed = await self._credentials.renew(keys)
            if renewed is not None:
                keys = renewed
                status, rheaders, data = await self._send(keys, *args)
        if status >= 500 or status in (408, 429) or (status == 409 and method != "PUT"):
            code, message = _error_code(data)
            raise TransientError(
                f"S3 {method} {path} answered {status} {code} {message}".strip(),
                retry_after=parse_retry_after(rheaders.get("Retry-After")),
            )
        code, message = _error_code(data) if status >= 400 else ("", "")
        if status in (401, 403) or (status == 400 and code in _REFUSED_TOKEN):
            if code == "RequestTimeTooSkewed":
                raise RejectedError(
                    f"S3 refused the request: this machine's clock is too far off ({message})"
                )
            refusal = (
                f"by {self._origin} for bucket {self.bucket!r} (access key "
                f"{keys.access_key!r}): {status} {code} {message}".strip()
            )
            if code in _EXPIRED:
                raise TransientError(
                    f"S3 credentials have expired and none newer are available yet, refused {refusal}"
                )
            raise RejectedError(f"S3 credentials were refused {refusal}")
        return status, rheaders, data

    async def _send(
        self,
        keys: Keys,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: dict[str, str],
        body: bytes | FileBody,
        payload_sha256: str,
        read_limit: int,
    ) -> tuple[int, Any, bytes]:
        data: Any = body if body or method == "PUT" else None
        if isinstance(body, FileBody):  # streamed, with its length (S3 takes no chunked PUT)
            headers = dict(headers, **{"content-length": str(body.size)})
            data = body.send_chunks()
        url, hdrs = self._signed(keys, method, path, query, headers, payload_sha256)
        try:
            async with self._get_session().request(method, url, headers=hdrs, data=data) as resp:
                data = b""
                if method != "HEAD":
                    chunks = []
                    size = 0
                    async for chunk in resp.content.iter_chunked(1 << 20):
                        size += len(chunk)
                        if size > read_limit:
                            raise TransientError(f"S3 answer to {method} larger than {read_limit} bytes")
                        chunks.append(chunk)
                    data = b"".join(chunks)
                return resp.status, resp.headers, data
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise TransientError(
                f"S3 {method} {self._origin}{path} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _object_path(self, segment_id: str, suffix: str = BODY_SUFFIX) -> str:
        check_id(segment_id)
        return self._base_path + "/" + uri_encode(self.key(segment_id, suffix), keep_slash=True)

    # -- the Sink interface -----------------------------------------------------------

    async def check(self) -> None:
        """``HEAD`` the bucket: it exists and the credentials are accepted."""
        status, _, _ = await self._request("HEAD", self._base_path or "/")
        if status == 404:
            raise RejectedError(f"bucket {self.bucket!r} does not exist at {self.endpoint}")
        if status != 200:
            raise RejectedError(f"bucket {self.bucket!r} at {self.endpoint}: HEAD answered {status}")

    async def head(self, segment_id: str) -> str | None:
        """The stored hash of *segment_id* (``""`` if the object has none), or ``None``
        if it is not stored."""
        found = await self.stat(segment_id)
        return None if found is None else found[0]

    async def metadata(self, segment_id: str) -> Mapping[str, str] | None:
        """The headers of the segment's object (its user metadata, ``Last-Modified``),
        or ``None`` if it is not stored."""
        status, headers, _ = await self._request("HEAD", self._object_path(segment_id))
        if status == 404:
            return None
        if status != 200:
            raise TransientError(f"S3 HEAD {self.key(segment_id)} answered {status}")
        return headers

    async def stat(self, segment_id: str) -> tuple[str, int] | None:
        """(:meth:`head`'s hash, the object's size), or ``None`` if it is not stored."""
        status, headers, _ = await self._request("HEAD", self._object_path(segment_id))
        if status == 404:
            return None
        if status != 200:
            raise TransientError(f"S3 HEAD {self.key(segment_id)} answered {status}")
        return (headers.get("x-amz-meta-sha256") or "").strip().lower(), int(
            headers.get("Content-Length") or 0
        )

    async def _compare(self, segment_id: str, sha256: str) -> bool:
        """True if already stored with that hash; RejectedError if stored with another."""
        stored = await self.head(segment_id)
        if stored is None:
            return False
        if stored == sha256:
            return True
        raise RejectedError(
            f"segment {segment_id} is already stored in s3://{self.bucket}/{self.key(segment_id)} "
            f"with other content (sha256 {stored or 'unknown'}, ours {sha256}); not overwritten"
        )

    async def put(
        self, segment_id: str, body: bytes | FileBody, sha256: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Store one zstd-compressed segment (*sha256*: hash of the raw segment), given
        as bytes or as a :class:`FileBody`; returning means acknowledged.  ``metadata``:
        more user metadata of the object (``x-amz-meta-<name>``)."""
        path = self._object_path(segment_id)
        sha256 = sha256.lower()
        check_sha(sha256)
        if not isinstance(body, FileBody):
            body = bytes(body)
        if self.check_first and await self._compare(segment_id, sha256):
            return
        # ~2 ms per MiB: in a worker thread, so the event loop keeps serving other requests
        content_md5, body_sha256 = await asyncio.get_running_loop().run_in_executor(None, _body_digests, body)
        headers = {
            "content-type": "application/zstd",
            "content-md5": content_md5,
            "if-none-match": "*",
            "x-amz-meta-sha256": sha256,
            **{f"x-amz-meta-{name}": value for name, value in (metadata or {}).items()},
        }
        status, _, data = await self._request(
            "PUT", path, headers=headers, body=body, body_sha256=body_sha256
        )
        if status == 200:
            return
        code, message = _error_code(data)
        if status == 412 or (status == 409 and code == "ConditionalRequestConflict"):
            if await self._compare(segment_id, sha256):
                return
            # 412 but nothing there (deleted meanwhile) or a conflicting concurrent write
            raise TransientError(f"S3 PUT {self.key(segment_id)}: {status} {code}, object vanished")
        if status == 409:
            raise TransientError(f"S3 PUT {self.key(segment_id)}: 409 {code} {message}")
        if status == 400 and code in ("BadDigest", "XAmzContentSHA256Mismatch", "IncompleteBody"):
            # the body was damaged on the way: the store refused it, sending again may work
            raise TransientError(f"S3 PUT {self.key(segment_id)}: transfer damaged ({code})")
        raise RejectedError(f"S3 PUT {self.key(segment_id)} refused: {status} {code} {message}".strip())

    async def get(self, segment_id: str) -> bytes:
        """The stored zstd-compressed segment; ``KeyError`` if absent."""
        status, _, data = await self._request("GET", self._object_path(segment_id), read_limit=_MAX_BODY)
        if status == 404:
            raise KeyError(segment_id)
        if status != 200:
            code, message = _error_code(data)
            raise S3Error(status, code, message)
        return data

    async def delete(self, segment_id: str, suffix: str = BODY_SUFFIX) -> None:
        """``DELETE`` the segment's object (or its tombstone's); an absent one is no error."""
        key = self.key(segment_id, suffix)
        status, _, data = await self._request("DELETE", self._object_path(segment_id, suffix))
        if status not in (200, 204, 404):
            code, message = _error_code(data)
            raise RejectedError(f"S3 DELETE {key} refused: {status} {code} {message}".strip())

    async def put_small(self, segment_id: str, suffix: str, data: bytes) -> None:
        """Write a small object beside the segment (its tombstone), replacing any."""
        key = self.key(segment_id, suffix)
        content_md5, body_sha256 = _body_digests(data)
        status, _, answer = await self._request(
            "PUT",
            self._object_path(segment_id, suffix),
            headers={"content-type": "application/json", "content-md5": content_md5},
            body=data,
            body_sha256=body_sha256,
        )
        if status != 200:
            code, message = _error_code(answer)
            raise RejectedError(f"S3 PUT {key} refused: {status} {code} {message}".strip())

    async def get_small(self, segment_id: str, suffix: str) -> bytes | None:
        """A small object beside the segment (at most 64 KiB), or None if absent."""
        status, _, data = await self._request(
            "GET", self._object_path(segment_id, suffix), read_limit=1 << 16
        )
        if status == 404:
            return None
        if status != 200:
            code, message = _error_code(data)
            raise S3Error(status, code, message)
        return data

    async def list(self, *, with_sha256: bool = True, suffix: str = BODY_SUFFIX) -> list[dict[str, Any]]:
        """``[{"id", "sha256", "size"}]`` of the namespace, sorted by id (ListObjectsV2,
        paginated). The hash costs one HEAD per object: ``with_sha256=False`` leaves
        ``sha256`` as ``None``.  ``suffix``: the objects beside the segments instead
        (their tombstones: ``".deleted"``, without hashes)."""
        if suffix != BODY_SUFFIX:
            with_sha256 = False
        key_prefix = f"{self.prefix}{self.namespace}/"
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": key_prefix}
            if token:
                query["continuation-token"] = token
            status, _, data = await self._request("GET", self._base_path or "/", query=query)
            if status != 200:
                code, message = _error_code(data)
                raise S3Error(status, code, message)
            try:
                root = ET.fromstring(data)
            except ET.ParseError as exc:
                raise TransientError(f"unreadable ListObjectsV2 answer: {exc}") from exc
            for item in root.iter(_NS + "Contents"):
                key = item.findtext(_NS + "Key") or ""
                name = key[len(key_prefix) :]
                if not key.startswith(key_prefix) or not name.endswith(suffix):
                    continue
                seg = name[: -len(suffix)]
                if valid_segment_id(seg):
                    out.append({"id": seg, "size": int(item.findtext(_NS + "Size") or 0), "sha256": None})
            truncated = (root.findtext(_NS + "IsTruncated") or "false").lower() == "true"
            token = root.findtext(_NS + "NextContinuationToken")
            if not truncated or not token:
                break
        out.sort(key=lambda e: e["id"])
        if with_sha256:
            hashes = await asyncio.gather(*(self.head(e["id"]) for e in out))
            for e, h in zip(out, hashes, strict=True):
                e["sha256"] = h
        return out

    async def deletions(self) -> builtins.list[dict[str, Any]]:
        """The tombstones beside the segments (a backup server on this bucket writes one
        before it deletes a segment), sorted by id; an unreadable one is left out, so its
        segment is reported missing."""
        entries = await self.list(suffix=tombstones.TOMBSTONE_SUFFIX)
        found = await asyncio.gather(*(self.get_small(e["id"], tombstones.TOMBSTONE_SUFFIX) for e in entries))
        decoded = (tombstones.decode(data, e["id"]) for e, data in zip(entries, found, strict=True) if data)
        return [t for t in decoded if t is not None]

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (for tests and demos)."""
        status, _, data = await self._request("HEAD", self._base_path or "/")
        if status == 200:
            return
        body = b""
        if self.region != "us-east-1":
            body = (
                '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<LocationConstraint>{self.region}</LocationConstraint></CreateBucketConfiguration>"
            ).encode()
        status, _, data = await self._request("PUT", self._base_path or "/", body=body)
        if status == 200:
            return
        code, message = _error_code(data)
        if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists") and status == 409:
            return
        raise S3Error(status, code, message)
