"""Upload slots and ``Expect: 100-continue`` (docs/remote.md, "Limits and memory"): the
slot is taken before the client is told to send, held until the upload ends, and given
back when the body never comes."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("zstandard")

from safe_data.server.stores.directory import DirectoryStore  # noqa: E402

from .server_helpers import TOKEN, put_headers, run, sha, zstd  # noqa: E402


async def _announce(port: int, segment_id: str, data: bytes):
    """Send a PUT's headers with ``Expect: 100-continue``; (reader, writer, status line)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"PUT /v1/segments/{segment_id} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {TOKEN}\r\nX-Content-SHA256: {sha(data)}\r\n"
            f"Content-Length: {len(zstd(data))}\r\nExpect: 100-continue\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    return reader, writer, await reader.readline()


def test_a_client_waiting_for_100_is_told_503_when_the_slot_is_taken(tmp_path, segment):
    seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")

    async def scenario(client):
        port = client.server.port
        _r1, w1, status = await _announce(port, seg_id, data)
        assert status == b"HTTP/1.1 100 Continue\r\n"  # it holds the only slot
        _r2, w2, status = await _announce(port, seg_id, data)
        assert status.startswith(b"HTTP/1.1 503"), status  # told before sending its body
        w2.close()
        await w2.wait_closed()
        w1.close()  # the body never comes: the slot is given back
        await w1.wait_closed()
        for _ in range(50):
            async with client.put(
                f"/v1/segments/{seg_id}", data=zstd(data), headers=put_headers(data)
            ) as resp:
                if resp.status != 503:
                    break
        assert resp.status == 201

    run(scenario, store, max_concurrent_uploads=1, upload_wait=0.2)
