"""Remote backup under load and under failure, with real processes: several clients at
once, and a backup server killed and restarted in the middle of uploads.  Afterwards the
server holds every record exactly once and nothing is left behind locally."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import safe_data

from ._helpers import wait_until
from .backup_server import start_server, stop

TOKEN = "fault-test-token-7c1e"

CLIENT = textwrap.dedent("""
    import sys, safe_data
    from safe_data import HttpSink, Uploader
    path, url = sys.argv[1], sys.argv[4]
    client, count, segment_size = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[5])
    journal = safe_data.Journal(path, segment_size=segment_size)
    values = safe_data.SafeList([(client, i, "x" * 200) for i in range(count)], name="work", journal=journal)
    with Uploader(HttpSink(url, token=sys.argv[6]), journal, seal_every=0.05,
                  backoff=(0.05, 0.5)) as uploader:
        while values:
            values.pop()
        uploader.flush(timeout=90)
    print("flushed", flush=True)
""")


@pytest.fixture
def tokens(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"app:{TOKEN}\n")
    path.chmod(0o600)
    return path


def stored_values(tmp_path, url):
    """Every record the server holds, read back through `safe-data pull`."""
    restored = tmp_path / "restored"
    subprocess.run(
        [sys.executable, "-m", "safe_data", "--journal", str(restored), "pull", url, "--token", TOKEN],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with safe_data.Journal(restored, readonly=True) as journal:  # pull brings no key
        return [tuple(r.values[0][:2]) for r in journal.records()]


def client(tmp_path, number, count, url, segment_size=64 << 10):
    script = tmp_path / "client.py"
    if not script.exists():  # written once: a client must never read it half-written
        script.write_text(CLIENT)
    return subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(tmp_path / f"journal-{number}"),
            str(number),
            str(count),
            url,
            str(segment_size),
            TOKEN,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_eight_clients_at_once_every_record_stored_once(tmp_path, tokens):
    server, url = start_server(tmp_path / "store", tokens)
    try:
        clients = [client(tmp_path, n, 600, url) for n in range(8)]
        for proc in clients:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0 and "flushed" in out, err[-2000:]
        values = stored_values(tmp_path, url)
    finally:
        stop(server)
    assert len(values) == len(set(values)) == 8 * 600
    for n in range(8):  # nothing left behind: acknowledged segments were freed
        assert not [f for f in os.listdir(tmp_path / f"journal-{n}") if f.endswith(".seg")]


def test_server_killed_and_restarted_during_uploads(tmp_path, tokens):
    store = tmp_path / "store"
    server, url = start_server(store, tokens)
    port = url.rsplit(":", 1)[1]
    proc = client(tmp_path, 0, 5000, url, segment_size=16 << 10)
    try:
        wait_until(lambda: list(store.rglob("*.seg.zst")), 30, "no upload reached the server")
        server.send_signal(signal.SIGKILL)  # mid-upload: no clean shutdown
        stop(server)
        time.sleep(0.5)  # the client meets a dead server and backs off
        server, url = start_server(store, tokens, port=int(port))
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "flushed" in out, err[-2000:]
        values = stored_values(tmp_path, url)
    finally:
        proc.kill()
        stop(server)
    assert len(values) == len(set(values)) == 5000
    assert not [f for f in os.listdir(tmp_path / "journal-0") if f.endswith(".seg")]
