"""Tokens with roles (docs/security.md): append-only client tokens cannot delete or
overwrite; admin tokens delete, leaving a tombstone that keeps the deletion on record."""

from __future__ import annotations

import json
import os

import pytest

aiohttp = pytest.importorskip("aiohttp")
pytest.importorskip("zstandard")

from safe_data.remote.sinks import RejectedError  # noqa: E402
from safe_data.remote.sinks.http import HttpSink  # noqa: E402
from safe_data.server.app import make_app  # noqa: E402
from safe_data.server.stores.directory import DirectoryStore  # noqa: E402

from .server_helpers import (  # noqa: E402
    ADMIN,
    ADMIN_AUTH,
    AUTH,
    TOKEN,
    TOKENS,
    drop_last_frame,
    http_request,
    put_headers,
    run,
    sha,
    start_cli,
    stop_cli,
    zstd,
)


def test_append_only_token_cannot_delete_or_overwrite_admin_can(server_store, segment):
    store = server_store
    seg_id, data = segment
    other = drop_last_frame(data)  # another valid segment under the same id

    async def scenario(client):
        async with client.put(f"/v1/segments/{seg_id}", data=zstd(data), headers=put_headers(data)) as resp:
            assert resp.status == 201
        # a stolen client token: no delete, no overwrite
        async with client.delete(f"/v1/segments/{seg_id}", headers=AUTH) as resp:
            assert resp.status == 403 and "append-only" in await resp.text()
        async with client.put(f"/v1/segments/{seg_id}", data=zstd(other), headers=put_headers(other)) as resp:
            assert resp.status == 409
        async with client.delete(f"/v1/segments/{seg_id}", headers={"Authorization": "Bearer nope"}) as resp:
            assert resp.status == 401
        async with client.get(f"/v1/segments/{seg_id}", headers=AUTH) as resp:
            assert resp.status == 200 and resp.headers["X-Content-SHA256"] == sha(data)
        # the admin token reads like a client token, and may delete
        async with client.get("/v1/segments", headers=ADMIN_AUTH) as resp:
            assert [e["id"] for e in await resp.json()] == [seg_id]
        async with client.delete(f"/v1/segments/{seg_id}?reason=too+old", headers=ADMIN_AUTH) as resp:
            assert resp.status == 200
            tombstone = await resp.json()
        assert tombstone["id"] == seg_id and tombstone["sha256"] == sha(data)
        assert tombstone["reason"] == "too old" and tombstone["deleted_at"].endswith("Z")
        async with client.get(f"/v1/segments/{seg_id}", headers=AUTH) as resp:
            assert resp.status == 404
        async with client.delete(f"/v1/segments/{seg_id}", headers=ADMIN_AUTH) as resp:
            assert resp.status == 404
        async with client.get("/v1/deletions", headers=AUTH) as resp:  # every reader sees them
            assert await resp.json() == [tombstone]
        # an upload of what was deleted does not bring it back; another body is refused
        async with client.put(f"/v1/segments/{seg_id}", data=zstd(data), headers=put_headers(data)) as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "deleted"
        async with client.put(f"/v1/segments/{seg_id}", data=zstd(other), headers=put_headers(other)) as resp:
            assert resp.status == 409
        async with client.get("/v1/segments", headers=AUTH) as resp:
            assert await resp.json() == []
        async with client.get("/metrics", headers=AUTH) as resp:
            text = await resp.text()
        assert "safe_data_requests_forbidden_total 1" in text
        assert "safe_data_segments_deleted_total 1" in text

    run(scenario, store, admin_tokens={"alpha": ADMIN})
    if isinstance(store, DirectoryStore):
        assert sorted(os.listdir(os.path.join(store.root, "alpha"))) == [f"{seg_id}.deleted"]


def test_http_sink_delete_and_deletions(tmp_path, segment):
    seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")
    store.put("alpha", seg_id, zstd(data), sha(data))

    async def scenario(client):
        url = str(client.make_url("/"))
        client_sink, admin_sink = HttpSink(url, TOKEN), HttpSink(url, ADMIN)
        try:
            with pytest.raises(RejectedError, match="403"):
                await client_sink.delete(seg_id)
            tombstone = await admin_sink.delete(seg_id, reason="erased on request")
            assert tombstone["reason"] == "erased on request"
            with pytest.raises(KeyError):
                await admin_sink.delete(seg_id)
            assert await client_sink.deletions() == [tombstone]
            assert await client_sink.list() == []
        finally:
            await client_sink.close()
            await admin_sink.close()

    run(scenario, store, admin_tokens={"alpha": ADMIN})


def test_store_delete_crash_after_tombstone_leaves_no_entry(tmp_path, segment):
    """The tombstone goes first, then the hash file (the commit record), then the body: a
    crash between them leaves an uncommitted body, never listed nor served."""
    seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")
    store.put("alpha", seg_id, zstd(data), sha(data))
    body = (tmp_path / "store" / "alpha" / f"{seg_id}.seg.zst").read_bytes()
    store.delete("alpha", seg_id, "test")
    (tmp_path / "store" / "alpha" / f"{seg_id}.seg.zst").write_bytes(body)  # as if the crash came first
    assert store.list("alpha") == []
    assert [t["id"] for t in store.deletions("alpha")] == [seg_id]
    assert store.put("alpha", seg_id, zstd(data), sha(data)) == "deleted"


def test_one_token_cannot_have_two_roles():
    with pytest.raises(ValueError, match="twice"):
        make_app(DirectoryStore.__new__(DirectoryStore), TOKENS, admin_tokens={"alpha": TOKEN})


def test_cli_tokens_file_roles(tmp_path, segment):
    seg_id, data = segment
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alpha:{TOKEN}\nalpha:{ADMIN}:admin\n")
    tokens.chmod(0o600)
    proc, base = start_cli("--store", str(tmp_path / "store"), "--tokens", str(tokens))
    try:
        status, _ = http_request(base + f"/v1/segments/{seg_id}", "PUT", zstd(data), put_headers(data))
        assert status == 201
        assert http_request(base + f"/v1/segments/{seg_id}", "DELETE", headers=AUTH)[0] == 403
        status, answer = http_request(base + f"/v1/segments/{seg_id}", "DELETE", headers=ADMIN_AUTH)
        assert status == 200 and json.loads(answer)["id"] == seg_id
    finally:
        err = stop_cli(proc)
    assert proc.returncode == 0, err
    assert TOKEN not in err and ADMIN not in err


@pytest.mark.parametrize(
    "content, message",
    [
        ("a:tokQ1:admin\na:tokQ2:admin", "given twice (role admin)"),
        ("a:tokQ1\na:tokQ1:admin", "already used"),
        ("a::admin", "namespace:token"),
    ],
    ids=["two-admins", "same-token-both-roles", "empty-admin-token"],
)
def test_cli_bad_role_entries(content, message):
    import click

    from safe_data.cli.serving import parse_tokens

    with pytest.raises(click.UsageError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        parse_tokens(content, "tokens", commas=False)
    assert "tokQ" not in str(info.value)
