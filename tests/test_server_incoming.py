"""At start, ``safe-data serve`` on a directory store removes the bodies a killed server
left in ``.incoming``, and nothing a live server may be writing (docs/remote.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("aiohttp")

from safe_data.server.incoming import MAX_AGE, temp_prefix  # noqa: E402

from .server_helpers import TOKEN, start_cli, stop_cli  # noqa: E402


def test_serve_removes_what_dead_servers_left_and_keeps_the_rest(tmp_path):
    incoming = tmp_path / "store" / ".incoming"
    incoming.mkdir(parents=True)
    host, boot, _pid = temp_prefix()[len(".upload-") :].rstrip("-").split("-")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = {
        f".upload-{host}-{boot}-{dead.pid}-a.tmp": "removed",  # its process is gone
        f".upload-{host}-{boot}-{os.getpid()}-b.tmp": "kept",  # a live process's
        f".upload-{host}-00000000-{os.getpid()}-c.tmp": "removed",  # from before a reboot
        f".upload-elsewhere-{boot}-{dead.pid}-d.tmp": "kept",  # another host's, recent
        f".upload-elsewhere-{boot}-{dead.pid}-e.tmp": "old",  # another host's, a day old
        ".upload-k2j4h5.tmp": "kept",  # an older version's, recent
        ".upload-x8d7f6.tmp": "old",
        "notes.txt": "kept",
    }
    long_ago = time.time() - MAX_AGE - 60
    for name, fate in names.items():
        (incoming / name).write_bytes(b"partial body")
        if fate == "old":
            os.utime(incoming / name, (long_ago, long_ago))
    proc, _base = start_cli("--store", str(tmp_path / "store"), env={"SAFE_DATA_TOKENS": f"alpha:{TOKEN}"})
    err = stop_cli(proc)
    assert proc.returncode == 0, err
    assert sorted(os.listdir(incoming)) == sorted(n for n, fate in names.items() if fate == "kept")
    for name, fate in names.items():
        assert (f"removed {name}:" in err) == (fate != "kept"), (name, err)
