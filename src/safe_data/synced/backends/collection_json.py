"""The JSON file backend: ``JSONDict``, ``JSONList`` and their buffered and attribute forms.

Every write is a load-modify-save under two locks: the thread lock of the file (within
the process) and an exclusive ``flock`` on ``.<name>.lock`` next to it (between
processes, see ``_file_lock.py``).  Saves replace the file's contents atomically (the
new version is written to ``.<name>.swap`` and the two names are exchanged, see
``_file_io.py``): a crash leaves the old or the new contents, never a mix.
``write_concern=True`` adds fsyncs so the new contents also survive a power loss.

Loads skip reading and parsing when the file has not changed since this collection last
read or wrote it: same device, inode, size and mtime, and same write generation in the
lock file.  A write under the lock always sees the latest version, so concurrent
writers never lose each other's updates.
"""

from __future__ import annotations

import json
import os
import sys

from .._file_io import read_file, replace_file, stat_version
from .._file_lock import FileLock, lock_path_for
from ..buffers.memory_buffered_collection import SharedMemoryFileBufferedCollection
from ..buffers.serialized_file_buffered_collection import SerializedFileBufferedCollection
from ..data_types.attr_dict import AttrDict
from ..data_types.synced_collection import SYNCED_ATTRIBUTES, SyncedCollection
from ..data_types.synced_dict import SyncedDict
from ..data_types.synced_list import SyncedList
from ..errors import InvalidKeyError, KeyTypeError
from ..utils import AbstractTypeResolver, SyncedCollectionJSONEncoder
from ..validators import (
    json_attr_dict_validator,
    json_format_validator,
    no_dot_in_key,
    require_string_key,
)

# with the original module's names (its imports included: code written for it, its
# tests too, imports them from here)
__all__ = [
    "JSONCollection",
    "JSONDict",
    "JSONList",
    "JSONAttrDict",
    "JSONAttrList",
    "BufferedJSONCollection",
    "BufferedJSONDict",
    "BufferedJSONList",
    "BufferedJSONAttrDict",
    "BufferedJSONAttrList",
    "MemoryBufferedJSONCollection",
    "MemoryBufferedJSONDict",
    "MemoryBufferedJSONList",
    "MemoryBufferedJSONAttrDict",
    "MemoryBufferedJSONAttrList",
    "json_attr_dict_validator",
    "json_format_validator",
    "no_dot_in_key",
    "require_string_key",
    "ON_WINDOWS",
    "AbstractTypeResolver",
    "AttrDict",
    "InvalidKeyError",
    "KeyTypeError",
    "SerializedFileBufferedCollection",
    "SharedMemoryFileBufferedCollection",
    "SyncedCollection",
    "SyncedCollectionJSONEncoder",
    "SyncedDict",
    "SyncedList",
]

#: as in the original (which uses it to skip thread tests); always False here: POSIX only
ON_WINDOWS = sys.platform.startswith(("win32", "cygwin"))


def _nested_data(collection):
    """``json.dumps(default=...)``: a nested synced collection is encoded from its data."""
    try:
        return collection._data
    except AttributeError:
        raise TypeError(f"Object of type {type(collection).__name__} is not JSON serializable") from None


class JSONCollection(SyncedCollection):
    r"""A synced collection stored in a JSON file.

    Thread-safe and process-safe: see the module docstring for the locks, the atomic
    replace and the cache of unchanged files.

    Parameters
    ----------
    filename : str or os.PathLike
        The JSON file (need not exist yet; its directory must).
    write_concern : bool
        Also fsync each new version of the file and its directory before a write
        returns, so it survives a power loss (default False: it survives the process
        being killed, as every write is an atomic replace).
    \*args, \*\*kwargs
        Passed on to the other base classes (``data``, ``parent``, ``journal``).

    Note
    ----
    ``synced_collections`` writes in place unless ``write_concern`` is set or threading
    support is active; this class always replaces the file atomically.
    """

    _backend = __name__
    _supports_threading = True
    # json_format_validator also requires string keys: one walk instead of two
    _validators = (json_format_validator,)

    def __init__(self, filename=None, write_concern=False, *args, **kwargs):
        self._set_file(filename)
        self._write_concern = write_concern
        super().__init__(*args, **kwargs)

    def _set_file(self, filename):
        self._filename = filename
        self._abspath = None if filename is None else os.path.abspath(os.fspath(filename))
        self._lock_file = None if filename is None else FileLock(lock_path_for(self._abspath))
        self._version = None  # _get_file_metadata() of the data in memory; None: unknown
        self._rlock = None  # the thread lock of the file, found on first use

    def _get_file_metadata(self):
        """``(file version, write generation)`` of the file now, or None if absent."""
        generation = self._lock_file.generation()
        version = stat_version(self._abspath)
        return None if version is None else (version, generation)

    def _load_from_resource(self):
        """The file's data, or None if it is absent or unchanged since we last read or
        wrote it."""
        metadata = self._get_file_metadata()
        if metadata is None or metadata == self._version:
            return None
        generation = metadata[1]
        blob, version = read_file(self._abspath)
        if not self._lock_file.held and self._lock_file.generation() != generation:
            # A write ran while we read: the inode we read may have become the swap file
            # and been overwritten.  Read again, alone.
            with self._lock_file as lock:
                blob, version = read_file(self._abspath)
                generation = lock.generation()
        if blob is None:
            return None
        self._version = None  # until the data is in memory (see _forget_loaded_state)
        data = json.loads(blob)
        self._version = (version, generation)
        return data

    def _save_to_resource(self):
        """Replace the file with the data, atomically, under the file lock."""
        blob = json.dumps(self._data, default=_nested_data).encode()
        with self._lock_file as lock:
            self._version = None
            version = replace_file(self._abspath, blob, self._write_concern)
            self._version = (version, lock.advance())

    def _forget_loaded_state(self):
        self._version = None

    def _resource_lock(self):
        return self._lock_file

    def _journal_name(self) -> str:
        """The absolute filename."""
        root = self._root if self._root is not None else self
        return root._abspath

    @property
    def _lock_id(self):
        return self._abspath

    @property
    def filename(self):
        """str: the JSON file (settable: the collection then syncs with the new file)."""
        return self._filename

    @filename.setter
    def filename(self, value):
        with self._thread_lock:
            self._set_file(value)

    def __deepcopy__(self, memo):
        """A new collection of the same file holding a copy of the data, as
        ``synced_collections`` gives; the file's locks and the journal are shared, not
        copied (they cannot be).  A nested collection is not copied alone."""
        if self._root is not None:
            raise TypeError(
                f"a nested {type(self).__name__} cannot be deep-copied alone: "
                f"deep-copy its root, or call it for a plain copy of the data"
            )
        return type(self)(self._filename, self._write_concern, data=self(), journal=self._journal)


#: attributes of JSON collections (not keys for attribute access)
_JSON_ATTRIBUTES = SYNCED_ATTRIBUTES | frozenset(
    ("_filename", "filename", "_abspath", "_lock_file", "_version", "_write_concern")
)
#: attributes of buffered collections
_BUFFERED_ATTRIBUTES = frozenset(
    ("buffered", "_is_buffered", "_BUFFER_LOCK", "_buffer_context", "_buffered_collections", "_buffer_serial")
)


class JSONDict(JSONCollection, SyncedDict):
    r"""A dict-like collection synced with a JSON file.

    Examples
    --------
    >>> doc = JSONDict("data.json")  # doctest: +SKIP
    >>> doc["foo"] = "bar"  # doctest: +SKIP
    >>> doc()  # doctest: +SKIP
    {'foo': 'bar'}

    Parameters
    ----------
    filename : str or os.PathLike, optional
        The JSON file (None only for nested collections).
    write_concern : bool
        fsync every write (see :class:`JSONCollection`).
    data : Mapping, optional
        Initial data, assumed to match the file (it is not written until a change).
    parent : JSONCollection, optional
        The collection this one is nested in.
    journal : Journal, str or os.PathLike, optional
        Where overwritten and deleted values go (default: the default journal).
    """

    _PROTECTED_KEYS = _JSON_ATTRIBUTES

    def __init__(self, filename=None, write_concern=False, data=None, parent=None, *args, **kwargs):
        super().__init__(
            *args, filename=filename, write_concern=write_concern, data=data, parent=parent, **kwargs
        )


class JSONList(JSONCollection, SyncedList):
    r"""A list-like collection synced with a JSON file.

    Parameters are those of :class:`JSONDict`, with a non-string sequence as ``data``.
    """

    def __init__(self, filename=None, write_concern=False, data=None, parent=None, *args, **kwargs):
        super().__init__(
            *args, filename=filename, write_concern=write_concern, data=data, parent=parent, **kwargs
        )


class BufferedJSONCollection(SerializedFileBufferedCollection, JSONCollection):
    """A :class:`JSONCollection` buffered in encoded form (see
    :mod:`safe_data.synced.buffers.serialized_file_buffered_collection`)."""

    _backend = __name__ + ".buffered"


class BufferedJSONDict(BufferedJSONCollection, SyncedDict):
    """A :class:`JSONDict` with serialized buffering."""

    _PROTECTED_KEYS = _JSON_ATTRIBUTES | _BUFFERED_ATTRIBUTES

    def __init__(self, filename=None, write_concern=False, data=None, parent=None, *args, **kwargs):
        super().__init__(
            *args, filename=filename, write_concern=write_concern, data=data, parent=parent, **kwargs
        )


class BufferedJSONList(BufferedJSONCollection, SyncedList):
    """A :class:`JSONList` with serialized buffering."""

    def __init__(self, filename=None, write_concern=False, data=None, parent=None, *args, **kwargs):
        super().__init__(
            *args, filename=filename, write_concern=write_concern, data=data, parent=parent, **kwargs
        )


class MemoryBufferedJSONCollection(SharedMemoryFileBufferedCollection, JSONCollection):
    """A :class:`JSONCollection` buffered in memory (see
    :mod:`safe_data.synced.buffers.memory_buffered_collection`)."""

    _backend = __name__ + ".memory_buffered"


class MemoryBufferedJSONDict(MemoryBufferedJSONCollection, SyncedDict):
    """A :class:`JSONDict` with in-memory buffering."""

    _PROTECTED_KEYS = _JSON_ATTRIBUTES | _BUFFERED_ATTRIBUTES

    def __init__(self, filename=None, write_concern=False, data=None, parent=None, *args, **kwargs):
        super().__init__(
            *args, filename=filename, write_concern=write_concern, data=data, parent=parent, **kwargs
        )


class MemoryBufferedJSONList(MemoryBufferedJSONCollection, SyncedList):
    """A :class:`JSONList` with in-memory buffering."""

    def __init__(self, filename=None, write_concern=False, data=None, parent=None, *args, **kwargs):
        super().__init__(
            *args, filename=filename, write_concern=write_concern, data=data, parent=parent, **kwargs
        )


# Attribute-access forms.  The lists differ from the plain ones only by their backend
# name, so that the dicts nested in them are attribute-access dicts too.


class JSONAttrDict(JSONDict, AttrDict):
    """A :class:`JSONDict` whose keys are also attributes (``doc.foo is doc["foo"]``);
    keys may not contain dots."""

    _backend = __name__ + ".attr"
    _validators = (no_dot_in_key,)  # what subclasses inherit
    _all_validators = (json_attr_dict_validator,)  # this class: the same checks, one walk


class JSONAttrList(JSONList):
    """A :class:`JSONList` whose nested dicts are :class:`JSONAttrDict`."""

    _backend = __name__ + ".attr"


class BufferedJSONAttrDict(BufferedJSONDict, AttrDict):
    """A :class:`BufferedJSONDict` with attribute access."""

    _backend = __name__ + ".buffered_attr"
    _validators = (no_dot_in_key,)
    _all_validators = (json_attr_dict_validator,)


class BufferedJSONAttrList(BufferedJSONList):
    """A :class:`BufferedJSONList` whose nested dicts are :class:`BufferedJSONAttrDict`."""

    _backend = __name__ + ".buffered_attr"


class MemoryBufferedJSONAttrDict(MemoryBufferedJSONDict, AttrDict):
    """A :class:`MemoryBufferedJSONDict` with attribute access."""

    _backend = __name__ + ".memory_buffered_attr"
    _validators = (no_dot_in_key,)
    _all_validators = (json_attr_dict_validator,)


class MemoryBufferedJSONAttrList(MemoryBufferedJSONList):
    """A :class:`MemoryBufferedJSONList` whose nested dicts are
    :class:`MemoryBufferedJSONAttrDict`."""

    _backend = __name__ + ".memory_buffered_attr"
