"""age encryption of sealed segments (docs/security.md): recipients, identities, the header.

A segment that leaves the host, and with ``Journal(encrypt_to=...)`` a sealed segment at
rest, is an age file (https://age-encryption.org/v1, X25519 recipients) whose plaintext
is the zstd-compressed segment: the very body the uploader would send unencrypted.  Such
a body starts with :data:`AGE_HEADER`, which no zstd frame and no segment does, so a
receiver tells an encrypted body from a plain one by its first bytes alone.

age authenticates the ciphertext (a tampered byte fails decryption), not its sender:
anyone who knows a recipient can encrypt to it.  So what decryption yields is checked
like any segment received from elsewhere (bounded decompression, header, every CRC)
before anything reads it.

pyrage (the ``encrypt`` extra) is imported on first use: ``import safe_data`` and every
unencrypted path stay without it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..errors import MissingDependencyError, SafeDataError

__all__ = [
    "AGE_HEADER",
    "IDENTITY_ENV",
    "DecryptionError",
    "is_encrypted",
    "parse_recipients",
    "read_identities",
    "identity_from_env",
    "encrypt",
    "decrypt",
    "new_identity",
]

#: the first bytes of every age file
AGE_HEADER = b"age-encryption.org/v1\n"
#: an identity file for the readers and ``safe-data pull`` when none is given
IDENTITY_ENV = "SAFE_DATA_IDENTITY_FILE"
INSTALL = "pip install 'safe_data[encrypt]'"


class DecryptionError(SafeDataError, ValueError):
    """An encrypted segment cannot be decrypted: no identity given, not one of its
    recipients, or a damaged ciphertext."""


def _pyrage(what: str):
    try:
        import pyrage
    except ImportError as exc:
        raise MissingDependencyError(f"{what} needs pyrage, which is not installed: {INSTALL}") from exc
    return pyrage


def is_encrypted(head: bytes) -> bool:
    """Whether a body (or its first bytes) is an age file."""
    return bytes(head[: len(AGE_HEADER)]) == AGE_HEADER


def parse_recipients(recipients: Iterable[str]) -> list:
    """pyrage recipients of ``age1...`` strings; ValueError naming a malformed one."""
    recipients = [recipients] if isinstance(recipients, str) else list(recipients)
    if not recipients:
        raise ValueError("at least one age recipient (age1...) is needed to encrypt")
    pyrage = _pyrage("encrypting segments")
    parsed = []
    for text in recipients:
        try:
            parsed.append(pyrage.x25519.Recipient.from_str(str(text).strip()))
        except pyrage.RecipientError as exc:
            raise ValueError(f"{text!r} is not an age X25519 recipient (age1...): {exc}") from None
    return parsed


def read_identities(path: str | os.PathLike) -> list:
    """The X25519 identities (``AGE-SECRET-KEY-1...`` lines) of an age identity file;
    ``#`` lines and blank lines are skipped.  DecryptionError if it holds none."""
    pyrage = _pyrage("decrypting segments")
    path = os.fspath(path)
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            lines = [line.strip() for line in f]
    except OSError as exc:
        raise DecryptionError(f"cannot read the identity file {path}: {exc.strerror or exc}") from None
    identities = []
    for number, line in enumerate(lines, 1):
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise DecryptionError(
                f"{path}, line {number}: not an age identity (AGE-SECRET-KEY-1...)"
            ) from None
    if not identities:
        raise DecryptionError(f"{path} holds no age identity (AGE-SECRET-KEY-1...)")
    return identities


def identity_from_env() -> str | None:
    """The identity file named by ``SAFE_DATA_IDENTITY_FILE``, or None."""
    return os.environ.get(IDENTITY_ENV) or None


def encrypt(data: bytes, recipients: list) -> bytes:
    """``data`` as an age file for the parsed ``recipients``."""
    return _pyrage("encrypting segments").encrypt(bytes(data), recipients)


def decrypt(body: bytes, identities: list | None, what: str) -> bytes:
    """The plaintext of the age file ``body`` (``what`` names it in errors).

    DecryptionError when ``identities`` is None (none given), none of them is a recipient,
    or the ciphertext is damaged: age tells the last two apart, and so does the message.
    """
    if identities is None:
        raise DecryptionError(
            f"{what} is age-encrypted: give the identity it was encrypted to "
            f"(--identity FILE, or {IDENTITY_ENV})"
        )
    pyrage = _pyrage("decrypting segments")
    try:
        return pyrage.decrypt(bytes(body), identities)
    except pyrage.DecryptError as exc:
        if "no matching keys" in str(exc).lower():
            raise DecryptionError(
                f"{what} is encrypted to another recipient: the identity given is not one of its keys"
            ) from None
        raise DecryptionError(f"{what}: the ciphertext is damaged or was tampered with ({exc})") from None


def new_identity() -> tuple[str, str]:
    """A new X25519 identity: (secret key ``AGE-SECRET-KEY-1...``, recipient ``age1...``)."""
    identity = _pyrage("generating an identity").x25519.Identity.generate()
    return str(identity), str(identity.to_public())
