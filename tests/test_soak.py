"""The soak (docs/guarantees.md): clients and the backup server killed at random for a long
time, with a full comparison against the acknowledgements every so often.

Not part of the default run: ``SAFE_DATA_SOAK_SECONDS=600 python -m pytest tests/test_soak.py``
(``SAFE_DATA_SOAK_CHECK_EVERY`` seconds between comparisons, default 60;
``SAFE_DATA_FIGURES=<file>`` writes the figures as JSON).

Three client processes, each on its own journal, pop values out of SafeLists and print
each value once the pop returned; each runs an uploader shipping to ``safe-data serve``.
At random moments a client is SIGKILLed and a new one started on the same journal (it
recovers its predecessor's segment and ships what is left); the server is SIGKILLed
and restarted on the same port and store.  Every comparison pulls everything the server
holds and reads every local journal: each acknowledged value must be in one of them,
no value twice (a record both still local and already backed up counts once: same writer,
same sequence number).  At the end the kills stop, every journal is drained, and the
server must hold every acknowledged value exactly once, with nothing left locally.
"""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import safe_data

from .backup_server import start_server, stop

TOKEN = "soak-test-token-3f9a"
SECONDS = float(os.environ.get("SAFE_DATA_SOAK_SECONDS", "0"))
CHECK_EVERY = float(os.environ.get("SAFE_DATA_SOAK_CHECK_EVERY", "60"))
CLIENTS = 3

pytestmark = pytest.mark.skipif(not SECONDS, reason="a long run: set SAFE_DATA_SOAK_SECONDS")

CLIENT = textwrap.dedent("""
    import sys, time, safe_data
    from safe_data import HttpSink, SafeList, Uploader
    path, run, url, token = sys.argv[1:5]
    journal = safe_data.Journal(path, segment_size=16 << 10)
    with Uploader(HttpSink(url, token), journal, seal_every=0.2, backoff=(0.05, 1.0)) as uploader:
        if run == "drain":
            uploader.flush(timeout=120)
            print("drained", flush=True)
            sys.exit(0)
        i = 0
        while True:
            values = SafeList([f"{run}-{i + k}" for k in range(100)], name="soak", journal=journal)
            while values:
                print(values.pop(), flush=True)
            i += 100
            time.sleep(0.01)
""")


class Client:
    def __init__(self, tmp_path, number, url):
        self.path = tmp_path / f"journal-{number}"
        self.script = tmp_path / "client.py"
        self.number, self.url, self.runs = number, url, 0
        self.acked: list[str] = []
        self.proc = None

    def start(self, run=None):
        self.runs += 1
        run = run or f"c{self.number}r{self.runs}"
        self.proc = subprocess.Popen(
            [sys.executable, str(self.script), str(self.path), run, self.url, TOKEN],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self.reader.start()

    def _read(self, proc):
        for line in proc.stdout:
            if line.endswith("\n") and line != "drained\n":
                self.acked.append(line.strip())

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reader.join()
        self.proc.stdout.close()


def everything(tmp_path, url, clients):
    """Values on the server and in the local journals, each record once (by identity).
    The local journals are read first: a segment gone from them afterwards was
    acknowledged by the server before it went, so the pull that follows finds it."""
    records = {}
    for client in clients:
        if client.path.exists():
            with safe_data.Journal(client.path) as journal:
                for r in journal.records("soak", on_error="ignore"):
                    records[r.writer, r.seq] = r.values[0]
    restored = tmp_path / f"restored-{time.monotonic_ns()}"
    proc = subprocess.run(
        [sys.executable, "-m", "safe_data", "--journal", str(restored), "pull", url, "--token", TOKEN],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-2000:]
    on_server = []
    with safe_data.Journal(restored) as journal:
        for r in journal.records("soak", on_error="raise"):
            on_server.append(r.values[0])
            records[r.writer, r.seq] = r.values[0]
    return on_server, list(records.values())


def compare(acked, values):
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    lost = [v for v in acked if v not in counts]
    twice = [v for v, n in counts.items() if n > 1]
    return lost, twice


def test_soak(tmp_path):
    rng = random.Random(int(os.environ.get("SAFE_DATA_TEST_SEED", time.time_ns() % 10**6)))
    tokens = tmp_path / "tokens"
    tokens.write_text(f"app:{TOKEN}\n")
    tokens.chmod(0o600)
    store = tmp_path / "store"
    server, url = start_server(store, tokens)
    port = int(url.rsplit(":", 1)[1])
    (tmp_path / "client.py").write_text(CLIENT)
    clients = [Client(tmp_path, n, url) for n in range(CLIENTS)]
    for c in clients:
        c.start()
    figures = {"seconds": SECONDS, "client_kills": 0, "server_kills": 0, "checks": 0}
    started = next_check = time.monotonic()
    next_check += CHECK_EVERY
    try:
        while time.monotonic() - started < SECONDS:
            time.sleep(rng.uniform(0.5, 3.0))
            if rng.random() < 0.2:
                server.send_signal(signal.SIGKILL)
                stop(server)
                time.sleep(rng.uniform(0, 1))
                server, url = start_server(store, tokens, port=port)
                figures["server_kills"] += 1
            else:
                victim = rng.choice(clients)
                victim.kill()
                victim.start()
                figures["client_kills"] += 1
            if time.monotonic() >= next_check:
                acked = [v for c in clients for v in list(c.acked)]
                lost, twice = compare(acked, everything(tmp_path, url, clients)[1])
                assert not lost and not twice, (figures, lost[:5], twice[:5])
                figures["checks"] += 1
                next_check = time.monotonic() + CHECK_EVERY
        for c in clients:  # the end: no more kills; ship everything
            c.kill()
            c.start("drain")
            c.proc.wait(timeout=180)
            c.reader.join()
        acked = [v for c in clients for v in c.acked]
        on_server, _ = everything(tmp_path, url, [])
    finally:
        for c in clients:
            if c.proc.poll() is None:
                c.kill()
        stop(server)
    lost, twice = compare(acked, on_server)
    left = [f for c in clients for f in os.listdir(c.path) if f.endswith(".seg")]
    figures.update(
        acknowledged=len(acked),
        on_server=len(on_server),
        lost=len(lost),
        duplicated=len(twice),
        left_locally=len(left),
    )
    if os.environ.get("SAFE_DATA_FIGURES"):
        with open(os.environ["SAFE_DATA_FIGURES"], "w") as f:
            json.dump(figures, f, indent=1)
    assert not lost and not twice and not left, figures
    assert figures["client_kills"] and acked
