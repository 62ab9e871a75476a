"""The backup server on an S3 store (``serve --store s3://bucket/prefix``), against a real
SeaweedFS."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("zstandard")


from safe_data.remote.sinks.s3 import S3Sink  # noqa: E402
from safe_data.server.stores import ConflictError, NotFound, StoreUnavailable  # noqa: E402
from safe_data.server.stores.s3 import S3Store, parse_s3_url  # noqa: E402

from ._helpers import make_segment  # noqa: E402
from .seaweedfs import new_bucket  # noqa: E402
from .server_helpers import (  # noqa: E402
    AUTH,
    OTHER,
    TOKEN,
    http_request,
    put_headers,
    run,
    sha,
    start_cli,
    stop_cli,
    zstd,
)


@pytest.fixture
def bucket(seaweedfs):
    return new_bucket(seaweedfs, "srv-")


def new_store(seaweedfs, bucket, prefix="backups/") -> S3Store:
    return S3Store(
        bucket,
        prefix,
        endpoint_url=seaweedfs.endpoint,
        access_key=seaweedfs.access_key,
        secret_key=seaweedfs.secret_key,
    )


def s3_env(seaweedfs) -> dict:
    env = dict(os.environ)  # without this machine's AWS settings (conftest)
    env.update(AWS_ACCESS_KEY_ID=seaweedfs.access_key, AWS_SECRET_ACCESS_KEY=seaweedfs.secret_key)
    return env


def test_parse_s3_url():
    assert parse_s3_url("s3://b") == ("b", "")
    assert parse_s3_url("s3://b/") == ("b", "")
    assert parse_s3_url("s3://b/x/y/") == ("b", "x/y/")
    assert parse_s3_url("s3://b/x") == ("b", "x/")
    for bad in ("s3://", "http://b/x", "s3://b/../x", "s3://b/x//y", "s3://b/x?y=1"):
        with pytest.raises(ValueError):
            parse_s3_url(bad)


def test_store_put_get_list(seaweedfs, bucket, segment):
    seg_id, data = segment
    body = zstd(data)

    async def scenario():
        store = new_store(seaweedfs, bucket)
        try:
            await store.check()
            assert await store.list("alpha") == []
            assert await store.put("alpha", seg_id, body, sha(data)) == "stored"
            assert await store.put("alpha", seg_id, body, sha(data)) == "duplicate"
            with pytest.raises(ConflictError):
                await store.put("alpha", seg_id, zstd(data + b"x"), sha(data + b"x"))
            assert await store.get("alpha", seg_id) == (body, sha(data))
            assert await store.list("alpha") == [{"id": seg_id, "sha256": sha(data), "size": len(body)}]
            assert await store.list("beta") == []
            with pytest.raises(NotFound):
                await store.get("beta", seg_id)
            for bad in ("..", "../x", "a/b", "", "/abs"):
                with pytest.raises(ValueError):
                    await store.put("alpha", bad, body, sha(data))
                with pytest.raises(ValueError):
                    await store.put(bad, seg_id, body, sha(data))
            # the layout of docs/remote.md, readable by an S3Sink of that namespace
            async with S3Sink(
                bucket,
                seaweedfs.endpoint,
                access_key=seaweedfs.access_key,
                secret_key=seaweedfs.secret_key,
                prefix="backups/",
                namespace="alpha",
            ) as sink:
                assert sink.key(seg_id) == f"backups/alpha/{seg_id}.seg.zst"
                assert await sink.head(seg_id) == sha(data)
                assert await sink.get(seg_id) == body
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_store_missing_bucket_is_unavailable(seaweedfs):
    async def scenario():
        store = new_store(seaweedfs, "missing-" + uuid.uuid4().hex[:12])
        try:
            with pytest.raises(StoreUnavailable):
                await store.check()
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_store_needs_credentials(monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(ValueError, match="credentials"):
        S3Store.from_url("s3://bucket/p", endpoint_url="http://127.0.0.1:1")


def test_server_on_s3(seaweedfs, bucket, segment, tmp_path):
    seg_id, data = segment
    body = zstd(data)
    store = new_store(seaweedfs, bucket)
    # another content already stored under the id of a second segment: a conflict
    seg2, data2 = make_segment(tmp_path, "j2")
    assert seg2 != seg_id

    async def plant():
        async with S3Sink(
            bucket,
            seaweedfs.endpoint,
            access_key=seaweedfs.access_key,
            secret_key=seaweedfs.secret_key,
            prefix="backups/",
            namespace="alpha",
        ) as sink:
            await sink.put(seg2, zstd(data2 + b"other"), sha(data2 + b"other"))

    asyncio.run(plant())

    async def scenario(client):
        url = f"/v1/segments/{seg_id}"
        out = {}
        async with client.put(url, data=body, headers=put_headers(data)) as resp:
            out["first"] = (resp.status, await resp.json())
        async with client.put(url, data=body, headers=put_headers(data)) as resp:
            out["again"] = resp.status
        other = data[:-1] + bytes([data[-1] ^ 1])
        async with client.put(url, data=body, headers=put_headers(other)) as resp:
            out["bad_hash"] = resp.status  # hash does not match the body: refused first
        async with client.put(f"/v1/segments/{seg2}", data=zstd(data2), headers=put_headers(data2)) as resp:
            out["conflict"] = resp.status
        async with client.get("/v1/segments", headers=AUTH) as resp:
            out["list"] = (resp.status, await resp.json())
        async with client.get(url, headers=AUTH) as resp:
            out["get"] = (resp.status, await resp.read(), resp.headers.get("X-Content-SHA256"))
        async with client.get(url, headers={"Authorization": f"Bearer {OTHER}"}) as resp:
            out["other_ns"] = resp.status
        async with client.get("/v1/segments", headers={"Authorization": f"Bearer {OTHER}"}) as resp:
            out["other_list"] = await resp.json()
        async with client.get("/metrics", headers=AUTH) as resp:
            out["metrics"] = await resp.text()
        return out

    out = run(scenario, store)
    assert out["first"] == (201, {"id": seg_id, "sha256": sha(data), "status": "stored"})
    assert out["again"] == 200
    assert out["bad_hash"] == 400
    assert out["conflict"] == 409
    assert out["list"][0] == 200
    assert out["list"][1] == sorted(
        [
            {"id": seg_id, "sha256": sha(data), "size": len(body)},
            {"id": seg2, "sha256": sha(data2 + b"other"), "size": len(zstd(data2 + b"other"))},
        ],
        key=lambda e: e["id"],
    )
    assert out["get"] == (200, body, sha(data))
    assert out["other_ns"] == 404
    assert out["other_list"] == []
    assert "safe_data_uploads_stored_total 1" in out["metrics"]
    assert "safe_data_uploads_duplicate_total 1" in out["metrics"]
    assert "safe_data_uploads_conflict_total 1" in out["metrics"]
    assert store._sinks == {}  # closed by the application's cleanup


def test_parallel_uploads_of_one_id(seaweedfs, bucket, segment):
    seg_id, data = segment
    body = zstd(data)
    store = new_store(seaweedfs, bucket, prefix="")

    async def scenario(client):
        async def put():
            async with client.put(f"/v1/segments/{seg_id}", data=body, headers=put_headers(data)) as resp:
                return resp.status

        return await asyncio.gather(*[put() for _ in range(8)])

    assert sorted(run(scenario, store)) == [200] * 7 + [201]


def test_s3_down_answers_503(segment):
    seg_id, data = segment
    store = S3Store(
        "nothing",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        access_key="k",
        secret_key="s",
        timeout=5,
    )

    async def scenario(client):
        async with client.put(f"/v1/segments/{seg_id}", data=zstd(data), headers=put_headers(data)) as resp:
            return resp.status, resp.headers.get("Retry-After")

    assert run(scenario, store) == (503, "5")


def _closed_port() -> int:
    from .seaweedfs import free_port

    return free_port()


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_serve_s3(seaweedfs, bucket, segment):
    seg_id, data = segment
    env = dict(s3_env(seaweedfs), SAFE_DATA_TOKENS=f"alpha:{TOKEN}, beta:{OTHER}")
    proc, base = start_cli("--store", f"s3://{bucket}/srv", "--s3-endpoint-url", seaweedfs.endpoint, env=env)
    try:
        assert http_request(base + "/health") == (200, b'{"status": "ok"}')
        url = base + f"/v1/segments/{seg_id}"
        assert http_request(url, "PUT", zstd(data), put_headers(data))[0] == 201
        assert http_request(url, "PUT", zstd(data), put_headers(data))[0] == 200
        status, listing = http_request(base + "/v1/segments", headers=AUTH)
        assert status == 200 and json.loads(listing) == [
            {"id": seg_id, "sha256": sha(data), "size": len(zstd(data))}
        ]
        assert http_request(url, headers=AUTH) == (200, zstd(data))
    finally:
        err = stop_cli(proc, timeout=15)
    assert proc.returncode == 0, err
    assert TOKEN not in err and seaweedfs.secret_key not in err

    async def check():
        async with S3Sink(
            bucket,
            seaweedfs.endpoint,
            access_key=seaweedfs.access_key,
            secret_key=seaweedfs.secret_key,
            prefix="srv/",
            namespace="alpha",
        ) as sink:
            return await sink.head(seg_id)

    assert asyncio.run(check()) == sha(data)


def test_cli_endpoint_from_env_and_missing_bucket(seaweedfs):
    env = dict(s3_env(seaweedfs), SAFE_DATA_TOKENS=f"alpha:{TOKEN}", AWS_ENDPOINT_URL=seaweedfs.endpoint)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "safe_data.cli.serving",
            "--store",
            "s3://missing-" + uuid.uuid4().hex[:12],
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 1, result.stderr
    assert "does not exist" in result.stderr
    assert seaweedfs.secret_key not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--store", "s3://"], "s3://bucket"),
        (["--store", "ftp://x/y"], "unknown store URL"),
        (["--store", "/tmp/x", "--s3-endpoint-url", "http://127.0.0.1:1"], "s3://BUCKET"),
    ],
    ids=["no-bucket", "other-scheme", "endpoint-without-s3"],
)
def test_cli_bad_store(args, message):
    env = dict(
        os.environ, SAFE_DATA_TOKENS=f"alpha:{TOKEN}", AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s"
    )
    result = subprocess.run(
        [sys.executable, "-m", "safe_data.cli.serving", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_cli_s3_without_credentials():
    env = dict(os.environ)  # without any AWS keys (conftest)
    env["SAFE_DATA_TOKENS"] = f"alpha:{TOKEN}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "safe_data.cli.serving",
            "--port",
            "0",
            "--store",
            "s3://bucket",
            "--s3-endpoint-url",
            "http://127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
    )
    assert result.returncode == 2 and "AWS_ACCESS_KEY_ID" in result.stderr
