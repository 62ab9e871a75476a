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
import threading
from collections.abc import Iterable

from ..errors import MissingDependencyError, SafeDataError
from .format import MAX_SEGMENT_BYTES, ZSTD_LEVEL

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
    "parse_identity",
    "seal_file",
    "seal_plaintext_segments",
    "open_at_rest",
    "reader_identities",
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
            f"({IDENTITY_ENV}, or pull --identity FILE)"
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


def parse_identity(text: str):
    """The X25519 identity of an ``AGE-SECRET-KEY-1...`` string; DecryptionError if it is not one."""
    pyrage = _pyrage("decrypting segments")
    try:
        return pyrage.x25519.Identity.from_str(text.strip())
    except pyrage.IdentityError:
        raise DecryptionError("not an age identity (AGE-SECRET-KEY-1...)") from None


# --- sealed segments at rest (Journal(encrypt_to=...)) ---------------------------------------


def seal_file(path: str, recipients: list, durable: bool) -> bool:
    """Replace the plaintext sealed segment at ``path`` by its age file (of its zstd
    compression: the body an uploader sends), atomically; drop its index, which names its
    containers.  False if it is gone or already encrypted."""
    import zstandard  # lazy: only an encrypting journal compresses at seal

    from .._fs import fsync, fsync_dir, write_all
    from .format import index_path

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return False
    if is_encrypted(raw):
        return False
    body = encrypt(
        zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(raw), recipients
    )
    tmp = f"{path}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, body)
        if durable:
            fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    try:
        os.unlink(index_path(path))
    except FileNotFoundError:
        pass
    if durable:
        fsync_dir(os.path.dirname(path))
    return True


def seal_plaintext_segments(directory: str, recipients: list, durable: bool) -> int:
    """Encrypt every sealed segment of ``directory`` still in plaintext (sealed before
    ``encrypt_to`` was given, by a process without it, or left so by a crash between a
    seal and its encryption); how many."""
    from .format import SEALED_SUFFIX

    done = 0
    for name in sorted(os.listdir(directory)):
        if name.endswith(SEALED_SUFFIX):
            done += seal_file(os.path.join(directory, name), recipients, durable)
    return done


_identities_lock = threading.Lock()
_identities_cache: dict = {}


def reader_identities() -> list | None:
    """The identities of ``SAFE_DATA_IDENTITY_FILE`` for the readers (cached while the file
    is unchanged), or None when it is not set."""
    path = identity_from_env()
    if path is None:
        return None
    stamp: tuple
    try:
        st = os.stat(path)
        stamp = (path, st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (path, None, None)
    with _identities_lock:
        if stamp not in _identities_cache:
            _identities_cache.clear()
            _identities_cache[stamp] = read_identities(path)
        return _identities_cache[stamp]


def open_at_rest(body: bytes, what: str) -> bytes:
    """The segment in an age file at rest, decrypted with :func:`reader_identities` and
    decompressed (at most :data:`MAX_SEGMENT_BYTES`).  DecryptionError says why not.
    The caller verifies its frames as for any segment."""
    import zstandard

    plain = decrypt(body, reader_identities(), what)
    try:
        # the size a frame declares is what zstd allocates: never more than the limit
        declared = zstandard.get_frame_parameters(plain).content_size
        if declared != zstandard.CONTENTSIZE_UNKNOWN and declared > MAX_SEGMENT_BYTES:
            raise DecryptionError(f"{what}: decrypted, but declares {declared} bytes, over the limit")
        return zstandard.ZstdDecompressor().decompress(plain, max_output_size=MAX_SEGMENT_BYTES)
    except zstandard.ZstdError as exc:
        raise DecryptionError(f"{what}: decrypted, but not a zstd-compressed segment ({exc})") from None
