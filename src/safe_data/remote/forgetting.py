"""Forgetting in a backup: every stored segment holding chosen records is replaced by its
rewrite without them (docs/remote.md, "Forgetting").

Each listed segment is fetched and verified (:func:`.drill.fetch_verified`; an age body is
decrypted with the identities given), rewritten as the local journal rewrites its own
(:func:`..journal.forget.rewritten`: the same segment and forget id give the same bytes, so
a local rewrite shipped later is a duplicate, not a conflict), and replaced: the old copy is
deleted naming the new content's hash (a server's ``DELETE ...?replaced_by=``: admin tokens
only; its tombstone keeps the deletion on record), then the new one is stored under the
same id.  Segments gone from the local journal (shipped and deleted) are found this way
too.

Before the backup's copy is deleted, the rewrite is made durable in the local journal,
so no record that is not forgotten is ever only in flight: a crash, or a server too old
to take the replacement (409), leaves it in the journal, and the uploader (or the next
forget) ships it; the tombstone admits exactly it.
"""

from __future__ import annotations

import hashlib
import os

from ..journal import encryption
from ..journal.forget import Choice, rewritten
from ..journal.format import SEALED_SUFFIX, ZSTD_LEVEL
from ..journal.repair import replace_segment
from .drill import fetch_verified
from .protocol import decompress_segment


async def forget_in_backup(
    sink,
    journal_path: str,
    choice: Choice,
    key: bytes | None,
    forget_id: str,
    *,
    identities=None,
    recipients=None,
    dry_run: bool = False,
) -> dict[str, int]:
    """{segment id: records forgotten (dry: that would be)} in the backup ``sink``.

    ``identities`` decrypt age bodies; ``recipients`` (parsed) encrypt their rewrites
    again: an encrypted body without either raises (DecryptionError, or ValueError before
    anything changed in that segment).  Other failures of the sink propagate: what was
    replaced before stays replaced.
    """
    forgotten: dict[str, int] = {}
    for entry in await sink.list():
        segment_id, sha256 = entry["id"], entry.get("sha256")
        # checked as stored; an age body is decrypted here, its frames checked by rewritten()
        stored = await fetch_verified(sink, segment_id, sha256, ciphertext_suffices=True)
        encrypted = encryption.is_encrypted(stored)
        if encrypted:
            stored = encryption.decrypt(stored, identities, f"segment {segment_id}")
        found = rewritten(segment_id + SEALED_SUFFIX, decompress_segment(stored), choice, key, forget_id)
        if found is None:
            continue
        found_id, runs, new, _ = found
        if found_id != segment_id:
            raise ValueError(f"segment {segment_id} of the backup holds segment {found_id}: left as it is")
        forgotten[segment_id] = sum(last - first + 1 for first, last in runs)
        if dry_run:
            continue
        if encrypted and recipients is None:
            raise ValueError(
                f"segment {segment_id} is age-encrypted in the backup: give the recipients "
                f"to encrypt its rewrite to (--recipient)"
            )
        body, new_sha256 = _body(new, recipients if encrypted else None)
        _keep(journal_path, segment_id, new)
        await _replace(sink, segment_id, body, new_sha256, f"forget {forget_id}")
    return forgotten


def _body(raw: bytes, recipients) -> tuple[bytes, str]:
    """(the body to upload, its hash) of the segment ``raw``, as the uploader makes them."""
    import zstandard

    body = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(raw)
    if recipients is None:
        return body, hashlib.sha256(raw).hexdigest()
    body = encryption.encrypt(body, recipients)
    return body, hashlib.sha256(body).hexdigest()


def _keep(journal_path: str, segment_id: str, raw: bytes) -> None:
    """Write the rewritten segment into the journal, atomically: in place of a copy of the
    segment there (the rewrite of an earlier forget that did not finish, or the original
    kept after its upload) unless that one is encrypted at rest (the local forget rewrote
    it already, and it stays encrypted)."""
    path = os.path.join(journal_path, segment_id + SEALED_SUFFIX)
    try:
        with open(path, "rb") as f:
            if encryption.is_encrypted(f.read(len(encryption.AGE_HEADER))):
                return
    except FileNotFoundError:
        pass
    replace_segment(journal_path, path, None, [raw])


async def _replace(sink, segment_id: str, body: bytes, sha256: str, reason: str) -> None:
    """Delete the stored copy, naming its replacement, then store the replacement."""
    from .sinks.s3 import S3Sink

    if isinstance(sink, S3Sink):  # a bucket uploaders write directly: no tombstones there
        await sink.delete(segment_id)
    else:  # a server (an admin token's right) or a directory: a tombstone naming the new hash
        try:
            tombstone = await sink.delete(segment_id, reason=reason, replaced_by=sha256)
        except KeyError:  # deleted by a forget that died before its upload
            pass
        else:
            if tombstone.get("replaced_by") != sha256:
                raise ValueError(
                    f"{sink!r} deleted segment {segment_id} but cannot take its replacement "
                    f"(a server older than forget): the rewrite stays in the journal"
                )
    await sink.put(segment_id, body, sha256)
