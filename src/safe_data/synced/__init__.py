"""Synced collections: dicts and lists kept in step with a file or database, whose every
overwritten or deleted value is journaled first.

The architecture and API of glotzerlab's ``synced_collections``: code written for it
ports by changing ``synced_collections`` to ``safe_data.synced`` in its imports.
Backends live in ``safe_data.synced.backends.*`` and buffering in
``safe_data.synced.buffers.*``; neither is imported here.  See docs/synced.md.
"""

from .data_types import SyncedCollection, SyncedDict, SyncedList
from .version import __version__

__all__ = ["__version__", "SyncedCollection", "SyncedDict", "SyncedList"]
