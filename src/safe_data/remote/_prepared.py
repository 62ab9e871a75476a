"""The bodies of encrypted segments, made once (docs/remote.md, *Encryption*).

age encryption is randomised: a segment encrypted again is another body, with another
hash, under the same id, which a store that took the first one refuses for good (409), and
several destinations would hold different bodies.  So the uploader makes the body of a
segment it encrypts (and, with a key store, its wrapped data key) once: durably, in
``<journal>/uploading/<segment id>.<SHA-256 of the segment>/`` (``body``, ``key``),
before it is first sent anywhere.  Every later attempt, destination and run sends it as it
is, until the segment is freed or gone.

The directory is built under a temp name (each file fsynced, then the directory) and
renamed into place; the rename fails if another uploader of the journal won, whose body is
then taken.  A crash leaves either no body (none was sent) or a whole one.  The segment's
hash in the name ties the body to the segment's content: a segment rewritten since (a
forget) does not match it.  A stale body still decrypts to the values the rewrite took
out, so it goes as soon as the rewrite is in place (:func:`drop_other_versions`, called
by ``safe_data.forget``), or at the uploader's next round if a forget died in between.
A forget in a backup keeps the body of the rewrite it stores there, so the uploader sends
the same one to the journal's other destinations.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil

from .._fs import fsync_dir, write_temp
from ..journal import encryption
from ..journal import format as fmt
from .keystores import data_keys
from .sinks import RejectedError

__all__ = ["PREPARED_DIR", "made", "load", "keep", "remove", "drop_other_versions", "tidy"]

#: where the bodies wait, in the journal directory
PREPARED_DIR = "uploading"
_BODY = "body"
_KEY = "key"


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def made(
    journal_path: str,
    segment_id: str,
    raw: bytes,
    recipients: list | None,
    data_key: bool,
    keep_it: bool = True,
) -> tuple[bytes, str, bytes | None]:
    """(body, its SHA-256, wrapped data key or None) of the segment ``raw`` as it is sent:
    its zstd body (whose hash is the segment's); with ``recipients``, the age file of that,
    hashed as it is, sealed to a fresh data key alone with ``data_key``
    (:mod:`.keystores.data_keys`).  An encrypted body is made once per content of the
    segment and kept (unless not ``keep_it``); one kept before is taken as it is, whatever
    the options now: it may be stored somewhere already."""
    import zstandard  # lazy: only what ships segments compresses

    raw_sha256 = hashlib.sha256(raw).hexdigest()
    kept = load(journal_path, segment_id, raw_sha256)
    if kept is not None:
        body, wrapped = kept
        if wrapped is not None and not data_key:
            raise RejectedError(
                f"segment {segment_id} was encrypted to a data key by an earlier upload, which may "
                f"have stored it: give the key store (--key-store) to ship it"
            )
        return body, hashlib.sha256(body).hexdigest(), wrapped
    body = zstandard.ZstdCompressor(level=fmt.ZSTD_LEVEL, write_content_size=True).compress(raw)
    if recipients is None:
        return body, raw_sha256, None
    wrapped = None
    if data_key:
        body, _, wrapped = data_keys.seal(body, recipients)
    else:
        body = encryption.encrypt(body, recipients)
    if keep_it:
        body, wrapped = keep(journal_path, segment_id, raw_sha256, body, wrapped)
    return body, hashlib.sha256(body).hexdigest(), wrapped


def load(journal_path: str, segment_id: str, segment_sha256: str) -> tuple[bytes, bytes | None] | None:
    """(body, wrapped data key or None) kept for this content of a segment, or None."""
    folder = os.path.join(journal_path, PREPARED_DIR, f"{segment_id}.{segment_sha256}")
    try:
        body = _read(os.path.join(folder, _BODY))
    except FileNotFoundError:
        return None
    try:
        wrapped = _read(os.path.join(folder, _KEY))
    except FileNotFoundError:
        wrapped = None
    return body, wrapped


def keep(
    journal_path: str, segment_id: str, segment_sha256: str, body: bytes, wrapped: bytes | None
) -> tuple[bytes, bytes | None]:
    """Make ``body`` (and ``wrapped``) the durable body of this content of a segment; what
    is kept: these, or those another uploader kept first."""
    parent = os.path.join(journal_path, PREPARED_DIR)
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=0o700, exist_ok=True)
        fsync_dir(journal_path)
    name = f"{segment_id}.{segment_sha256}"
    tmp = os.path.join(parent, f".{name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    os.mkdir(tmp, 0o700)
    try:
        for part, data in ((_BODY, body), (_KEY, wrapped)):
            if data is not None:
                os.rename(write_temp(tmp, part, data), os.path.join(tmp, part))
        fsync_dir(tmp)
        os.rename(tmp, os.path.join(parent, name))
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        kept = load(journal_path, segment_id, segment_sha256)
        if kept is None:  # (removed meanwhile: the segment is freed)
            raise
        return kept
    fsync_dir(parent)
    return body, wrapped


def _entries(journal_path: str) -> list[tuple[str, str]]:
    """(segment id, name) of every entry, temp ones too (``.<id>....tmp``)."""
    try:
        names = os.listdir(os.path.join(journal_path, PREPARED_DIR))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        segment_id = name.lstrip(".").split(".", 1)[0]
        if fmt.is_segment_id(segment_id):
            out.append((segment_id, name))
    return out


def _remove_where(journal_path: str, doomed) -> None:
    """Remove the entries of the segments ``doomed(id)`` is true for (no fsync: one that
    comes back after a crash belongs to a segment gone, and goes at the next tidy)."""
    for segment_id, name in _entries(journal_path):
        if doomed(segment_id):
            shutil.rmtree(os.path.join(journal_path, PREPARED_DIR, name), ignore_errors=True)


def remove(journal_path: str, segment_ids) -> None:
    """Remove the bodies of these segments (freed)."""
    ids = set(segment_ids)
    if ids:
        _remove_where(journal_path, ids.__contains__)


def drop_other_versions(journal_path: str, segment_ids) -> None:
    """Remove the bodies of these segments that are not of their present content (a
    forget rewrote them): those would still decrypt to what the rewrite took out."""
    ids = set(segment_ids)
    hashes: dict[str, str | None] = {}
    for segment_id, name in _entries(journal_path):
        if segment_id not in ids or name.startswith("."):
            continue
        if segment_id not in hashes:
            try:
                with open(os.path.join(journal_path, segment_id + fmt.SEALED_SUFFIX), "rb") as f:
                    hashes[segment_id] = hashlib.sha256(f.read()).hexdigest()
            except FileNotFoundError:
                hashes[segment_id] = None  # gone: its bodies go with the others of segments gone
        if hashes[segment_id] is not None and name != f"{segment_id}.{hashes[segment_id]}":
            shutil.rmtree(os.path.join(journal_path, PREPARED_DIR, name), ignore_errors=True)


def tidy(journal_path: str, needed) -> None:
    """Remove the bodies of every segment but the ``needed`` ones (present, and missed by
    a destination): orphans of segments freed or gone, and temp directories of a crash;
    and those of another version of a needed segment (a forget died before it dropped them)."""
    needed = set(needed)
    _remove_where(journal_path, lambda segment_id: segment_id not in needed)
    drop_other_versions(journal_path, needed)
