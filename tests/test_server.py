"""The backup server (docs/remote.md): auth, ids, verification, limits, idempotency, CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

aiohttp = pytest.importorskip("aiohttp")
zstandard = pytest.importorskip("zstandard")


import safe_data  # noqa: E402
from safe_data.remote.sinks import TransientError  # noqa: E402
from safe_data.remote.sinks.http import HttpSink  # noqa: E402
from safe_data.server.app import InvalidSegment, verify_segment  # noqa: E402
from safe_data.server.stores import ConflictError, NotFound  # noqa: E402
from safe_data.server.stores.directory import DirectoryStore  # noqa: E402

from ._helpers import make_segment  # noqa: E402
from .server_helpers import (  # noqa: E402
    AUTH,
    OTHER,
    TOKEN,
    drop_last_frame,
    http_request,
    put_headers,
    run,
    sha,
    start_cli,
    stop_cli,
    zstd,
)

# --- helpers ----------------------------------------------------------------------------------


def store_files(root) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, f), root) for f in files]
    return sorted(out)


# --- the store --------------------------------------------------------------------------------


def test_store_put_get_list_and_modes(tmp_path, segment):
    seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")
    body = zstd(data)
    assert store.put("alpha", seg_id, body, sha(data)) == "stored"
    assert store.put("alpha", seg_id, body, sha(data)) == "duplicate"
    with pytest.raises(ConflictError):
        store.put("alpha", seg_id, zstd(data + b"x"), sha(data + b"x"))
    assert store.get("alpha", seg_id) == (body, sha(data))
    assert store.list("alpha") == [{"id": seg_id, "sha256": sha(data), "size": len(body)}]
    assert store.list("beta") == []
    with pytest.raises(NotFound):
        store.get("beta", seg_id)
    ns_dir = tmp_path / "store" / "alpha"
    assert stat.S_IMODE(os.stat(ns_dir).st_mode) == 0o700
    for name in os.listdir(ns_dir):
        assert stat.S_IMODE(os.stat(ns_dir / name).st_mode) == 0o600
    assert sorted(os.listdir(ns_dir)) == [f"{seg_id}.seg.zst", f"{seg_id}.sha256"]
    for bad in ("..", "../x", "a/b", "", "0123456789abcdef-00001", "/abs", "a\0"):
        with pytest.raises(ValueError):
            store.put("alpha", bad, body, sha(data))
    for bad in ("..", ".", "../x", "a/b", "", "/abs", "a\0", "x" * 65, ".hidden"):
        with pytest.raises(ValueError):
            store.put(bad, seg_id, body, sha(data))


def test_store_crash_between_body_and_hash_is_not_an_entry(tmp_path, segment):
    """A body without its hash file (crash before the commit) is no entry: neither a
    duplicate nor a conflict; the next upload replaces it."""
    seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")
    store.put("alpha", seg_id, zstd(data), sha(data))
    os.unlink(tmp_path / "store" / "alpha" / f"{seg_id}.sha256")
    (tmp_path / "store" / "alpha" / f"{seg_id}.seg.zst").write_bytes(b"half written")
    assert store.list("alpha") == []
    with pytest.raises(NotFound):
        store.get("alpha", seg_id)
    other = data + b"\0"
    assert store.put("alpha", seg_id, zstd(other), sha(other)) == "stored"
    assert store.get("alpha", seg_id) == (zstd(other), sha(other))


def test_store_concurrent_puts_of_one_id(tmp_path, segment):
    seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")
    bodies = [(zstd(data), sha(data)), (zstd(data + b"1"), sha(data + b"1"))]
    results, errors = [], []

    def worker(i):
        body, digest = bodies[i % 2]
        try:
            results.append((digest, store.put("alpha", seg_id, body, digest)))
        except ConflictError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([r for r in results if r[1] == "stored"]) == 1
    winner = [d for d, r in results if r == "stored"][0]
    assert all(d == winner for d, _ in results)
    assert len(results) + len(errors) == 16
    body, digest = store.get("alpha", seg_id)
    assert digest == winner and body == bodies[0 if winner == bodies[0][1] else 1][0]
    assert sorted(os.listdir(tmp_path / "store" / "alpha")) == [f"{seg_id}.seg.zst", f"{seg_id}.sha256"]


def test_verify_segment_refuses_damage(segment):
    seg_id, data = segment
    verify_segment(data, seg_id)
    with pytest.raises(InvalidSegment, match="does not match"):
        verify_segment(data, "0000000000000000-000001")
    with pytest.raises(InvalidSegment):
        verify_segment(data[:-1], seg_id)  # torn last frame
    with pytest.raises(InvalidSegment):
        verify_segment(data + bytes(100), seg_id)  # zeros after the last frame of a sealed one
    with pytest.raises(InvalidSegment):
        verify_segment(b"NOTASEGM" + data[8:], seg_id)


# --- the HTTP server --------------------------------------------------------------------------


def test_auth(tmp_path, segment, caplog):
    seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")
    body = zstd(data)

    async def scenario(client):
        caplog.set_level(logging.DEBUG)
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN}x"},
        ):
            for method, path in (
                ("PUT", f"/v1/segments/{seg_id}"),
                ("GET", "/v1/segments"),
                ("GET", f"/v1/segments/{seg_id}"),
                ("GET", "/metrics"),
            ):
                h = dict(headers, **{"X-Content-SHA256": sha(data)})
                async with client.request(method, path, headers=h, data=body) as resp:
                    assert resp.status == 401, (headers, method, path)
        assert store_files(tmp_path / "store") == []
        async with client.put(f"/v1/segments/{seg_id}", data=body, headers=put_headers(data)) as resp:
            assert resp.status == 201
        # beta sees its own (empty) namespace, never alpha's
        async with client.get("/v1/segments", headers={"Authorization": f"Bearer {OTHER}"}) as resp:
            assert resp.status == 200 and await resp.json() == []
        async with client.get(f"/v1/segments/{seg_id}", headers={"Authorization": f"Bearer {OTHER}"}) as resp:
            assert resp.status == 404
        async with client.get("/health") as resp:
            assert resp.status == 200 and await resp.json() == {"status": "ok"}

    run(scenario, store)
    assert TOKEN not in caplog.text and OTHER not in caplog.text


@pytest.mark.parametrize(
    "bad_id",
    [
        "..",
        "%2e%2e",
        "..%2F..%2Fetc",
        "a%2Fb",
        "%00",
        "abc%00",
        "0123456789abcdef-000001%00",
        "%2Fetc%2Fpasswd",
        "0123456789ABCDEF-000001",
        "0123456789abcdef-00001",
        "0123456789abcdef-000001.seg",
        "0123456789abcdef-000001%0A",
        "x" * 300,
    ],
)
def test_bad_ids_are_refused_before_storage(tmp_path, segment, bad_id):
    _seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")
    body = zstd(data)

    async def scenario(client):
        url = client.make_url("/").with_path(f"/v1/segments/{bad_id}", encoded=True)
        async with client.session.put(url, data=body, headers=put_headers(data)) as resp:
            assert resp.status in (400, 404), resp.status
            put_status = resp.status
        async with client.session.get(url, headers=AUTH) as resp:
            assert resp.status in (400, 404)
        return put_status

    status = run(scenario, store)
    if "/" not in bad_id:
        assert status == 400
    assert store_files(tmp_path / "store") == []
    assert sorted(os.listdir(tmp_path)) == ["j", "store"]


def test_bad_ids_raw_paths(tmp_path, segment):
    """Paths that clients would normalise, sent verbatim on a socket."""
    _seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")
    body = zstd(data)

    async def scenario(client):
        port = client.server.port
        statuses = []
        for path in (
            "/v1/segments/..",
            "/v1/segments/../../x",
            "/v1/segments//etc/passwd",
            "/v1/segments/a/../0123456789abcdef-000001x",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            head = (
                f"PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"X-Content-SHA256: {sha(data)}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            writer.write(head + body)
            await writer.drain()
            answer = await reader.read()
            writer.close()
            statuses.append(int(answer.split()[1]))
        return statuses

    statuses = run(scenario, store)
    assert all(s in (400, 404) for s in statuses), statuses
    assert store_files(tmp_path / "store") == []


def test_upload_idempotency_list_get_metrics(tmp_path, segment):
    seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")
    body = zstd(data)
    other_id, other = make_segment(tmp_path, "j2", n=50)

    async def scenario(client):
        url = f"/v1/segments/{seg_id}"
        async with client.put(url, data=body, headers=put_headers(data)) as resp:
            assert resp.status == 201, await resp.text()
        async with client.put(url, data=body, headers=put_headers(data)) as resp:
            assert resp.status == 200
        # same content, compressed differently: still the same segment
        async with client.put(
            url, data=zstandard.ZstdCompressor(level=19).compress(data), headers=put_headers(data)
        ) as resp:
            assert resp.status == 200
        # a different valid segment under the same id is refused (its header names another
        # writer, so make the conflict with a body whose id matches: a segment with one
        # frame fewer is still a valid sealed segment of that writer)
        shorter = drop_last_frame(data)
        async with client.put(url, data=zstd(shorter), headers=put_headers(shorter)) as resp:
            assert resp.status == 409
        async with client.put(
            f"/v1/segments/{other_id}", data=zstd(other), headers=put_headers(other)
        ) as resp:
            assert resp.status == 201
        async with client.get("/v1/segments", headers=AUTH) as resp:
            listing = await resp.json()
        assert listing == sorted(
            [
                {"id": seg_id, "sha256": sha(data), "size": len(body)},
                {"id": other_id, "sha256": sha(other), "size": len(zstd(other))},
            ],
            key=lambda e: e["id"],
        )
        async with client.get(url, headers=AUTH) as resp:
            assert resp.status == 200
            assert resp.headers["X-Content-SHA256"] == sha(data)
            assert resp.content_type == "application/zstd"
            got = await resp.read()
        assert zstandard.ZstdDecompressor().decompress(got) == data
        async with client.get("/v1/segments/0123456789abcdef-000009", headers=AUTH) as resp:
            assert resp.status == 404
        async with client.get("/metrics", headers=AUTH) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            return await resp.text()

    text = run(scenario, store)
    assert "safe_data_uploads_stored_total 2" in text
    assert "safe_data_uploads_duplicate_total 2" in text
    assert "safe_data_uploads_conflict_total 1" in text
    assert f"safe_data_upload_stored_bytes_total {len(body) + len(zstd(other))}" in text
    assert f"safe_data_upload_segment_bytes_total {len(data) + len(other)}" in text
    assert TOKEN not in text
    # the restore path of the docs: decompress and read with the journal's key
    restored = tmp_path / "restored"
    restored.mkdir()
    for entry in store.list("alpha"):
        blob, _ = store.get("alpha", entry["id"])
        (restored / f"{entry['id']}.seg").write_bytes(zstandard.ZstdDecompressor().decompress(blob))
    (restored / "key").write_bytes((tmp_path / "j" / "key").read_bytes())
    journal = safe_data.Journal(restored)
    try:
        recs = [r for r in journal.records(on_error="raise") if r.segment.startswith(seg_id)]
    finally:
        journal.close()
    assert recs and recs[-1].op == "clear"


def test_invalid_bodies_are_refused(tmp_path, segment):
    seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")

    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40  # inside a frame: its CRC no longer matches
    flipped = bytes(flipped)
    header_flipped = bytearray(data)
    header_flipped[20] ^= 1
    header_flipped = bytes(header_flipped)

    async def scenario(client):
        url = f"/v1/segments/{seg_id}"
        cases = [
            (zstd(flipped), put_headers(flipped), "checksum"),  # corrupted frame
            (zstd(header_flipped), put_headers(header_flipped), "header"),
            (zstd(data), put_headers(data + b"x"), "SHA256"),  # sha mismatch
            (zstd(data), {"Authorization": f"Bearer {TOKEN}"}, "SHA256"),  # no sha
            (zstd(data), dict(AUTH, **{"X-Content-SHA256": "abc"}), "SHA256"),
            (data, put_headers(data), "zstd"),  # not compressed
            (zstd(data) + b"trailing junk", put_headers(data), "zstd"),
            (zstd(data)[:-10], put_headers(data), "zstd"),  # truncated frame
            (b"", put_headers(b""), "zstd"),
            (zstd(data[:-1]), put_headers(data[:-1]), "torn"),
            (zstd(data + bytes(64)), put_headers(data + bytes(64)), "zero"),
        ]
        for body, headers, reason in cases:
            async with client.put(url, data=body, headers=headers) as resp:
                text = await resp.text()
                assert resp.status == 400, (reason, resp.status, text)
                assert reason.lower() in text.lower(), (reason, text)
        async with client.get("/metrics", headers=AUTH) as resp:
            return await resp.text()

    metrics = run(scenario, store)
    assert 'safe_data_uploads_rejected_total{code="400"} 11' in metrics
    assert store_files(tmp_path / "store") == []


def test_zstd_bomb_is_refused_without_inflating(tmp_path):
    store = DirectoryStore(tmp_path / "store")
    seg_id = "0123456789abcdef-000001"
    raw = bytes(64 << 20)
    honest = zstandard.ZstdCompressor().compress(raw)  # content size in the header
    # the same bytes with a lying/absent content size: only the streaming limit stops it
    cctx = zstandard.ZstdCompressor(write_content_size=False)
    obj = cctx.compressobj()
    liar = obj.compress(raw) + obj.flush()
    assert len(liar) < 1 << 16
    assert zstandard.get_frame_parameters(liar).content_size == zstandard.CONTENTSIZE_UNKNOWN
    del raw

    async def scenario(client):
        times = []
        for body in (honest, liar):
            start = time.monotonic()
            async with client.put(
                f"/v1/segments/{seg_id}", data=body, headers=dict(AUTH, **{"X-Content-SHA256": "0" * 64})
            ) as resp:
                assert resp.status == 413, await resp.text()
            times.append(time.monotonic() - start)
        return times

    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = run(scenario, store, max_segment_bytes=1 << 20)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert max(times) < 2.0
    assert grown_kib < 48 * 1024, f"peak RSS grew by {grown_kib} KiB"
    assert store_files(tmp_path / "store") == []


def test_content_length_too_big_is_refused_before_reading(tmp_path):
    store = DirectoryStore(tmp_path / "store")

    async def scenario(client):
        port = client.server.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # announce a terabyte, send nothing: the answer must come without the body
        writer.write(
            (
                f"PUT /v1/segments/0123456789abcdef-000001 HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {TOKEN}\r\nX-Content-SHA256: {'0' * 64}\r\n"
                f"Content-Length: {1 << 40}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        # Expect: 100-continue is refused before the client sends the body
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            (
                f"PUT /v1/segments/0123456789abcdef-000001 HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {TOKEN}\r\nX-Content-SHA256: {'0' * 64}\r\n"
                f"Content-Length: {1 << 40}\r\nExpect: 100-continue\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        expect_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()

        # a chunked body that grows past the limit
        async def chunks():
            for _ in range(40):
                yield bytes(64 << 10)

        async with client.put(
            "/v1/segments/0123456789abcdef-000001",
            data=chunks(),
            headers=dict(AUTH, **{"X-Content-SHA256": "0" * 64}),
        ) as resp:
            chunked_status = resp.status
        return status_line, expect_line, chunked_status

    status_line, expect_line, chunked_status = run(
        scenario, store, max_segment_bytes=1 << 20, max_body_bytes=1 << 20
    )
    assert status_line.split()[1] == b"413", status_line
    assert expect_line.split()[1] == b"413", expect_line
    assert chunked_status == 413
    assert store_files(tmp_path / "store") == []


def test_busy_server_answers_503_before_reading_and_the_sink_retries_later(tmp_path, segment):
    seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")

    async def scenario(client):
        sink = HttpSink(str(client.make_url("")), TOKEN)
        # the one upload slot, held by an upload whose body is slow to come
        reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
        writer.write(
            (
                f"PUT /v1/segments/0123456789abcdef-000001 HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {TOKEN}\r\nX-Content-SHA256: {'0' * 64}\r\n"
                f"Content-Length: {1 << 20}\r\n\r\n"
            ).encode()
            + bytes(1000)
        )
        await writer.drain()
        await wait_for_metric(client, "safe_data_uploads_in_progress 1")
        try:
            with pytest.raises(TransientError, match="503") as busy:
                await sink.put(seg_id, zstd(data), sha(data))
        finally:
            writer.close()
            await writer.wait_closed()
        await wait_for_metric(client, "safe_data_uploads_in_progress 0")
        await sink.put(seg_id, zstd(data), sha(data))  # the slot is free again
        await sink.close()
        async with client.get("/metrics", headers=AUTH) as resp:
            return busy.value.retry_after, await resp.text()

    retry_after, metrics = run(scenario, store, max_concurrent_uploads=1, upload_wait=0.05)
    assert retry_after == 2
    assert "safe_data_uploads_busy_total 1\n" in metrics
    assert "safe_data_uploads_stored_total 1\n" in metrics
    assert store.list("alpha")[0]["id"] == seg_id


async def wait_for_metric(client, line: str) -> None:
    for _ in range(500):
        async with client.get("/metrics", headers=AUTH) as resp:
            if line + "\n" in await resp.text():
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {line!r} in the metrics")


def test_event_loop_stays_responsive_and_parallel_same_id(tmp_path, segment):
    seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")
    body = zstd(data)

    async def scenario(client):
        async def put():
            async with client.put(f"/v1/segments/{seg_id}", data=body, headers=put_headers(data)) as resp:
                return resp.status

        async def health():
            async with client.get("/health") as resp:
                return resp.status

        statuses = await asyncio.gather(*[put() for _ in range(12)], health())
        return statuses

    statuses = run(scenario, store)
    assert statuses[-1] == 200
    assert sorted(statuses[:-1]) == [200] * 11 + [201]
    assert store.get("alpha", seg_id) == (body, sha(data))


# --- the CLI ----------------------------------------------------------------------------------


def _start_cli(tmp_path, *args, env=None):
    return start_cli("--store", str(tmp_path / "store"), *args, env=env)


def test_cli_serves_and_stops_on_sigterm(tmp_path, segment):
    seg_id, data = segment
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# namespaces\nalpha:{TOKEN}\n\nbeta:{OTHER}\n")
    tokens.chmod(0o600)
    proc, base = _start_cli(tmp_path, "--tokens", str(tokens))
    try:
        assert http_request(base + "/health") == (200, b'{"status": "ok"}')
        assert http_request(base + "/v1/segments")[0] == 401
        status, _ = http_request(base + f"/v1/segments/{seg_id}", "PUT", zstd(data), put_headers(data))
        assert status == 201
        status, listing = http_request(base + "/v1/segments", headers=AUTH)
        assert status == 200 and json.loads(listing)[0]["id"] == seg_id
        assert http_request(base + "/v1/segments/..%2f..", "PUT", b"", put_headers(b""))[0] == 400
    finally:
        err = stop_cli(proc)
    assert proc.returncode == 0, err
    assert TOKEN not in err and OTHER not in err
    assert os.path.exists(tmp_path / "store" / "alpha" / f"{seg_id}.seg.zst")


def test_cli_tokens_from_env_and_sigint(tmp_path):
    proc, base = _start_cli(tmp_path, env={"SAFE_DATA_TOKENS": f"alpha:{TOKEN}, beta:{OTHER}"})
    try:
        assert http_request(base + "/v1/segments", headers={"Authorization": f"Bearer {OTHER}"}) == (
            200,
            b"[]",
        )
    finally:
        err = stop_cli(proc, signal.SIGINT)
    assert proc.returncode == 0, err


@pytest.mark.parametrize(
    "content, message",
    [
        ("alpha", "namespace:token"),
        ("alpha:", "namespace:token"),
        ("../x:tok", "invalid namespace"),
        ("a:tokQ1\na:tokQ2", "twice"),
        ("a:tokQ3\nb:tokQ3", "already used"),
        ("# nothing\n", "no namespace"),
    ],
    ids=["no-colon", "empty-token", "bad-namespace", "twice", "shared", "empty"],
)
def test_cli_bad_tokens(tmp_path, content, message):
    tokens = tmp_path / "tokens"
    tokens.write_text(content)
    tokens.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "SAFE_DATA_TOKENS"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "safe_data.cli.serving",
            "--store",
            str(tmp_path / "s"),
            "--port",
            "0",
            "--tokens",
            str(tokens),
        ],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "tokQ" not in result.stderr


def test_cli_no_tokens_at_all(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SAFE_DATA_TOKENS"}
    result = subprocess.run(
        [sys.executable, "-m", "safe_data.cli.serving", "--store", str(tmp_path / "s"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
    )
    assert result.returncode == 2 and "SAFE_DATA_TOKENS" in result.stderr
