"""A MongoDB backend: each collection is one document ``{**uid, "data": <the data>}`` of a
MongoDB collection, found by its ``uid`` fields.

PyMongo is needed (its ``bson`` package names the encoding errors); this module imports
it only when a collection is made.
"""

from __future__ import annotations

import importlib.util
import json

from ..data_types.synced_collection import SyncedCollection
from ..data_types.synced_dict import SyncedDict
from ..data_types.synced_list import SyncedList
from ..validators import json_format_validator, require_string_key

# with the original module's names (its imports included)
__all__ = [
    "MONGO",
    "MongoDBCollection",
    "MongoDBDict",
    "MongoDBList",
    "SyncedCollection",
    "SyncedDict",
    "SyncedList",
    "json_format_validator",
    "require_string_key",
]

#: whether PyMongo's ``bson`` is installed (looked up, not imported)
MONGO = importlib.util.find_spec("bson") is not None


def _require_pymongo(user: str) -> None:
    try:
        import bson  # noqa: F401  (the bson package of PyMongo)
    except ImportError:
        raise ImportError(f"{user} needs PyMongo: pip install 'safe_data[mongodb]'") from None


class MongoDBCollection(SyncedCollection):
    r"""A :class:`~.SyncedCollection` stored as one document of a MongoDB collection.

    The document is ``{**uid, "data": <the data>}``, written with ``replace_one(uid,
    document, upsert=True)``: atomic (MongoDB writes one document atomically).

    **Thread safety**

    Not thread-safe, and not safe for writers in several processes: a write reads the
    document, changes it and writes it back, and a concurrent write in between is lost.

    Parameters
    ----------
    collection : pymongo.collection.Collection
        The MongoDB collection that holds the document.
    uid : dict
        Fields that identify the document, unique in ``collection`` (several documents
        matching one uid make the data ambiguous).  ``"data"`` is reserved.
    \*args, \*\*kwargs
        Passed on to the other base classes (``data``, ``parent``, ``journal``).
    """

    _backend = __name__
    # BSON is close enough to JSON that JSON validation is the useful check
    _validators = (json_format_validator,)

    def __init__(self, collection=None, uid=None, *args, **kwargs):
        if kwargs.get("parent") is None:
            _require_pymongo(type(self).__name__)
            if collection is None or uid is None:
                raise ValueError(
                    f"{type(self).__name__} needs a MongoDB collection and a uid, "
                    f"got collection={collection!r}, uid={uid!r}"
                )
            if "data" in uid:
                raise ValueError("The key 'data' may not be part of the uid.")
        self._collection = collection
        self._uid = uid
        super().__init__(*args, **kwargs)

    def _load_from_resource(self):
        document = self._collection.find_one(self._uid)
        return None if document is None else document["data"]

    def _save_to_resource(self):
        from bson.errors import InvalidDocument

        try:
            self._collection.replace_one(self._uid, {**self._uid, "data": self._to_base()}, upsert=True)
        except InvalidDocument as error:
            raise TypeError(str(error)) from error

    def _journal_name(self) -> str:
        root = self._root if self._root is not None else self
        uid = json.dumps(root._uid, sort_keys=True, default=str)
        return f"mongodb:{root._collection.full_name}#{uid}"

    @property
    def collection(self):
        """pymongo.collection.Collection: the MongoDB collection that holds the document."""
        return self._collection

    @property
    def uid(self):  # noqa: D401
        """dict: the fields that identify the document."""
        return self._uid

    def __deepcopy__(self, memo):
        raise TypeError(
            f"{type(self).__name__} cannot be deep-copied (its MongoDB "
            f"collection cannot): call it for a plain copy of the data"
        )


class MongoDBDict(MongoDBCollection, SyncedDict):
    r"""A dict-like collection stored as one document of a MongoDB collection.

    Examples
    --------
    >>> doc = MongoDBDict(pymongo.MongoClient().db.docs, {"name": "doc"})  # doctest: +SKIP
    >>> doc["foo"] = {"bar": True}  # doctest: +SKIP
    >>> doc()  # doctest: +SKIP
    {'foo': {'bar': True}}

    Parameters
    ----------
    collection : pymongo.collection.Collection, optional
        The MongoDB collection; required unless ``parent`` is given.
    uid : dict, optional
        The fields that identify the document; required unless ``parent`` is given.
    data : Mapping, optional
        Initial data, assumed to be what the document holds (it is not written until the
        first change).
    parent : MongoDBCollection, optional
        The collection this one is nested in.
    \*args, \*\*kwargs
        Passed on to the other base classes (``journal``).
    """

    _validators = (require_string_key,)

    def __init__(self, collection=None, uid=None, data=None, parent=None, *args, **kwargs):
        super().__init__(collection, uid, *args, data=data, parent=parent, **kwargs)


class MongoDBList(MongoDBCollection, SyncedList):
    r"""A list-like collection stored as one document of a MongoDB collection.

    Parameters are those of :class:`MongoDBDict`, with a non-string sequence as ``data``.
    """

    def __init__(self, collection=None, uid=None, data=None, parent=None, *args, **kwargs):
        super().__init__(collection, uid, *args, data=data, parent=parent, **kwargs)
