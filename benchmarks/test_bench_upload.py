"""Group 8: the uploader (docs/remote.md), on loopback.

Throughput (``8 upload: N x 1 MiB segments``): N sealed segments of ~1 MiB, made once by
popping 64 KiB random ``bytes`` values out of a C ``SafeList`` on a journal with 1 MiB
segments (random, so zstd barely shrinks them), then closing it.

``uploader``  ``Uploader(HttpSink(url, token))`` ships a fresh copy of the segments
              (copied into a new journal directory in ``setup``) to the real backup server
              (``make_app(DirectoryStore(root), tokens)``) served from a background
              thread's event loop: read, SHA-256, zstd level 3, PUT; the server
              decompresses, checks every frame's CRC32C and stores durably; then the mark
              and the deletion.  Timed: ``start()`` to the return of ``flush()``.
              Each round ships to its own namespace, so every PUT is a new segment (201).
``bare``      a bare aiohttp client POSTing the same zstd bodies (compressed once,
              outside the timing) to a bare aiohttp handler that reads the body and
              answers 201, same concurrency (``Uploader``'s default, 4), one new
              ``ClientSession`` per round as the uploader's sink opens one per start.

``ops`` = segments, so ``ops_per_s`` is segments/s; ``mb_per_s`` = raw segment MB
(10^6 bytes) per second of the mean round.  ``upload_over_bare`` (uploader row) = the
uploader's MB/s / bare's MB/s (target >= 0.8).

Application cost (``8 upload: SafeList.pop() small int [c]``): C ``SafeList.pop()`` of
small ints, 200k pops per round (list rebuilt in ``setup``), on a journal without an
uploader (``no-uploader``) and on one with an ``Uploader(DirectorySink(tmp),
seal_every=0.05)`` running on that same journal (``uploader``): every 50 ms the active
segment is sealed and shipped (zstd, fsync) by the uploader's thread while the pops run.
``uploader_over_no_uploader`` = time per pop with / without (target <= 1.1).

The ratios need both rows of their group in the same run (they are stored by the second
test of each pair, which reads the first one's figure).
"""

import asyncio
import os
import shutil
import threading

import pytest

import safe_data
from safe_data import _core as C

from benchutil import run

aiohttp = pytest.importorskip("aiohttp")
zstandard = pytest.importorskip("zstandard")
from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402

from safe_data.upload.server import make_app  # noqa: E402
from safe_data.upload.sinks import DirectorySink, HttpSink  # noqa: E402
from safe_data.upload.store import DirectoryStore  # noqa: E402
from safe_data.upload.uploader import ZSTD_LEVEL, Uploader  # noqa: E402

N_SEGMENTS = 24
SEGMENT_SIZE = 1 << 20
VALUE_SIZE = 64 << 10
CONCURRENCY = 4  # Uploader's default and the server's max_concurrent_uploads
UPLOAD_ROUNDS = 5
UPLOAD_GROUP = f"8 upload: {N_SEGMENTS} x 1 MiB segments, loopback"

POPS = 200_000
POP_ROUNDS = 30
POP_SEGMENT_SIZE = 16 << 20
POP_GROUP = "8 upload: SafeList.pop() small int [c]"
INTS = list(range(POPS))

_figures: dict[str, float] = {}  # first row of each pair -> its figure, for the ratio


class ServerThread:
    """Serve an aiohttp application on 127.0.0.1 from a thread with its own event loop."""

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


@pytest.fixture(scope="module")
def segments(tmp_path_factory):
    """A journal directory holding N_SEGMENTS sealed ~1 MiB segments (and its key)."""
    where = tmp_path_factory.mktemp("upload-source") / "journal"
    rnd = os.urandom(VALUE_SIZE * (N_SEGMENTS * (SEGMENT_SIZE // VALUE_SIZE) + 8))
    values = [rnd[i:i + VALUE_SIZE] for i in range(0, len(rnd), VALUE_SIZE)]
    with safe_data.Journal(where, segment_size=SEGMENT_SIZE) as journal:
        lst = C.SafeList(values, name="blobs", journal=journal)
        names = set()
        while len(lst):
            lst.pop()
            names = {n for n in os.listdir(where) if n.endswith(".seg")}
            if len(names) > N_SEGMENTS:  # the (N+1)th is the active one: N are sealed
                break
    names = sorted(n for n in os.listdir(where) if n.endswith(".seg"))
    for extra in names[N_SEGMENTS:]:
        os.unlink(where / extra)
    names = names[:N_SEGMENTS]
    assert len(names) == N_SEGMENTS
    sizes = [os.path.getsize(where / n) for n in names]
    assert min(sizes) > SEGMENT_SIZE * 0.8, sizes
    yield where, names, sum(sizes)
    shutil.rmtree(where.parent, ignore_errors=True)


def _mb_per_s(benchmark, raw_bytes):
    mean = benchmark.stats.stats.mean
    mb = round(raw_bytes / mean / 1e6, 1)
    benchmark.extra_info.update(mb_per_s=mb, raw_bytes=raw_bytes)
    return mb


# --- 1. throughput -----------------------------------------------------------------------------


def test_upload_bare_aiohttp(benchmark, segments):
    where, names, raw_bytes = segments
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    bodies = [cctx.compress((where / n).read_bytes()) for n in names]
    received = []

    async def handler(request):
        body = await request.read()
        received.append(len(body))
        return web.Response(status=201)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/segments/{id}", handler)

    with ServerThread(app) as server:
        async def post_all():
            queue = list(zip(names, bodies))
            async with aiohttp.ClientSession() as session:
                async def worker():
                    while queue:
                        name, body = queue.pop()
                        async with session.post(f"{server.url}/v1/segments/{name[:-4]}", data=body,
                                                headers={"Content-Type": "application/zstd"}) as resp:
                            await resp.read()
                            assert resp.status == 201
                await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

        run(benchmark, lambda: asyncio.run(post_all()), group=UPLOAD_GROUP, variant="bare",
            ops=N_SEGMENTS, rounds=UPLOAD_ROUNDS, concurrency=CONCURRENCY,
            compressed_bytes=sum(map(len, bodies)))
    assert received and len(received) % N_SEGMENTS == 0 and set(received) == set(map(len, bodies))
    if benchmark.enabled:
        _figures["bare_mb_per_s"] = _mb_per_s(benchmark, raw_bytes)


def test_upload_uploader(benchmark, segments, tmp_path):
    where, names, raw_bytes = segments
    namespaces = {f"round{i}": f"token-{i}" for i in range(UPLOAD_ROUNDS + 2)}
    store_root = tmp_path / "store"
    rounds = iter(sorted(namespaces))
    state = {"journal": None, "uploader": None, "done": []}

    def finish_previous():
        if state["uploader"] is not None:
            stats = state["uploader"].stats()
            state["uploader"].close()
            state["done"].append(stats)
            state["uploader"] = None
        if state["journal"] is not None:
            state["journal"].close()
            shutil.rmtree(state["journal"].path, ignore_errors=True)
            state["journal"] = None

    with ServerThread(make_app(DirectoryStore(str(store_root)), namespaces)) as server:
        def setup():
            finish_previous()
            namespace = next(rounds)
            target = tmp_path / f"journal-{namespace}"
            target.mkdir()
            for name in names + ["key"]:
                shutil.copyfile(where / name, target / name)
            state["journal"] = safe_data.Journal(target, segment_size=SEGMENT_SIZE)
            sink = HttpSink(server.url, namespaces[namespace])
            uploader = Uploader(sink, state["journal"], seal_every=None, concurrency=CONCURRENCY)
            return (uploader,), {}

        def ship(uploader):
            state["uploader"] = uploader.start()
            uploader.flush(timeout=60)

        try:
            run(benchmark, ship, group=UPLOAD_GROUP, variant="uploader", ops=N_SEGMENTS,
                rounds=UPLOAD_ROUNDS, setup=setup, concurrency=CONCURRENCY)
        finally:
            finish_previous()
    for stats in state["done"]:
        assert stats["acked"] == N_SEGMENTS and stats["rejected"] == 0 and stats["errors"] == 0, stats
    assert state["done"]
    if benchmark.enabled:
        mb = _mb_per_s(benchmark, raw_bytes)
        if "bare_mb_per_s" in _figures:
            benchmark.extra_info["bare_mb_per_s"] = _figures["bare_mb_per_s"]
            benchmark.extra_info["upload_over_bare"] = round(mb / _figures["bare_mb_per_s"], 3)


# --- 2. the application's cost ----------------------------------------------------------------


def pop_loop(x, n):
    for _ in range(n):
        x.pop()


def _pop_rows(benchmark, journal, variant, **info):
    run(benchmark, pop_loop, group=POP_GROUP, variant=variant, ops=POPS, rounds=POP_ROUNDS,
        setup=lambda: ((C.SafeList(INTS, name="ints", journal=journal), POPS), {}), **info)


def test_pop_no_uploader(benchmark, tmp_path):
    with safe_data.Journal(tmp_path / "journal", segment_size=POP_SEGMENT_SIZE) as journal:
        _pop_rows(benchmark, journal, "no-uploader")
    if benchmark.enabled:
        _figures["pop_ns_no_uploader"] = benchmark.extra_info["ns_per_op"]


def test_pop_with_uploader(benchmark, tmp_path):
    with safe_data.Journal(tmp_path / "journal", segment_size=POP_SEGMENT_SIZE) as journal:
        uploader = Uploader(DirectorySink(tmp_path / "sink"), journal, seal_every=0.05)
        with uploader:
            _pop_rows(benchmark, journal, "uploader", seal_every=0.05)
            uploader.flush(timeout=30)  # (after the timing) everything popped is shipped
            stats = uploader.stats()
        assert stats["acked"] > 0 and stats["errors"] == 0 and stats["rejected"] == 0, stats
        benchmark.extra_info["segments_shipped"] = stats["acked"]
    if benchmark.enabled and "pop_ns_no_uploader" in _figures:
        benchmark.extra_info["uploader_over_no_uploader"] = round(
            benchmark.extra_info["ns_per_op"] / _figures["pop_ns_no_uploader"], 3)
