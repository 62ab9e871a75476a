"""Checking a received segment as a stream (safe_data.remote.verify): the same verdict
whatever the pieces it comes in, and a zstd body checked from a file."""

from __future__ import annotations

import hashlib
import io

import pytest

zstandard = pytest.importorskip("zstandard")

from safe_data.remote.verify import (  # noqa: E402
    InvalidSegment,
    SegmentTooLarge,
    SegmentVerifier,
    check_compressed,
)


def verdict(data: bytes, piece: int, segment_id: str | None = None) -> str | None:
    """The verifier's refusal (None: accepted) when ``data`` comes ``piece`` bytes at a time."""
    verifier = SegmentVerifier(segment_id)
    try:
        for i in range(0, len(data), piece):
            verifier.write(data[i : i + piece])
        verifier.close()
    except InvalidSegment as exc:
        return str(exc)
    return None


def damaged(data: bytes) -> dict[str, bytes]:
    middle = len(data) // 2
    return {
        "torn": data[:-1],
        "zeros after": data + bytes(100),
        "two trailing bytes": data + b"\x01\x02",
        "flipped byte": data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :],
        "no frame": data[:64],
        "header only in part": data[:40],
        "not a segment": b"NOTASEGM" + data[8:],
    }


@pytest.mark.parametrize("piece", [1, 7, 36, 4096, 1 << 30])
def test_same_verdict_whatever_the_pieces(segment, piece):
    seg_id, data = segment
    assert verdict(data, piece, seg_id) is None
    assert "does not match" in verdict(data, piece, "0000000000000000-000001")
    for name, bad in damaged(data).items():
        assert verdict(bad, piece) == verdict(bad, 1 << 30) is not None, name


def check(body: bytes, data: bytes, limit: int = 1 << 20) -> int:
    return check_compressed(io.BytesIO(body), limit, hashlib.sha256(data).hexdigest())


def test_check_compressed(segment):
    seg_id, data = segment
    body = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    assert check_compressed(io.BytesIO(body), 1 << 20, hashlib.sha256(data).hexdigest(), seg_id) == len(data)
    assert check(body, data) == len(data)
    with pytest.raises(InvalidSegment, match="does not match"):
        check(body, data + b"x")
    with pytest.raises(InvalidSegment, match="truncated"):
        check(body[:-1], data)
    with pytest.raises(InvalidSegment, match="after the frame"):
        check(body + b"x", data)
    with pytest.raises(InvalidSegment, match="after the frame"):
        check(body + body, data)
    with pytest.raises(InvalidSegment, match="not a zstd frame"):
        check(b"not zstd at all", data)
    with pytest.raises(SegmentTooLarge):
        check(body, data, limit=len(data) - 1)
    with pytest.raises(InvalidSegment, match="checksum mismatch"):  # valid zstd, bad frames
        bad = data[:-10] + bytes([data[-10] ^ 1]) + data[-9:]
        check(zstandard.ZstdCompressor().compress(bad), bad)


def test_check_compressed_stops_a_bomb_at_the_limit():
    data = bytes(64 << 20)
    cctx = zstandard.ZstdCompressor()
    with cctx.stream_writer(out := io.BytesIO(), closefd=False) as writer:  # no content size
        writer.write(data)
    with pytest.raises(SegmentTooLarge, match="exceeds the limit of 1048576"):
        check(out.getvalue(), data)
