"""The remote ledger of deletions (docs/remote.md, "Deleting from the store").

A segment deleted from a store (by the server's retention or an admin token's DELETE)
leaves a tombstone ``<namespace>/<segment id>.deleted`` beside where it was: a small JSON
object written durably *before* the segment goes.  So a reader of the store tells a
deleted segment ("deleted by retention on 2026-01-31") from a lost one, whatever
happened in between, and an upload of the same id after the deletion does not bring it
back.  Written and read by both stores (directory and S3); nothing here does I/O.

A deletion for a forget (``safe-data forget --remote``) names the content that may take
the segment's place: ``replaced_by``, the SHA-256 of the segment rewritten without the
forgotten records.  An upload of exactly that content under the id is stored (the
tombstone stays, on record); the old content still answers "deleted", anything else 409.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import json

from .protocol import valid_segment_id, valid_sha256

__all__ = ["TOMBSTONE_SUFFIX", "MAX_REASON", "make", "encode", "decode", "describe", "admits"]

#: the reason of the server's retention (safe_data.server.retention)
RETENTION = "retention"

TOMBSTONE_SUFFIX = ".deleted"
#: the longest reason kept (characters): a tombstone stays small
MAX_REASON = 200


def make(
    segment_id: str,
    sha256: str,
    size: int,
    reason: str,
    now: _dt.datetime | None = None,
    replaced_by: str | None = None,
) -> dict:
    """The tombstone of a segment deleted now (UTC, to the second) for ``reason``; with
    ``replaced_by``, the SHA-256 of the content that may be stored under its id."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    tombstone = {
        "id": segment_id,
        "sha256": sha256,
        "size": size,
        "deleted_at": now.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reason": " ".join(reason.split())[:MAX_REASON],
    }
    if replaced_by is not None:
        tombstone["replaced_by"] = replaced_by
    return tombstone


def admits(tombstone: dict, sha256: str) -> str | None:
    """What a put of ``sha256`` under a deleted id does: ``"deleted"`` (the deleted
    content: acknowledged, not stored again), ``"replace"`` (the content the deletion
    named to replace it: stored), or None (other content: a conflict)."""
    if hmac.compare_digest(tombstone["sha256"], sha256):
        return "deleted"
    replaced_by = tombstone.get("replaced_by")
    if replaced_by is not None and hmac.compare_digest(replaced_by, sha256):
        return "replace"
    return None


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
        and (tombstone.get("replaced_by") is None or valid_sha256(tombstone["replaced_by"]))
    ):
        return None
    fields = ("id", "sha256", "size", "deleted_at", "reason", "replaced_by")
    return {k: tombstone[k] for k in fields if tombstone.get(k) is not None}


def describe(tombstone: dict, where: str = "") -> str:
    """``deleted by retention on 2026-01-31``, or ``deleted on 2026-01-31 (reason)`` for
    another reason: how readers report a deleted segment; ``where``, e.g. ``"on the
    backup"``, follows ``deleted``."""
    deleted = f"deleted {where} " if where else "deleted "
    date = tombstone["deleted_at"][:10]
    if tombstone["reason"] == RETENTION:
        return f"{deleted}by retention on {date}"
    return f"{deleted}on {date} ({tombstone['reason']})"
