"""Group 9: shipping to an S3-compatible object store (a real SeaweedFS, ``weed mini``, on
loopback, started for the module; skipped without the ``weed`` binary).

The same 24 sealed ~1 MiB segments as group 8 (random bytes), as 1 MiB objects:

``aiobotocore``  bare ``aiobotocore`` ``put_object`` of the same zstd bodies (compressed
                 once, outside the timing), concurrency 4, one client per round; skipped
                 when aiobotocore is not installed (it is not a dependency of safe_data).
``uploader``     ``Uploader(S3Sink(bucket, endpoint_url, namespace=...))`` shipping a
                 fresh copy of the segments each round (see benchutil.ShippingRounds):
                 read, SHA-256, zstd, a HEAD to never overwrite other content, a
                 conditional PUT (``If-None-Match: *``) with Content-MD5 and the payload's
                 SHA-256, then the deletion.

``upload_over_aiobotocore`` (uploader row) = its MB/s over aiobotocore's (target >= 0.8).
"""

import asyncio
import hashlib
import os
import sys

import pytest
from benchutil import N_SEGMENTS, benchmark_uploader, mb_per_s, run

pytest.importorskip("aiohttp")
zstandard = pytest.importorskip("zstandard")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from safe_data.journal.format import ZSTD_LEVEL  # noqa: E402
from safe_data.remote.sinks.s3 import S3Sink  # noqa: E402
from tests import seaweedfs as weed  # noqa: E402

CONCURRENCY = 4
ROUNDS = 5
GROUP = f"9 S3: {N_SEGMENTS} x 1 MiB segments, SeaweedFS"
BUCKET = "bench"

_figures: dict[str, float] = {}


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory):
    server = weed.start(tmp_path_factory.mktemp("seaweedfs"))
    try:
        sink = S3Sink(BUCKET, server.endpoint, access_key=server.access_key, secret_key=server.secret_key)

        async def create():
            async with sink:
                await sink.ensure_bucket()

        asyncio.run(create())
        yield server
    finally:
        weed.stop(server.process)


def test_s3_aiobotocore(benchmark, upload_segments, seaweedfs):
    aiobotocore_session = pytest.importorskip("aiobotocore.session")
    where, names, raw_bytes = upload_segments
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    raws = [(where / n).read_bytes() for n in names]
    bodies = [
        (n[:-4], cctx.compress(raw), hashlib.sha256(raw).hexdigest())
        for n, raw in zip(names, raws, strict=True)
    ]
    rounds = iter(range(ROUNDS + 2))

    async def put_all():
        prefix = f"aiobotocore-{next(rounds)}"
        queue = list(bodies)
        session = aiobotocore_session.get_session()
        async with session.create_client(
            "s3",
            endpoint_url=seaweedfs.endpoint,
            region_name="us-east-1",
            aws_access_key_id=seaweedfs.access_key,
            aws_secret_access_key=seaweedfs.secret_key,
        ) as client:

            async def worker():
                while queue:
                    segment_id, body, sha256 = queue.pop()
                    await client.put_object(
                        Bucket=BUCKET,
                        Key=f"{prefix}/{segment_id}.seg.zst",
                        Body=body,
                        Metadata={"sha256": sha256},
                    )

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    run(
        benchmark,
        lambda: asyncio.run(put_all()),
        group=GROUP,
        variant="aiobotocore",
        ops=N_SEGMENTS,
        rounds=ROUNDS,
        concurrency=CONCURRENCY,
    )
    if benchmark.enabled:
        _figures["aiobotocore_mb_per_s"] = mb_per_s(benchmark, raw_bytes)


def test_s3_uploader(benchmark, upload_segments, seaweedfs, tmp_path):
    def make_sink(round_no):
        return S3Sink(
            BUCKET,
            seaweedfs.endpoint,
            access_key=seaweedfs.access_key,
            secret_key=seaweedfs.secret_key,
            namespace=f"uploader-{round_no}",
        )

    mb = benchmark_uploader(
        benchmark, upload_segments, tmp_path, make_sink, group=GROUP, rounds=ROUNDS, concurrency=CONCURRENCY
    )
    if mb is not None and "aiobotocore_mb_per_s" in _figures:
        benchmark.extra_info["aiobotocore_mb_per_s"] = _figures["aiobotocore_mb_per_s"]
        benchmark.extra_info["upload_over_aiobotocore"] = round(mb / _figures["aiobotocore_mb_per_s"], 3)
