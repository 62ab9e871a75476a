"""The ``safe-data`` command: see, restore, check and trim what a journal holds.

Every command works on the journal named by the global ``--journal DIR`` (default:
``$SAFE_DATA_HOME``, else the platform's user data directory).  Listings are rich tables
on a terminal and tab-separated text when piped; ``--json`` gives machine-readable
output.  docs/cli.md documents each command, the JSON shapes and the exit codes.

Inspecting commands (log, show, stats, verify without --repair) only read: they do not
open a :class:`~safe_data.Journal`, so they neither create files nor recover segments.

The modules: ``app`` (the click group), ``exits`` (exit codes, :class:`Failure`),
``params`` (option types), ``output`` (text and JSON on stdout; what a record looks
like is :mod:`safe_data.present`'s), ``journal_view`` (read-only segment summaries),
and the commands: ``listing`` (log, show), ``restoring`` (restore), ``files``
(file-versions, restore-file), ``maintenance`` (verify, stats, purge), ``forgetting``
(forget) and
``walkthrough`` (demo).
"""

from __future__ import annotations

from ..journal.summary import SegmentSummary
from ..present import OP_NAMES, dumps, jsonable, record_fields
from .app import main
from .exits import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_REFUSED,
    EXIT_USAGE,
    Failure,
)
from .journal_view import summarize_segments
from .listing import PLAIN_FIELDS, log, matching_records, show
from .maintenance import NO_BACKUP_NOTE, journal_stats, purge, stats, verify
from .params import SIZE, TIME, SizeType, TimeType
from .restoring import restore
from .walkthrough import demo

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "NO_BACKUP_NOTE",
    "OP_NAMES",
    "PLAIN_FIELDS",
    "SIZE",
    "TIME",
    "Failure",
    "SegmentSummary",
    "SizeType",
    "TimeType",
    "demo",
    "dumps",
    "journal_stats",
    "jsonable",
    "log",
    "main",
    "matching_records",
    "purge",
    "record_fields",
    "restore",
    "show",
    "stats",
    "summarize_segments",
    "verify",
]
