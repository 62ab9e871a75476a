"""``safe_data.stats()``: this process's counters, flat, with OpenTelemetry-style names.

Cheap to call (no lock on the hot path, one directory scan per open journal), so a
metrics exporter can poll it: an OpenTelemetry observable counter or gauge per name, or a
Prometheus collector.  The names and their meaning are in docs/integrations.md.  Nothing
here imports the uploader: its counters are read only if it is already loaded (no
uploader can be running otherwise).
"""

from __future__ import annotations

import os
import sys

from ..journal import format as fmt
from ..journal import hooks, registry
from ..journal.retention import MARKS_DIR
from ..remote._ledger import last_good_drill

__all__ = ["stats"]

__all__ = ["stats"]


def _pending(path: str) -> tuple[int, int]:
    """(segments, bytes) sealed in a journal directory and not acknowledged by a sink:
    what Uploader.stats() calls pending."""
    try:
        marks = set(os.listdir(os.path.join(path, MARKS_DIR)))
    except OSError:
        marks = set()
    segments = nbytes = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                name = entry.name
                if not name.endswith(fmt.SEALED_SUFFIX) or name[: -len(fmt.SEALED_SUFFIX)] in marks:
                    continue
                try:
                    size = entry.stat().st_size
                except OSError:  # shipped and deleted meanwhile
                    continue
                segments += 1
                nbytes += size
    except OSError:
        pass
    return segments, nbytes


def stats() -> dict[str, int]:
    """This process's safe_data counters, in one flat dict.

    ``safe_data.records`` / ``safe_data.bytes``
        Records and frame bytes this process journaled (all journals, open or closed;
        a forked child starts from zero).  Monotonic counters.
    ``safe_data.flushes``
        fdatasync calls that put records on disk ("fsync" mode; fewer than the records
        when threads discarded at once: group commit).  Monotonic counter.
    ``safe_data.journals``
        Journals open in this process.
    ``safe_data.discard_hook.errors``
        ``on_discard`` callbacks that raised (counter).
    ``safe_data.upload.pending_segments`` / ``safe_data.upload.pending_bytes``
        Sealed segments (and their bytes) not yet acknowledged by a sink, in the
        directories of this process's open journals and running uploaders (gauges).
    ``safe_data.upload.acked_segments`` / ``safe_data.upload.acked_bytes``
        Summed over this process's live uploaders: segments and bytes acknowledged.
    ``safe_data.upload.errors`` / ``safe_data.upload.rejected``
        Summed over this process's live uploaders: transient failures (retried),
        segments refused for good.
    ``safe_data.upload.running``
        Uploaders running in this process.
    ``safe_data.upload.last_good_drill_timestamp_seconds``
        When the last good restore drill of any of those directories' backups ran
        (seconds since the epoch; 0: never), by ``safe-data check-remote`` or an
        uploader's ``drill_every`` (gauge: alert on ``time() - it``).
    """
    records, nbytes, flushes = registry.totals()
    journals = registry.open_journals()
    paths = {j.path for j in journals}
    acked = acked_bytes = errors = rejected = running = 0
    loop_thread = sys.modules.get("safe_data.remote._loop_thread")  # where live uploaders register
    if loop_thread is not None:
        for uploader in loop_thread.live_uploaders():
            counters = uploader.counters()
            acked += counters["acked"]
            acked_bytes += counters["acked_bytes"]
            errors += counters["errors"]
            rejected += counters["rejected"]
            running += counters["running"]
            paths.add(uploader.path)
    pending_segments = pending_bytes = 0
    drilled = 0.0
    for path in sorted(paths):
        segments, size = _pending(path)
        pending_segments += segments
        pending_bytes += size
        drilled = max(drilled, last_good_drill(path) or 0.0)
    return {
        "safe_data.records": records,
        "safe_data.bytes": nbytes,
        "safe_data.flushes": flushes,
        "safe_data.journals": len(journals),
        "safe_data.discard_hook.errors": hooks.errors,
        "safe_data.upload.pending_segments": pending_segments,
        "safe_data.upload.pending_bytes": pending_bytes,
        "safe_data.upload.acked_segments": acked,
        "safe_data.upload.acked_bytes": acked_bytes,
        "safe_data.upload.errors": errors,
        "safe_data.upload.rejected": rejected,
        "safe_data.upload.running": running,
        "safe_data.upload.last_good_drill_timestamp_seconds": int(drilled),
    }
