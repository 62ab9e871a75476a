"""The data types of synced collections: the base class, dict-like and list-like."""

from .synced_collection import SyncedCollection
from .synced_dict import SyncedDict
from .synced_list import SyncedList

__all__ = ["SyncedCollection", "SyncedDict", "SyncedList"]
