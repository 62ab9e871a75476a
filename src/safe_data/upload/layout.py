"""The names of the remote layout and the read side of its directory form (docs/remote.md).

A remote copy keeps each sealed segment under ``<namespace>/<segment id>``: in a
directory (the backup server's :class:`~safe_data.upload.store.DirectoryStore` and the
:class:`~safe_data.upload.sinks.DirectorySink`) as ``<id>.seg.zst``, the zstd-compressed
segment, and ``<id>.sha256``, the hex SHA-256 of the decompressed segment.  Both writers
write this layout (each in its own order, explained where it is written), and both read
it here: an entry counts once both files are present and the hash is well formed.
"""

from __future__ import annotations

import os
import re

#: ``<writer id, 16 hex digits>-<segment number, 6 digits>``
SEGMENT_ID = re.compile(r"[0-9a-f]{16}-[0-9]{6}")
NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
SHA256 = re.compile(r"[0-9a-f]{64}")

BODY_SUFFIX = ".seg.zst"
HASH_SUFFIX = ".sha256"


def valid_segment_id(segment_id) -> bool:
    return isinstance(segment_id, str) and SEGMENT_ID.fullmatch(segment_id) is not None


def valid_namespace(namespace) -> bool:
    return isinstance(namespace, str) and NAMESPACE.fullmatch(namespace) is not None


def valid_sha256(sha256) -> bool:
    return isinstance(sha256, str) and SHA256.fullmatch(sha256) is not None


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
        segment_id = name[:-len(HASH_SUFFIX)]
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
