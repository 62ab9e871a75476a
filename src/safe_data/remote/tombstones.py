"""The remote ledger of deletions (docs/remote.md, "Deleting from the store").

A segment deleted from a store (by the server's retention or an admin token's DELETE)
leaves a tombstone ``<namespace>/<segment id>.deleted`` beside where it was: a small JSON
object written durably *before* the segment goes.  So a reader of the store tells a
deleted segment ("deleted by retention on 2026-01-31") from a lost one, whatever
happened in between, and an upload of the same id after the deletion does not bring it
back.  Written and read by both stores (directory and S3); nothing here does I/O.
"""

from __future__ import annotations

import datetime as _dt
import json

from .protocol import valid_segment_id, valid_sha256

__all__ = ["TOMBSTONE_SUFFIX", "MAX_REASON", "make", "encode", "decode", "describe"]

#: the reason of the server's retention (safe_data.server.retention)
RETENTION = "retention"

TOMBSTONE_SUFFIX = ".deleted"
#: the longest reason kept (characters): a tombstone stays small
MAX_REASON = 200


def make(segment_id: str, sha256: str, size: int, reason: str, now: _dt.datetime | None = None) -> dict:
    """The tombstone of a segment deleted now (UTC, to the second) for ``reason``."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return {
        "id": segment_id,
        "sha256": sha256,
        "size": size,
        "deleted_at": now.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reason": " ".join(reason.split())[:MAX_REASON],
    }


def encode(tombstone: dict) -> bytes:
    return (json.dumps(tombstone, sort_keys=True) + "\n").encode("utf-8")


def decode(data: bytes, segment_id: str) -> dict | None:
    """The tombstone of ``segment_id`` in ``data``; None if it is not one (damaged, or of
    another id)."""
    try:
        tombstone = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not (
        isinstance(tombstone, dict)
        and tombstone.get("id") == segment_id
        and valid_segment_id(segment_id)
        and valid_sha256(tombstone.get("sha256"))
        and isinstance(tombstone.get("size"), int)
        and isinstance(tombstone.get("deleted_at"), str)
        and isinstance(tombstone.get("reason"), str)
    ):
        return None
    return {k: tombstone[k] for k in ("id", "sha256", "size", "deleted_at", "reason")}


def describe(tombstone: dict, where: str = "") -> str:
    """``deleted by retention on 2026-01-31``, or ``deleted on 2026-01-31 (reason)`` for
    another reason: how readers report a deleted segment; ``where``, e.g. ``"on the
    backup"``, follows ``deleted``."""
    deleted = f"deleted {where} " if where else "deleted "
    date = tombstone["deleted_at"][:10]
    if tombstone["reason"] == RETENTION:
        return f"{deleted}by retention on {date}"
    return f"{deleted}on {date} ({tombstone['reason']})"
