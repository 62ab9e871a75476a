"""Bodies on their way in (docs/remote.md, "Limits and memory"): the names of the server's
temporary files, and the removal of those a killed server left behind.

A body is received into ``.upload-<host>-<boot>-<pid>-<random>.tmp`` (``<boot>``: the
start of this machine's boot id, so a pid from before a reboot is not taken for a live
one).  Several servers, on one machine or several, may share a store's ``.incoming``
directory, so a file is removed at start only when it cannot be a live upload:

* it names this host and this boot, and no process with its pid is running;
* it names this host and another boot (the machine restarted since);
* or it is older than :data:`MAX_AGE` seconds, whoever wrote it (another host, or an
  older version's ``.upload-*.tmp``): no upload takes that long.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time

__all__ = ["temp_prefix", "clean", "MAX_AGE"]

MAX_AGE = 24 * 3600
_PREFIX = ".upload-"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip().replace("-", "")[:8]
    except OSError:  # not Linux: only the pid and the age decide
        return "noboot"


def _host() -> str:
    return "".join(c for c in socket.gethostname() if c.isalnum())[:32] or "host"


def temp_prefix() -> str:
    """The prefix of this process's temporary files."""
    return f"{_PREFIX}{_host()}-{_boot_id()}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _left_behind(name: str, age: float, host: str, boot: str) -> bool:
    if age > MAX_AGE:
        return True
    parts = name[len(_PREFIX) :].split("-")
    if len(parts) < 4 or parts[0] != host or not parts[2].isdigit():
        return False  # another host's (or an older version's): only its age tells
    return parts[1] != boot or not _alive(int(parts[2]))


def clean(directory: str) -> list[str]:
    """Remove the temporary files in ``directory`` no live server can be writing; their
    names."""
    host, boot, now = _host(), _boot_id(), time.time()
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in sorted(names):
        if not (name.startswith(_PREFIX) and name.endswith(".tmp")):
            continue
        path = os.path.join(directory, name)
        with contextlib.suppress(FileNotFoundError):
            if _left_behind(name, now - os.stat(path).st_mtime, host, boot):
                os.unlink(path)
                removed.append(name)
    return removed
