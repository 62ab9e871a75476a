"""Several destinations, k of N (``Uploader(sinks=[...], acks_required=k)``, ``push --to``),
against real parts: ``safe-data serve`` processes (one SIGKILLed mid-way) and SeaweedFS."""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request

import pytest

import safe_data
from safe_data import SafeList
from safe_data.remote import _ledger
from safe_data.remote.protocol import decompress_segment
from safe_data.remote.uploader import Uploader, UploadWarning

pytest.importorskip("aiohttp")
pytest.importorskip("zstandard")

from safe_data.remote.sinks.directory import DirectorySink  # noqa: E402
from safe_data.remote.sinks.http import HttpSink  # noqa: E402
from safe_data.remote.sinks.s3 import S3Sink  # noqa: E402

from ._helpers import wait_until  # noqa: E402
from .backup_server import start_server, stop  # noqa: E402
from .seaweedfs import new_bucket  # noqa: E402

TOKEN = "s3cret-token-of-the-app"
FAST = {"seal_every": None, "backoff": (0.01, 0.2)}


@pytest.fixture
def journal(tmp_path):
    j = safe_data.Journal(tmp_path / "journal", segment_size=4096)
    yield j
    j.close()


@pytest.fixture
def tokens(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"app:{TOKEN}\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def servers(tmp_path, tokens):
    """start(name) -> (process, url) of a ``safe-data serve`` on tmp_path/<name>; all stopped at the end."""
    started = []

    def start(name):
        proc, url = start_server(tmp_path / name, tokens)
        started.append(proc)
        return proc, url

    yield start
    for proc in started:
        stop(proc)


def kill(proc) -> None:
    """SIGKILL a server process, as a crash or an unplugged machine would stop it."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def pop_many(journal, n, start=0):
    """Journal ``n`` records over several 4 KiB segments; the popped values."""
    items = SafeList(
        [f"{i:06d}-" + "x" * 150 for i in range(start, start + n)], name="items", journal=journal
    )
    return [items.pop() for _ in range(n)]


def sealed_ids(journal):
    return sorted(n[:-4] for n in os.listdir(journal.path) if n.endswith(".seg"))


def held_by(sink) -> dict:
    """{segment id: zstd body} of what a sink holds."""

    async def fetch():
        try:
            return {entry["id"]: await sink.get(entry["id"]) for entry in await sink.list()}
        finally:
            await sink.close()

    return asyncio.run(fetch())


def values_of(journal, bodies, tmp_path) -> list:
    """The values the segments ``bodies`` hold, read back with the journal's key."""
    where = tmp_path / f"restored-{len(os.listdir(tmp_path))}"
    where.mkdir()
    for segment_id, body in bodies.items():
        (where / f"{segment_id}.seg").write_bytes(decompress_segment(body))
    shutil.copy(os.path.join(journal.path, "key"), where / "key")
    with safe_data.Journal(where) as restored:
        return sorted(v for r in restored.records("items", on_error="ignore") for v in r.values)


def uploads_received(url) -> int:
    """Segments a server stored or was sent again (its /metrics)."""
    request = urllib.request.Request(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        int(m.group(1))
        for m in re.finditer(r"^safe_data_uploads_(?:stored|duplicate)_total (\d+)$", text, re.MULTILINE)
    )


def stats_json(journal) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "safe_data", "--journal", journal.path, "stats", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_two_of_three_go_on_when_a_server_is_killed(journal, tmp_path, servers, seaweedfs):
    proc_a, url_a = servers("a")
    proc_b, url_b = servers("b")
    s3 = dict(
        endpoint_url=seaweedfs.endpoint, access_key=seaweedfs.access_key, secret_key=seaweedfs.secret_key
    )
    bucket = new_bucket(seaweedfs, "multi-")
    sinks = {
        "a": HttpSink(url_a, TOKEN),
        "b": HttpSink(url_b, TOKEN),
        "s3": S3Sink(bucket, namespace="app", **s3),
    }
    with Uploader(sinks=sinks, journal=journal, acks_required=2, **FAST) as uploader:
        popped = pop_many(journal, 40)
        uploader.flush(timeout=60)
        before = set(held_by(HttpSink(url_a, TOKEN))) | set(held_by(S3Sink(bucket, namespace="app", **s3)))
        kill(proc_b)
        popped += pop_many(journal, 40, start=40)
        uploader.flush(timeout=60)  # a and S3 acknowledge: enough
        assert sealed_ids(journal) == []
        destinations = {d["name"]: d for d in uploader.counters()["destinations"]}
    assert destinations["b"]["errors"] > 0 and "Cannot connect" in destinations["b"]["last_error"]
    assert destinations["a"]["errors"] == destinations["s3"]["errors"] == 0
    held = {
        "a": held_by(HttpSink(url_a, TOKEN)),
        "b": held_by(DirectorySink(tmp_path / "b", namespace="app")),  # the dead server's store
        "s3": held_by(S3Sink(bucket, namespace="app", **s3)),
    }
    everything = {i: body for bodies in held.values() for i, body in bodies.items()}
    # each segment left the journal held by at least two destinations
    assert all(sum(i in bodies for bodies in held.values()) >= 2 for i in everything)
    assert set(everything) - before <= set(held["a"]) & set(held["s3"])  # what came after b died
    assert values_of(journal, everything, tmp_path) == sorted(popped)
    # the journal's ledger names the sinks that held each segment deleted
    departures, _ = safe_data.journal.ledger.read(journal.path)
    assert {d.segment for d in departures.values()} == set(everything)
    for d in departures.values():
        assert sum(repr(sink) in d.why for sink in sinks.values()) >= 2, d.why


def test_a_restart_sends_only_to_the_destinations_that_miss_a_segment(journal, tmp_path, servers):
    proc_a, url_a = servers("a")
    proc_b, url_b = servers("b")
    kill(proc_b)  # down from the start: what a acknowledges waits for it
    with pytest.warns(UploadWarning, match="not acknowledged"):
        with Uploader(
            sinks={"a": HttpSink(url_a, TOKEN), "b": HttpSink(url_b, TOKEN)}, journal=journal, **FAST
        ) as up:
            popped = pop_many(journal, 40)
            with pytest.raises(TimeoutError):
                up.flush(timeout=3)
            ids = sealed_ids(journal)
            assert sorted(_ledger.destination_marks(journal.path, "a")) == ids  # a has them all
            destinations = up.stats()["destinations"]
            backlog = {d["name"]: (d["pending"], d["lag_seconds"] is None) for d in destinations}
            assert backlog == {"a": (0, True), "b": (len(ids), False)}
            up.close(timeout=0.1)
    assert sealed_ids(journal) == ids  # 1 of 2 acknowledgements: kept
    figures = stats_json(journal)["uploader"]
    lag = {d["name"]: d for d in figures["destinations"]}
    assert lag["a"]["pending"] == 0 and lag["a"]["lag_seconds"] is None
    assert lag["b"]["pending"] == len(ids) and lag["b"]["lag_seconds"] >= 0
    assert "b" in lag and lag["b"]["last_error"] and figures["acks_required"] == 2

    _, url_b = servers("b")  # back, on another port: the destination keeps its name
    sent_to_a = uploads_received(url_a)
    with Uploader(
        sinks={"a": HttpSink(url_a, TOKEN), "b": HttpSink(url_b, TOKEN)}, journal=journal, **FAST
    ) as up:
        up.flush(timeout=60)
    assert sealed_ids(journal) == []
    assert uploads_received(url_a) == sent_to_a  # nothing sent to a again
    assert uploads_received(url_b) == len(ids)
    assert values_of(journal, held_by(HttpSink(url_b, TOKEN)), tmp_path) == sorted(popped)
    assert not os.listdir(_ledger.destination_dir(journal.path, "a"))  # marks go with their segments


def test_laggards_keep_receiving_during_the_retention_period(journal, tmp_path):
    a, b = DirectorySink(tmp_path / "a"), DirectorySink(tmp_path / "b")
    with Uploader(sinks=[a, b], journal=journal, acks_required=1, keep_for=3600, **FAST) as up:
        pop_many(journal, 30)
        up.flush(timeout=30)
        ids = sealed_ids(journal)
        # one acknowledgement was enough to mark them; the other destination gets them too
        wait_until(
            lambda: all(_ledger.destination_marks(journal.path, d.name) == set(ids) for d in up.destinations),
            30,
            "the second destination did not receive every segment",
        )
    assert sorted(held_by(DirectorySink(tmp_path / "a"))) == ids
    assert sorted(held_by(DirectorySink(tmp_path / "b"))) == ids
    assert sorted(safe_data.journal.retention.acknowledged(journal.path) & set(ids)) == ids


def test_marks_of_a_single_sink_still_count(journal, tmp_path):
    with Uploader(DirectorySink(tmp_path / "a"), journal, keep_for=3600, **FAST) as up:
        pop_many(journal, 20)
        up.flush(timeout=30)
    ids = sealed_ids(journal)
    assert sorted(os.listdir(os.path.join(journal.path, "uploaded"))) == sorted([*ids, "status.json"])
    sinks = [DirectorySink(tmp_path / "a"), DirectorySink(tmp_path / "b")]
    with Uploader(sinks=sinks, journal=journal, keep_for=3600, **FAST) as up:
        up.flush(timeout=30)
        assert up.counters()["acked"] == 0  # acknowledged already: nothing to wait for
        wait_until(  # the destinations still get them while they are kept
            lambda: all(_ledger.destination_marks(journal.path, d.name) == set(ids) for d in up.destinations),
            30,
            "the kept segments were not sent to both destinations",
        )
    assert sealed_ids(journal) == ids  # kept for their retention period
    assert sorted(held_by(DirectorySink(tmp_path / "b"))) == ids


def test_arguments(journal, tmp_path):
    a, b = DirectorySink(tmp_path / "a"), DirectorySink(tmp_path / "b")
    with pytest.raises(TypeError, match="either"):
        Uploader(a, journal, sinks=[b])
    with pytest.raises(TypeError, match="either"):
        Uploader(journal=journal)
    with pytest.raises(ValueError, match="between 1 and 2"):
        Uploader(sinks=[a, b], journal=journal, acks_required=3)
    with pytest.raises(ValueError, match="twice"):
        Uploader(sinks=[a, DirectorySink(tmp_path / "a")], journal=journal)
    with pytest.raises(ValueError, match="not a destination name"):
        Uploader(sinks={"../x": a}, journal=journal)
    names = [d.name for d in Uploader(sinks=[a, b], journal=journal).destinations]
    assert names == [d.name for d in Uploader(sinks=[b, a], journal=journal).destinations][::-1]
    assert all(n.startswith("directory-") for n in names)


def cli(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "safe_data", *args], capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_push_to_several(tmp_path, servers):
    source = tmp_path / "source"
    with safe_data.Journal(source) as journal:
        pop_many(journal, 30)
    _, url = servers("a")
    down, down_url = servers("down")
    kill(down)
    # two of three reachable, two required: done, the third one named in a warning
    out = cli(
        "--journal", str(source), "push", "--to", url, "--to", str(tmp_path / "dir"), "--to", down_url,
        "--token", TOKEN, "--acks-required", "2", "--connect-timeout", "5",
    )  # fmt: skip
    assert "acknowledged" in out.stdout and "warning: cannot reach" in out.stderr
    assert not [n for n in os.listdir(source) if n.endswith(".seg")]
    assert held_by(HttpSink(url, TOKEN)).keys() == held_by(DirectorySink(tmp_path / "dir")).keys()
    # all three required: refused at once, nothing moves
    with safe_data.Journal(source) as journal:
        pop_many(journal, 30)
    out = cli(
        "--journal", str(source), "push", url, "--to", down_url, "--token", TOKEN, "--connect-timeout", "5",
        check=False,
    )  # fmt: skip
    assert out.returncode == 1 and "cannot reach" in out.stderr
    assert [n for n in os.listdir(source) if n.endswith(".seg")]
    out = cli("--journal", str(source), "push", url, "--acks-required", "2", check=False)
    assert out.returncode == 2 and "only 1 destination" in out.stderr
