"""The remote layout in one place (docs/remote.md): names, the directory form, checks.

A remote copy keeps each sealed segment under ``<namespace>/<segment id>``: in a
directory (the backup server's :class:`~safe_data.server.stores.directory.DirectoryStore`,
which the :class:`~safe_data.remote.sinks.directory.DirectorySink` writes through) as
``<id>.seg.zst``, the zstd-compressed segment, and ``<id>.sha256``, the hex SHA-256 of the
decompressed segment; in S3 as the object ``<prefix><namespace>/<id>.seg.zst``.  An entry
of a directory counts once both files are present and the hash is well formed (read here;
the order they are written in is explained where they are written).

Also here: the checks of a segment received from elsewhere (bounded decompression of its
zstd body, verification of its header and frames), shared by the backup server and the
sinks that read segments back, and the one reading of ``Retry-After`` every sink uses.
Nothing here needs a network library; zstandard is imported when first needed.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import hashlib
import io
import math
import os
import re

from ..journal import format as fmt
from ..journal.encryption import is_encrypted
from ..journal.format import MAX_SEGMENT_BYTES
from .verify import InvalidSegment, SegmentTooLarge, SegmentVerifier, check_encrypted, frame_window

__all__ = [
    "BODY_SUFFIX",
    "HASH_SUFFIX",
    "MAX_SEGMENT_BYTES",
    "MAX_RETRY_AFTER",
    "valid_segment_id",
    "valid_namespace",
    "valid_sha256",
    "read_hash",
    "committed",
    "list_committed",
    "InvalidSegment",
    "SegmentTooLarge",
    "decompress_bounded",
    "decompress_segment",
    "verify_segment",
    "check_stored",
    "parse_retry_after",
]

# --- names -----------------------------------------------------------------------------------

NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
SHA256 = re.compile(r"[0-9a-f]{64}")

#: a stored body: the sealed segment's name, zstd-compressed
BODY_SUFFIX = fmt.SEALED_SUFFIX + ".zst"
HASH_SUFFIX = ".sha256"


valid_segment_id = fmt.is_segment_id


def valid_namespace(namespace) -> bool:
    return isinstance(namespace, str) and NAMESPACE.fullmatch(namespace) is not None


def valid_sha256(sha256) -> bool:
    return isinstance(sha256, str) and SHA256.fullmatch(sha256) is not None


# --- the directory form, read side -----------------------------------------------------------


def read_hash(path: str) -> str | None:
    """The hash in a ``.sha256`` file; None if the file is absent or holds no valid hash."""
    try:
        with open(path, "rb") as f:
            text = f.read(200).decode("ascii", "replace").strip()
    except FileNotFoundError:
        return None
    return text if valid_sha256(text) else None


def committed(directory: str, segment_id: str) -> tuple[str, str] | None:
    """``(path of the body, sha256)`` of the entry in a namespace directory, or None."""
    sha256 = read_hash(os.path.join(directory, segment_id + HASH_SUFFIX))
    path = os.path.join(directory, segment_id + BODY_SUFFIX)
    if sha256 is None or not os.path.isfile(path):
        return None
    return path, sha256


def list_committed(directory: str) -> list[dict]:
    """The entries of a namespace directory, sorted by id: ``{"id", "sha256", "size"}``,
    ``size`` being the compressed body's (an absent directory has none)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    out = []
    for name in sorted(names):
        segment_id = name[: -len(HASH_SUFFIX)]
        if not name.endswith(HASH_SUFFIX) or not valid_segment_id(segment_id):
            continue
        sha256 = read_hash(os.path.join(directory, name))
        try:
            size = os.stat(os.path.join(directory, segment_id + BODY_SUFFIX)).st_size
        except FileNotFoundError:
            continue
        if sha256 is not None:
            out.append({"id": segment_id, "sha256": sha256, "size": size})
    return out


# --- checking a received segment -------------------------------------------------------------

_READ_CHUNK = 1 << 16
_INFLATE_CHUNK = 1 << 20


def decompress_bounded(body: bytes, max_segment_bytes: int) -> tuple[bytes, str]:
    """Decompress a one-frame zstd body; return (segment bytes, their SHA-256 hex).

    Raise SegmentTooLarge past ``max_segment_bytes`` and InvalidSegment if the body is
    not exactly one complete zstd frame.  The content size in the frame header is never
    trusted to accept anything; it only lets an honest oversized upload be refused first.

    Two passes: the first streams the frame in bounded chunks (so a bomb stops at the
    limit, costing no memory) and hashes what comes out; only when that proved the output
    small enough, the second decompresses it whole, which also tells whether the frame
    was complete (a truncated frame just ends a stream early) and nothing follows it.
    """
    import zstandard  # lazy: a tenth of a second, and only receivers and readers need it

    window = frame_window(zstandard, body, max_segment_bytes)
    dctx = zstandard.ZstdDecompressor(max_window_size=window)
    digest = hashlib.sha256()
    size = 0
    try:
        with dctx.stream_reader(io.BytesIO(body), read_size=_READ_CHUNK) as reader:
            while True:
                chunk = reader.read(_INFLATE_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_segment_bytes:
                    raise SegmentTooLarge(f"segment exceeds the limit of {max_segment_bytes} bytes")
                digest.update(chunk)
        dobj = dctx.decompressobj()
        data = dobj.decompress(body)
    except zstandard.ZstdError as exc:
        raise InvalidSegment(f"zstd: {exc}") from None
    if not dobj.eof:
        raise InvalidSegment("zstd: truncated frame")
    if dobj.unused_data:
        raise InvalidSegment("zstd: data after the frame (one frame expected)")
    if len(data) != size:  # cannot happen: the same bytes decompressed twice
        raise InvalidSegment("zstd: inconsistent decompression")
    return data, digest.hexdigest()


def decompress_checked(body: bytes, limit: int = MAX_SEGMENT_BYTES) -> tuple[bytes, str]:
    """:func:`decompress_bounded` for the sinks: (segment bytes, SHA-256 hex); ValueError
    past ``limit`` bytes or for anything that is not one zstd frame."""
    try:
        return decompress_bounded(body, limit)
    except SegmentTooLarge:
        raise ValueError(f"segment larger than {limit} bytes once decompressed") from None


def decompress_segment(body: bytes, limit: int = MAX_SEGMENT_BYTES) -> bytes:
    """Decompress a zstd body, refusing more than ``limit`` bytes whatever the frame header
    claims (ValueError); see :func:`decompress_bounded`."""
    return decompress_checked(body, limit)[0]


def verify_segment(data, segment_id: str | None = None) -> None:
    """Check a sealed segment's header and every frame's length and CRC32C.

    Raise InvalidSegment with the reason.  Nothing is decoded or unpickled.  With
    ``segment_id``, the header's writer id and segment number must match it.  (The
    checks of :class:`~safe_data.remote.verify.SegmentVerifier`, on bytes at hand.)
    """
    verifier = SegmentVerifier(segment_id)
    verifier.write(data)
    verifier.close()


def check_stored(body: bytes, sha256: str, limit: int = MAX_SEGMENT_BYTES) -> None:
    """A sink's check of a body before it stores it: an age file's form and ciphertext
    hash, or a zstd body's decompressed hash (ValueError with the reason)."""
    if is_encrypted(body):
        check_encrypted(io.BytesIO(body), sha256)
    elif decompress_checked(body, limit)[1] != sha256:
        raise ValueError("content does not match its sha256")


# --- Retry-After -----------------------------------------------------------------------------

#: the longest wait a ``Retry-After`` may impose: a misconfigured server or proxy must not
#: park a segment for days (it stays on local disk meanwhile, so waiting is safe, only late)
MAX_RETRY_AFTER = 3600.0
_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or None if it says nothing usable.

    Either delta-seconds (RFC 9110: digits; a fraction is accepted too) or an HTTP date
    (a date without a zone is UTC, one in the past means now: 0).  Anything else
    (negative, ``inf``/``nan``, exponents, garbage) is None.  At most
    :data:`MAX_RETRY_AFTER`.
    """
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None:  # Python < 3.10 answers None to some garbage
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.timezone.utc)
        seconds = max(0.0, (when - _dt.datetime.now(_dt.timezone.utc)).total_seconds())
    if not math.isfinite(seconds):
        return None
    return min(seconds, MAX_RETRY_AFTER)
