"""``HttpSink``: sealed segments to the backup server (``safe-data serve``) over HTTP(S)."""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Sequence
from typing import Any

from ...journal.encryption import is_encrypted
from .. import requires
from ..protocol import parse_retry_after, valid_segment_id
from . import RejectedError, Sink, TransientError, check_id, check_sha

__all__ = ["HttpSink"]

_REJECTING = {400: "invalid", 401: "unauthorized", 403: "forbidden", 409: "conflict", 413: "too large"}


class HttpSink(Sink):
    """The backup server (``safe-data serve``, docs/remote.md) over HTTP(S).

    ``PUT {url}/v1/segments/{id}`` with ``Authorization: Bearer <token>`` and
    ``X-Content-SHA256``.  200/201 acknowledge; 400, 401, 403, 409 and 413 reject (with
    the server's message; the token is never shown); 5xx, 429, timeouts and connection
    errors are transient, honouring ``Retry-After``.  The aiohttp session is created
    lazily in the running event loop, on first use.

    ``url`` is one server, or a list of servers in front of one store (several stateless
    ``safe-data serve --store s3://...``): fail-over, not k-of-N.  Every request goes to
    the current server, at first the first of the list.  When it fails transiently (no
    connection, a timeout, 5xx or 429), the same request goes at once to the next server
    of the list, and so on, each once; the first that answers becomes the current server
    and stays so until it fails in turn (there is no switching back).  A rejection (4xx)
    is the store's answer, the same from every server: it is not tried elsewhere.  When
    every server failed, the request fails with the last server's transient error, and
    the uploader retries it later.  Give the clients of one site the list in different
    orders to spread them over the servers.

    ``timeout`` bounds each request, ``connect_timeout`` each connection to the server.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        token: str,
        *,
        timeout: float = 30,
        connect_timeout: float = 10,
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("HttpSink needs at least one server URL")
        for one in urls:
            if not isinstance(one, str) or not one.startswith(("http://", "https://")):
                raise ValueError(f"HttpSink needs http:// or https:// URLs, not {one!r}")
        if not token or any(c in token for c in "\r\n"):
            raise ValueError("HttpSink needs a non-empty token without line breaks")
        requires.aiohttp("HttpSink")
        self.urls = tuple(one.rstrip("/") for one in urls)
        self._current = 0  # index in self.urls of the server requests go to
        self._token = token
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._session = None
        self._session_loop = None

    @property
    def url(self) -> str:
        """The server requests go to now (the one that answered last)."""
        return self.urls[self._current]

    def __repr__(self) -> str:
        urls = self.urls[0] if len(self.urls) == 1 else list(self.urls)
        return f"HttpSink({urls!r}, token=<hidden>)"

    def _get_session(self):
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.connect_timeout),
                headers={"Authorization": f"Bearer {self._token}"},
            )
            self._session_loop = loop
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._session_loop is asyncio.get_running_loop():
            await session.close()
        self._session_loop = None

    async def _request(self, method: str, path: str, *, what: str, **kwargs):
        """(url, status, headers, body bytes) of the first server, from the current one on,
        that does not fail transiently; it becomes the current server (``self.url``).
        When all fail: the last one's TransientError."""
        failure: Exception = TransientError(f"{what}: no server")  # (replaced: there is one at least)
        for _ in self.urls:
            index = self._current
            url = self.urls[index]
            try:
                status, headers, body = await self._request_one(url, method, path, what=what, **kwargs)
            except TransientError as exc:
                failure = exc
            else:
                if status < 500 and status != 429:
                    return url, status, headers, body
                failure = self._error(what, url, status, headers, body)
            # concurrent requests that failed on the same server move on once, not once each
            if self._current == index:
                self._current = (index + 1) % len(self.urls)
        raise failure

    async def _request_one(self, url: str, method: str, path: str, *, what: str, **kwargs):
        """(status, headers, body bytes) of one server; transport problems become TransientError."""
        import aiohttp

        session = self._get_session()
        try:
            async with session.request(method, url + path, allow_redirects=False, **kwargs) as resp:
                return resp.status, resp.headers, await resp.read()
        except aiohttp.ServerTimeoutError as exc:  # connecting, or a read, timed out: it says which
            raise TransientError(f"{what}: {url}: {exc}") from None
        except asyncio.TimeoutError:
            raise TransientError(f"{what}: no answer from {url} within {self.timeout} s") from None
        except aiohttp.ClientError as exc:
            raise TransientError(f"{what}: {type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise TransientError(f"{what}: {url}: {exc}") from None

    def _error(self, what: str, url: str, status: int, headers, body: bytes) -> Exception:
        message = _server_message(body)
        if status in (401, 403):
            return RejectedError(
                f"{what}: the backup server at {url} refused the token "
                f"({status} {_REJECTING[status]}): check the token configured for "
                f"this client" + (f"; server says: {message}" if message else "")
            )
        if status in _REJECTING:
            return RejectedError(
                f"{what}: refused by {url} ({status} {_REJECTING[status]})"
                + (f": {message}" if message else "")
            )
        return TransientError(
            f"{what}: {url} answered {status}" + (f": {message}" if message else ""),
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )

    async def check(self) -> None:
        """``GET /health``: the server answers."""
        what = "GET /health"
        url, status, headers, answer = await self._request("GET", "/health", what=what)
        if status != 200:
            raise self._error(what, url, status, headers, answer)

    async def put(self, segment_id: str, body: bytes, sha256: str) -> None:
        check_id(segment_id)
        check_sha(sha256)
        what = f"upload of segment {segment_id}"
        url, status, headers, answer = await self._request(
            "PUT",
            f"/v1/segments/{segment_id}",
            what=what,
            data=body,
            headers={"X-Content-SHA256": sha256, "Content-Type": _content_type(body)},
        )
        if status in (200, 201):
            return
        raise self._error(what, url, status, headers, answer)

    async def list(self) -> builtins.list[dict[str, Any]]:
        url, status, headers, answer = await self._request("GET", "/v1/segments", what="listing segments")
        if status != 200:
            raise self._error("listing segments", url, status, headers, answer)
        return self._json("listing segments", url, answer)

    async def get(self, segment_id: str) -> bytes:
        if not valid_segment_id(segment_id):
            raise KeyError(segment_id)
        what = f"download of segment {segment_id}"
        url, status, headers, answer = await self._request("GET", f"/v1/segments/{segment_id}", what=what)
        if status == 404:
            raise KeyError(segment_id)
        if status != 200:
            raise self._error(what, url, status, headers, answer)
        return answer

    async def delete(
        self, segment_id: str, reason: str | None = None, replaced_by: str | None = None
    ) -> dict[str, Any]:
        """``DELETE /v1/segments/{id}`` (an admin token's right): the tombstone the server
        left (:mod:`safe_data.remote.tombstones`); ``KeyError`` if no such segment,
        RejectedError (403) for an append-only token.  ``replaced_by``: the SHA-256 of
        the content a put of that id may store next (a forget's rewrite)."""
        check_id(segment_id)
        what = f"deletion of segment {segment_id}"
        params = {k: v for k, v in (("reason", reason), ("replaced_by", replaced_by)) if v}
        url, status, headers, answer = await self._request(
            "DELETE", f"/v1/segments/{segment_id}", what=what, params=params or None
        )
        if status == 404:
            raise KeyError(segment_id)
        if status != 200:
            raise self._error(what, url, status, headers, answer)
        return self._json(what, url, answer)

    async def deletions(self) -> builtins.list[dict[str, Any]]:
        """``GET /v1/deletions``: the tombstones of this namespace."""
        what = "listing deletions"
        url, status, headers, answer = await self._request("GET", "/v1/deletions", what=what)
        if status != 200:
            raise self._error(what, url, status, headers, answer)
        return self._json(what, url, answer)

    @staticmethod
    def _json(what: str, url: str, answer: bytes):
        try:
            return json.loads(answer)
        except ValueError:
            raise TransientError(f"{what}: {url} answered something else than JSON") from None


def _content_type(body: bytes) -> str:
    return "application/octet-stream" if is_encrypted(body) else "application/zstd"


def _server_message(body: bytes) -> str:
    """The error text of an answer (JSON ``error``/``message`` or plain text), shortened."""
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
