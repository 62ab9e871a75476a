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

With a key store (crypto-shredding, :mod:`.keystores`), an encrypted segment is opened with
its data key, its replacement is sealed to a new data key (stored before the replacement
is), and once the replacement is stored the old version's key is destroyed
(:meth:`.keystores.KeyStore.shred`), so every copy of the old version, wherever it is,
can no longer be read; each shred is a line of the journal's forgotten log.  The shred to
do is made durable beside the replacement's body first (``<segment id>.<old sha256>.shred``),
so a forget that dies after the replacement and before the shred leaves it to the next one.
"""

from __future__ import annotations

import json
import os
import time

from .. import _faults
from .._fs import fsync_dir, write_temp
from ..journal import encryption, forgotten
from ..journal.forget import Choice, container_names, rewritten
from ..journal.format import SEALED_SUFFIX
from . import _prepared
from .destinations import derived_name
from .drill import fetch_verified
from .keystores import data_keys
from .protocol import decompress_segment, valid_segment_id, valid_sha256

#: where the bodies of replacements wait until the backup stored them (see above)
PENDING_DIR = "forgetting"
#: the suffix of a shred waiting in PENDING_DIR
SHRED_SUFFIX = ".shred"


async def forget_in_backup(
    sink,
    journal_path: str,
    choice: Choice,
    key: bytes | None,
    forget_id: str,
    *,
    identities=None,
    recipients=None,
    key_store=None,
    dry_run: bool = False,
) -> dict[str, int]:
    """{segment id: records forgotten (dry: that would be)} in the backup ``sink``.

    ``identities`` decrypt age bodies (with ``key_store``: unwrap their data keys);
    ``recipients`` (parsed) encrypt their rewrites again (with ``key_store``: wrap the
    rewrites' new data keys): an encrypted body without either raises (DecryptionError,
    or ValueError before anything changed in that segment).  Other failures of the sink
    propagate: what was replaced (and shredded) before stays so.
    """
    done: dict[str, int] = {}
    if not dry_run:
        await _finish_pending(sink, journal_path, key_store)
    for entry in await sink.list():
        segment_id, sha256 = entry["id"], entry.get("sha256")
        # checked as stored; an age body is decrypted here, its frames checked by rewritten()
        stored = await fetch_verified(sink, segment_id, sha256, ciphertext_suffices=True)
        encrypted, keyed = encryption.is_encrypted(stored), False
        if encrypted:
            opening = identities
            if key_store is not None and identities is not None:
                opening, long_term = await data_keys.identities_for(key_store, segment_id, sha256, identities)
                keyed = not long_term
            stored = encryption.decrypt(stored, opening, f"segment {segment_id}")
        raw = decompress_segment(stored)
        found = rewritten(segment_id + SEALED_SUFFIX, raw, choice, key, forget_id)
        if found is None:
            continue
        found_id, runs, new, names = found
        if found_id != segment_id:
            raise ValueError(f"segment {segment_id} of the backup holds segment {found_id}: left as it is")
        done[segment_id] = sum(last - first + 1 for first, last in runs)
        if dry_run:
            continue
        if encrypted and recipients is None:
            raise ValueError(
                f"segment {segment_id} is age-encrypted in the backup: give the recipients "
                f"to encrypt its rewrite to (--recipient)"
            )
        # as the uploader makes it, and kept for it if the segment is still here to ship
        here = os.path.exists(os.path.join(journal_path, segment_id + SEALED_SUFFIX))
        body, new_sha256, wrapped = _prepared.made(
            journal_path, segment_id, new, recipients if encrypted else None, key_store is not None, here
        )
        if wrapped is not None:  # the new key before the new segment, as the uploader does
            await key_store.put(segment_id, new_sha256, wrapped)
        pending = _keep(journal_path, sink, f"{segment_id}.{new_sha256}", body)
        shred = None
        if keyed:  # the old version's key goes once the replacement is stored
            # sealed into the marker: a pull of an old copy says which containers it cannot read
            held = container_names(segment_id + SEALED_SUFFIX, raw)
            details = {"containers": names, "held": held, "records": done[segment_id], "seqs": runs}
            note = {
                "forget": forget_id,
                "asked": choice.asked,
                "sealed": data_keys.seal_details(details, recipients),
                "details": details,
            }
            shred = _keep(
                journal_path, sink, f"{segment_id}.{sha256}{SHRED_SUFFIX}", json.dumps(note).encode()
            )
        await _replace(sink, segment_id, body, new_sha256, f"forget {forget_id}")
        if shred is not None:
            await _shred(sink, journal_path, key_store, shred)
        os.unlink(pending)
    return done


def _pending_dir(journal_path: str, sink) -> str:
    """``<journal>/forgetting/<the backup's derived name>``: each backup's own."""
    return os.path.join(journal_path, PENDING_DIR, derived_name(sink))


def _keep(journal_path: str, sink, name: str, body: bytes) -> str:
    """Make ``body`` durable as ``name`` in the backup's pending directory (a replacement's
    body: ``<segment id>.<sha256>``; a shred to do: ``<segment id>.<old sha256>.shred``);
    its path."""
    directory = _pending_dir(journal_path, sink)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, name)
    os.replace(write_temp(directory, name, body), path)
    fsync_dir(directory)
    return path


async def _finish_pending(sink, journal_path: str, key_store) -> None:
    """Upload the replacements an earlier forget made durable but did not store (it died
    between the deletion and the upload); each goes once stored, or at once when the
    backup still lists its segment (the deletion never happened, as when the token could
    not delete: the listing's segment is forgotten in as any other).  Then the shreds it
    left: each is done once its segment's old version is no longer listed."""
    directory = _pending_dir(journal_path, sink)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return
    listed = {e["id"]: e.get("sha256") for e in await sink.list()}
    shreds = []
    for name in names:
        if name.endswith(SHRED_SUFFIX):
            shreds.append(name)
            continue
        segment_id, _, sha256 = name.partition(".")
        if not (valid_segment_id(segment_id) and valid_sha256(sha256)):
            continue  # (a temp file left by a crash mid-write: nothing was deleted for it)
        if segment_id not in listed:
            with open(os.path.join(directory, name), "rb") as f:
                await sink.put(segment_id, f.read(), sha256)
            listed[segment_id] = sha256
        os.unlink(os.path.join(directory, name))
    for name in shreds:
        segment_id, _, sha256 = name.removesuffix(SHRED_SUFFIX).partition(".")
        if listed.get(segment_id) == sha256:
            os.unlink(os.path.join(directory, name))  # never replaced: it is forgotten in anew
            continue
        if key_store is None:
            raise ValueError(
                f"an earlier forget replaced segment {segment_id} in {sink!r} but did not destroy "
                f"its old data key: give the key store (--key-store) to finish it"
            )
        await _shred(sink, journal_path, key_store, os.path.join(directory, name))


async def _shred(sink, journal_path: str, key_store, path: str) -> None:
    """Destroy the data key a pending shred names, log it in the forgotten log (once),
    then drop the pending shred."""
    segment_id, _, sha256 = os.path.basename(path).removesuffix(SHRED_SUFFIX).partition(".")
    with open(path, "rb") as f:
        note = json.loads(f.read())
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _faults.point("forget.shred")  # the replacement is stored, the old key not yet destroyed
    await key_store.shred(segment_id, sha256, note["forget"], when, note["sealed"])
    if not forgotten.has_shred(journal_path, note["forget"], segment_id, sha256):
        details = note["details"]
        shredded = {"sha256": sha256, "key_store": repr(key_store), "backup": repr(sink)}
        # (the forget's own line names the containers it forgot, as its other lines do)
        entry = forgotten.Entry(
            note["forget"],
            when,
            note["asked"],
            segment_id,
            details["records"],
            details["seqs"],
            details["containers"],
            shredded,
        )
        forgotten.append(journal_path, [entry])
    os.unlink(path)
    fsync_dir(os.path.dirname(path))


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
