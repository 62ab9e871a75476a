"""Remote backup, the client side: the uploader and its sinks (docs/remote.md).

``Uploader`` ships the sealed segments of a journal to a sink (``DirectorySink``,
``HttpSink`` for the backup server, ``S3Sink``) and only then lets the local copy go.
The modules: :mod:`.protocol` (the remote layout, its checks, ``Retry-After``),
:mod:`.uploader` (the shipping loop), :mod:`._ledger` (its marks and status in the
journal directory), :mod:`._loop_thread` (its thread, at fork and at exit),
:mod:`.sinks` (the interface, then one module per sink).  The backup server and its
stores are :mod:`safe_data.server`.

Nothing here is imported by ``import safe_data``, and the names below are loaded on
first use: aiohttp costs a third of a second to import, and only the HTTP and S3 sinks
need it.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:  # ``import x as x``: re-exported, for type checkers
    from ._ledger import pending_segments as pending_segments
    from ._ledger import read_status as read_status
    from .sinks import RejectedError as RejectedError
    from .sinks import Sink as Sink
    from .sinks import SinkError as SinkError
    from .sinks import TransientError as TransientError
    from .sinks.directory import DirectorySink as DirectorySink
    from .sinks.http import HttpSink as HttpSink
    from .sinks.s3 import S3Sink as S3Sink
    from .uploader import Uploader as Uploader
    from .uploader import UploaderError as UploaderError
    from .uploader import UploadWarning as UploadWarning

#: name -> the module (in this package) that defines it
_LAZY = {
    "Uploader": "uploader",
    "UploaderError": "uploader",
    "UploadWarning": "uploader",
    "pending_segments": "_ledger",
    "read_status": "_ledger",
    "Sink": "sinks",
    "SinkError": "sinks",
    "TransientError": "sinks",
    "RejectedError": "sinks",
    "DirectorySink": "sinks.directory",
    "HttpSink": "sinks.http",
    "S3Sink": "sinks.s3",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
