"""Group 19: scale-out (docs/remote.md, "Running it for many hosts"): clients shipping
through two ``safe-data serve --store s3://...`` instances into a replicated SeaweedFS
cluster (tests/seaweedfs_cluster.py: a master with replication 001, three volume servers,
a filer with its S3 gateway), all on loopback, started for the module; skipped without
the ``weed`` binary.

Each client ships its own copy of SEGMENTS sealed ~1 MiB segments (the segments of group
8; random bytes, so zstd barely shrinks them), with 1, 2, 4 and 8 clients:

``bare``      SEGMENTS x clients ``S3Sink.put`` of the zstd bodies (compressed once, outside
              the timing) straight to the gateway, ``CONCURRENCY`` x clients at once: what
              the cluster takes without the servers and the uploader.
``servers``   one ``Uploader(HttpSink([a, b]))`` per client (half of them list b first),
              each in its own thread, ``CONCURRENCY`` segments in flight each, timed from
              the start of the first to the return of the last ``flush()``: read,
              SHA-256, zstd, PUT to a server, which checks the token, the hash and every
              frame and stores to S3; then the ledger line and the deletion.  Every round
              and client ships to a namespace of its own (a token each), so every PUT is
              a new object.

``ops`` = segments, ``mb_per_s`` = raw segment MB per second of the mean round; on the
servers row, ``servers_over_bare`` = its MB/s over the bare row's for the same number of
clients (goal >= 0.8).
"""

import asyncio
import hashlib
import os
import shutil
import sys

import pytest
from benchutil import mb_per_s, run

pytest.importorskip("aiohttp")
zstandard = pytest.importorskip("zstandard")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import safe_data as sd  # noqa: E402
from safe_data.journal.format import ZSTD_LEVEL  # noqa: E402
from safe_data.remote.sinks.http import HttpSink  # noqa: E402
from safe_data.remote.sinks.s3 import S3Sink  # noqa: E402
from safe_data.remote.uploader import Uploader  # noqa: E402
from tests.seaweedfs import find_weed, new_bucket  # noqa: E402
from tests.seaweedfs_cluster import Cluster  # noqa: E402
from tests.server_helpers import start_cli, stop_cli  # noqa: E402

if find_weed() is None:
    pytest.skip("the SeaweedFS 'weed' binary is not installed", allow_module_level=True)

SEGMENTS = 6  # per client
CONCURRENCY = 4  # per client: Uploader's default
ROUNDS = 3
CLIENTS = (1, 2, 4, 8)
GROUP = f"19 scale-out: {SEGMENTS} x 1 MiB segments per client, 2 servers, SeaweedFS 001"
TOKENS = {f"ns{i}": f"scale-out-token-{i:04d}-0123456789" for i in range((ROUNDS + 1) * max(CLIENTS))}

_figures: dict[int, float] = {}  # clients -> bare MB/s


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(cluster, bucket, [server URL, server URL])."""
    root = tmp_path_factory.mktemp("scale-out")
    with Cluster(root / "weed", volumes=3, replication="001") as cluster:
        bucket = new_bucket(cluster, "bench-")
        env = dict(
            os.environ,
            AWS_ACCESS_KEY_ID=cluster.access_key,
            AWS_SECRET_ACCESS_KEY=cluster.secret_key,
            SAFE_DATA_TOKENS=",".join(f"{ns}:{token}" for ns, token in TOKENS.items()),
        )
        with open(root / "serve.log", "w") as log:  # a pipe no one reads would stall them
            servers = [
                start_cli(
                    "--store",
                    f"s3://{bucket}/servers",
                    "--s3-endpoint-url",
                    cluster.endpoint,
                    env=env,
                    stderr=log,
                )
                for _ in range(2)
            ]
            try:
                yield cluster, bucket, [url for _, url in servers]
            finally:
                for proc, _ in servers:
                    stop_cli(proc, timeout=15)


@pytest.fixture(scope="module")
def segments(upload_segments):
    """(names, raw bytes, [(id, zstd body, sha256)]) of the first SEGMENTS segments."""
    where, names, _ = upload_segments
    names = names[:SEGMENTS]
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    raws = [(where / n).read_bytes() for n in names]
    bodies = [
        (n[:-4], cctx.compress(r), hashlib.sha256(r).hexdigest()) for n, r in zip(names, raws, strict=True)
    ]
    return names, sum(map(len, raws)), bodies


@pytest.mark.parametrize("clients", CLIENTS)
def test_bare_s3_puts(benchmark, cluster, segments, clients):
    weed, bucket, _ = cluster
    _, raw, bodies = segments
    rounds = iter(range(ROUNDS + 2))

    async def put_all():
        prefix = f"bare-{clients}-{next(rounds)}"
        sinks = [
            S3Sink(
                bucket,
                weed.endpoint,
                access_key=weed.access_key,
                secret_key=weed.secret_key,
                namespace=f"{prefix}-{c}",
            )
            for c in range(clients)
        ]
        queue = [(sink, item) for sink in sinks for item in bodies]

        async def worker():
            while queue:
                sink, (segment_id, body, sha256) = queue.pop()
                await sink.put(segment_id, body, sha256)

        try:
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY * clients)))
        finally:
            for sink in sinks:
                await sink.close()

    run(
        benchmark,
        lambda: asyncio.run(put_all()),
        group=GROUP,
        variant=f"bare-{clients}",
        ops=SEGMENTS * clients,
        rounds=ROUNDS,
        clients=clients,
    )
    if benchmark.enabled:
        _figures[clients] = mb_per_s(benchmark, raw * clients)


@pytest.mark.parametrize("clients", CLIENTS)
def test_servers(benchmark, cluster, segments, upload_segments, clients, tmp_path):
    _, _, urls = cluster
    names, raw, _ = segments
    where = upload_segments[0]
    namespaces = iter(TOKENS.items())
    running: list[tuple[sd.Journal, Uploader]] = []

    def setup():
        finish()
        for c in range(clients):
            target = tmp_path / f"journal-{len(os.listdir(tmp_path))}"
            target.mkdir()
            for name in [*names, "key"]:
                shutil.copyfile(where / name, target / name)
            journal = sd.Journal(str(target))
            _, token = next(namespaces)
            sink = HttpSink(urls[:: 1 if c % 2 else -1], token)
            running.append((journal, Uploader(sink, journal, seal_every=None, concurrency=CONCURRENCY)))
        return (), {}

    def ship():
        for _, uploader in running:
            uploader.start()
        for _, uploader in running:
            uploader.flush(timeout=300)

    def finish():
        while running:
            journal, uploader = running.pop()
            stats = uploader.stats()
            uploader.close()
            journal.close()
            assert stats["acked"] == SEGMENTS and stats["rejected"] == 0, stats

    try:
        run(
            benchmark,
            ship,
            group=GROUP,
            variant=f"servers-{clients}",
            ops=SEGMENTS * clients,
            rounds=ROUNDS,
            setup=setup,
            clients=clients,
        )
    finally:
        finish()
    if benchmark.enabled:
        mb = mb_per_s(benchmark, raw * clients)
        if clients in _figures:
            benchmark.extra_info["bare_mb_per_s"] = _figures[clients]
            benchmark.extra_info["servers_over_bare"] = round(mb / _figures[clients], 3)
