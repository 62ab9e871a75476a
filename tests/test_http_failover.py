"""``HttpSink`` over several servers of one store: fail-over (docs/remote.md), against real
servers on loopback and a port where nothing listens."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("zstandard")

from safe_data.cli.shipping import make_sink  # noqa: E402
from safe_data.remote.sinks import RejectedError, TransientError  # noqa: E402
from safe_data.remote.sinks.http import HttpSink  # noqa: E402
from safe_data.server.stores.directory import DirectoryStore  # noqa: E402

from ._helpers import make_segment  # noqa: E402
from .seaweedfs import free_port  # noqa: E402
from .server_helpers import TOKEN, run_servers, sha, zstd  # noqa: E402


def url_of(client) -> str:
    return str(client.make_url("")).rstrip("/")


def test_fails_over_to_the_next_server_and_stays_there(tmp_path, segment):
    seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")
    dead = f"http://127.0.0.1:{free_port()}"

    async def scenario(clients):
        first, second = (url_of(c) for c in clients)
        sink = HttpSink([dead, first, second], TOKEN)
        try:
            await sink.put(seg_id, zstd(data), sha(data))
            after_put = sink.url
            listing = await sink.list()
            body = await sink.get(seg_id)
            await sink.check()
            return first, after_put, sink.url, listing, body
        finally:
            await sink.close()

    first, after_put, last, listing, body = run_servers(scenario, [store, store])
    assert after_put == last == first  # the next one of the list, kept: no switching back
    assert listing == [{"id": seg_id, "sha256": sha(data), "size": len(zstd(data))}]
    assert body == zstd(data)


def test_concurrent_failures_move_on_once(tmp_path):
    """Requests in flight that fail on one server together move to the next server, not
    one server further each."""
    store = DirectoryStore(tmp_path / "store")
    segments = [make_segment(tmp_path, f"j{i}") for i in range(4)]
    dead = f"http://127.0.0.1:{free_port()}"

    async def scenario(clients):
        first, second = (url_of(c) for c in clients)
        sink = HttpSink([dead, first, second], TOKEN)
        try:
            await asyncio.gather(*(sink.put(i, zstd(d), sha(d)) for i, d in segments))
            return first, sink.url
        finally:
            await sink.close()

    first, current = run_servers(scenario, [store, store])
    assert current == first
    assert sorted(e["id"] for e in store.list("alpha")) == sorted(i for i, _ in segments)


def test_every_server_down_is_transient():
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]

    async def scenario():
        sink = HttpSink(dead, TOKEN, connect_timeout=5)
        try:
            with pytest.raises(TransientError, match="Cannot connect"):
                await sink.check()
        finally:
            await sink.close()

    asyncio.run(scenario())


def test_a_rejection_is_not_tried_elsewhere(tmp_path, segment):
    """A refusal (here 400: not a valid segment) is the same from every server: the next
    one (down here) is not asked."""
    seg_id, data = segment
    store = DirectoryStore(tmp_path / "store")
    dead = f"http://127.0.0.1:{free_port()}"

    async def scenario(clients):
        live = url_of(clients[0])
        sink = HttpSink([live, dead], TOKEN)
        try:
            await sink.put(seg_id, zstd(data), sha(data))
            with pytest.raises(RejectedError, match="400 invalid"):
                await sink.put(seg_id, zstd(data + b"x"), sha(data + b"x"))
            return live, sink.url
        finally:
            await sink.close()

    live, current = run_servers(scenario, [store])
    assert current == live


def test_one_url_unchanged_and_bad_lists():
    sink = HttpSink("http://backup:8765/", TOKEN)
    assert sink.url == "http://backup:8765" and sink.urls == ("http://backup:8765",)
    assert repr(sink) == "HttpSink('http://backup:8765', token=<hidden>)"
    two = HttpSink(["http://a:1", "http://b:2"], TOKEN)
    assert repr(two) == "HttpSink(['http://a:1', 'http://b:2'], token=<hidden>)"
    assert two.url == "http://a:1"
    with pytest.raises(ValueError, match="at least one"):
        HttpSink([], TOKEN)
    with pytest.raises(ValueError, match="'ftp://b'"):
        HttpSink(["http://a:1", "ftp://b"], TOKEN)


def test_cli_target_with_several_servers():
    sink = make_sink("http://a:1,http://b:2", TOKEN, "default", None)
    assert sink.urls == ("http://a:1", "http://b:2")
