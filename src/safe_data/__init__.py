"""safe_data: containers that never lose what they discard.

``SafeList``, ``SafeDict`` and ``SafeSet`` are drop-in subclasses of the builtins; every
destructive operation journals the discarded values first, to a crash-safe journal on
local disk.  See the README and docs/ for the guarantees.
"""

from ._impl import EXTENSION
from .containers import SafeDict, SafeList, SafeSet
from .errors import (
    CorruptRecordError,
    CorruptSegmentError,
    IncompleteHistoryError,
    JournalClosedError,
    JournalError,
    JournalFullError,
    JournalReadOnlyError,
    MissingDependencyError,
    RecordTooLargeError,
    ReentrantChangeError,
    SafeDataError,
    UndoError,
    UnpicklableValueError,
)
from .history import diff, discarded, history, restore, undo
from .journal.codec import UnloadablePickle, UnverifiedPickle
from .journal.journal import DiscardHookWarning, Journal, JournalWarning, configure, default_journal
from .journal.reader import Problem, Record
from .patching import install, patched, uninstall
from .protect import SafeBytearray, SafeDefaultDict, SafeDeque, SafeOrderedDict, make_safe
from .proxies import SafeMappingProxy, SafeSequenceProxy, proxy

__version__ = "0.1.0"

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:  # what __getattr__ below loads on first use, for type checkers
    from . import atomic, integrations, remote, server, synced, testing, upload, web
    from .integrations.metrics import stats
    from .remote.sinks.directory import DirectorySink
    from .remote.sinks.http import HttpSink
    from .remote.sinks.s3 import S3Sink
    from .remote.uploader import Uploader

#: loaded on first use: the remote backup (aiohttp costs a third of a second to import), stats()
_LAZY = {"Uploader": "remote.uploader", "HttpSink": "remote.sinks.http",
         "DirectorySink": "remote.sinks.directory", "S3Sink": "remote.sinks.s3",
         "stats": "integrations.metrics"}
#: subpackages imported on first use, so that ``safe_data.atomic.open(...)`` needs no import of its own
_SUBPACKAGES = frozenset({"atomic", "synced", "integrations", "testing", "remote", "server", "upload",
                          "web"})


def __getattr__(name):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "EXTENSION", "CorruptRecordError", "CorruptSegmentError", "IncompleteHistoryError", "Journal",
    "JournalClosedError", "UndoError", "diff", "discarded", "history", "restore", "undo",
    "JournalError", "JournalFullError", "JournalReadOnlyError", "MissingDependencyError", "JournalWarning", "Problem", "Record",
    "RecordTooLargeError", "ReentrantChangeError", "SafeDataError", "SafeDict", "SafeList", "SafeSet",
    "UnloadablePickle", "UnpicklableValueError", "UnverifiedPickle", "configure", "default_journal",
    "make_safe", "proxy", "SafeMappingProxy", "SafeSequenceProxy", "SafeDeque", "SafeOrderedDict",
    "SafeDefaultDict", "SafeBytearray", "patched", "install", "uninstall",
    "Uploader", "HttpSink", "DirectorySink", "S3Sink", "DiscardHookWarning", "stats",
]
