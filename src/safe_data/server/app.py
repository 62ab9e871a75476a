"""The backup server (``safe-data serve``): the HTTP side of docs/remote.md.

``make_app(store, tokens)`` builds the aiohttp application.  An upload is checked before
anything is stored, in this order: the bearer token (401), the segment id (400, before
any storage is touched), the declared body size (413 from Content-Length, before reading),
the body size as it is read (413), the zstd stream decompressed in bounded chunks with a
hard output limit (413 once more than ``max_segment_bytes`` come out; the frame header is
never trusted), the SHA-256 of the decompressed bytes against ``X-Content-SHA256`` (400),
the segment header and every frame's length and CRC32C (400).  Values are never decoded
or unpickled.  Decompression, verification and file work run in a thread, so the event
loop keeps answering while a large upload is checked.

The store is a :class:`~safe_data.server.stores.directory.DirectoryStore` (its blocking
methods run in a worker thread) or any object with the same methods as coroutines, such as
:class:`~safe_data.server.stores.s3.S3Store` (awaited in the server's event loop; its
``aclose()`` is awaited when the application shuts down).  A
:class:`~safe_data.server.stores.StoreUnavailable` from the store answers 503.

Tokens have a role: a namespace's client tokens are append-only (they upload, list and
download; nothing they send can change or remove a stored segment), its admin tokens may
also ``DELETE /v1/segments/<id>`` (403 for an append-only token).  A deletion leaves a
tombstone, listed by ``GET /v1/deletions`` (:mod:`safe_data.remote.tombstones`).

With a ``retention`` policy the application deletes, at start and periodically, what the
policy does not keep (:mod:`.retention`); each stored segment's time (its newest
record, read during the checks above) is kept with it for that.

With ``web_view=True`` the application also serves the web view (:mod:`.web`) under
``/ui/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable

from .._fs import write_all
from ..present import human_bytes
from ..remote._ledger import last_good_drill
from ..remote.protocol import (
    InvalidSegment,
    SegmentTooLarge,
    decompress_bounded,
    valid_segment_id,
    valid_sha256,
    verify_segment,
)
from ..remote.requires import aiohttp as _require
from ..remote.verify import check_body
from .incoming import temp_prefix
from .quotas import Quotas
from .retention import Policy, run_pass
from .state import AUTHENTICATE_KEY, DEFAULT_MAX_SEGMENT_BYTES, METRICS_KEY, STORE_KEY
from .stores import ConflictError, NotFound, StoreUnavailable

aiohttp = _require("The backup server (safe-data serve)")
from aiohttp import web  # noqa: E402

__all__ = ["make_app", "verify_segment", "decompress_bounded", "SegmentTooLarge", "InvalidSegment"]

# the name it has always logged under (before the move): logging configurations name it
log = logging.getLogger("safe_data.upload.server")

#: the roles of tokens: append-only (the default, for clients) and admin (may delete)
APPEND, ADMIN = "append", "admin"
_BUSY_RETRY_AFTER = "2"  # seconds: about what a slot's upload takes
_FULL_RETRY_AFTER = "300"  # seconds: room is made by people or retention, not in a moment
_SHA_HEADER = "X-Content-SHA256"
_BEARER = re.compile(r"Bearer[ ]+(\S+)[ ]*", re.IGNORECASE)


def _check_upload(path: str, sha256: str, segment_id: str, max_segment_bytes: int) -> tuple[int, float]:
    """Decompress and verify the body in the file; return the segment's size (an encrypted
    body: only its form and hash, and its size) and its time for retention: that of its
    newest record, or now for an encrypted body (which cannot be read; a time sent by the
    client could not be checked).  Runs in a worker thread, in bounded memory
    (:func:`~safe_data.remote.verify.check_body`)."""
    received = time.time()
    with open(path, "rb") as f:
        size, newest_ns = check_body(f, max_segment_bytes, sha256, segment_id)
    return size, received if newest_ns is None else newest_ns / 1e9


def _new_metrics() -> dict:
    return {
        "stored": 0,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": {},
        "unauthorized": 0,
        "forbidden": 0,
        "deleted": 0,
        "retention_deleted": 0,
        "retention_last_run": 0.0,
        "bytes_received": 0,
        "bytes_stored": 0,
        "segment_bytes_stored": 0,
        "store_unavailable": 0,
        "busy": 0,
        "over_quota": 0,
        "uploads_in_progress": 0,
    }


def _render_metrics(m: dict, journal: str | None = None) -> str:
    lines = [
        "# HELP safe_data_uploads_stored_total Segments stored (201).",
        "# TYPE safe_data_uploads_stored_total counter",
        f"safe_data_uploads_stored_total {m['stored']}",
        "# HELP safe_data_uploads_duplicate_total Uploads of an already stored segment (200).",
        "# TYPE safe_data_uploads_duplicate_total counter",
        f"safe_data_uploads_duplicate_total {m['duplicates']}",
        "# HELP safe_data_uploads_conflict_total Uploads refused: other content under that id (409).",
        "# TYPE safe_data_uploads_conflict_total counter",
        f"safe_data_uploads_conflict_total {m['conflicts']}",
        "# HELP safe_data_uploads_rejected_total Uploads refused as invalid or too large.",
        "# TYPE safe_data_uploads_rejected_total counter",
    ]
    rejected = m["rejected"] or {"400": 0, "413": 0}
    for code in sorted(rejected):
        lines.append(f'safe_data_uploads_rejected_total{{code="{code}"}} {rejected[code]}')
    lines += [
        "# HELP safe_data_requests_unauthorized_total Requests refused for a missing or bad token (401).",
        "# TYPE safe_data_requests_unauthorized_total counter",
        f"safe_data_requests_unauthorized_total {m['unauthorized']}",
        "# HELP safe_data_requests_forbidden_total Deletions refused to an append-only token (403).",
        "# TYPE safe_data_requests_forbidden_total counter",
        f"safe_data_requests_forbidden_total {m['forbidden']}",
        "# HELP safe_data_segments_deleted_total Segments deleted (by retention or an admin token).",
        "# TYPE safe_data_segments_deleted_total counter",
        f"safe_data_segments_deleted_total {m['deleted']}",
        "# HELP safe_data_retention_deleted_total Segments deleted by the server's retention.",
        "# TYPE safe_data_retention_deleted_total counter",
        f"safe_data_retention_deleted_total {m['retention_deleted']}",
        "# HELP safe_data_retention_last_run_timestamp_seconds When the last retention pass "
        "finished; 0: never.",
        "# TYPE safe_data_retention_last_run_timestamp_seconds gauge",
        f"safe_data_retention_last_run_timestamp_seconds {m['retention_last_run']:.0f}",
        "# HELP safe_data_upload_received_bytes_total Compressed bytes received in uploads.",
        "# TYPE safe_data_upload_received_bytes_total counter",
        f"safe_data_upload_received_bytes_total {m['bytes_received']}",
        "# HELP safe_data_upload_stored_bytes_total Compressed bytes of the segments stored.",
        "# TYPE safe_data_upload_stored_bytes_total counter",
        f"safe_data_upload_stored_bytes_total {m['bytes_stored']}",
        "# HELP safe_data_upload_segment_bytes_total Decompressed bytes of the segments stored.",
        "# TYPE safe_data_upload_segment_bytes_total counter",
        f"safe_data_upload_segment_bytes_total {m['segment_bytes_stored']}",
        "# HELP safe_data_store_unavailable_total Requests answered 503: the storage was unavailable.",
        "# TYPE safe_data_store_unavailable_total counter",
        f"safe_data_store_unavailable_total {m['store_unavailable']}",
        "# HELP safe_data_uploads_busy_total Uploads answered 503: every upload slot was taken.",
        "# TYPE safe_data_uploads_busy_total counter",
        f"safe_data_uploads_busy_total {m['busy']}",
        "# HELP safe_data_uploads_over_quota_total Uploads answered 507: the namespace's quota is full.",
        "# TYPE safe_data_uploads_over_quota_total counter",
        f"safe_data_uploads_over_quota_total {m['over_quota']}",
        "# HELP safe_data_uploads_in_progress Uploads being received, checked or stored now.",
        "# TYPE safe_data_uploads_in_progress gauge",
        f"safe_data_uploads_in_progress {m['uploads_in_progress']}",
    ]
    if journal is not None:  # what a server can tell of drills: those of the journal it shows
        drilled = last_good_drill(journal) or 0
        lines += [
            "# HELP safe_data_last_good_drill_timestamp_seconds When the last good restore drill of "
            "the backup of the journal this server shows (--journal) ran; 0: never.",
            "# TYPE safe_data_last_good_drill_timestamp_seconds gauge",
            f"safe_data_last_good_drill_timestamp_seconds {drilled:.0f}",
        ]
    return "\n".join(lines) + "\n"


def make_app(
    store,
    tokens: dict[str, str],
    *,
    admin_tokens: dict[str, str] | None = None,
    quotas: dict[str, int] | None = None,
    max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
    max_body_bytes: int | None = None,
    max_concurrent_uploads: int = 4,
    upload_wait: float = 1.0,
    web_view: bool = False,
    journal: str | os.PathLike | None = None,
    journal_readers: Iterable[str] | None = None,
    retention: Policy | None = None,
    retention_every: float = 3600.0,
) -> web.Application:
    """The backup server application.

    ``tokens`` maps namespace -> its append-only bearer token, ``admin_tokens`` namespace
    -> its admin token (which may also delete).  ``quotas``: namespace -> the most bytes
    (compressed, as stored) it may hold; an upload that does not fit is answered 507
    before its body is read when it declares its size (:mod:`.quotas`).

    ``max_body_bytes`` (the compressed body) defaults to zstd's worst case for a
    ``max_segment_bytes`` segment.  At most ``max_concurrent_uploads`` uploads are
    received, checked and stored at once: an upload takes a slot before its body is read,
    and is answered 503 with ``Retry-After`` when none is free within ``upload_wait``
    seconds.  A body is streamed to a file (in the store's :meth:`incoming` directory if
    it has one, else the temporary directory) and checked from there, so an upload holds
    a few MiB of memory, whatever its size.

    ``retention``: the policy (:mod:`.retention`) a pass applies to every namespace at
    start and every ``retention_every`` seconds after (none: nothing is ever deleted but by
    an admin token).

    ``web_view``: serve the web view under ``/ui/`` (docs/web.md), showing the tokens the
    store and, if given, the local ``journal`` directory (to the tokens of the namespaces
    ``journal_readers``; None: every token's).
    """
    if journal is not None and not web_view:
        raise ValueError("journal is shown by the web view: give web_view=True")
    if max_segment_bytes <= 0:
        raise ValueError("max_segment_bytes must be positive")
    if max_body_bytes is None:
        max_body_bytes = max_segment_bytes + (max_segment_bytes >> 7) + (1 << 16)
    roles = [(tokens, APPEND), (admin_tokens or {}, ADMIN)]
    for table, _role in roles:
        for namespace, token in table.items():
            if not token:
                raise ValueError(f"empty token for namespace {namespace!r}")
    # Encoded once; compared in constant time against every token (no early exit on a
    # match, so the time does not tell which namespace or how many exist).
    credentials = [(ns, tok.encode("utf-8"), role) for table, role in roles for ns, tok in table.items()]
    if len({tok for _ns, tok, _role in credentials}) != len(credentials):
        raise ValueError("a token is given twice: every namespace and role needs its own token")
    metrics = _new_metrics()
    journal_dir = None if journal is None else os.fspath(journal)
    quota = Quotas(quotas)
    upload_slots = asyncio.Semaphore(max_concurrent_uploads)
    holding: set[int] = set()  # id() of the requests holding a slot (ended: given back)
    incoming = store.incoming() if hasattr(store, "incoming") else None  # None: the temp dir

    async def call_store(method: str, *args):
        """A store method: awaited if it is a coroutine, else run in a worker thread."""
        fn = getattr(store, method)
        try:
            if inspect.iscoroutinefunction(fn):
                return await fn(*args)
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        except StoreUnavailable as exc:
            metrics["store_unavailable"] += 1
            log.error("store unavailable (%s): %s", method, exc)
            raise web.HTTPServiceUnavailable(
                text="storage unavailable, try again later\n", headers={"Retry-After": "5"}
            ) from None

    def identify(request: web.Request) -> tuple[str, str]:
        """(namespace, role) of the request's token, or HTTPUnauthorized."""
        match = _BEARER.fullmatch(request.headers.get("Authorization", ""))
        found = None
        if match:
            offered = match.group(1).encode("utf-8", "replace")
            for namespace, token, role in credentials:
                if hmac.compare_digest(offered, token) and found is None:
                    found = (namespace, role)
        if found is None:
            metrics["unauthorized"] += 1
            raise web.HTTPUnauthorized(
                text="missing or invalid bearer token\n",
                headers={"WWW-Authenticate": 'Bearer realm="safe-data"'},
            )
        return found

    def authenticate(request: web.Request) -> str:
        return identify(request)[0]

    def segment_id_of(request: web.Request) -> str:
        segment_id = request.match_info["segment_id"]
        if not valid_segment_id(segment_id):
            raise web.HTTPBadRequest(text="invalid segment id\n")
        return segment_id

    def reject(code: int, reason: str, namespace: str, segment_id: str | None):
        metrics["rejected"][str(code)] = metrics["rejected"].get(str(code), 0) + 1
        log.warning("refused upload %s/%s: %s", namespace, segment_id, reason)
        if code == 413:
            return web.HTTPRequestEntityTooLarge(max_size=max_body_bytes, actual_size=0, text=reason + "\n")
        return web.HTTPBadRequest(text=reason + "\n")

    async def take_slot(request: web.Request, namespace: str, segment_id: str | None) -> None:
        """An upload slot for the request, held until :func:`free_slot` or the end of the
        request's task (a client told 100 Continue may never send its body)."""
        try:
            await asyncio.wait_for(upload_slots.acquire(), upload_wait)
        except asyncio.TimeoutError:
            metrics["busy"] += 1
            log.warning("busy: upload %s/%s asked to come back later", namespace, segment_id)
            raise web.HTTPServiceUnavailable(
                text="every upload slot is taken, try again later\n",
                headers={"Retry-After": _BUSY_RETRY_AFTER},
            ) from None
        holding.add(id(request))
        request.task.add_done_callback(lambda _task: free_slot(request))

    def free_slot(request: web.Request) -> None:
        if id(request) in holding:
            holding.discard(id(request))
            upload_slots.release()

    async def check_quota(namespace: str, size: int) -> None:
        """507 unless ``size`` more bytes fit in the namespace's quota."""
        if quota.needs_count(namespace):
            quota.counted(namespace, await call_store("usage", namespace))
        refusal = quota.refusal(namespace, size)
        if refusal is not None:
            metrics["over_quota"] += 1
            log.warning("over quota: %s", refusal)
            raise web.HTTPInsufficientStorage(text=refusal + "\n", headers={"Retry-After": _FULL_RETRY_AFTER})

    async def receive_body(request: web.Request, fd: int, namespace: str, segment_id: str) -> int:
        """The body into the file ``fd``, counted against the limit (and the quota, when
        the size was not declared); its size."""
        received = 0
        room = quota.room(namespace) if request.content_length is None else None
        while chunk := await request.content.readany():
            received += len(chunk)
            if received > max_body_bytes:
                raise reject(413, f"body exceeds the limit of {max_body_bytes} bytes", namespace, segment_id)
            if room is not None and received > room:
                await check_quota(namespace, received)
            write_all(fd, chunk)
        return received

    async def expect_continue(request: web.Request) -> None:
        # "Expect: 100-continue": refuse a bad token, an oversized body, a full quota or a
        # busy server before the client sends the body.
        if request.version != aiohttp.HttpVersion11:
            return
        if request.headers.get("Expect", "").lower() != "100-continue":
            raise web.HTTPExpectationFailed(text="unknown Expect header\n")
        namespace = authenticate(request)
        length = request.content_length
        if length is not None and length > max_body_bytes:
            raise reject(
                413, f"body of {length} bytes exceeds the limit of {max_body_bytes}", namespace, None
            )
        await check_quota(namespace, length or 0)
        # the slot now, so that a client waiting for 100 is told 503 before it sends
        await take_slot(request, namespace, None)
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    async def put_segment(request: web.Request) -> web.Response:
        namespace = authenticate(request)
        metrics["uploads_in_progress"] += 1
        try:
            return await receive_segment(request, namespace)
        finally:
            metrics["uploads_in_progress"] -= 1

    async def receive_segment(request: web.Request, namespace: str) -> web.Response:
        segment_id = request.match_info["segment_id"]
        if not valid_segment_id(segment_id):
            raise reject(400, "invalid segment id", namespace, None)
        sha256 = request.headers.get(_SHA_HEADER, "").strip().lower()
        if not valid_sha256(sha256):
            raise reject(400, f"missing or malformed {_SHA_HEADER}", namespace, segment_id)
        length = request.content_length
        if length is not None and length > max_body_bytes:
            raise reject(
                413, f"body of {length} bytes exceeds the limit of {max_body_bytes}", namespace, segment_id
            )
        await check_quota(namespace, length or 0)
        if id(request) not in holding:  # not taken by expect_continue
            await take_slot(request, namespace, segment_id)
        quota.reserve(namespace, length or 0)
        try:
            return await check_and_store(request, namespace, segment_id, sha256)
        finally:
            quota.release(namespace, length or 0)
            free_slot(request)

    async def check_and_store(request: web.Request, namespace: str, segment_id: str, sha256: str):
        fd, path = tempfile.mkstemp(prefix=temp_prefix(), suffix=".tmp", dir=incoming)
        try:
            try:
                received = await receive_body(request, fd, namespace, segment_id)
            finally:
                os.close(fd)
            metrics["bytes_received"] += received
            try:
                size, newest = await asyncio.get_running_loop().run_in_executor(
                    None, _check_upload, path, sha256, segment_id, max_segment_bytes
                )
            except SegmentTooLarge as exc:
                raise reject(413, str(exc), namespace, segment_id) from None
            except InvalidSegment as exc:
                raise reject(400, str(exc), namespace, segment_id) from None
            try:
                outcome = await call_store("put_file", namespace, segment_id, path, sha256, newest)
            except ConflictError:
                metrics["conflicts"] += 1
                log.warning("conflict on %s/%s: other content already stored", namespace, segment_id)
                raise web.HTTPConflict(text="another content is stored under this segment id\n") from None
        finally:
            with contextlib.suppress(FileNotFoundError):  # moved into the store, or not kept
                os.unlink(path)
        if outcome in ("duplicate", "deleted"):  # deleted: stored once, deleted since, not again
            metrics["duplicates"] += 1
            return web.json_response({"id": segment_id, "sha256": sha256, "status": outcome}, status=200)
        metrics["stored"] += 1
        quota.stored(namespace, received)
        metrics["bytes_stored"] += received
        metrics["segment_bytes_stored"] += size
        log.info("stored %s/%s (%d bytes, %d compressed)", namespace, segment_id, size, received)
        return web.json_response({"id": segment_id, "sha256": sha256, "status": "stored"}, status=201)

    async def get_segment(request: web.Request) -> web.StreamResponse:
        namespace = authenticate(request)
        segment_id = segment_id_of(request)
        try:
            if hasattr(store, "locate"):  # a file: streamed from disk, not read into memory
                path, sha256 = await call_store("locate", namespace, segment_id)
                return web.FileResponse(
                    path, headers={_SHA_HEADER: sha256, "Content-Type": "application/zstd"}
                )
            body, sha256 = await call_store("get", namespace, segment_id)
        except NotFound:
            raise web.HTTPNotFound(text="no such segment\n") from None
        return web.Response(body=body, content_type="application/zstd", headers={_SHA_HEADER: sha256})

    async def delete_segment(request: web.Request) -> web.Response:
        namespace, role = identify(request)
        if role != ADMIN:
            metrics["forbidden"] += 1
            log.warning("refused a delete in %s: append-only token", namespace)
            raise web.HTTPForbidden(text="this token is append-only: deleting needs an admin token\n")
        segment_id = segment_id_of(request)
        reason = request.query.get("reason") or "deleted with an admin token"
        replaced_by = request.query.get("replaced_by") or None  # a forget's rewrite may take its place
        if replaced_by is not None and not valid_sha256(replaced_by):
            raise reject(400, "replaced_by must be a SHA-256 (64 hex digits)", namespace, segment_id)
        try:
            tombstone = await call_store("delete", namespace, segment_id, reason, replaced_by)
        except NotFound:
            raise web.HTTPNotFound(text="no such segment\n") from None
        metrics["deleted"] += 1
        quota.deleted(namespace, tombstone["size"])
        log.info("deleted %s/%s: %s", namespace, segment_id, tombstone["reason"])
        return web.json_response(tombstone)

    async def retention_pass() -> None:
        """One pass of the retention policy over every namespace, logged in one line."""
        assert retention
        results = []
        for namespace in sorted({ns for ns, _tok, _role in credentials}):
            result = await run_pass(call_store, namespace, retention, time.time())
            for decision in result.deleted:
                quota.deleted(namespace, decision.size)
            metrics["deleted"] += len(result.deleted)
            metrics["retention_deleted"] += len(result.deleted)
            results.append(result)
        metrics["retention_last_run"] = time.time()
        log.info(
            "retention (%s): %d kept, %d deleted, %s freed",
            retention,
            sum(r.kept for r in results),
            sum(len(r.deleted) for r in results),
            human_bytes(sum(r.freed for r in results)),
        )

    async def retention_loop() -> None:
        while True:
            try:
                await retention_pass()
            except Exception as exc:  # a store unavailable for now: next time
                log.error("retention pass failed, tried again in %gs: %s", retention_every, exc)
            await asyncio.sleep(retention_every)

    async def list_deletions(request: web.Request) -> web.Response:
        namespace = authenticate(request)
        return web.json_response(await call_store("deletions", namespace))

    async def list_segments(request: web.Request) -> web.Response:
        namespace = authenticate(request)
        return web.json_response(await call_store("list", namespace))

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics_view(request: web.Request) -> web.Response:
        authenticate(request)
        text = await asyncio.get_running_loop().run_in_executor(None, _render_metrics, metrics, journal_dir)
        return web.Response(
            text=text + "\n".join(quota.metrics()) + "\n",
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    # client_max_size bounds any body aiohttp reads on its own (chunked included); uploads
    # are read by read_body with the same bound.
    app = web.Application(client_max_size=max_body_bytes)
    app[STORE_KEY] = store
    app[METRICS_KEY] = metrics
    app[AUTHENTICATE_KEY] = authenticate
    aclose = getattr(store, "aclose", None)
    if aclose is not None:

        async def close_store(_app: web.Application) -> None:
            await aclose()

        app.on_cleanup.append(close_store)
    if retention:

        async def start_retention(app: web.Application):
            task = asyncio.get_running_loop().create_task(retention_loop())
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(start_retention)
    app.router.add_put("/v1/segments/{segment_id:[\\s\\S]*}", put_segment, expect_handler=expect_continue)
    app.router.add_get("/v1/segments", list_segments)
    app.router.add_get("/v1/segments/{segment_id:[\\s\\S]*}", get_segment)
    app.router.add_delete("/v1/segments/{segment_id:[\\s\\S]*}", delete_segment)
    app.router.add_get("/v1/deletions", list_deletions)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_view)
    if web_view:
        from .web import mount  # its modules load only for a server that shows it

        mount(app, journal=journal, journal_readers=journal_readers, max_segment_bytes=max_segment_bytes)
    return app
