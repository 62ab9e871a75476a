"""What the backup server's tests share (test_server.py, test_server_s3.py): tokens, bodies
and their hashes, a server on loopback, and requests to a ``safe-data serve`` process."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

zstandard = pytest.importorskip("zstandard")
pytest.importorskip("aiohttp")

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from safe_data.server.app import make_app  # noqa: E402

TOKEN = "s3cret-token-of-alpha-0123456789"
OTHER = "another-token-for-beta-987654321"
TOKENS = {"alpha": TOKEN, "beta": OTHER}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ADMIN = "admin-token-of-alpha-abcdefghijkl"  # alpha's admin token, where a test gives it
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put_headers(data: bytes, token=TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}", "X-Content-SHA256": sha(data)}


def drop_last_frame(data: bytes) -> bytes:
    """The segment without its last frame, its header counting one record fewer: a valid
    sealed segment of the same writer (cutting the frame alone would not be one)."""
    from safe_data import _impl
    from safe_data.journal.format import SEGMENT_HEADER_SIZE, counted_header, unpack_segment_header

    from ._helpers import frame_extents

    last = frame_extents(data)[-1][0]
    assert last > SEGMENT_HEADER_SIZE
    header = unpack_segment_header(_impl.crc32c, data)
    head = counted_header(_impl.crc32c, data[:SEGMENT_HEADER_SIZE], header.records - 1, header.last_seq - 1)
    return head + data[SEGMENT_HEADER_SIZE:last]


def run(coro_fn, store, **options):
    """Run ``coro_fn(client)`` against a real server on loopback."""
    return run_servers(lambda clients: coro_fn(clients[0]), [store], **options)


def run_servers(coro_fn, stores, **options):
    """Run ``coro_fn(clients)`` against one real server on loopback per store (stateless
    servers in front of one store: the same store several times)."""

    async def main():
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    TestClient(TestServer(make_app(store, TOKENS, **options), host="127.0.0.1"))
                )
                for store in stores
            ]
            return await coro_fn(clients)

    return asyncio.run(main())


def start_cli(*args, env=None, port=0, stderr=subprocess.PIPE) -> tuple[subprocess.Popen, str]:
    """Start ``safe-data serve --port PORT *args`` (0: any free port); (the process, its
    base URL) once it listens.  ``stderr``: a file for a server that logs more than a pipe
    holds (a full pipe no one reads stalls the server)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "safe_data.cli.serving", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=dict(os.environ, **(env or {})),
    )
    line = proc.stdout.readline()
    match = re.fullmatch(r"serving on (http://127\.0\.0\.1:(\d+))\n", line)
    if not match:
        proc.kill()
        raise AssertionError(f"unexpected output {line!r}: {proc.communicate()[1]}")
    return proc, match.group(1)


def stop_cli(proc, sig=signal.SIGTERM, timeout=10) -> str:
    """Stop a ``safe-data serve`` process with ``sig``; its stderr (killed, and the test
    failed, if it does not stop within ``timeout`` seconds)."""
    proc.send_signal(sig)
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def http_request(url, method="GET", data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
