"""A Redis backend: each collection is one Redis string, the collection as JSON.

Design
------
A save is a compare-and-set: a Lua script replaces the value only if it still holds what
this collection last read or wrote, atomically on the server.  So a write whose load and
save straddle another client's write fails with :class:`ConcurrentWriteError` instead
of silently overwriting it (a change overwritten unseen would be lost unjournaled).

The client is whatever the user passes (``redis.Redis`` or compatible): this module
imports nothing from ``redis``.
"""

from __future__ import annotations

import json

from ...errors import SafeDataError
from ..data_types.synced_collection import SyncedCollection
from ..data_types.synced_dict import SyncedDict
from ..data_types.synced_list import SyncedList
from ..utils import SyncedCollectionJSONEncoder
from ..validators import json_format_validator, require_string_key

# with the original module's names (its imports included)
__all__ = [
    "RedisCollection",
    "RedisDict",
    "RedisList",
    "ConcurrentWriteError",
    "SyncedCollection",
    "SyncedCollectionJSONEncoder",
    "SyncedDict",
    "SyncedList",
    "json_format_validator",
    "require_string_key",
]

# KEYS[1] = the key, ARGV[1] = the value expected ('' for none: a JSON text is never
# empty), ARGV[2] = the new value; returns 1 if it was set
_COMPARE_AND_SET = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


def _server_url(client) -> str:
    """The server and database of a client, as a URL (for locks and record names)."""
    options = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if "path" in options:
        return f"redis+unix://{options['path']}?db={options.get('db', 0)}"
    return f"redis://{options.get('host', '?')}:{options.get('port', '?')}/{options.get('db', 0)}"


class ConcurrentWriteError(SafeDataError, RuntimeError):
    """Another client changed the Redis key between this write's load and its save.

    Nothing was written.  The collection reloads on its next access; repeat the write.
    """


class RedisCollection(SyncedCollection):
    r"""A :class:`~.SyncedCollection` stored as JSON under one key of a Redis database.

    A save never overwrites a value another client wrote after this collection read the
    key: it raises :class:`ConcurrentWriteError` instead (see the module docstring).

    **Thread safety**

    Thread-safe: writes to one key take a per-key lock in the process (``redis.Redis``
    clients may be shared by threads).

    Parameters
    ----------
    client : redis.Redis
        The client of the database (``pip install 'safe_data[redis]'``).
    key : str
        The key that holds this collection.
    \*args, \*\*kwargs
        Passed on to the other base classes (``data``, ``parent``, ``journal``).
    """

    _backend = __name__
    _supports_threading = True
    _validators = (json_format_validator,)

    def __init__(self, client=None, key=None, *args, **kwargs):
        if kwargs.get("parent") is None:
            if client is None or key is None:
                raise ValueError(
                    f"{type(self).__name__} needs a Redis client (pip install 'safe_data[redis]'; "
                    f"redis.Redis(...)) and a key, got client={client!r}, key={key!r}"
                )
            self._compare_and_set = client.register_script(_COMPARE_AND_SET)
            self._server = _server_url(client)
            self._stored = b""  # the value last read or written (b"": the key is absent)
        self._client = client
        self._key = key
        super().__init__(*args, **kwargs)

    def _load_from_resource(self):
        blob = self._client.get(self._key)
        self._stored = b"" if blob is None else blob
        return None if blob is None else json.loads(blob)

    def _save_to_resource(self):
        blob = json.dumps(self._to_base(), separators=(",", ":")).encode()
        if not self._compare_and_set(keys=[self._key], args=[self._stored, blob]):
            raise ConcurrentWriteError(
                f"Redis key {self._key!r} was changed by another client since this "
                f"collection read it; nothing was written: repeat the change"
            )
        self._stored = blob

    @property
    def _lock_id(self):
        return self._server, self._key

    def _journal_name(self) -> str:
        root = self._root if self._root is not None else self
        key = root._key.decode() if isinstance(root._key, bytes) else root._key
        return f"{root._server}#{key}"

    @property
    def client(self):
        """redis.Redis: the client of the database."""
        return self._client

    @property
    def key(self):
        """str: the key that holds this collection."""
        return self._key

    def __deepcopy__(self, memo):
        raise TypeError(
            f"{type(self).__name__} cannot be deep-copied (its Redis client "
            f"cannot): call it for a plain copy of the data"
        )


class RedisDict(RedisCollection, SyncedDict):
    r"""A dict-like collection stored as JSON under one key of a Redis database.

    Examples
    --------
    >>> doc = RedisDict(redis.Redis(), "doc")  # doctest: +SKIP
    >>> doc["foo"] = {"bar": True}  # doctest: +SKIP
    >>> doc()  # doctest: +SKIP
    {'foo': {'bar': True}}

    Parameters
    ----------
    client : redis.Redis, optional
        The client; required unless ``parent`` is given.
    key : str, optional
        The key; required unless ``parent`` is given.
    data : Mapping, optional
        Initial data, assumed to be what the key holds (it is not written until the first
        change).
    parent : RedisCollection, optional
        The collection this one is nested in.
    \*args, \*\*kwargs
        Passed on to the other base classes (``journal``).
    """

    _validators = (require_string_key,)

    def __init__(self, client=None, key=None, data=None, parent=None, *args, **kwargs):
        super().__init__(client, key, *args, data=data, parent=parent, **kwargs)


class RedisList(RedisCollection, SyncedList):
    r"""A list-like collection stored as JSON under one key of a Redis database.

    Parameters are those of :class:`RedisDict`, with a non-string sequence as ``data``.
    """

    def __init__(self, client=None, key=None, data=None, parent=None, *args, **kwargs):
        super().__init__(client, key, *args, data=data, parent=parent, **kwargs)
