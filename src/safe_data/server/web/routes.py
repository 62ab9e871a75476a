"""The web view's HTTP side: one static page and a small JSON API, as an aiohttp
sub-application of the backup server (docs/web.md).

Every API request carries a server token (``Authorization: Bearer``, checked by the
server's own check, so a bad token counts in its metrics); tokens never travel in URLs.
A token reads its own namespace of the store (source ``store``) and, when the server was
given ``--journal DIR``, that journal (source ``journal``) if its namespace is one of the
journal's readers.  Query parameters are bounded
and validated before anything is read; values go out as JSON and the page renders them as
text only; a Content-Security-Policy allows nothing but the page's own script and style.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterable
from importlib import resources

from aiohttp import web

from ...errors import IncompleteHistoryError
from ...journal.journal import parse_time, to_ns
from ...present import OP_NAMES, brief, caller_text, dumps, iso, record_fields, writer_hex
from ...remote._ledger import last_good_drill
from ..state import AUTHENTICATE_KEY, DEFAULT_MAX_SEGMENT_BYTES, STORE_KEY
from . import reading

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
SEARCH_BUDGET = 5.0  # seconds a search page may scan before it returns what it found
MAX_CONTAINER = 1024
MAX_TIME = 64
MAX_SCANS = 2  # searches and restores read the journal in worker threads: at most this many

_CURSOR_RE = re.compile(r"([0-9]{1,20})-([0-9a-f]{16})-([0-9]{1,20})")
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_STATIC = {
    "": ("index.html", "text/html"),
    "app.js": ("app.js", "text/javascript"),
    "style.css": ("style.css", "text/css"),
    "favicon.svg": ("favicon.svg", "image/svg+xml"),
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

JOURNAL_KEY = web.AppKey[reading.JournalSource | None]("journal")
JOURNAL_READERS_KEY = web.AppKey[frozenset[str] | None]("journal_readers")  # None: all
OPTIONS_KEY = web.AppKey("options", dict)


def make_ui_app(
    *,
    journal: str | os.PathLike | None = None,
    journal_readers: Iterable[str] | None = None,
    max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
) -> web.Application:
    """The web view as a sub-application; mount it on a :func:`~safe_data.server.app.make_app`
    application (it uses that application's tokens and store) with :func:`mount`.

    ``journal`` is shown to the tokens of the namespaces ``journal_readers`` (None: every
    token's; ``safe-data serve`` always names them)."""
    app = web.Application(middlewares=[_security_headers])
    app[JOURNAL_KEY] = None if journal is None else reading.JournalSource(os.fspath(journal))
    app[JOURNAL_READERS_KEY] = None if journal_readers is None else frozenset(journal_readers)
    app[OPTIONS_KEY] = {"max_segment_bytes": max_segment_bytes, "scans": asyncio.Semaphore(MAX_SCANS)}
    app.router.add_get("/", _static)
    app.router.add_get("/{name:app\\.js|style\\.css|favicon\\.svg}", _static)
    app.router.add_get("/api/sources", _sources)
    app.router.add_get("/api/records", _records)
    app.router.add_get("/api/record", _record)
    app.router.add_get("/api/restore", _restore)
    return app


def mount(
    app: web.Application,
    *,
    journal: str | os.PathLike | None = None,
    journal_readers: Iterable[str] | None = None,
    max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
    prefix: str = "/ui",
) -> None:
    """Serve the web view under ``prefix`` of the backup server application ``app``
    (arguments as :func:`make_ui_app`); ``/`` and ``prefix`` redirect to it."""

    async def to_page(request: web.Request) -> web.Response:
        raise web.HTTPFound(prefix + "/")

    app.router.add_get("/", to_page)
    app.router.add_get(prefix, to_page)  # before the sub-application, which would answer 404
    app.add_subapp(
        prefix,
        make_ui_app(journal=journal, journal_readers=journal_readers, max_segment_bytes=max_segment_bytes),
    )


@web.middleware
async def _security_headers(request: web.Request, handler):
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(_SECURITY_HEADERS)
        raise
    response.headers.update(_SECURITY_HEADERS)
    return response


async def _static(request: web.Request) -> web.Response:
    filename, content_type = _STATIC[request.match_info.get("name", "")]
    body = (resources.files(__package__) / "static" / filename).read_bytes()
    return web.Response(body=body, content_type=content_type, charset="utf-8")


# --- parameters --------------------------------------------------------------------------------


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=dumps({"error": message}), content_type="application/json")


def _text(query, name: str, limit: int) -> str:
    value = query.get(name, "")
    if len(value) > limit:
        raise _bad(f"{name} is longer than {limit} characters")
    if "\x00" in value:
        raise _bad(f"{name} contains a NUL character")
    return value


def _choice(query, name: str, choices, default: str) -> str:
    value = query.get(name, default)
    if value not in choices:
        raise _bad(f"{name} must be one of {', '.join(repr(c) for c in choices)}")
    return value


def _time_ns(query, name: str) -> int | None:
    text = _text(query, name, MAX_TIME).strip()
    if not text:
        return None
    try:
        when = parse_time(text)
    except ValueError as exc:
        raise _bad(f"{name}: {exc}") from None
    except OverflowError:  # an age beyond the calendar
        raise _bad(f"{name}: {text!r} is out of range") from None
    return to_ns(when)


def _int(query, name: str, default: int, low: int, high: int) -> int:
    text = query.get(name, "")
    if not text:
        return default
    if not text.isdigit() or len(text) > 20 or not low <= int(text) <= high:
        raise _bad(f"{name} must be an integer from {low} to {high}")
    return int(text)


def _journal_for(request: web.Request, namespace: str):
    """The journal source if ``namespace``'s tokens may read it, else None."""
    readers = request.app[JOURNAL_READERS_KEY]
    if readers is not None and namespace not in readers:
        return None
    return request.app[JOURNAL_KEY]


def _source(request: web.Request):
    """The source a request names, once its token is accepted (401 otherwise)."""
    namespace = request.config_dict[AUTHENTICATE_KEY](request)
    journal = _journal_for(request, namespace)
    name = _choice(
        request.query, "source", ("journal", "store"), "journal" if journal is not None else "store"
    )
    if name == "journal":
        if request.app[JOURNAL_KEY] is None:
            raise web.HTTPNotFound(
                text=dumps({"error": "this server browses no journal (start it with --journal DIR)"}),
                content_type="application/json",
            )
        if journal is None:
            raise web.HTTPForbidden(
                text=dumps({"error": f"the tokens of {namespace!r} may not read this server's journal"}),
                content_type="application/json",
            )
        return journal
    return reading.StoreSource(
        request.config_dict[STORE_KEY],
        namespace,
        asyncio.get_running_loop(),
        request.app[OPTIONS_KEY]["max_segment_bytes"],
    )


async def _in_thread(request: web.Request, fn, *args):
    """Run a blocking read in a worker thread, at most MAX_SCANS at a time."""
    async with request.app[OPTIONS_KEY]["scans"]:
        try:
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        except reading.SourceUnavailable:
            raise web.HTTPServiceUnavailable(
                text=dumps({"error": "storage unavailable, try again later"}),
                content_type="application/json",
                headers={"Retry-After": "5"},
            ) from None


def _json(obj) -> web.Response:
    return web.Response(text=dumps(obj), content_type="application/json")


# --- the API -----------------------------------------------------------------------------------


async def _sources(request: web.Request) -> web.Response:
    namespace = request.config_dict[AUTHENTICATE_KEY](request)
    journal = _journal_for(request, namespace)
    sources = (["journal"] if journal is not None else []) + ["store"]
    drill = None
    if journal is not None:
        drill = await asyncio.get_running_loop().run_in_executor(None, _last_good_drill, journal.directory)
    return _json(
        {
            "namespace": namespace,
            "sources": sources,
            "ops": OP_NAMES,
            "journal": None if journal is None else os.path.basename(journal.directory),
            "last_good_drill": drill,
        }
    )


def _last_good_drill(directory: str) -> str | None:
    """When the last good restore drill of the journal's backup ran (ISO), or None."""
    when = last_good_drill(directory)
    return None if when is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _summary(record) -> dict:
    """A search result: the record's fields, its key and values abbreviated."""
    return {
        "seq": record.seq,
        "time": iso(record.time_ns),
        "time_ns": record.time_ns,
        "container": record.container,
        "kind": record.kind,
        "op": record.op,
        "key": brief(record.key),
        "values": brief(record.values),
        "caller": caller_text(record.caller, short=True),
        "pid": record.pid,
        "writer": writer_hex(record.writer),
        "segment": record.segment,
        "offset": record.offset,
    }


async def _records(request: web.Request) -> web.Response:
    source = _source(request)
    query = request.query
    container = _text(query, "container", MAX_CONTAINER)
    prefix = _choice(query, "match", ("exact", "prefix"), "exact") == "prefix"
    op = _choice(query, "op", ["", "*"] + OP_NAMES, "")
    since_ns, until_ns = _time_ns(query, "since"), _time_ns(query, "until")
    limit = _int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    newest = _choice(query, "order", ("oldest", "newest"), "oldest") == "newest"
    after = None
    if query.get("after"):
        cursor = _CURSOR_RE.fullmatch(query["after"])
        if cursor is None:
            raise _bad("after must be a cursor as returned in 'next'")
        after = (int(cursor[1]), int(cursor[2], 16), int(cursor[3]))
    found, position, undecodable = await _in_thread(
        request,
        lambda: reading.search(
            source,
            container=container or None,
            prefix=prefix,
            op=op,
            since_ns=since_ns,
            until_ns=until_ns,
            after=after,
            newest=newest,
            limit=limit,
            budget=SEARCH_BUDGET,
        ),
    )
    next_cursor = None if position is None else f"{position[0]}-{writer_hex(position[1])}-{position[2]}"
    return _json({"records": [_summary(r) for r in found], "next": next_cursor, "undecodable": undecodable})


async def _record(request: web.Request) -> web.Response:
    source = _source(request)
    segment = _text(request.query, "segment", 40)
    if reading.parse_segment_name(segment) is None:
        raise _bad("segment must be a segment name such as 0123456789abcdef-000001.seg")
    offset = _int(request.query, "offset", -1, 0, 1 << 40)
    if offset < 0:
        raise _bad("offset is required")
    record = await _in_thread(request, reading.record_at, source, segment, offset)
    if record is None:
        raise web.HTTPNotFound(
            text=dumps({"error": f"no record starts at byte {offset} of {segment}"}),
            content_type="application/json",
        )
    fields = record_fields(record)
    fields["caller_text"] = caller_text(record.caller)
    return _json(fields)


def _restore_result(source, name: str, at_ns, mode: str, partial: bool):
    import safe_data

    journal = reading.ReadOnlyJournal(source)
    if next(journal.records(name), None) is None:
        return "missing", None
    if mode == "discarded":
        return "ok", safe_data.discarded(name, journal, until=at_ns)
    try:
        return "ok", safe_data.restore(name, at=at_ns, journal=journal)
    except IncompleteHistoryError as exc:
        return ("ok", exc.partial) if partial else ("incomplete", str(exc))


async def _restore(request: web.Request) -> web.Response:
    source = _source(request)
    query = request.query
    name = _text(query, "container", MAX_CONTAINER)
    if not name:
        raise _bad("container is required")
    at_ns = _time_ns(query, "at")
    mode = _choice(query, "mode", ("state", "discarded"), "state")
    partial = _choice(query, "partial", ("0", "1"), "0") == "1"
    outcome, result = await _in_thread(request, _restore_result, source, name, at_ns, mode, partial)
    if outcome == "missing":
        raise web.HTTPNotFound(
            text=dumps({"error": f"no records of container {name!r}"}), content_type="application/json"
        )
    if outcome == "incomplete":
        raise web.HTTPConflict(
            text=dumps({"error": result + " Tick 'partial' to download what is known."}),
            content_type="application/json",
        )
    stem = _FILENAME_UNSAFE.sub("_", name).strip("._")[:100] or "container"
    filename = f"{stem}-{'discarded' if mode == 'discarded' else 'restore'}.json"
    return web.Response(
        body=(dumps(result, indent=2) + "\n").encode("utf-8"),
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
