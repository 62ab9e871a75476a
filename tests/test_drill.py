"""Restore drills (``safe-data check-remote``, ``Uploader(drill_every=...)``) against real
remotes: a ``safe-data serve`` process, SeaweedFS, a directory; good ones pass, a tampered
or missing object fails with one line per problem."""

import json
import os
import subprocess
import sys

import pytest

import safe_data
from safe_data import SafeList
from safe_data.remote import _ledger
from safe_data.remote.drill import parse_subset, sample_size

pytest.importorskip("aiohttp")
pytest.importorskip("zstandard")

from safe_data.remote.sinks.directory import DirectorySink  # noqa: E402
from safe_data.remote.uploader import Uploader  # noqa: E402

from ._helpers import wait_until  # noqa: E402
from .backup_server import start_server_for, stop  # noqa: E402
from .seaweedfs import new_bucket  # noqa: E402

TOKEN = "s3cret-token-of-the-app"


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "safe_data", *args], capture_output=True, text=True, timeout=120, env=env
    )


def ok(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def server(tmp_path):
    proc, url = start_server_for(tmp_path, TOKEN)
    yield url, tmp_path / "store" / "app"
    stop(proc)


def shipped_journal(path, target, *options, n=150):
    """A journal of ``n`` pops over several segments, pushed to ``target``; its segment ids."""
    with safe_data.Journal(path, segment_size=4096) as journal:
        items = SafeList([f"{i:06d}-" + "x" * 150 for i in range(n)], name="items", journal=journal)
        while items:
            items.pop()
    ok(cli("--journal", str(path), "push", target, *options))
    departures, _ = safe_data.journal.ledger.read(str(path))
    return sorted(d.segment for d in departures.values())


def test_a_good_remote_passes_and_stats_show_when(tmp_path, server):
    url, _ = server
    journal = tmp_path / "journal"
    ids = shipped_journal(journal, url, "--token", TOKEN)
    assert len(ids) > 3
    out = ok(cli("--journal", str(journal), "check-remote", url, "--token", TOKEN, "--read-data-subset", "2"))
    assert f"2 segments of {len(ids)} downloaded and verified; {len(ids)} acknowledged" in out.stdout
    out = ok(cli("--journal", str(journal), "check-remote", url, "--token", TOKEN, "--json"))
    report = json.loads(out.stdout)
    assert report["ok"] and len(report["checked"]) == 1 and report["problems"] == []  # 5% of a few: 1
    figures = json.loads(ok(cli("--journal", str(journal), "stats", "--json")).stdout)
    drill = figures["drill"]
    assert drill["last_good"] and 0 <= drill["last_good_age_seconds"] < 60
    (target,) = drill["targets"]
    assert url in target and drill["targets"][target]["ok"]
    assert "restore drill:  last good 20" in ok(cli("--journal", str(journal), "stats")).stdout


def test_a_tampered_object_fails(tmp_path, server):
    url, store = server
    journal = tmp_path / "journal"
    ids = shipped_journal(journal, url, "--token", TOKEN)
    ok(cli("--journal", str(journal), "check-remote", url, "--token", TOKEN))
    good = _ledger.read_status(str(journal), _ledger.DRILL_FILE)["last_good"]
    body = store / f"{ids[1]}.seg.zst"
    data = bytearray(body.read_bytes())
    data[len(data) // 2] ^= 0xFF
    body.write_bytes(bytes(data))
    out = cli("--journal", str(journal), "check-remote", url, "--token", TOKEN, "--read-data-subset", "100%")
    assert out.returncode == 1, out.stdout + out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"Error: segment {ids[1]}: does not verify: ")
    recorded = _ledger.read_status(str(journal), _ledger.DRILL_FILE)
    (run,) = recorded["targets"].values()
    assert not run["ok"] and run["problem_count"] == 1 and run["checked"] == len(ids) - 1
    assert recorded["last_good"] == good  # the failed drill does not count


def test_a_missing_object_fails(tmp_path, server):
    url, store = server
    journal = tmp_path / "journal"
    ids = shipped_journal(journal, url, "--token", TOKEN)
    for suffix in (".seg.zst", ".sha256"):
        os.unlink(store / f"{ids[0]}{suffix}")
    out = cli("--journal", str(journal), "check-remote", url, "--token", TOKEN, "--read-data-subset", "1")
    assert out.returncode == 1
    assert (
        f"segment {ids[0]}: acknowledged by HttpSink('{url}', token=<hidden>), but missing from it"
        in out.stderr
    )
    # from elsewhere (no ledger to compare with), the drill can only check what is listed
    ok(cli("--journal", str(tmp_path / "elsewhere"), "check-remote", url, "--token", TOKEN))


def test_an_empty_remote_fails(tmp_path):
    out = cli("--journal", str(tmp_path / "journal"), "check-remote", str(tmp_path / "nothing"))
    assert out.returncode == 1 and "holds no segment" in out.stderr


def test_s3(tmp_path, seaweedfs):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=seaweedfs.access_key, AWS_SECRET_ACCESS_KEY=seaweedfs.secret_key)
    target = f"s3://{new_bucket(seaweedfs, 'drill-')}/backups"
    journal = tmp_path / "journal"
    with safe_data.Journal(journal, segment_size=4096) as j:
        items = SafeList(["x" * 150] * 40, name="items", journal=j)
        while items:
            items.pop()
    s3 = ("--endpoint-url", seaweedfs.endpoint)
    ok(cli("--journal", str(journal), "push", target, *s3, env=env))
    out = ok(
        cli("--journal", str(journal), "check-remote", target, *s3, "--read-data-subset", "100%", env=env)
    )
    assert "downloaded and verified" in out.stdout


def test_the_uploader_drills_on_a_schedule(tmp_path):
    backup = tmp_path / "backup"
    with safe_data.Journal(tmp_path / "journal", segment_size=4096) as journal:
        with Uploader(DirectorySink(backup), journal, seal_every=None, drill_every=0.2) as up:
            items = SafeList(["x" * 150] * 40, name="items", journal=journal)
            while items:
                items.pop()
            up.flush(timeout=30)
            recorded = wait_until(
                lambda: _ledger.read_status(journal.path, _ledger.DRILL_FILE),
                30,
                "no drill was recorded",
            )
        (run,) = recorded["targets"].values()
        assert recorded["last_good"] and run["ok"] and run["checked"] >= 1
        assert safe_data.stats()["safe_data.upload.last_good_drill_timestamp_seconds"] > 0


def test_subsets():
    assert parse_subset("5%") == 0.05 and parse_subset("3") == 3 and parse_subset(2) == 2
    for bad in ("0%", "101%", "0", "x", "-1", 0, True):
        with pytest.raises(ValueError):
            parse_subset(bad)
    assert sample_size(0.05, 3) == 1 and sample_size(0.05, 100) == 5 and sample_size(0.05, 101) == 6
    assert sample_size(10, 3) == 3 and sample_size(0.5, 0) == 0


def test_a_server_shows_the_drills_of_the_journal_it_shows(tmp_path):
    from safe_data.server.stores.directory import DirectoryStore

    from .server_helpers import AUTH, run

    journal = tmp_path / "journal"
    ids = shipped_journal(journal, str(tmp_path / "backup"))
    assert ids

    async def scenario(client):
        metrics = await (await client.get("/metrics", headers=AUTH)).text()
        sources = await (await client.get("/ui/api/sources", headers=AUTH)).json()
        return metrics, sources

    store = DirectoryStore(tmp_path / "store")
    metrics, sources = run(scenario, store, web_view=True, journal=journal)
    assert (
        "\nsafe_data_last_good_drill_timestamp_seconds 0\n" in metrics and sources["last_good_drill"] is None
    )
    ok(cli("--journal", str(journal), "check-remote", str(tmp_path / "backup")))
    metrics, sources = run(scenario, store, web_view=True, journal=journal)
    when = _ledger.last_good_drill(str(journal))
    assert f"\nsafe_data_last_good_drill_timestamp_seconds {when:.0f}\n" in metrics
    assert sources["last_good_drill"] == _ledger.read_status(str(journal), _ledger.DRILL_FILE)["last_good"]
    # without a journal, a server cannot know of its clients' drills: no such gauge
    metrics, _ = run(scenario, store, web_view=True)
    assert "drill" not in metrics
