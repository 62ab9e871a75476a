"""safe_data: containers that never lose what they discard.

``SafeList``, ``SafeDict`` and ``SafeSet`` are drop-in subclasses of the builtins; every
destructive operation journals the discarded values first, to a crash-safe journal on
local disk.  See the README and docs/ for the guarantees.
"""

import sys as _sys

from ._impl import EXTENSION
from .app_state import AppState, restore_all

# modules that moved into safe_data.containers in 0.2, under their old names too: imports
# and pickles made by earlier versions name them (tests/test_compat.py)
from .containers import SafeDict, SafeList, SafeSet, _support, patching, protect, proxies  # noqa: E402
from .containers.patching import install, patched, uninstall
from .containers.protect import SafeBytearray, SafeDefaultDict, SafeDeque, SafeOrderedDict, make_safe
from .containers.proxies import SafeMappingProxy, SafeSequenceProxy, proxy
from .errors import (
    AmbiguousNameError,
    CorruptRecordError,
    CorruptSegmentError,
    DiscardHookWarning,
    IncompleteHistoryError,
    JournalClosedError,
    JournalError,
    JournalFullError,
    JournalReadOnlyError,
    JournalWarning,
    MissingDependencyError,
    RecordTooLargeError,
    ReentrantChangeError,
    SafeDataError,
    TransactionError,
    UndoError,
    UnpicklableValueError,
)
from .history import diff, discarded, history, restore
from .journal.codec import UnloadablePickle, UnverifiedPickle
from .journal.journal import Journal, configure, default_journal
from .journal.reader import Problem, Record
from .transactions import Transaction, Unit, redo, transaction, undo, undo_log

for _module in (_support, patching, protect, proxies):
    _sys.modules[f"{__name__}.{_module.__name__.rpartition('.')[2]}"] = _module
del _module

__version__ = "0.2.0.dev0"  # the one version source (pyproject.toml reads it)

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:  # what __getattr__ below loads on first use, for type checkers
    from . import atomic, integrations, remote, server, synced, testing, upload, web  # noqa: F401
    from .containers.watch import flush_watched, unwatch, watch, watched_name
    from .integrations.metrics import stats
    from .remote.sinks.directory import DirectorySink
    from .remote.sinks.http import HttpSink
    from .remote.sinks.s3 import S3Sink
    from .remote.uploader import Uploader

#: loaded on first use: the remote backup (aiohttp costs a third of a second to import),
#: stats(), watch() and its kin
_LAZY = {
    "Uploader": "remote.uploader",
    "HttpSink": "remote.sinks.http",
    "DirectorySink": "remote.sinks.directory",
    "S3Sink": "remote.sinks.s3",
    "stats": "integrations.metrics",
    "watch": "containers.watch",
    "unwatch": "containers.watch",
    "watched_name": "containers.watch",
    "flush_watched": "containers.watch",
}
#: subpackages imported on first use, so that ``safe_data.atomic.open(...)`` needs no import of its own
_SUBPACKAGES = frozenset({"atomic", "synced", "integrations", "testing", "remote", "server", "upload", "web"})


def __getattr__(name):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EXTENSION",
    "CorruptRecordError",
    "CorruptSegmentError",
    "IncompleteHistoryError",
    "Journal",
    "JournalClosedError",
    "UndoError",
    "diff",
    "discarded",
    "history",
    "restore",
    "undo",
    "AmbiguousNameError",
    "AppState",
    "Transaction",
    "TransactionError",
    "Unit",
    "redo",
    "restore_all",
    "transaction",
    "undo_log",
    "JournalError",
    "JournalFullError",
    "JournalReadOnlyError",
    "MissingDependencyError",
    "JournalWarning",
    "Problem",
    "Record",
    "RecordTooLargeError",
    "ReentrantChangeError",
    "SafeDataError",
    "SafeDict",
    "SafeList",
    "SafeSet",
    "UnloadablePickle",
    "UnpicklableValueError",
    "UnverifiedPickle",
    "configure",
    "default_journal",
    "make_safe",
    "proxy",
    "SafeMappingProxy",
    "SafeSequenceProxy",
    "SafeDeque",
    "SafeOrderedDict",
    "SafeDefaultDict",
    "SafeBytearray",
    "patched",
    "install",
    "uninstall",
    "Uploader",
    "HttpSink",
    "DirectorySink",
    "S3Sink",
    "DiscardHookWarning",
    "stats",
    "watch",
    "unwatch",
    "watched_name",
    "flush_watched",
]
