"""Deterministic fault injection at every step of the journal's and the uploader's protocols.

``SAFE_DATA_FAULT=<site>:<n>[:<how>]``, read once at import, makes the n-th pass of this
process through ``site`` fail (SQLite's "fail the n-th I/O" loop, docs/guarantees.md):

``abort``   ``os.abort()``: the process dies on the spot (SIGABRT: no cleanup, no atexit,
            no flush of Python buffers), as in a crash (the default)
``raise``   :class:`FaultInjected` propagates to the caller
``eio``     ``OSError(EIO)``, as from a failing disk
``enospc``  ``OSError(ENOSPC)``, as from a full one

``SAFE_DATA_FAULT_TRACE=<file>`` appends the name of every site this process reaches to
that file (once per site), so a test knows which sites its workload passes through.

Unset (the normal case), :func:`point` returns at once, and the C record writer tests
one flag (``_writer_c.faults_armed``) that stays false.
"""

from __future__ import annotations

import errno
import os

__all__ = ["SITES", "FaultInjected", "point", "armed"]

#: Every protocol step with a fault point, in the order a segment's life passes them.
SITES = (
    "segment.create",  # the new segment file is created (O_EXCL)
    "segment.preallocate",  # its blocks are allocated (ENOSPC here, never SIGBUS later)
    "segment.header",  # its header is written
    "segment.publish",  # renamed from .new to .open, locked and headed
    "dir.fsync",  # the journal directory is fsynced ("batch"/"fsync" modes)
    "record.write",  # a record is committed into the mapping (before its length)
    "record.sync",  # fdatasync after a record ("fsync" mode) or of the batch
    "segment.rotate",  # the active segment is full: seal it, open the next
    "segment.seal",  # the segment is unmapped and truncated to its records
    "segment.rename",  # renamed from .open to .seg (sealed)
    "upload.send",  # the uploader sends a segment to its sink
    "upload.ack",  # the sink acknowledged it; nothing recorded yet
    "upload.delete",  # the acknowledged segment is deleted (or marked)
    "atomic.replace",  # safe_data.atomic renames the new file over the old one
    "segment.rewrite",  # a repaired or forgetting segment's new file is durable, not renamed yet
    "forget.replace",  # a forget deleted a backup's copy; its replacement is not stored yet
    "forget.shred",  # a forget stored a backup's replacement; the old data key is not destroyed yet
)


class FaultInjected(RuntimeError):
    """Raised at a fault point armed with ``:raise``."""


def _parse(spec: str) -> tuple[str, int, str]:
    site, _, rest = spec.partition(":")
    count, _, how = rest.partition(":")
    how = how or "abort"
    if (
        site not in SITES
        or not count.isdigit()
        or int(count) < 1
        or how not in ("abort", "raise", "eio", "enospc")
    ):
        raise ValueError(
            f"SAFE_DATA_FAULT={spec!r}: expected <site>:<n>[:abort|raise|eio|enospc] "
            f"with n >= 1 and a site among {', '.join(SITES)}"
        )
    return site, int(count), how


_spec = os.environ.get("SAFE_DATA_FAULT", "")
_site, _left, _how = _parse(_spec) if _spec else (None, 0, "")
_trace_path = os.environ.get("SAFE_DATA_FAULT_TRACE") or None
_traced: set[str] = set()

#: True when any fault point can do something (the C writer checks its own copy)
armed = _site is not None or _trace_path is not None


def point(site: str) -> None:
    """Pass a fault point: fail here if this is the armed site's n-th pass."""
    global _left
    if not armed:
        return
    if _trace_path is not None and site not in _traced:
        _traced.add(site)
        with open(_trace_path, "a") as f:
            f.write(site + "\n")
    if site != _site:
        return
    _left -= 1
    if _left != 0:
        return
    if _how == "abort":
        os.abort()
    if _how == "raise":
        raise FaultInjected(f"fault injected at {site}")
    code = errno.EIO if _how == "eio" else errno.ENOSPC
    raise OSError(code, f"{os.strerror(code)} (fault injected at {site})")
