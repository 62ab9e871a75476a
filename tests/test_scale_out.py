"""Scale-out (docs/remote.md, "Running it for many hosts"): client processes journaling and
uploading through two stateless ``safe-data serve`` instances into a replicated SeaweedFS
cluster, while one volume server and one backup server are SIGKILLed.

Every record every client wrote must be stored exactly once and read back; a segment a
client let go must be in the store, with the records its ledger line names.  Negative
controls, in the same run: a client whose only server is killed (no fail-over) and a
segment deleted from the store are both caught by the same check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("zstandard")

from safe_data.errors import CorruptSegmentError  # noqa: E402
from safe_data.journal import format as fmt  # noqa: E402
from safe_data.journal.journal import Journal  # noqa: E402
from safe_data.remote.protocol import decompress_segment  # noqa: E402
from safe_data.remote.sinks.http import HttpSink  # noqa: E402
from safe_data.remote.sinks.s3 import S3Sink  # noqa: E402

from ._helpers import wait_until  # noqa: E402
from .seaweedfs import find_weed, new_bucket  # noqa: E402
from .seaweedfs_cluster import Cluster  # noqa: E402
from .server_helpers import OTHER, TOKEN, start_cli  # noqa: E402

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.one_pass,  # it checks the servers and the store, whichever containers fill them
    pytest.mark.skipif(find_weed() is None, reason="the SeaweedFS 'weed' binary is not installed"),
]

CLIENTS = 8
RECORDS = 3000  # per client
CLIENT = str(Path(__file__).with_name("scale_client.py"))
PREFIX = "backups"


def test_scale_out(tmp_path):
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(Cluster(tmp_path / "weed", volumes=3, replication="001"))
        bucket = new_bucket(cluster, "scale-")
        env = dict(
            os.environ,
            AWS_ACCESS_KEY_ID=cluster.access_key,
            AWS_SECRET_ACCESS_KEY=cluster.secret_key,
            SAFE_DATA_TOKENS=f"alpha:{TOKEN},beta:{OTHER}",
        )
        store_args = ("--store", f"s3://{bucket}/{PREFIX}", "--s3-endpoint-url", cluster.endpoint)
        servers: list[subprocess.Popen] = []
        stack.callback(lambda: [p.kill() or p.communicate() for p in servers if p.poll() is None])

        def serve(port=0) -> str:
            log = stack.enter_context(open(tmp_path / f"serve-{len(servers)}.log", "w"))
            proc, url = start_cli(*store_args, env=env, port=port, stderr=log)
            servers.append(proc)
            return url

        first, second, lone = serve(), serve(), serve()

        clients: list[subprocess.Popen] = []
        stack.callback(lambda: [p.kill() or p.communicate() for p in clients if p.poll() is None])

        def client(name: str, urls: list[str], records: int, flush_timeout: float) -> subprocess.Popen:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    CLIENT,
                    str(tmp_path / name),
                    name,
                    str(records),
                    ",".join(urls),
                    str(flush_timeout),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=dict(os.environ, SAFE_DATA_TOKEN=TOKEN),
            )
            clients.append(proc)
            return proc

        started = time.monotonic()
        # half of them prefer each server; both know both
        workers = [
            client(f"c{i}", [first, second][:: 1 if i % 2 else -1], RECORDS, 180) for i in range(CLIENTS)
        ]
        # the negative control of fail-over: one server only, killed for good while it
        # still writes (twice as long as the others)
        control = client("control", [lone], 2 * RECORDS, 5)
        for proc in clients:
            assert proc.stdout.readline() == "started\n", proc.communicate()[1]

        def stored() -> int:
            return len(asyncio.run(_listing(cluster, bucket)))

        wait_until(lambda: stored() >= CLIENTS, 60, "no segment reached the store")
        assert all(proc.poll() is None for proc in clients), "a client finished before the kills"
        cluster.kill_volume(0)
        for killed in (servers[0], servers[2]):  # the first server, and the control's only one
            killed.send_signal(signal.SIGKILL)
            killed.communicate()
        before = stored()
        wait_until(lambda: stored() >= before + CLIENTS, 60, "no upload while a server is down")
        assert serve(int(first.rsplit(":", 1)[1])) == first  # restarted where the clients look
        results = [_result(proc) for proc in workers]
        elapsed = time.monotonic() - started
        control_result = _result(control)

        listing = asyncio.run(_listing(cluster, bucket))
        restored = tmp_path / "restored"
        bodies = asyncio.run(_pull(cluster, bucket, listing, restored))
        records = _read(restored)

        problems = [p for r in results for p in check_client(r, listing, records)]
        assert problems == [], "\n".join(problems)
        assert len(records) == CLIENTS * RECORDS + sum(
            len(v) for k, v in _by_client(records).items() if k == "control"
        )

        # negative controls: the same check fails for the client without fail-over ...
        assert not control_result["flushed"]
        assert check_client(control_result, listing, records) != []
        # ... and for a client one of whose segments is deleted from the store
        victim = results[0]["ledger"][0][0]
        _delete(cluster, bucket, victim)
        listing = asyncio.run(_listing(cluster, bucket))
        os.unlink(restored / (victim + fmt.SEALED_SUFFIX))
        with pytest.raises(CorruptSegmentError, match=f"{victim}.seg at byte 0: segment .* missing"):
            _read(restored)  # the reader sees the gap in the writer's segments
        damaged = check_client(results[0], listing, _read(restored, on_error="ignore"))
        assert any(victim in p for p in damaged), damaged

        # throughput: the run above is paced by the clients; these are not
        items = [(i, body, listing[i]["sha256"]) for i, body in bodies.items() if i != victim]
        bare_rate = asyncio.run(_rate([_sink(cluster, bucket, prefix="bare") for _ in range(CLIENTS)], items))
        servers_rate = asyncio.run(
            _rate([HttpSink([first, second][:: 1 if c % 2 else -1], OTHER) for c in range(CLIENTS)], items)
        )
        size = sum(len(body) for _, body, _ in items)
        print(
            f"\nscale-out: {CLIENTS} clients wrote {CLIENTS * RECORDS} records, all stored once, in "
            f"{elapsed:.1f} s (paced) through 2 servers with a volume server and a server killed; "
            f"{len(items)} segments ({size / 1e6:.2f} MB zstd) again by {CLIENTS} workers: "
            f"{servers_rate:.0f} segments/s ({servers_rate * size / len(items) / 1e6:.2f} MB/s) through "
            f"the servers, {bare_rate:.0f} segments/s ({bare_rate * size / len(items) / 1e6:.2f} MB/s) "
            f"as bare S3 puts to the same cluster: {servers_rate / bare_rate:.2f}x"
        )


def check_client(result: dict, listing: dict[str, dict], records) -> list[str]:
    """What is wrong with one client's backups: a record missing or stored twice, a
    segment it let go that the store does not hold or holds other records in."""
    name = result["name"]
    problems = []
    values = sorted(int(v.split(":")[1]) for v in _by_client(records).get(name, []))
    if values != list(range(result["written"])):
        missing = sorted(set(range(result["written"])) - set(values))
        twice = len(values) - len(set(values))
        problems.append(f"{name}: {len(missing)} records missing (e.g. {missing[:5]}), {twice} stored twice")
    seqs = {}
    for r in records:
        seqs.setdefault(r.segment.removesuffix(fmt.SEALED_SUFFIX), []).append(r.seq)
    for segment, first, last, why in result["ledger"]:
        if not why.startswith("acknowledged"):
            problems.append(f"{name}: segment {segment} left the journal for another reason: {why}")
        elif segment not in listing:
            problems.append(f"{name}: segment {segment} deleted locally but not in the store")
        elif (min(seqs.get(segment, [None])), max(seqs.get(segment, [None]))) != (first, last):
            problems.append(f"{name}: segment {segment} holds seqs other than {first}-{last}")
    if result["left"] and result["flushed"]:
        problems.append(f"{name}: segments left after a flush: {result['left']}")
    return problems


def _by_client(records) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in records:
        for value in r.values:
            out.setdefault(value.split(":")[0], []).append(value)
    return out


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    return json.loads(out.splitlines()[-1])


def _sink(cluster, bucket, prefix=PREFIX) -> S3Sink:
    return S3Sink(
        bucket,
        cluster.endpoint,
        access_key=cluster.access_key,
        secret_key=cluster.secret_key,
        prefix=prefix + "/",
        namespace="alpha",
    )


async def _listing(cluster, bucket) -> dict[str, dict]:
    async with _sink(cluster, bucket) as sink:
        return {entry["id"]: entry for entry in await sink.list()}


async def _pull(cluster, bucket, listing, directory: Path) -> dict[str, bytes]:
    """Every listed segment, read back from the store into ``directory``: {id: body}."""
    directory.mkdir()
    bodies = {}
    async with _sink(cluster, bucket) as sink:
        for segment_id in listing:
            bodies[segment_id] = await sink.get(segment_id)
            (directory / (segment_id + fmt.SEALED_SUFFIX)).write_bytes(decompress_segment(bodies[segment_id]))
    return bodies


def _read(directory: Path, on_error="raise") -> list:
    journal = Journal(str(directory), readonly=True)
    try:
        return list(journal.records(on_error=on_error))
    finally:
        journal.close()


def _delete(cluster, bucket, segment_id: str) -> None:
    """Delete a stored segment behind the servers' back (through the filer's HTTP API)."""
    key = _sink(cluster, bucket).key(segment_id)
    request = urllib.request.Request(f"{cluster.filer_url}/buckets/{bucket}/{key}", method="DELETE")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 204, resp.status


async def _rate(sinks, items) -> float:
    """Segments per second putting ``items`` (id, body, sha256), one worker per sink."""
    queue = list(items)
    started = time.monotonic()

    async def worker(sink) -> None:
        try:
            while queue:
                await sink.put(*queue.pop())
        finally:
            await sink.close()

    await asyncio.gather(*(worker(sink) for sink in sinks))
    return len(items) / (time.monotonic() - started)
