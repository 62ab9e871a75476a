"""Group 8: the uploader (docs/remote.md), on loopback.

Every server runs in its own process, as a backup server does (in this process its event
loop and threads would compete with the client's for the GIL, which no deployment has).

Throughput (``8 upload: N x 1 MiB segments``): N sealed segments of ~1 MiB, made once by
popping 64 KiB random ``bytes`` values out of a C ``SafeList`` on a journal with 1 MiB
segments (random, so zstd barely shrinks them), then closing it.

``bare``          a bare aiohttp client POSTing the same zstd bodies (compressed once,
                  outside the timing) to a bare aiohttp handler that reads the body and
                  answers 201 (``bare_server.py discard``), same concurrency
                  (``Uploader``'s default, 4), one new ``ClientSession`` per round as the
                  uploader's sink opens one per start.
``bare-durable``  the same client against a bare handler that also stores the body the
                  way the backup server does (``bare_server.py durable``:
                  ``DirectoryStore.put``, two fsynced files per segment): the price of
                  durability on this disk, with no check and no protocol.
``uploader``      ``Uploader(HttpSink(url, token))`` ships a fresh copy of the segments
                  (copied into a new journal directory in ``setup``) to ``safe-data serve
                  --store DIR``: read, SHA-256, zstd, PUT; the server checks the token,
                  decompresses with a bound, checks the hash and every frame's CRC32C and
                  stores durably; then the uploader's durable mark and the deletion.
                  Timed: ``start()`` to the return of ``flush()``.  Each round ships to its
                  own namespace, so every PUT is a new segment (201).

``ops`` = segments, so ``ops_per_s`` is segments/s; ``mb_per_s`` = raw segment MB
(10^6 bytes) per second of the mean round.  On the uploader row, ``upload_over_bare`` and
``upload_over_bare_durable`` = its MB/s over that baseline's.

Application cost (``8 upload: SafeList.pop() small int [c]``): C ``SafeList.pop()`` of
small ints, 200k pops per round (list rebuilt in ``setup``), on a journal without an
uploader (``no-uploader``), with an ``Uploader(HttpSink(...), seal_every=0.05)`` shipping
to ``safe-data serve`` (``uploader``), and with an ``Uploader(DirectorySink(tmp),
seal_every=0.05)`` (``uploader-directory``: the sink's own checks and writes then run in
this process too).  Every 50 ms the active segment is sealed and shipped while the pops
run.  ``uploader_over_no_uploader`` = time per pop with / without (target <= 1.1);
``cpu_uploader_over_no_uploader`` = the same for the popping thread's own CPU time
(``time.thread_time``): what a discard itself costs, apart from the time the thread waits
for a core or the GIL while the uploader (and here the server) run.

The ratios need the rows of their group in the same run (they are stored by the later
tests of each group, which read the earlier ones' figures).
"""

import asyncio
import hashlib
import os
import subprocess
import sys
import time

import pytest
from benchutil import N_SEGMENTS, benchmark_uploader, run
from benchutil import mb_per_s as _mb_per_s

import safe_data
from safe_data import _core as C

aiohttp = pytest.importorskip("aiohttp")
zstandard = pytest.importorskip("zstandard")

from safe_data.journal.format import ZSTD_LEVEL  # noqa: E402
from safe_data.remote.sinks.directory import DirectorySink  # noqa: E402
from safe_data.remote.sinks.http import HttpSink  # noqa: E402
from safe_data.remote.uploader import Uploader  # noqa: E402

CONCURRENCY = 4  # Uploader's default
UPLOAD_ROUNDS = 5
UPLOAD_GROUP = f"8 upload: {N_SEGMENTS} x 1 MiB segments, loopback"
BARE_SERVER = os.path.join(os.path.dirname(__file__), "bare_server.py")

POPS = 200_000
POP_ROUNDS = 30
POP_SEGMENT_SIZE = 16 << 20
POP_GROUP = "8 upload: SafeList.pop() small int [c]"
INTS = list(range(POPS))

_figures: dict[str, float] = {}  # earlier rows of each group -> their figure, for the ratios


class ServerProcess:
    """A server command in its own process, printing ``serving on URL`` when ready."""

    def __init__(self, *args, log_path):
        self.args = [sys.executable, *map(str, args)]
        self.log_path = log_path

    def __enter__(self):
        with open(self.log_path, "w") as log:  # the server logs every upload: never a pipe
            self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("serving on "):
            self.__exit__()
            raise RuntimeError(f"{self.args} did not start: {line!r}\n" + open(self.log_path).read()[-2000:])
        self.url = line.split()[-1]
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if len(cpus) > 1:  # a backup server runs on its own machine: keep it off the others
            os.sched_setaffinity(self.proc.pid, {cpus[-1]})
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def backup_server(tmp_path, namespaces) -> ServerProcess:
    """``safe-data serve --store DIR`` with a token per namespace."""
    tokens = tmp_path / "tokens"
    tokens.write_text("".join(f"{ns}:{token}\n" for ns, token in namespaces.items()))
    tokens.chmod(0o600)
    return ServerProcess(
        "-m",
        "safe_data",
        "serve",
        "--store",
        tmp_path / "store",
        "--port",
        0,
        "--tokens",
        tokens,
        log_path=tmp_path / "server.log",
    )


# --- 1. throughput -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["discard", "durable"])
def test_upload_bare_aiohttp(benchmark, upload_segments, tmp_path, mode):
    where, names, raw_bytes = upload_segments
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    raws = [(where / n).read_bytes() for n in names]
    bodies = [cctx.compress(raw) for raw in raws]
    hashes = [hashlib.sha256(raw).hexdigest() for raw in raws]
    store = tmp_path / "store"
    rounds = iter(range(UPLOAD_ROUNDS + 2))

    with ServerProcess(BARE_SERVER, mode, store, log_path=tmp_path / "server.log") as server:

        async def post_all():
            prefix = f"{next(rounds):016x}"  # a new id per round: every store is a new file
            queue = list(zip(names, bodies, hashes, strict=True))
            async with aiohttp.ClientSession() as session:

                async def worker():
                    while queue:
                        name, body, sha256 = queue.pop()
                        async with session.post(
                            f"{server.url}/v1/segments/{prefix}-{name[17:23]}",
                            data=body,
                            headers={"Content-Type": "application/zstd", "X-Content-SHA256": sha256},
                        ) as resp:
                            await resp.read()
                            assert resp.status == 201

                await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

        variant = "bare" if mode == "discard" else "bare-durable"
        run(
            benchmark,
            lambda: asyncio.run(post_all()),
            group=UPLOAD_GROUP,
            variant=variant,
            ops=N_SEGMENTS,
            rounds=UPLOAD_ROUNDS,
            concurrency=CONCURRENCY,
            compressed_bytes=sum(map(len, bodies)),
        )
    if mode == "durable":
        stored = list((store / "bare").glob("*.seg.zst"))
        assert stored and len(stored) % N_SEGMENTS == 0
    if benchmark.enabled:
        _figures[f"{variant}_mb_per_s"] = _mb_per_s(benchmark, raw_bytes)


def test_upload_uploader(benchmark, upload_segments, tmp_path):
    namespaces = {f"round{i}": f"token-{i}" for i in range(UPLOAD_ROUNDS + 2)}
    with backup_server(tmp_path, namespaces) as server:
        mb = benchmark_uploader(
            benchmark,
            upload_segments,
            tmp_path,
            lambda round_no: HttpSink(server.url, namespaces[f"round{round_no}"]),
            group=UPLOAD_GROUP,
            rounds=UPLOAD_ROUNDS,
            concurrency=CONCURRENCY,
        )
    for baseline in ("bare", "bare-durable"):
        if mb is not None and f"{baseline}_mb_per_s" in _figures:
            figure = _figures[f"{baseline}_mb_per_s"]
            key = baseline.replace("-", "_")
            benchmark.extra_info[f"{key}_mb_per_s"] = figure
            benchmark.extra_info[f"upload_over_{key}"] = round(mb / figure, 3)


# --- 2. the application's cost ----------------------------------------------------------------


def _pop_rows(benchmark, journal, variant, **info):
    cpu_times = []  # the popping thread's own CPU time per round

    def pop_loop(x, n):
        start = time.thread_time()
        for _ in range(n):
            x.pop()
        cpu_times.append(time.thread_time() - start)

    run(
        benchmark,
        pop_loop,
        group=POP_GROUP,
        variant=variant,
        ops=POPS,
        rounds=POP_ROUNDS,
        setup=lambda: ((C.SafeList(INTS, name="ints", journal=journal), POPS), {}),
        **info,
    )
    timed = cpu_times[-POP_ROUNDS:]  # (not the warm-up round)
    benchmark.extra_info["cpu_ns_per_op"] = round(sum(timed) / len(timed) / POPS * 1e9, 2)


def test_pop_no_uploader(benchmark, tmp_path):
    with safe_data.Journal(tmp_path / "journal", segment_size=POP_SEGMENT_SIZE) as journal:
        _pop_rows(benchmark, journal, "no-uploader")
    if benchmark.enabled:
        _figures["pop_ns_no_uploader"] = benchmark.extra_info["ns_per_op"]
        _figures["pop_cpu_ns_no_uploader"] = benchmark.extra_info["cpu_ns_per_op"]


@pytest.mark.parametrize("sink", ["http", "directory"])
def test_pop_with_uploader(benchmark, tmp_path, sink):
    with safe_data.Journal(tmp_path / "journal", segment_size=POP_SEGMENT_SIZE) as journal:
        if sink == "http":
            server = backup_server(tmp_path, {"app": "app-token"}).__enter__()
            variant, make_sink = "uploader", lambda: HttpSink(server.url, "app-token")
        else:
            server = None
            variant, make_sink = "uploader-directory", lambda: DirectorySink(tmp_path / "sink")
        try:
            with Uploader(make_sink(), journal, seal_every=0.05) as uploader:
                _pop_rows(benchmark, journal, variant, seal_every=0.05)
                uploader.flush(timeout=60)  # (after the timing) everything popped is shipped
                stats = uploader.stats()
        finally:
            if server is not None:
                server.__exit__()
        assert stats["acked"] > 0 and stats["errors"] == 0 and stats["rejected"] == 0, stats
        benchmark.extra_info["segments_shipped"] = stats["acked"]
    if benchmark.enabled and "pop_ns_no_uploader" in _figures:
        benchmark.extra_info["uploader_over_no_uploader"] = round(
            benchmark.extra_info["ns_per_op"] / _figures["pop_ns_no_uploader"], 3
        )
        benchmark.extra_info["cpu_uploader_over_no_uploader"] = round(
            benchmark.extra_info["cpu_ns_per_op"] / _figures["pop_cpu_ns_no_uploader"], 3
        )
