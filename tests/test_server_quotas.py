"""Per-namespace quotas of the backup server (docs/remote.md, "Quotas"): 507 before the
body is read, usage counted from the store and kept up to date, the client keeps its
segment and retries."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

aiohttp = pytest.importorskip("aiohttp")
pytest.importorskip("zstandard")

from safe_data.remote.sinks import TransientError  # noqa: E402
from safe_data.remote.sinks.http import HttpSink  # noqa: E402

from ._helpers import make_segment  # noqa: E402
from .server_helpers import (  # noqa: E402
    ADMIN,
    ADMIN_AUTH,
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


async def _put(client, seg_id, data, token=TOKEN, **kwargs):
    async with client.put(
        f"/v1/segments/{seg_id}", data=zstd(data), headers=put_headers(data, token), **kwargs
    ) as resp:
        return resp.status, await resp.text()


def _incoming_files(store) -> list[str]:
    root = getattr(store, "root", None)
    return os.listdir(os.path.join(root, ".incoming")) if root else []


def test_quota_refuses_before_reading_and_deleting_makes_room(server_store, tmp_path):
    store = server_store
    (id1, data1), (id2, data2) = make_segment(tmp_path, "j1"), make_segment(tmp_path, "j2")
    quota = len(zstd(data1)) + len(zstd(data2)) // 2  # room for one of them

    async def scenario(client):
        assert (await _put(client, id1, data1))[0] == 201
        status, text = await _put(client, id2, data2)
        assert status == 507 and "over its quota" in text and "retries later" in text
        assert _incoming_files(store) == []
        # the same, announced with Expect: 100-continue: refused before the body is sent
        status, _ = await _put(client, id2, data2, expect100=True)
        assert status == 507
        assert (await _put(client, id2, data2, token=OTHER))[0] == 201  # beta has no quota
        async with client.get("/metrics", headers=ADMIN_AUTH) as resp:
            text = await resp.text()
        assert f'safe_data_namespace_bytes{{namespace="alpha"}} {len(zstd(data1))}' in text
        assert f'safe_data_namespace_quota_bytes{{namespace="alpha"}} {quota}' in text
        assert "safe_data_uploads_over_quota_total 2" in text
        async with client.delete(f"/v1/segments/{id1}", headers=ADMIN_AUTH) as resp:
            assert resp.status == 200
        assert (await _put(client, id2, data2))[0] == 201
        async with client.get("/metrics", headers=ADMIN_AUTH) as resp:
            assert f'safe_data_namespace_bytes{{namespace="alpha"}} {len(zstd(data2))}' in await resp.text()

    run(scenario, store, admin_tokens={"alpha": ADMIN}, quotas={"alpha": quota})


def test_quota_counts_what_the_store_already_holds(server_store, tmp_path):
    store = server_store
    (id1, data1), (id2, data2) = make_segment(tmp_path, "j1"), make_segment(tmp_path, "j2")

    async def scenario(client):
        assert (await _put(client, id1, data1))[0] == 201

    run(scenario, store)  # no quota yet

    async def over(client):
        assert (await _put(client, id2, data2))[0] == 507

    run(over, store, quotas={"alpha": len(zstd(data1)) + 10})


def test_quota_without_content_length_is_checked_as_the_body_arrives(tmp_path):
    from safe_data.server.stores.directory import DirectoryStore

    store = DirectoryStore(tmp_path / "store")
    seg_id, data = make_segment(tmp_path, "j1")
    body = zstd(data)

    async def chunks():
        for i in range(0, len(body), 256):
            yield body[i : i + 256]

    async def scenario(client):
        async with client.put(f"/v1/segments/{seg_id}", data=chunks(), headers=put_headers(data)) as resp:
            assert resp.status == 507
        assert _incoming_files(store) == []
        assert store.list("alpha") == []

    run(scenario, store, quotas={"alpha": len(body) // 2})


def test_the_client_keeps_the_segment_and_is_told_why(tmp_path):
    from safe_data.server.stores.directory import DirectoryStore

    store = DirectoryStore(tmp_path / "store")
    seg_id, data = make_segment(tmp_path, "j1")

    async def scenario(client):
        sink = HttpSink(str(client.make_url("/")), TOKEN)
        try:
            with pytest.raises(TransientError, match="507.*over its quota") as info:
                await sink.put(seg_id, zstd(data), sha(data))
        finally:
            await sink.close()
        assert info.value.retry_after == 300

    run(scenario, store, quotas={"alpha": 100})


def test_cli_quota(tmp_path):
    seg_id, data = make_segment(tmp_path, "j1")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alpha:{TOKEN}\nbeta:{OTHER}\n")
    tokens.chmod(0o600)
    proc, base = start_cli(
        "--store", str(tmp_path / "store"), "--tokens", str(tokens), "--quota", "alpha=100"
    )
    try:
        status, answer = http_request(base + f"/v1/segments/{seg_id}", "PUT", zstd(data), put_headers(data))
        assert status == 507 and b"quota of 100 B" in answer
        status, _ = http_request(base + f"/v1/segments/{seg_id}", "PUT", zstd(data), put_headers(data, OTHER))
        assert status == 201
    finally:
        err = stop_cli(proc)
    assert proc.returncode == 0, err
    for bad, message in (
        ("nobody=1k", "no token has the namespace"),
        ("alpha", "NS=SIZE"),
        ("alpha=lots", "not a size"),
    ):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "safe_data.cli.serving",
                "--store",
                str(tmp_path / "s"),
                "--tokens",
                str(tokens),
                "--quota",
                bad,
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert result.returncode == 2 and message in result.stderr, result.stderr
