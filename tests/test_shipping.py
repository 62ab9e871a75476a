"""`safe-data push` and `pull` through real processes: a real backup server, real segments."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

import safe_data

from .backup_server import start_server, stop


def cli(*args, env=None, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "safe_data", *args], capture_output=True, text=True, env=env, timeout=60
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def server(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("app:s3cret-token\n")
    tokens.chmod(0o600)
    proc, url = start_server(tmp_path / "store", tokens)
    yield url, tmp_path / "store"
    stop(proc)


def journal_with_records(path, values):
    with safe_data.Journal(path) as journal:
        lst = safe_data.SafeList(values, name="orders", journal=journal)
        while lst:
            lst.pop()
    return [r.values[0] for r in safe_data.Journal(path).records()]


def test_push_then_pull_from_the_backup_server(tmp_path, server):
    url, store = server
    source = tmp_path / "source"
    popped = journal_with_records(source, list(range(100)))
    out = cli("--journal", str(source), "push", url, "--token", "s3cret-token")
    assert "1 segment acknowledged" in out.stdout
    assert not [n for n in os.listdir(source) if n.endswith(".seg")]  # freed once acknowledged
    assert len(list((store / "app").glob("*.seg.zst"))) == 1

    restored = tmp_path / "restored"
    out = cli("--journal", str(restored), "pull", url, "--token", "s3cret-token")
    assert "1 segment downloaded" in out.stdout
    shutil.copy(source / "key", restored / "key")
    assert [r.values[0] for r in safe_data.Journal(restored).records()] == popped
    out = cli("--journal", str(restored), "pull", url, "--token", "s3cret-token")
    assert "0 segments downloaded, 1 already here" in out.stdout


def test_a_wrong_token_keeps_everything_local(tmp_path, server):
    url, _ = server
    source = tmp_path / "source"
    journal_with_records(source, [1, 2, 3])
    out = cli(
        "--journal", str(source), "push", url, "--token", "not-the-token-9f3a", "--timeout", "10", check=False
    )
    assert out.returncode == 1 and "refused the token" in out.stderr
    assert out.stderr.count("\n") == 1 and "Warning" not in out.stderr and out.stdout == ""
    assert "not-the-token-9f3a" not in out.stdout + out.stderr  # tokens are never printed
    assert [n for n in os.listdir(source) if n.endswith(".seg")]


def test_push_and_pull_with_a_directory(tmp_path):
    source, backup, restored = tmp_path / "source", tmp_path / "backup", tmp_path / "restored"
    popped = journal_with_records(source, ["a", "b"])
    cli("--journal", str(source), "push", str(backup))
    cli("--journal", str(restored), "pull", str(backup))
    shutil.copy(source / "key", restored / "key")
    assert [r.values[0] for r in safe_data.Journal(restored).records()] == popped
    assert (
        cli("--journal", str(tmp_path / "empty"), "pull", str(tmp_path / "nothing"), check=False).returncode
        == 3
    )


def test_push_and_pull_with_an_s3_bucket(tmp_path, seaweedfs):
    pytest.importorskip("aiohttp")
    import asyncio
    import uuid

    from safe_data.remote.sinks.s3 import S3Sink

    bucket = "push-" + uuid.uuid4().hex[:12]

    async def create():
        async with S3Sink(
            bucket, seaweedfs.endpoint, access_key=seaweedfs.access_key, secret_key=seaweedfs.secret_key
        ) as sink:
            await sink.ensure_bucket()

    asyncio.run(create())
    env = dict(os.environ, AWS_ACCESS_KEY_ID=seaweedfs.access_key, AWS_SECRET_ACCESS_KEY=seaweedfs.secret_key)
    source, restored = tmp_path / "source", tmp_path / "restored"
    popped = journal_with_records(source, ["a", "b"])
    target = f"s3://{bucket}/backups/"
    cli("--journal", str(source), "push", target, "--endpoint-url", seaweedfs.endpoint, env=env)
    assert not [n for n in os.listdir(source) if n.endswith(".seg")]  # acknowledged: freed
    cli("--journal", str(restored), "pull", target, "--endpoint-url", seaweedfs.endpoint, env=env)
    shutil.copy(source / "key", restored / "key")
    assert [r.values[0] for r in safe_data.Journal(restored).records()] == popped
    bad = cli("--journal", str(source), "push", f"s3://{bucket}/a/../b", env=env, check=False)
    assert bad.returncode == 2 and "invalid prefix" in bad.stderr


@pytest.mark.parametrize("command", ["push", "pull"])
@pytest.mark.parametrize("namespace", ["../x", "a/b", ".hidden", "", "x" * 65])
def test_a_namespace_that_could_escape_the_store_is_a_usage_error(tmp_path, command, namespace):
    source = tmp_path / "source"
    journal_with_records(source, ["a"])
    before = sorted(os.listdir(source))
    proc = cli(
        "--journal", str(source), command, str(tmp_path / "store"), "--namespace", namespace, check=False
    )
    assert proc.returncode == 2 and "is not a namespace" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(os.listdir(source)) == before and not (tmp_path / "store").exists()


def test_purge_deletes_acknowledged_segments_without_force(tmp_path):
    source = tmp_path / "source"
    journal_with_records(source, [1, 2])
    (segment,) = [n for n in os.listdir(source) if n.endswith(".seg")]
    assert cli("--journal", str(source), "purge", "--max-bytes", "0", check=False).returncode == 5
    assert (
        '"segments": 1'
        in cli("--journal", str(source), "stats", "--json").stdout.split('"pending_upload"')[1]
    )
    (source / "uploaded").mkdir()
    (source / "uploaded" / segment[: -len(".seg")]).touch()  # what an uploader writes on ack
    cli("--journal", str(source), "purge", "--max-bytes", "0")
    assert not (source / segment).exists()


def test_stats_shows_the_last_uploaders_report(tmp_path):
    """An uploader that cannot reach its server, still running in another process, then
    one that shipped everything: `safe-data stats` tells which, and the last error."""
    source = tmp_path / "source"
    journal_with_records(source, list(range(50)))
    program = f"""
import sys, time, safe_data
from safe_data import HttpSink, Uploader
from safe_data.remote import read_status
up = Uploader(HttpSink("http://127.0.0.1:9", "tok"), {str(source)!r}, backoff=(0.01, 0.05)).start()
deadline = time.monotonic() + 60  # a loaded machine may take seconds to get there
while not (read_status({str(source)!r}) or {{}}).get("last_error") and time.monotonic() < deadline:
    time.sleep(0.05)
print("reported", flush=True)
sys.stdin.read()
"""
    child = subprocess.Popen(
        [sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "reported"
        shown = cli("--journal", str(source), "stats").stdout
        assert f"running (pid {child.pid}), to HttpSink('http://127.0.0.1:9', token=<hidden>)" in shown
        assert "last error:" in shown and "Cannot connect" in shown and 'tok"' not in shown
        report = json.loads(cli("--journal", str(source), "stats", "--json").stdout)["uploader"]
        assert report["alive"] and report["acked"] == 0 and report["errors"] > 0
    finally:
        child.kill()
        child.communicate()  # reaps it and closes both pipes
    shown = cli("--journal", str(source), "stats").stdout
    assert f"was running (pid {child.pid}, gone since)" in shown  # killed: no final report

    with safe_data.Uploader(safe_data.DirectorySink(tmp_path / "store"), source) as up:
        up.flush(timeout=10)
    report = json.loads(cli("--journal", str(source), "stats", "--json").stdout)["uploader"]
    assert report["running"] is False and report["alive"] is False and report["last_error"] is None
    assert report["acked"] >= 1 and report["last_ack"]
    assert "stopped, was shipping to DirectorySink(" in cli("--journal", str(source), "stats").stdout


# --- failing fast: an unreachable backup, one that never answers, one too slow ----------------


def timed_cli(*args, env=None):
    started = time.monotonic()
    proc = cli(*args, env=env, check=False)
    return proc, time.monotonic() - started


def assert_one_error_line(proc, *expected):
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: "), proc.stderr
    assert all(text in proc.stderr for text in expected), proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the socket is: nothing listens there


@pytest.mark.parametrize("command", ["push", "pull"])
def test_nothing_listening_is_one_line_at_once(tmp_path, command):
    source = tmp_path / "source"
    journal_with_records(source, [1, 2])
    before = sorted(os.listdir(source))
    url = f"http://127.0.0.1:{closed_port()}"
    proc, elapsed = timed_cli("--journal", str(source), command, url, "--token", "t")
    assert_one_error_line(proc, "cannot reach the backup", "Cannot connect")
    assert proc.stdout == "" and elapsed < 10
    assert sorted(os.listdir(source)) == before


@pytest.mark.parametrize("command", ["push", "pull"])
def test_a_server_that_never_answers_times_out_at_the_connect_timeout(tmp_path, command):
    """A real socket that takes connections (the kernel completes them) and never answers."""
    source = tmp_path / "source"
    journal_with_records(source, [1, 2])
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        proc, elapsed = timed_cli(
            "--journal", str(source), command, url, "--token", "t", "--connect-timeout", "1"
        )
    assert_one_error_line(proc, "no answer within 1 s (--connect-timeout)")
    assert 1 <= elapsed < 8


STALLING_SERVER = """
import asyncio, sys
from aiohttp import web

async def health(request):
    return web.json_response({"status": "ok"})

async def stall(request):
    await asyncio.sleep(3600)

app = web.Application()
app.router.add_get("/health", health)
app.router.add_put("/v1/segments/{id}", stall)
app.router.add_get("/v1/segments", stall)

async def main():
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print("http://127.0.0.1:%d" % site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
def stalling_server():
    """A real HTTP server that answers /health and never answers an upload or a listing."""
    pytest.importorskip("aiohttp")
    proc = subprocess.Popen([sys.executable, "-c", STALLING_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        stop(proc)


def test_push_gives_up_at_its_timeout_and_keeps_every_segment(tmp_path, stalling_server):
    source = tmp_path / "source"
    journal_with_records(source, [1, 2])
    before = sorted(os.listdir(source))
    proc, elapsed = timed_cli(
        "--journal", str(source), "push", stalling_server, "--token", "t", "--timeout", "2"
    )
    assert_one_error_line(proc, "push did not finish within 2 s (--timeout): 0 of 1 segments")
    assert proc.stdout == "" and 2 <= elapsed < 10
    assert [n for n in os.listdir(source) if n.endswith(".seg")] == [n for n in before if n.endswith(".seg")]
    proc, _ = timed_cli(
        "--journal", str(source), "push", stalling_server, "--token", "t", "--timeout", "1", "--json"
    )
    result = json.loads(proc.stdout)
    assert proc.returncode == 1 and result["ok"] is False and result["pending"] == 1
    assert result["error"] in proc.stderr


def test_pull_gives_up_at_its_timeout(tmp_path, stalling_server):
    proc, elapsed = timed_cli(
        "--journal", str(tmp_path / "restored"), "pull", stalling_server, "--token", "t", "--timeout", "2"
    )
    assert_one_error_line(proc, "pull did not finish within 2 s (--timeout)")
    assert 2 <= elapsed < 10


def test_push_and_pull_to_s3_without_credentials_is_one_line(tmp_path):
    source = tmp_path / "source"
    journal_with_records(source, [1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    for command in ("push", "pull"):
        proc, _ = timed_cli("--journal", str(source), command, "s3://bucket", env=env)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "AWS_ACCESS_KEY_ID" in proc.stderr and "Traceback" not in proc.stderr
