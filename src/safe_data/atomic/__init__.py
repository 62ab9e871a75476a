"""An atomic file store that never loses what it replaces.

The API of ``atomic_store`` (``from atomic_store import X`` becomes ``from safe_data.atomic
import X``), made durable and journaled::

    with safe_data.atomic.open("runs.json", default=[]) as store:
        store.value.append(started)      # written when the block exits without an error

* ``formats``  the format names and classes of ``atomic_store``, resolved to
  ``encode``/``decode`` of the whole content;
* ``replace``  the durable replace: temp file, fsync, rename, directory fsync, the old
  content journaled first, dead writers' temp files removed;
* ``store``    :class:`AtomicStore` and :func:`open`;
* ``versions`` the earlier contents of a file, read back from the journal, and restoring one.

docs/atomic.md has the guarantees, the exact syscalls, and the differences from
``atomic_store``.
"""

from ..errors import RevisionConflictError
from .formats import AbstractFormatBstr, AbstractFormatFile, WrapBinaryFormat, resolve_format
from .store import AtomicStore, open_store
from .versions import FileVersion, restore_version, versions

open = open_store

__all__ = [
    "AbstractFormatBstr",
    "AbstractFormatFile",
    "AtomicStore",
    "FileVersion",
    "RevisionConflictError",
    "WrapBinaryFormat",
    "open",
    "open_store",
    "resolve_format",
    "restore_version",
    "versions",
]
