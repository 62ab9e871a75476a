"""A SQLite backend: each collection is one row of one table of a SQLite database.

Design
------
The table is ``synced_collections (key TEXT PRIMARY KEY, data TEXT NOT NULL)``; ``data``
is the collection as JSON, so SQLite's JSON functions can query it.

Every write of a collection (load, change, save) is one ``BEGIN IMMEDIATE``
transaction: it takes the database's write lock *before* it reads, so writers in other
threads and processes wait for it and none can lose another's update.  The database is
in WAL mode, so readers go on while a writer holds the lock, and a commit is atomic and,
with SQLite's default ``synchronous=FULL``, durable.

A process opens one connection per database file, shared by its threads under a lock.
A connection must not cross ``fork``: the child forgets its parent's connections
(without closing them, which could disturb the parent's locks) and opens its own.
Only the standard library's :mod:`sqlite3` is used.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from ..data_types.attr_dict import AttrDict
from ..data_types.synced_collection import SYNCED_ATTRIBUTES, SyncedCollection
from ..data_types.synced_dict import SyncedDict
from ..data_types.synced_list import SyncedList
from ..validators import (
    json_attr_dict_validator,
    json_format_validator,
    no_dot_in_key,
    require_string_key,
)

__all__ = ["SQLiteCollection", "SQLiteDict", "SQLiteList", "SQLiteAttrDict", "SQLiteAttrList"]

#: seconds a write waits for another connection's transaction before it fails
BUSY_TIMEOUT = 30.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS synced_collections (key TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID"
)
_TABLE_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'synced_collections'"
_SELECT = "SELECT data FROM synced_collections WHERE key = ?"
_UPSERT = "INSERT OR REPLACE INTO synced_collections (key, data) VALUES (?, ?)"


def _while_busy(statement) -> None:
    """Run ``statement`` again while SQLite answers "database is locked", up to
    :data:`BUSY_TIMEOUT`.  Switching a database to WAL mode while another process opens
    it fails at once, without SQLite's busy wait: fresh databases opened by several
    processes together hit this."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    delay = 0.001
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class _Database:
    """This process's connection to one database file.

    Used as a context manager it is the write transaction: reentrant, it begins on the
    outermost entry and commits on the outermost exit.
    """

    def __init__(self, path: str):
        self._lock = threading.RLock()
        self._depth = 0
        # isolation_level=None: no implicit transactions, this class begins and ends them
        self._connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        _while_busy(lambda: self._connection.execute("PRAGMA journal_mode=WAL"))
        if self._connection.execute(_TABLE_EXISTS).fetchone() is None:
            # in a write transaction: a bare CREATE reads the schema, then fails at once
            # (no busy wait) if another process created the table in between
            with self:
                self._connection.execute(_SCHEMA)

    def read(self, key: str) -> str | None:
        with self._lock:
            row = self._connection.execute(_SELECT, (key,)).fetchone()
        return None if row is None else row[0]

    def write(self, key: str, text: str) -> None:
        with self._lock:
            self._connection.execute(_UPSERT, (key, text))

    def __enter__(self):
        self._lock.acquire()
        if self._depth == 0:
            try:
                self._connection.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._lock.release()
                raise
        self._depth += 1

    def __exit__(self, exc_type, exc_val, exc_tb):
        self._depth -= 1
        try:
            if self._depth == 0:
                try:
                    self._connection.execute("COMMIT")
                except BaseException:
                    if self._connection.in_transaction:
                        self._connection.execute("ROLLBACK")
                    raise
        finally:
            self._lock.release()


_databases: dict[str, _Database] = {}
_databases_lock = threading.Lock()
_inherited: list[_Database] = []


def _database(path: str) -> _Database:
    """This process's connection to the database at ``path`` (a real path)."""
    try:
        return _databases[path]
    except KeyError:
        with _databases_lock:
            if path not in _databases:
                _databases[path] = _Database(path)
            return _databases[path]


def _after_fork_in_child() -> None:
    global _databases_lock
    _inherited.extend(_databases.values())  # kept referenced: never closed in the child
    _databases.clear()
    _databases_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SQLiteCollection(SyncedCollection):
    r"""A :class:`~.SyncedCollection` stored as one row of a SQLite database.

    Each write is a transaction that holds the database's write lock from before it
    reads the row until it has written it: concurrent writers, in threads or
    processes, are serialized and none loses another's update.

    **Thread safety**

    Thread-safe: writes to one row take a per-row lock in the process, and the
    process's connection is shared under a lock.

    Parameters
    ----------
    filename : str or os.PathLike
        The database file (created if absent).  It must be on a local filesystem: WAL
        mode needs shared memory between the processes that use it.
    key : str
        The row that holds this collection.
    \*args, \*\*kwargs
        Passed on to the other base classes (``data``, ``parent``, ``journal``).
    """

    _backend = __name__
    _supports_threading = True
    _validators: tuple[Callable[[Any], None], ...] = (require_string_key, json_format_validator)

    def __init__(self, filename=None, key=None, *args, **kwargs):
        if kwargs.get("parent") is None:
            if filename is None or not isinstance(key, str):
                raise ValueError(
                    f"{type(self).__name__} needs a database filename and a str key, "
                    f"got filename={filename!r}, key={key!r}"
                )
            filename = os.fspath(filename)
            self._db_path = os.path.realpath(filename)
            _database(self._db_path)  # open it now: a bad path fails here, not at first use
        self._filename = filename
        self._key = key
        super().__init__(*args, **kwargs)

    def _load_from_resource(self):
        text = _database(self._db_path).read(self._key)
        return None if text is None else json.loads(text)

    def _save_to_resource(self):
        _database(self._db_path).write(self._key, json.dumps(self._to_base(), separators=(",", ":")))

    def _resource_lock(self):
        return _database(self._db_path)

    @property
    def _lock_id(self):
        return self._db_path, self._key

    def _journal_name(self) -> str:
        root = self._root if self._root is not None else self
        return f"sqlite:{root._db_path}#{root._key}"

    @property
    def filename(self):
        """str: the database file (as given)."""
        return self._filename

    @property
    def key(self):
        """str: the row that holds this collection."""
        return self._key


class SQLiteDict(SQLiteCollection, SyncedDict):
    r"""A dict-like collection stored as one row of a SQLite database.

    Examples
    --------
    >>> doc = SQLiteDict("data.db", "doc")  # doctest: +SKIP
    >>> doc["foo"] = {"bar": True}  # doctest: +SKIP
    >>> doc()  # doctest: +SKIP
    {'foo': {'bar': True}}

    Parameters
    ----------
    filename : str or os.PathLike, optional
        The database file; required unless ``parent`` is given.
    key : str, optional
        The row; required unless ``parent`` is given.
    data : Mapping, optional
        Initial data, assumed to be what the row holds (it is not written until the first
        change).
    parent : SQLiteCollection, optional
        The collection this one is nested in.
    \*args, \*\*kwargs
        Passed on to the other base classes (``journal``).
    """

    def __init__(self, filename=None, key=None, data=None, parent=None, *args, **kwargs):
        super().__init__(filename, key, *args, data=data, parent=parent, **kwargs)


class SQLiteList(SQLiteCollection, SyncedList):
    r"""A list-like collection stored as one row of a SQLite database.

    Parameters are those of :class:`SQLiteDict`, with a non-string sequence as ``data``.
    """

    def __init__(self, filename=None, key=None, data=None, parent=None, *args, **kwargs):
        super().__init__(filename, key, *args, data=data, parent=parent, **kwargs)


class SQLiteAttrDict(SQLiteDict, AttrDict):
    """A :class:`SQLiteDict` whose keys are also attributes: ``doc.foo is doc["foo"]``.

    Keys may not contain dots.  ``filename`` and ``key`` stay attributes.
    """

    _backend = __name__ + ".attr"
    _PROTECTED_KEYS = SYNCED_ATTRIBUTES | {"_db_path", "_filename", "_key", "filename", "key"}
    _validators = (no_dot_in_key,)
    _all_validators = (json_attr_dict_validator,)


class SQLiteAttrList(SQLiteList):
    """A :class:`SQLiteList` whose nested dicts are :class:`SQLiteAttrDict`."""

    _backend = __name__ + ".attr"
