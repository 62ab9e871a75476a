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

Before the backup's copy is deleted, the body of its replacement is made durable in
``<journal>/forgetting/<backup>/<segment id>.<sha256>`` (removed once stored), so no
record that is not forgotten is ever only in flight: after a crash, or a server too old
to take the replacement, the next forget in that backup uploads it first (the tombstone
admits exactly it).  It is not put among the journal's segments: a backup's namespace may hold
other hosts' segments, which this journal's uploader must not ship elsewhere.
"""

from __future__ import annotations

import hashlib
import os

from .. import _faults
from .._fs import fsync_dir, write_temp
from ..journal import encryption
from ..journal.forget import Choice, rewritten
from ..journal.format import SEALED_SUFFIX, ZSTD_LEVEL
from .destinations import derived_name
from .drill import fetch_verified
from .protocol import decompress_segment, valid_segment_id, valid_sha256

#: where the bodies of replacements wait until the backup stored them (see above)
PENDING_DIR = "forgetting"


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
    if not dry_run:
        await _finish_pending(sink, journal_path)
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
        pending = _keep(journal_path, sink, segment_id, new_sha256, body)
        await _replace(sink, segment_id, body, new_sha256, f"forget {forget_id}")
        os.unlink(pending)
    return forgotten


def _body(raw: bytes, recipients) -> tuple[bytes, str]:
    """(the body to upload, its hash) of the segment ``raw``, as the uploader makes them."""
    import zstandard

    body = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(raw)
    if recipients is None:
        return body, hashlib.sha256(raw).hexdigest()
    body = encryption.encrypt(body, recipients)
    return body, hashlib.sha256(body).hexdigest()


def _pending_dir(journal_path: str, sink) -> str:
    """``<journal>/forgetting/<the backup's derived name>``: each backup's own."""
    return os.path.join(journal_path, PENDING_DIR, derived_name(sink))


def _keep(journal_path: str, sink, segment_id: str, sha256: str, body: bytes) -> str:
    """Make the replacement's body durable in the backup's pending directory; its path."""
    directory = _pending_dir(journal_path, sink)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, f"{segment_id}.{sha256}")
    os.replace(write_temp(directory, f"{segment_id}.{sha256}", body), path)
    fsync_dir(directory)
    return path


async def _finish_pending(sink, journal_path: str) -> None:
    """Upload the replacements an earlier forget made durable but did not store (it died
    between the deletion and the upload); each goes once stored, or at once when the
    backup still lists its segment (the deletion never happened, as when the token could
    not delete: the listing's segment is forgotten in as any other)."""
    directory = _pending_dir(journal_path, sink)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return
    listed = {e["id"] for e in await sink.list()}
    for name in names:
        segment_id, _, sha256 = name.partition(".")
        if not (valid_segment_id(segment_id) and valid_sha256(sha256)):
            continue  # (a temp file left by a crash mid-write: nothing was deleted for it)
        if segment_id not in listed:
            with open(os.path.join(directory, name), "rb") as f:
                await sink.put(segment_id, f.read(), sha256)
        os.unlink(os.path.join(directory, name))


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
                    f"(a server older than forget): its body stays in the journal's {PENDING_DIR}/"
                )
    _faults.point("forget.replace")  # deleted in the backup, its replacement not yet stored
    await sink.put(segment_id, body, sha256)
