"""Forgetting in a backup: every stored segment holding chosen records is replaced by its
rewrite without them (docs/remote.md, "Forgetting").

Each listed segment is fetched and verified (:func:`.drill.fetch_verified`; an age body is
decrypted with the identities given), rewritten as the local journal rewrites its own
(:func:`..journal.forget.rewritten`: the same segment and forget id give the same bytes, so
a local rewrite shipped later is a duplicate, not a conflict), and replaced: the old copy is
deleted naming the new content's hash (a server's ``DELETE ...?replaced_by=``: admin tokens
only; its tombstone keeps the deletion on record), then the new one is stored under the
same id.  Segments gone from the local journal (shipped and deleted) are found this way
too.  A crash between the deletion and the upload leaves the segment deleted in the
backup and its rewrite in hand: forgetting again uploads it (the tombstone admits it).
"""

from __future__ import annotations

import hashlib

from ..journal import encryption
from ..journal.forget import Choice, rewritten
from ..journal.format import SEALED_SUFFIX
from .drill import fetch_verified
from .protocol import decompress_segment


async def forget_in_backup(
    sink,
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
        found_id, runs, new = found
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
        await _replace(sink, segment_id, body, new_sha256, f"forget {forget_id}")
    return forgotten


def _body(raw: bytes, recipients) -> tuple[bytes, str]:
    """(the body to upload, its hash) of the segment ``raw``, as the uploader makes them."""
    import zstandard

    body = zstandard.ZstdCompressor(level=encryption.ZSTD_LEVEL, write_content_size=True).compress(raw)
    if recipients is None:
        return body, hashlib.sha256(raw).hexdigest()
    body = encryption.encrypt(body, recipients)
    return body, hashlib.sha256(body).hexdigest()


async def _replace(sink, segment_id: str, body: bytes, sha256: str, reason: str) -> None:
    """Delete the stored copy, naming its replacement, then store the replacement."""
    from .sinks.s3 import S3Sink

    if isinstance(sink, S3Sink):  # a bucket uploaders write directly: no tombstones there
        await sink.delete(segment_id)
    else:  # a server (an admin token's right) or a directory: a tombstone naming the new hash
        try:
            await sink.delete(segment_id, reason=reason, replaced_by=sha256)
        except KeyError:  # deleted by a forget that died before its upload
            pass
    await sink.put(segment_id, body, sha256)
