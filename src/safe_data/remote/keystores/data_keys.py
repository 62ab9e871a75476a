"""Per-segment data keys: sealing a body to a fresh one, finding it again to open it.

A body shipped with a key store is an age file encrypted to one recipient only: the
public half of a new X25519 identity made for it.  That identity's secret
(``AGE-SECRET-KEY-1...``) is *wrapped*: age-encrypted to the long-term recipients, so
that the key store holds nothing it can read, and the long-term identity is still what a
restore needs (with the key store).
"""

from __future__ import annotations

import base64
import hashlib
import json

from ...journal import encryption
from . import KeyStore, Shredded

__all__ = ["seal", "identities_for", "seal_details", "unseal_details"]


def seal(body: bytes, recipients: list) -> tuple[bytes, str, bytes]:
    """(ciphertext, its SHA-256, the wrapped data key) of ``body`` encrypted to a fresh
    data key; ``recipients`` (parsed) are the long-term ones the data key is wrapped to."""
    secret, public = encryption.new_identity()
    ciphertext = encryption.encrypt(body, encryption.parse_recipients([public]))
    return ciphertext, hashlib.sha256(ciphertext).hexdigest(), encryption.encrypt(secret.encode(), recipients)


async def identities_for(
    store: KeyStore, segment_id: str, sha256: str, identities: list
) -> tuple[list, bool]:
    """(the identities that open the version ``sha256`` of a segment, whether they are the
    long-term ``identities`` themselves): its data key, unwrapped with ``identities``; or,
    when the store has no key and no marker for it (pushed without a key store), the
    long-term ones.  :class:`.Shredded` if its key was destroyed."""
    wrapped = await store.get(segment_id, sha256)
    if wrapped is None:
        marker = await store.marker(segment_id, sha256)
        if marker is not None:
            raise Shredded(segment_id, sha256, marker)
        return identities, True
    secret = encryption.decrypt(wrapped, identities, f"the data key of segment {segment_id}")
    return [encryption.parse_identity(secret.decode("ascii", "replace"))], False


def seal_details(details: dict, recipients: list) -> str:
    """``details`` (what a shred forgot: container names, records) as text for a marker,
    readable with the long-term identities only: the key store learns no names."""
    sealed = encryption.encrypt(json.dumps(details, sort_keys=True).encode(), recipients)
    return base64.b64encode(sealed).decode("ascii")


def unseal_details(sealed, identities: list | None) -> dict:
    """What :func:`seal_details` sealed, or {} if it cannot be read."""
    if not isinstance(sealed, str) or identities is None:
        return {}
    try:
        details = json.loads(encryption.decrypt(base64.b64decode(sealed), identities, "a shred marker"))
    except (ValueError, encryption.DecryptionError):
        return {}
    return details if isinstance(details, dict) else {}
