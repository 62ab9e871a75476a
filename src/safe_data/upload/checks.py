"""Checking a segment received from elsewhere (docs/remote.md): bounded decompression of
its zstd body and verification of its header and frames.  Shared by the backup server
and the sinks that read segments back; needs no network library.
"""

from __future__ import annotations

import hashlib
import io

import google_crc32c
import zstandard

from ..journal import format as fmt
from ..journal.reader import scan_frames, scan_to_end, shortfall

__all__ = ["InvalidSegment", "SegmentTooLarge", "decompress_bounded", "verify_segment"]

_READ_CHUNK = 1 << 16
_INFLATE_CHUNK = 1 << 20


class InvalidSegment(ValueError):
    """The body is not a valid sealed segment (or not valid zstd): 400."""


class SegmentTooLarge(ValueError):
    """The body or the decompressed segment exceeds its limit: 413."""


def _max_window(max_segment_bytes: int) -> int:
    # A frame of a segment of n bytes needs a window of at most the next power of two
    # >= n; streaming compressors may use their level's default (a few MiB).  Anything
    # bigger is refused before zstd allocates it.
    window = 8 << 20
    while window < max_segment_bytes and window < (1 << 27):
        window <<= 1
    return window


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
    try:
        params = zstandard.get_frame_parameters(body)
    except zstandard.ZstdError as exc:
        raise InvalidSegment(f"not a zstd frame: {exc}") from None
    if params.content_size not in (0, zstandard.CONTENTSIZE_UNKNOWN) \
            and params.content_size > max_segment_bytes:
        raise SegmentTooLarge(f"segment of {params.content_size} bytes exceeds the limit "
                              f"of {max_segment_bytes}")
    window = _max_window(max_segment_bytes)
    if params.window_size > window:
        raise SegmentTooLarge(f"zstd window of {params.window_size} bytes exceeds {window}")
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


def verify_segment(data: bytes, segment_id: str | None = None) -> None:
    """Check a sealed segment's header and every frame's length and CRC32C.

    Raise InvalidSegment with the reason.  Nothing is decoded or unpickled.  With
    ``segment_id``, the header's writer id and segment number must match it.
    """
    crc32c = google_crc32c.value
    try:
        header = fmt.unpack_segment_header(crc32c, data)
    except ValueError as exc:
        raise InvalidSegment(str(exc)) from None
    if segment_id is not None and header.segment_id != segment_id:
        raise InvalidSegment(f"segment id {segment_id} does not match its header ({header.segment_id})")
    scan = scan_to_end(scan_frames(data, crc32c, segment_id or "segment", True,
                                   first_seq=header.first_seq))
    if scan.problems:
        problem = scan.problems[0]
        raise InvalidSegment(f"byte {problem.offset}: {problem.reason}")
    if shortfall(header, scan) is not None:
        raise InvalidSegment(f"byte {scan.end}: the segment ends before the last record its "
                             f"header counts (seq {header.last_seq})")
