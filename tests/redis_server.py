"""A real ``redis-server`` on loopback for the Redis backend tests.

The server binary comes from the system (Debian: ``apt-get install redis-server``); tests
using the ``redis_client`` fixture are skipped when it or the ``redis`` client package is
absent.  The server keeps nothing on disk (``--save '' --appendonly no``) and dies with
the test process.  conftest.py makes the fixtures available to every test module:

    def test_something(redis_client):
        redis_client.set("k", b"v")
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from .seaweedfs import _die_with_parent, free_port, stop, wait_until_ready


@dataclasses.dataclass
class RedisServer:
    port: int
    process: subprocess.Popen
    directory: Path
    log: Path


def _answers(port: int) -> bool:
    import redis

    try:
        return redis.Redis(port=port, socket_timeout=1).ping()
    except redis.ConnectionError:
        return False


def start(directory: Path) -> RedisServer:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).is_file():
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    pytest.importorskip("redis", reason="the redis client is not installed (pip install redis)")
    port = free_port()
    log = directory / "redis.log"
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
        "--logfile",
        str(log),
    ]
    proc = subprocess.Popen(
        args,
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    wait_until_ready(proc, lambda: _answers(port), "redis-server", log)
    return RedisServer(port=port, process=proc, directory=directory, log=log)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = start(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        stop(server.process, wait=True)


@pytest.fixture
def redis_client(redis_server):
    """A client of the session's server, on an empty database."""
    import redis

    client = redis.Redis(port=redis_server.port)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()
