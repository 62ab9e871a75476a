"""What the backup server's application holds for its sub-applications (the web view):
the keys under which :func:`~safe_data.server.app.make_app` stores its store and its
token check, and its default bound on a segment.  Apart from the application, so that
the web view can use them while the application mounts it."""

from __future__ import annotations

from collections.abc import Callable

from ..journal.format import MAX_SEGMENT_BYTES
from ..remote.requires import aiohttp as _require

_require("The backup server (safe-data serve)")
from aiohttp import web  # noqa: E402

#: the largest decompressed segment accepted, unless told otherwise
DEFAULT_MAX_SEGMENT_BYTES = MAX_SEGMENT_BYTES

STORE_KEY = web.AppKey("store", object)  # a DirectoryStore, S3Store, ...
METRICS_KEY = web.AppKey("metrics", dict)
#: request -> its token's namespace, or HTTPUnauthorized; for sub-applications (the web view)
AUTHENTICATE_KEY = web.AppKey[Callable[[web.Request], str]]("authenticate")
