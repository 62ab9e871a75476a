"""S3Sink against a real SeaweedFS, and its Signature V4 signer against AWS's test vector."""

import asyncio
import hashlib
import socket
import threading
import uuid

import pytest

pytest.importorskip("aiohttp")

import zstandard  # noqa: E402

from safe_data.remote.sinks import RejectedError, Sink, TransientError  # noqa: E402
from safe_data.remote.sinks._sigv4 import sign_v4  # noqa: E402
from safe_data.remote.sinks.s3 import S3Sink  # noqa: E402

from .seaweedfs import free_port  # noqa: E402

SEG = "0123456789abcdef-000001"


def run(coro):
    return asyncio.run(coro)


def segment(n: int, size: int = 4096):
    raw = bytes([n % 251]) * size + n.to_bytes(4, "big")
    return zstandard.ZstdCompressor().compress(raw), hashlib.sha256(raw).hexdigest()


@pytest.fixture
def sink_args(seaweedfs):
    """Arguments of a sink on a fresh bucket (so tests do not see each other's objects)."""
    bucket = "t-" + uuid.uuid4().hex[:12]
    args = dict(
        bucket=bucket,
        endpoint_url=seaweedfs.endpoint,
        access_key=seaweedfs.access_key,
        secret_key=seaweedfs.secret_key,
        prefix="backups/",
    )

    async def create():
        async with S3Sink(**args) as s:
            await s.ensure_bucket()

    run(create())
    return args


# ------------------------------------------------------------------ signer (no server)


def test_sigv4_matches_aws_published_get_example():
    # "Example: GET Object" of the S3 SigV4 documentation (Authenticating Requests:
    # Using the Authorization Header)
    empty = hashlib.sha256(b"").hexdigest()
    auth = sign_v4(
        "GET",
        "/test.txt",
        {},
        {
            "Host": "examplebucket.s3.amazonaws.com",
            "Range": "bytes=0-9",
            "x-amz-content-sha256": empty,
            "x-amz-date": "20130524T000000Z",
        },
        empty,
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        amz_date="20130524T000000Z",
    )
    assert auth == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_sigv4_matches_aws_test_suite_get_vanilla():
    # "get-vanilla" of the AWS Signature V4 test suite
    auth = sign_v4(
        "GET",
        "/",
        {},
        {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"},
        hashlib.sha256(b"").hexdigest(),
        access_key="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        service="service",
        amz_date="20150830T123600Z",
    )
    assert auth.endswith("Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")


def test_credentials_from_environment_and_repr_hides_secret(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    s = S3Sink("some-bucket")
    assert isinstance(s, Sink)
    assert s.endpoint == "http://127.0.0.1:1"
    assert s.key(SEG) == f"default/{SEG}.seg.zst"
    assert "very-secret" not in repr(s)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert S3Sink("some-bucket").endpoint == "https://some-bucket.s3.us-east-1.amazonaws.com"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(ValueError, match="credentials"):
        S3Sink("some-bucket", access_key=None, secret_key=None)


def test_invalid_segment_id_refused_before_any_request():
    async def go():
        async with S3Sink("some-bucket", "http://127.0.0.1:1", access_key="a", secret_key="b") as s:
            for bad in ("../etc", "0123456789abcdef-00000/", "", "0123456789ABCDEF-000001"):
                with pytest.raises(RejectedError):
                    await s.put(bad, b"x", "0" * 64)

    run(go())


# ------------------------------------------------------------------ real SeaweedFS


@pytest.mark.parametrize("check_first", [True, False])
def test_put_ack_idempotent_and_never_overwritten(sink_args, check_first):
    body, sha = segment(1)
    other_body, other_sha = segment(2)

    async def go():
        async with S3Sink(**sink_args, check_first=check_first) as s:
            await s.put(SEG, body, sha)  # ack
            await s.put(SEG, body, sha)  # same again: ack, nothing rewritten
            with pytest.raises(RejectedError, match="other content"):
                await s.put(SEG, other_body, other_sha)
            assert await s.get(SEG) == body
            assert await s.head(SEG) == sha
            assert await s.list(with_sha256=True) == [{"id": SEG, "size": len(body), "sha256": sha}]

    run(go())


def test_same_put_again_does_not_write_a_second_time(sink_args, monkeypatch):
    """With check_first=False the second PUT reaches the store and must be refused by
    If-None-Match (412) and then acknowledged by the hash comparison."""
    body, sha = segment(3)
    seen = []

    async def go():
        async with S3Sink(**sink_args, check_first=False) as s:
            real = s._request

            async def spy(method, path, **kw):
                status, headers, data = await real(method, path, **kw)
                seen.append((method, status))
                return status, headers, data

            monkeypatch.setattr(s, "_request", spy)
            await s.put(SEG, body, sha)
            await s.put(SEG, body, sha)

    run(go())
    assert seen == [("PUT", 200), ("PUT", 412), ("HEAD", 200)]


def test_list_and_get_round_trip(sink_args):
    segs = {f"0123456789abcdef-{i:06d}": segment(i, 1000 + i) for i in range(1, 6)}

    async def go():
        async with S3Sink(**sink_args) as s, S3Sink(**sink_args, namespace="other") as o:
            await asyncio.gather(*(s.put(k, b, h) for k, (b, h) in segs.items()))
            await o.put(SEG, *segment(99))  # another namespace: not listed
            listed = await s.list()
            assert [e["id"] for e in listed] == sorted(segs)
            assert [e["size"] for e in listed] == [len(segs[k][0]) for k in sorted(segs)]
            for k, (b, h) in segs.items():
                got = await s.get(k)
                assert got == b
                assert hashlib.sha256(zstandard.ZstdDecompressor().decompress(got)).hexdigest() == h
            with pytest.raises(KeyError):
                await s.get("0123456789abcdef-999999")

    run(go())


def test_list_is_paginated(sink_args, monkeypatch):
    """SeaweedFS answers at most 1000 keys per page; 1001 would take a while, so ask for
    pages of 2 by adding max-keys to the signed query."""
    from safe_data.remote.sinks import s3 as s3mod

    segs = {f"0123456789abcdef-{i:06d}": segment(i, 100) for i in range(1, 6)}

    async def go():
        async with S3Sink(**sink_args) as s:
            await asyncio.gather(*(s.put(k, b, h) for k, (b, h) in segs.items()))
            real = s._request
            pages = []

            async def small_pages(method, path, *, query=None, **kw):
                if query and query.get("list-type") == "2":
                    query = {**query, "max-keys": "2"}
                    pages.append(query.get("continuation-token"))
                return await real(method, path, query=query, **kw)

            monkeypatch.setattr(s, "_request", small_pages)
            assert [e["id"] for e in await s.list()] == sorted(segs)
            assert len(pages) == 3 and pages[0] is None and all(pages[1:])

    assert s3mod  # imported for the monkeypatch context only
    run(go())


def test_wrong_secret_is_refused_with_a_credentials_message(sink_args):
    async def go():
        async with S3Sink(**{**sink_args, "secret_key": "wrong"}) as s:
            with pytest.raises(RejectedError, match="credentials were refused"):
                await s.put(SEG, *segment(1))

    run(go())


def test_corrupted_transfer_is_not_stored(sink_args, monkeypatch):
    """A body that does not match its Content-MD5 / x-amz-content-sha256 is refused by
    the store (transient: sending it again may work) and nothing is stored."""
    body, sha = segment(4)

    async def go():
        async with S3Sink(**sink_args) as s:
            real = s._request

            async def corrupt(method, path, *, body=b"", **kw):
                if method == "PUT" and body:
                    body = body[:-1] + bytes([body[-1] ^ 1])
                return await real(method, path, body=body, **kw)

            monkeypatch.setattr(s, "_request", corrupt)
            with pytest.raises(TransientError, match="transfer damaged"):
                await s.put(SEG, body, sha)
            monkeypatch.undo()
            assert await s.head(SEG) is None

    run(go())


def test_stopped_endpoint_is_transient():
    port = free_port()  # nothing listens there any more

    async def go():
        async with S3Sink("bucket", f"http://127.0.0.1:{port}", access_key="a", secret_key="b") as s:
            with pytest.raises(TransientError):
                await s.put(SEG, *segment(1))

    run(go())


def test_silent_endpoint_times_out_as_transient():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])  # accept, never answer
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()

    async def go():
        port = srv.getsockname()[1]
        async with S3Sink(
            "bucket", f"http://127.0.0.1:{port}", access_key="a", secret_key="b", timeout=0.3
        ) as s:
            with pytest.raises(TransientError):
                await s.put(SEG, *segment(1))

    try:
        run(go())
    finally:
        stop.set()
        t.join()
        for c in conns:
            c.close()
        srv.close()


def test_server_error_is_transient_and_honours_retry_after():
    """A 503 SlowDown with Retry-After (what S3 sends when throttling)."""
    from aiohttp import web

    async def go():
        async def slow_down(request):
            return web.Response(
                status=503,
                headers={"Retry-After": "7"},
                body=b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>",
            )

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", slow_down)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            for check_first in (True, False):  # the HEAD, then the PUT
                async with S3Sink(
                    "bucket",
                    f"http://127.0.0.1:{port}",
                    access_key="a",
                    secret_key="b",
                    check_first=check_first,
                ) as s:
                    with pytest.raises(TransientError, match="503") as info:
                        await s.put(SEG, *segment(1))
                    assert info.value.retry_after == 7
                    if not check_first:
                        assert "SlowDown" in str(info.value)
        finally:
            await runner.cleanup()

    run(go())
