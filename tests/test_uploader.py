"""The uploader and its sinks, against real servers: the backup server, and a faulty one.

Every test journals real records (SafeList pops), ships them, then restores what the sink
holds into a fresh directory and reads it back: each record must be there exactly once.
"""

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

import safe_data
from safe_data import SafeList, _impl
from safe_data.journal import format as fmt
from safe_data.remote import _ledger
from safe_data.remote.protocol import decompress_segment, parse_retry_after
from safe_data.remote.sinks import RejectedError, Sink, TransientError
from safe_data.remote.sinks.directory import DirectorySink
from safe_data.remote.sinks.http import HttpSink
from safe_data.remote.uploader import MARKS_DIR, Uploader, UploaderError, UploadWarning, pending_segments

aiohttp = pytest.importorskip("aiohttp")
zstandard = pytest.importorskip("zstandard")
from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402

FAST = {"seal_every": None, "backoff": (0.01, 0.2)}


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def journal(tmp_path):
    j = safe_data.Journal(tmp_path / "journal", segment_size=4096)
    yield j
    j.close()


def pop_many(journal, n, name="items", start=0):
    """Journal ``n`` records (one pop each) spread over several 4 KiB segments; the popped
    values."""
    items = SafeList([f"{i:06d}-" + "x" * 150 for i in range(start, start + n)], name=name, journal=journal)
    return [items.pop() for _ in range(n)]


def sealed_ids(journal):
    return sorted(n[:-4] for n in os.listdir(journal.path) if n.endswith(".seg"))


def restored_values(journal, stored, tmp_path, name="items"):
    """Decompress ``{id: zstd body}`` into a new directory with the journal's key, read it
    back: the popped values, checking no record is there twice, and that the only problems
    are the segments left out of ``stored`` (reported missing)."""
    where = tmp_path / f"restored-{time.monotonic_ns()}"
    where.mkdir()
    for segment_id, body in stored.items():
        (where / f"{segment_id}.seg").write_bytes(decompress_segment(body))
    shutil.copy(os.path.join(journal.path, "key"), where / "key")
    restored = safe_data.Journal(where)
    try:
        records = list(restored.records(name, on_error="ignore"))
        problems = restored.verify()
    finally:
        restored.close()
    assert all(not (where / p.segment).exists() and "missing" in p.reason for p in problems), problems
    seen = [(r.writer, r.seq) for r in records]
    assert len(seen) == len(set(seen)), "a record was stored twice"
    return [v for r in records for v in r.values]


def directory_contents(sink):
    """{id: zstd body} of a DirectorySink."""
    return {entry["id"]: asyncio.run(sink.get(entry["id"])) for entry in asyncio.run(sink.list())}


class ServerThread:
    """Serve an aiohttp application on 127.0.0.1 from a thread with its own loop."""

    def __init__(self, app):
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        self.server = TestServer(self.app, host="127.0.0.1")
        asyncio.run_coroutine_threadsafe(self.server.start_server(), self.loop).result(10)
        self.url = str(self.server.make_url("")).rstrip("/")
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class FaultyBackend:
    """A backup server that misbehaves on cue.  ``script`` lists, per PUT, one of:
    "503" (busy, Retry-After), "500" (internal error, nothing stored), "reset" (connection
    reset before storing), "lost-ack" (store, then reset before answering), "ok".  After the
    script: "ok".  Stores like the real one: same id and hash: 200; other hash: 409."""

    def __init__(self, script=(), retry_after="0"):
        self.script = list(script)
        self.retry_after = retry_after
        self.store = {}  # id -> (sha256, body)
        self.events = []  # shared with the test: ("stored", id), ("acked", id), ("deleted", id)
        self.puts = 0

    def app(self):
        app = web.Application(client_max_size=64 << 20)
        app.router.add_put("/v1/segments/{id}", self.put)
        return app

    async def put(self, request):
        segment_id = request.match_info["id"]
        sha = request.headers["X-Content-SHA256"]
        body = await request.read()
        self.puts += 1
        action = self.script.pop(0) if self.script else "ok"
        if action == "503":
            return web.Response(status=503, text="busy", headers={"Retry-After": self.retry_after})
        if action == "500":
            return web.Response(status=500, text="internal error")
        if action == "reset":
            request.transport.abort()
            return web.Response(status=500)
        if hashlib.sha256(decompress_segment(body)).hexdigest() != sha:
            return web.Response(status=400, text="hash mismatch")
        if segment_id in self.store:
            if self.store[segment_id][0] != sha:
                return web.json_response({"error": "another content under this id"}, status=409)
            status = 200
        else:
            self.store[segment_id] = (sha, body)
            self.events.append(("stored", segment_id))
            status = 201
        if action == "lost-ack":
            request.transport.abort()
            return web.Response(status=500)
        return web.Response(status=status)


class Recording(Sink):
    """Wraps a sink; records ("acked", id) when its put returns, counts puts."""

    def __init__(self, inner, events):
        self.inner, self.events, self.puts = inner, events, []

    async def put(self, segment_id, body, sha256):
        self.puts.append(segment_id)
        await self.inner.put(segment_id, body, sha256)
        self.events.append(("acked", segment_id))

    async def close(self):
        await self.inner.close()


@pytest.fixture
def deletions(monkeypatch):
    """Record ("deleted", id) for every local segment the uploader deletes."""
    events = []
    real = _ledger._unlink

    def unlink(path):
        if path.endswith(".seg"):
            events.append(("deleted", os.path.basename(path)[:-4]))
        return real(path)

    monkeypatch.setattr(_ledger, "_unlink", unlink)
    return events


def assert_deleted_only_after_ack(events):
    for i, (what, segment_id) in enumerate(events):
        if what == "deleted":
            assert ("acked", segment_id) in events[:i], f"{segment_id} deleted before its ack"


# --- DirectorySink -----------------------------------------------------------------------------


def test_directory_sink_roundtrip_and_idempotency(tmp_path):
    sink = DirectorySink(tmp_path / "store", namespace="ns")
    raw = b"SAFEDATA" + bytes(100)
    body = zstandard.ZstdCompressor(level=3).compress(raw)
    sha = hashlib.sha256(raw).hexdigest()
    segment_id = "0123456789abcdef-000001"

    async def scenario():
        await sink.put(segment_id, body, sha)
        await sink.put(segment_id, body, sha)  # same content again: acknowledged
        other = b"SAFEDATA" + bytes(99)
        with pytest.raises(RejectedError, match="another content"):
            await sink.put(
                segment_id, zstandard.ZstdCompressor().compress(other), hashlib.sha256(other).hexdigest()
            )
        with pytest.raises(RejectedError, match="does not match"):
            await sink.put("0123456789abcdef-000002", body, "0" * 64)
        for bad_id in ("../../etc/passwd", segment_id + "\n"):
            with pytest.raises(RejectedError, match="invalid segment id"):
                await sink.put(bad_id, body, sha)
        assert await sink.list() == [{"id": segment_id, "sha256": sha, "size": len(body)}]
        assert decompress_segment(await sink.get(segment_id)) == raw
        with pytest.raises(KeyError):
            await sink.get("0123456789abcdef-000002")

    asyncio.run(scenario())
    names = sorted(os.listdir(tmp_path / "store" / "ns"))
    assert names == [f"{segment_id}.seg.zst", f"{segment_id}.sha256"]  # no temp file left
    assert (tmp_path / "store" / "ns" / f"{segment_id}.sha256").read_text().strip() == sha


def test_directory_sink_and_the_servers_store_read_each_others_entries(tmp_path):
    """One layout (docs/remote.md): what the sink wrote, the server's store lists, serves
    and acknowledges again; what the store wrote, the sink lists and reads back."""
    from safe_data.server.stores.directory import DirectoryStore

    def segment(n):
        raw = b"SAFEDATA" + bytes([n]) * 100
        return (
            f"0123456789abcdef-00000{n}",
            zstandard.ZstdCompressor().compress(raw),
            hashlib.sha256(raw).hexdigest(),
        )

    sink, store = DirectorySink(tmp_path / "store", namespace="ns"), DirectoryStore(tmp_path / "store")
    by_sink, by_store = segment(1), segment(2)
    store.put("ns", *by_store)

    async def scenario():
        await sink.put(*by_sink)
        await sink.put(*by_store)  # already there: acknowledged, nothing rewritten
        return await sink.list(), [await sink.get(seg) for seg, _, _ in (by_sink, by_store)]

    listed, bodies = asyncio.run(scenario())
    expected = [{"id": seg, "sha256": sha, "size": len(body)} for seg, body, sha in (by_sink, by_store)]
    assert listed == store.list("ns") == expected
    assert bodies == [by_sink[1], by_store[1]]
    assert store.get("ns", by_sink[0]) == (by_sink[1], by_sink[2])
    assert store.put("ns", *by_sink) == "duplicate"
    # a body without its hash file is no entry, for either
    (tmp_path / "store" / "ns" / f"{by_store[0]}.sha256").unlink()
    assert [e["id"] for e in store.list("ns")] == [by_sink[0]]
    assert [e["id"] for e in asyncio.run(sink.list())] == [by_sink[0]]


def test_decompression_is_bounded():
    bomb = zstandard.ZstdCompressor().compress(bytes(1 << 20))
    with pytest.raises(ValueError, match="larger than"):
        decompress_segment(bomb, limit=1000)
    with pytest.raises(ValueError):
        decompress_segment(b"not zstd at all")


def test_retry_after_parsing():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_uploader_ships_to_a_directory_and_deletes_after_ack(journal, tmp_path, deletions):
    events = deletions
    sink = Recording(DirectorySink(tmp_path / "store"), events)
    with Uploader(sink, journal, **FAST) as up:
        popped = pop_many(journal, 120)
        up.flush(timeout=10)
        stats = up.stats()
    assert stats["pending_segments"] == 0 and stats["rejected"] == 0
    assert stats["acked"] >= 5
    assert sealed_ids(journal) == []  # all acknowledged, all deleted
    assert os.listdir(os.path.join(journal.path, MARKS_DIR)) == ["status.json"]  # no mark left
    assert sorted(restored_values(journal, directory_contents(sink.inner), tmp_path)) == sorted(popped)
    assert_deleted_only_after_ack(events)
    assert {i for what, i in events if what == "deleted"} == {i for what, i in events if what == "acked"}


def test_rejected_segments_stay_local(journal, tmp_path, recwarn):
    store = DirectorySink(tmp_path / "store")
    popped = pop_many(journal, 60)
    journal.seal()
    ids = sealed_ids(journal)
    victim = ids[0]
    # another content already stored under the first segment's id
    other = b"SAFEDATA" + os.urandom(64)
    asyncio.run(
        store.put(victim, zstandard.ZstdCompressor().compress(other), hashlib.sha256(other).hexdigest())
    )
    with Uploader(store, journal, **FAST) as up:
        up.flush(timeout=10)
        stats = up.stats()
    assert stats["rejected"] == 1 and stats["rejected_ids"] == [victim]
    assert "another content" in stats["last_error"]
    assert sealed_ids(journal) == [victim]  # kept, never deleted
    assert [s.id for s in pending_segments(journal.path)] == [victim]
    assert any(victim in str(w.message) for w in recwarn.list)
    stored = directory_contents(store)
    del stored[victim]
    expected = [
        v
        for v in popped
        if v not in restored_values(journal, {victim: _local_body(journal, victim)}, tmp_path)
    ]
    assert sorted(restored_values(journal, stored, tmp_path)) == sorted(expected)


def _local_body(journal, segment_id):
    with open(os.path.join(journal.path, segment_id + ".seg"), "rb") as f:
        return zstandard.ZstdCompressor().compress(f.read())


def test_restart_never_resends_marked_segments(journal, tmp_path):
    store = DirectorySink(tmp_path / "store")
    first = Recording(store, [])
    with Uploader(first, journal, keep_for=3600, **FAST) as up:
        pop_many(journal, 60)
        up.flush(timeout=10)
    kept = sealed_ids(journal)
    assert kept and sorted(first.puts) == kept  # kept locally, marked
    assert sorted(os.listdir(os.path.join(journal.path, MARKS_DIR))) == kept + ["status.json"]
    assert pending_segments(journal.path) == []

    second = Recording(store, [])
    with Uploader(second, journal.path, keep_for=3600, **FAST) as up:  # a path works too
        up.flush(timeout=10)
        assert second.puts == []
        pop_many(journal, 3, start=1000)
        up.flush(timeout=10)
    assert len(second.puts) == 1 and second.puts[0] not in kept


def test_keep_for_delays_deletion(journal, tmp_path):
    with Uploader(DirectorySink(tmp_path / "store"), journal, keep_for=0.6, **FAST) as up:
        pop_many(journal, 30)
        up.flush(timeout=10)
        kept = sealed_ids(journal)
        assert kept and up.stats()["pending_segments"] == 0
        deadline = time.monotonic() + 5
        while sealed_ids(journal) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sealed_ids(journal) == []


class Gate(Sink):
    """Holds every stored put until ``width`` of them are waiting, then acknowledges them
    all at once."""

    def __init__(self, inner, width):
        self.inner, self.width, self.waiting = inner, width, []

    async def put(self, segment_id, body, sha256):
        await self.inner.put(segment_id, body, sha256)
        release = asyncio.get_running_loop().create_future()
        self.waiting.append(release)
        if len(self.waiting) == self.width:
            for waiter in self.waiting:
                waiter.set_result(None)
            self.waiting = []
        else:
            await asyncio.wait({release}, timeout=0.5)  # the last ones of a flush come alone


def test_marks_arriving_together_share_one_directory_fsync(journal, tmp_path, monkeypatch):
    synced = []
    real = _ledger.fsync_dir
    monkeypatch.setattr(_ledger, "fsync_dir", lambda path: (synced.append(path), real(path)))
    pop_many(journal, 250)
    journal.seal()
    expected = sealed_ids(journal)
    assert len(expected) >= 12
    with Uploader(
        Gate(DirectorySink(tmp_path / "store"), 4), journal, keep_for=3600, concurrency=4, **FAST
    ) as up:
        up.flush(timeout=20)
    marks_dir = os.path.join(journal.path, MARKS_DIR)
    assert sorted(os.listdir(marks_dir)) == expected + ["status.json"]  # every ack marked
    # one directory fsync per mark without the group commit; here batches share them
    assert 0 < synced.count(marks_dir) <= len(expected) // 2 + 1


def test_without_retention_no_mark_is_written(journal, tmp_path, monkeypatch, deletions):
    marked = []
    monkeypatch.setattr(_ledger, "write_marks", lambda path, ids: marked.extend(ids))
    with Uploader(Recording(DirectorySink(tmp_path / "store"), deletions), journal, **FAST) as up:
        pop_many(journal, 60)
        up.flush(timeout=10)
    assert marked == [] and sealed_ids(journal) == []
    assert_deleted_only_after_ack(deletions)


def test_uploader_threads_stay_in_the_background(journal, tmp_path):
    class Slow(Sink):  # keeps segments in flight while the threads are inspected
        async def put(self, segment_id, body, sha256):
            await asyncio.sleep(0.05)

    own_priority = (
        os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        if sys.platform.startswith("linux")
        else None
    )
    with pytest.raises(ValueError, match="compress_threads"):
        Uploader(Slow(), journal, compress_threads=0)
    pop_many(journal, 200)
    with Uploader(Slow(), journal, concurrency=8, **FAST) as up:
        flushing = threading.Thread(target=up.flush, kwargs={"timeout": 20})
        flushing.start()
        deadline = time.monotonic() + 30  # the compressor starts with the first segment
        while True:
            threads = [t for t in threading.enumerate() if t.name.startswith("safe_data-uploader")]
            if any("compress" in t.name for t in threads) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        flushing.join()
    compressors = [t for t in threads if "compress" in t.name]
    assert len(compressors) == 1, [t.name for t in threads]  # whatever the concurrency
    if own_priority is not None:
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own_priority
        for thread in threads:
            if thread.is_alive():
                assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == min(19, own_priority + 10)


def test_seal_every_ships_without_flush(journal, tmp_path):
    sink = DirectorySink(tmp_path / "store")
    with Uploader(sink, journal, seal_every=0.1, backoff=(0.01, 0.2)):
        popped = pop_many(journal, 2)
        deadline = time.monotonic() + 5
        while len(restored_values(journal, directory_contents(sink), tmp_path)) < 2:
            assert time.monotonic() < deadline, "the active segment was not sealed and shipped"
            time.sleep(0.05)
    assert sorted(restored_values(journal, directory_contents(sink), tmp_path)) == sorted(popped)


def test_async_with(journal, tmp_path):
    sink = DirectorySink(tmp_path / "store")

    async def app():
        async with Uploader(sink, journal, **FAST) as up:
            popped = pop_many(journal, 40)
            with pytest.raises(UploaderError, match="aflush"):
                up.flush()  # would block its own loop
            await up.aflush(timeout=10)
            assert up.stats()["pending_segments"] == 0
        return popped

    popped = asyncio.run(app())
    assert sorted(restored_values(journal, directory_contents(sink), tmp_path)) == sorted(popped)


def test_aflush_from_another_loop_and_misuse(journal, tmp_path):
    up = Uploader(DirectorySink(tmp_path / "store"), journal, **FAST)
    with pytest.raises(UploaderError, match="start"):
        up.flush()
    up.start()
    try:
        with pytest.raises(UploaderError, match="already"):
            up.start()
        pop_many(journal, 10)
        asyncio.run(up.aflush(timeout=10))
        assert up.stats()["pending_segments"] == 0
    finally:
        up.close()
    with pytest.raises(UploaderError, match="closed"):
        up.flush()


def test_flush_times_out_when_the_sink_is_down(journal, tmp_path):
    class Down(Sink):
        async def put(self, segment_id, body, sha256):
            raise TransientError("server down")

    up = Uploader(Down(), journal, **FAST).start()
    pop_many(journal, 5)
    with pytest.raises(TimeoutError, match="not acknowledged"):
        up.flush(timeout=0.3)
    stats = up.stats()
    assert stats["errors"] >= 1 and stats["last_error"] == "server down"
    assert stats["pending_segments"] == 1
    with pytest.warns(Warning, match="not acknowledged"):
        up.close(timeout=0.2)
    assert len(sealed_ids(journal)) == 1  # kept for the next uploader


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork(journal, tmp_path):
    sink = DirectorySink(tmp_path / "store")
    with Uploader(sink, journal, **FAST) as up:
        popped = pop_many(journal, 20)
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                try:
                    up.flush()
                except UploaderError as exc:
                    assert "new Uploader in the child" in str(exc)
                else:
                    raise AssertionError("the inherited uploader did not refuse")
                up.close()  # nothing to close here: no error
                with Uploader(DirectorySink(tmp_path / "store"), journal, **FAST) as mine:
                    child_popped = pop_many(journal, 20, name="child", start=500)
                    mine.flush(timeout=10)
                with open(tmp_path / "child-popped", "w") as f:
                    f.write("\n".join(child_popped))
                code = 0
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        popped += pop_many(journal, 20, start=100)  # the parent's uploader keeps working
        up.flush(timeout=10)
    stored = directory_contents(sink)
    assert sorted(restored_values(journal, stored, tmp_path)) == sorted(popped)
    child_popped = (tmp_path / "child-popped").read_text().split("\n")
    assert sorted(restored_values(journal, stored, tmp_path, name="child")) == sorted(child_popped)
    assert sealed_ids(journal) == []


# --- HttpSink against a faulty server ----------------------------------------------------------


def test_http_faults_store_every_record_exactly_once(journal, tmp_path, deletions):
    backend = FaultyBackend(
        ["503", "500", "reset", "lost-ack", "503", "reset", "500", "lost-ack", "lost-ack"]
    )
    events = deletions
    backend.events = events
    popped = pop_many(journal, 150)
    journal.seal()
    ids = sealed_ids(journal)
    assert len(ids) >= 6
    # a conflicting content is already stored under one segment's id
    victim = ids[2]
    other = b"SAFEDATA" + os.urandom(64)
    backend.store[victim] = (hashlib.sha256(other).hexdigest(), zstandard.ZstdCompressor().compress(other))
    with ServerThread(backend.app()) as server:
        sink = Recording(HttpSink(server.url, "token"), events)
        with (
            Uploader(sink, journal, concurrency=2, **FAST) as up,
            pytest.warns(UploadWarning, match=f"{victim} was rejected.*409 conflict.*another content"),
        ):
            popped += pop_many(journal, 30, start=1000)
            up.flush(timeout=15)
            stats = up.stats()
    assert backend.script == []  # every fault happened
    assert stats["rejected_ids"] == [victim]
    assert stats["errors"] >= 4  # the 503s and 500s at least (aiohttp may retry a reset PUT once)
    assert sealed_ids(journal) == [victim]  # the rejected segment stays local
    assert_deleted_only_after_ack(events)
    for what, segment_id in events:
        if what == "deleted":
            assert ("stored", segment_id) in events[: events.index((what, segment_id))]
    stored = {i: body for i, (sha, body) in backend.store.items() if i != victim}
    expected = set(popped) - set(restored_values(journal, {victim: _local_body(journal, victim)}, tmp_path))
    values = restored_values(journal, stored, tmp_path)
    assert sorted(values) == sorted(expected)  # every record exactly once


def test_http_retry_after_is_honoured(journal, tmp_path):
    backend = FaultyBackend(["503"], retry_after="1")
    with ServerThread(backend.app()) as server:
        with Uploader(HttpSink(server.url, "token"), journal, seal_every=None, backoff=(0.01, 0.02)) as up:
            pop_many(journal, 2)
            started = time.monotonic()
            up.flush(timeout=10)
            assert time.monotonic() - started >= 0.9
    assert len(backend.store) == 1 and backend.puts == 2


def test_http_sink_answers(tmp_path):
    """Each status maps to ack / rejected / transient; the token never appears."""
    statuses = iter([201, 200, 409, 400, 401, 403, 413, 500, 429, 404])

    async def handler(request):
        await request.read()
        status = next(statuses)
        return web.Response(status=status, text=f"because {status}", headers={"Retry-After": "7"})

    app = web.Application()
    app.router.add_put("/v1/segments/{id}", handler)
    segment_id, sha = "0123456789abcdef-000001", "a" * 64

    async def scenario(url):
        sink = HttpSink(url + "/", "very-secret-token")
        assert "very-secret-token" not in repr(sink)
        try:
            outcomes = []
            for _ in range(10):
                try:
                    await sink.put(segment_id, b"body", sha)
                    outcomes.append("ack")
                except RejectedError as exc:
                    outcomes.append(("rejected", str(exc)))
                except TransientError as exc:
                    outcomes.append(("transient", exc.retry_after, str(exc)))
            return outcomes
        finally:
            await sink.close()

    with ServerThread(app) as server:
        outcomes = asyncio.run(scenario(server.url))
    assert outcomes[:2] == ["ack", "ack"]
    for outcome, status in zip(outcomes[2:7], [409, 400, 401, 403, 413], strict=True):
        assert outcome[0] == "rejected" and f"because {status}" in outcome[1]
    assert "token" in outcomes[4][1] and "very-secret-token" not in outcomes[4][1]
    for outcome in outcomes[7:]:
        assert outcome[0] == "transient" and outcome[1] == 7.0
    assert all("very-secret-token" not in str(o) for o in outcomes)


def test_http_sink_connection_refused_is_transient():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now

    async def scenario():
        sink = HttpSink(f"http://127.0.0.1:{port}", "t", timeout=2)
        try:
            await sink.put("0123456789abcdef-000001", b"x", "a" * 64)
        finally:
            await sink.close()

    with pytest.raises(TransientError):
        asyncio.run(scenario())


# --- HttpSink against the real backup server ---------------------------------------------------


@pytest.fixture
def backup_server(tmp_path):
    from safe_data.server.app import make_app
    from safe_data.server.stores.directory import DirectoryStore

    store_root = tmp_path / "server-store"
    store_root.mkdir()
    app = make_app(DirectoryStore(store_root), {"ns": "right-token"})
    with ServerThread(app) as server:
        server.store_root = store_root
        yield server


def _download(url, token):
    async def scenario():
        sink = HttpSink(url, token)
        try:
            return {entry["id"]: await sink.get(entry["id"]) for entry in await sink.list()}
        finally:
            await sink.close()

    return asyncio.run(scenario())


def test_real_backup_server(journal, tmp_path, backup_server, deletions):
    events = deletions
    sink = Recording(HttpSink(backup_server.url, "right-token"), events)
    with Uploader(sink, journal, **FAST) as up:
        popped = pop_many(journal, 100)
        up.flush(timeout=15)
        assert up.stats()["pending_segments"] == 0
    assert sealed_ids(journal) == []
    assert_deleted_only_after_ack(events)
    stored = _download(backup_server.url, "right-token")
    assert sorted(stored) == sorted(i for what, i in events if what == "acked")
    assert sorted(restored_values(journal, stored, tmp_path)) == sorted(popped)
    # the server's layout is the DirectorySink's: read its directory with a DirectorySink
    same = directory_contents(DirectorySink(backup_server.store_root, namespace="ns"))
    assert {i: decompress_segment(b) for i, b in same.items()} == {
        i: decompress_segment(b) for i, b in stored.items()
    }


def test_real_backup_server_idempotent_and_conflict(journal, tmp_path, backup_server):
    pop_many(journal, 10)
    journal.seal()
    (segment_id,) = sealed_ids(journal)
    with open(os.path.join(journal.path, segment_id + ".seg"), "rb") as f:
        raw = f.read()
    body, sha = zstandard.ZstdCompressor().compress(raw), hashlib.sha256(raw).hexdigest()

    async def scenario():
        sink = HttpSink(backup_server.url, "right-token")
        try:
            await sink.put(segment_id, body, sha)
            await sink.put(segment_id, body, sha)  # again: acknowledged
            first_frame = int.from_bytes(raw[64:68], "little")
            # a valid segment too: its first frame only, and a header counting just that one
            header = fmt.counted_header(_impl.crc32c, raw[:64], 1, 1)
            forged = header + raw[64 : 64 + first_frame]
            assert forged != raw
            with pytest.raises(RejectedError, match="409"):
                await sink.put(
                    segment_id,
                    zstandard.ZstdCompressor().compress(forged),
                    hashlib.sha256(forged).hexdigest(),
                )
            with pytest.raises(RejectedError, match="400"):  # not a valid segment
                junk = b"junk" * 100
                await sink.put(
                    "0123456789abcdef-000009",
                    zstandard.ZstdCompressor().compress(junk),
                    hashlib.sha256(junk).hexdigest(),
                )
        finally:
            await sink.close()

    asyncio.run(scenario())


def test_real_backup_server_wrong_token(journal, tmp_path, backup_server):
    with (
        Uploader(HttpSink(backup_server.url, "wrong-token-123"), journal, **FAST) as up,
        pytest.warns(UploadWarning, match="refused the token"),
    ):
        pop_many(journal, 10)
        up.flush(timeout=10)
        stats = up.stats()
    assert stats["rejected"] == 1 and stats["acked"] == 0
    assert "token" in stats["last_error"] and "wrong-token-123" not in stats["last_error"]
    assert len(sealed_ids(journal)) == 1  # kept


def test_a_decompression_bomb_costs_no_memory():
    """512 MiB of zeros in a 16 KB frame: refused at the limit, not inflated first."""
    code = (
        "import resource, zstandard\n"
        "from safe_data.remote.protocol import decompress_segment\n"
        "c = zstandard.ZstdCompressor(write_content_size=False).compressobj()\n"
        "zeros = bytes(1 << 20)  # the bomb is built without ever holding 512 MiB\n"
        "bomb = b''.join(c.compress(zeros) for _ in range(512)) + c.flush()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    decompress_segment(bomb, limit=1 << 20)\nexcept ValueError:\n    pass\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) < 64  # MiB of peak growth (the unbounded version took 1 GiB)
