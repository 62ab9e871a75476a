"""The old name of :mod:`safe_data.remote` (the uploader and its sinks), kept so that
``safe_data.upload.Uploader``, ``safe_data.upload.S3Sink``... still work.

New code imports from :mod:`safe_data.remote`; the backup server and its stores are in
:mod:`safe_data.server`.  Like ``safe_data.remote``, this loads nothing until a name is
used (aiohttp costs a third of a second to import).
"""

from __future__ import annotations

from .. import remote as _remote

#: what safe_data.remote exports, under the same names
__all__ = list(_remote.__all__)


def __getattr__(name):
    if name in __all__:
        return getattr(_remote, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
