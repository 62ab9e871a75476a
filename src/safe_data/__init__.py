"""safe_data: containers that never lose what they discard.

``SafeList``, ``SafeDict`` and ``SafeSet`` are drop-in subclasses of the builtins; every
destructive operation journals the discarded values first, to a crash-safe journal on
local disk.  See the README and docs/ for the guarantees.
"""

import sys as _sys
from types import ModuleType as _ModuleType  # (loaded anyway, by threading)

from ._impl import EXTENSION
from .containers import SafeDict, SafeList, SafeSet
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
from .journal.codec import UnloadablePickle, UnverifiedPickle

__version__ = "0.2.0.dev0"  # the one version source (pyproject.toml reads it)

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:  # what __getattr__ below loads on first use, for type checkers
    from . import app_state, atomic, integrations, remote, server, synced, testing, transactions, upload, web  # noqa: F401
    from .app_state import AppState, restore_all
    from .containers import _support, patching, protect, proxies  # noqa: F401
    from .containers.patching import install, patched, uninstall
    from .containers.protect import SafeBytearray, SafeDefaultDict, SafeDeque, SafeOrderedDict, make_safe
    from .containers.proxies import SafeMappingProxy, SafeSequenceProxy, proxy
    from .containers.watch import flush_watched, unwatch, watch, watched_name
    from .erasure import forget
    from .history import diff, discarded, history, restore
    from .integrations.metrics import stats
    from .journal.journal import Journal, configure, default_journal
    from .journal.reader import Problem, Record
    from .remote.sinks.directory import DirectorySink
    from .remote.sinks.http import HttpSink
    from .remote.sinks.s3 import S3Sink
    from .remote.uploader import Uploader
    from .transactions import Transaction, Unit, redo, transaction, undo, undo_log

#: loaded on first use, from these modules: the containers need none of them to be made
#: and to journal (and aiohttp, behind the remote backup, costs a third of a second)
_LAZY_FROM = {
    "app_state": ("AppState", "restore_all"),
    "containers.patching": ("install", "patched", "uninstall"),
    "containers.protect": ("SafeBytearray", "SafeDefaultDict", "SafeDeque", "SafeOrderedDict", "make_safe"),
    "containers.proxies": ("SafeMappingProxy", "SafeSequenceProxy", "proxy"),
    "containers.watch": ("watch", "unwatch", "watched_name", "flush_watched"),
    "history": ("diff", "discarded", "history", "restore"),
    "erasure": ("forget",),
    "journal.journal": ("Journal", "configure", "default_journal"),
    "journal.reader": ("Problem", "Record"),
    "transactions": ("Transaction", "Unit", "redo", "transaction", "undo", "undo_log"),
    "remote.uploader": ("Uploader",),
    "remote.sinks.http": ("HttpSink",),
    "remote.sinks.directory": ("DirectorySink",),
    "remote.sinks.s3": ("S3Sink",),
    "integrations.metrics": ("stats",),
}
_LAZY = {name: module for module, names in _LAZY_FROM.items() for name in names}
#: modules imported on first use, so that ``safe_data.atomic.open(...)`` needs no import of
#: its own; protect, proxies, patching and _support are the old names (before 0.2) of
#: modules in safe_data.containers (their files here make ``import safe_data.protect`` and
#: earlier versions' pickles work)
_MODULES = frozenset(
    {
        "app_state",
        "atomic",
        "synced",
        "integrations",
        "testing",
        "transactions",
        "remote",
        "server",
        "upload",
        "web",
        "protect",
        "proxies",
        "patching",
        "_support",
    }
)


def __getattr__(name):
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value  # found directly from now on
        return value
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY, *_MODULES})


class _Package(_ModuleType):
    """This package's module type: ``safe_data.history`` stays the function when the
    module of the same name is imported (the import system sets every module it imports
    as an attribute of its package, and that one loads after this file, on first use)."""

    def __setattr__(self, name, value):
        if not (name == "history" and isinstance(value, _ModuleType)):
            super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


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
    "forget",
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
