"""A Zarr backend: each collection is the one element of a 1-element object array.

The array is encoded by a numcodecs object codec (JSON by default).  Zarr 2 only: zarr 3
changed the group API and dropped object arrays with object codecs, so using a
collection with zarr 3 installed raises an ImportError that says to install
``zarr<3``.  This module imports neither zarr nor numcodecs until a collection is made.

When the group is a local directory (a ``DirectoryStore``), every write holds an
exclusive ``flock`` on ``.<name>.lock`` in the group's directory from its load to its
save, as the JSON backend does, so writers in different processes never lose each
other's updates.  Other stores get no lock.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os

from .._file_lock import FileLock
from ..data_types.synced_collection import SyncedCollection
from ..data_types.synced_dict import SyncedDict
from ..data_types.synced_list import SyncedList
from ..validators import require_string_key

# with the original module's names (its imports included)
__all__ = [
    "ZARR",
    "ZarrCollection",
    "ZarrDict",
    "ZarrList",
    "SyncedCollection",
    "SyncedDict",
    "SyncedList",
    "require_string_key",
]

#: whether zarr and numcodecs are installed (looked up, not imported; zarr 3 is refused on use)
ZARR = all(importlib.util.find_spec(name) is not None for name in ("zarr", "numcodecs"))


#: object codecs whose decoding runs no code (a ``pickle`` codec would)
_CODECS_RUNNING_NO_CODE = frozenset({"json2", "msgpack2", "vlen-utf8", "vlen-bytes", "vlen-array"})


def _zarr2_codecs(user: str):
    """The ``numcodecs`` module, once zarr 2 is known to be installed."""
    try:
        import numcodecs
        import zarr
    except ImportError:
        raise ImportError(f"{user} needs zarr 2 and numcodecs: pip install 'safe_data[zarr]'") from None
    if int(zarr.__version__.split(".")[0]) >= 3:
        raise ImportError(
            f"{user} needs zarr 2, and zarr {zarr.__version__} is installed: pip install 'safe_data[zarr]'"
        )
    return numcodecs


def _lock_for(group, name: str):
    """The process-wide lock of array ``name`` of ``group``: a file lock in the group's
    directory if it has one, else no lock."""
    directory = os.path.join(getattr(group.store, "path", ""), group.path)
    if not os.path.isdir(directory):
        return contextlib.nullcontext()
    # a name may be a path ("sub/doc"), whose directory need not exist yet
    return FileLock(os.path.join(directory, f".{name.replace('/', '.')}.lock"))


class ZarrCollection(SyncedCollection):
    r"""A :class:`~.SyncedCollection` stored in a Zarr group, as a 1-element object array.

    A write is atomic where the store writes a chunk atomically (``DirectoryStore``: a
    temporary file renamed over the chunk).  On a local directory, writers in several
    processes are serialized by a file lock; on other stores a write that runs between
    another's load and save is lost.

    **Thread safety**

    Not thread-safe (a collection object must not be shared by threads).

    Parameters
    ----------
    group : zarr.hierarchy.Group
        The group that holds the array.
    name : str
        The name of the array in the group.  If a group of that name exists, a save
        fails (:class:`zarr.errors.ContainsGroupError`) rather than replace it.
    codec : numcodecs.abc.Codec, optional
        The object codec of a new array (default ``numcodecs.JSON()``); an existing
        array keeps the codec it was created with.
    \*args, \*\*kwargs
        Passed on to the other base classes (``data``, ``parent``, ``journal``).
    """

    _backend = __name__

    def __init__(self, group=None, name=None, codec=None, *args, **kwargs):
        if kwargs.get("parent") is None:
            numcodecs = _zarr2_codecs(type(self).__name__)
            if group is None or name is None:
                raise ValueError(
                    f"{type(self).__name__} needs a zarr group and a name, got group={group!r}, name={name!r}"
                )
            if codec is None:
                codec = numcodecs.JSON()
            self._lock = _lock_for(group, name)
        self._group = group
        self._name = name
        self._object_codec = codec
        super().__init__(*args, **kwargs)

    def _load_from_resource(self):
        try:
            array = self._group[self._name]
        except KeyError:
            return None
        import zarr

        if not isinstance(array, zarr.Array):  # a group of that name: not ours, never read
            return None
        self._refuse_unsafe_codecs(array)
        return array[0]

    def _refuse_unsafe_codecs(self, array) -> None:
        """The stored array names its own object codec, and reading runs it: a planted
        array with a ``pickle`` codec would run code (numcodecs refuses that itself only
        since 0.16).  Only codecs that run none are read, and the one this collection was
        given (the caller's explicit choice)."""
        chosen = (self._root if self._root is not None else self)._object_codec
        for codec in array.filters or ():
            if codec.codec_id not in _CODECS_RUNNING_NO_CODE and codec != chosen:
                raise ValueError(
                    f"refusing to read {self._name!r}: its object codec {codec.codec_id!r} can run "
                    f"code when decoding (pass that codec as codec= to trust it)"
                )

    def _save_to_resource(self):
        # fill_value=None: a reader between the array's creation and its first write
        # sees None ("absent"), not zarr's default 0
        array = self._group.require_dataset(
            self._name, shape=1, dtype=object, fill_value=None, object_codec=self._object_codec
        )
        array[0] = self._to_base()

    def _resource_lock(self):
        return self._lock

    def _journal_name(self) -> str:
        root = self._root if self._root is not None else self
        group = root._group
        store = getattr(group.store, "path", type(group.store).__name__)
        return "zarr:" + "/".join(part for part in (store, group.path, root._name) if part)

    @property
    def codec(self):
        """numcodecs.abc.Codec: the object codec of a new array."""
        return self._object_codec

    @codec.setter
    def codec(self, new_codec):
        self._object_codec = new_codec

    @property
    def group(self):
        """zarr.hierarchy.Group: the group that holds the array."""
        return self._group

    @property
    def name(self):
        """str: the name of the array in the group."""
        return self._name


class ZarrDict(ZarrCollection, SyncedDict):
    r"""A dict-like collection stored in a Zarr group.

    Examples
    --------
    >>> doc = ZarrDict(zarr.open_group("data.zarr"), "doc")  # doctest: +SKIP
    >>> doc["foo"] = {"bar": True}  # doctest: +SKIP
    >>> doc()  # doctest: +SKIP
    {'foo': {'bar': True}}

    Parameters
    ----------
    group : zarr.hierarchy.Group, optional
        The group; required unless ``parent`` is given.
    name : str, optional
        The name of the array; required unless ``parent`` is given.
    data : Mapping, optional
        Initial data, assumed to be what the array holds (it is not written until the
        first change).
    parent : ZarrCollection, optional
        The collection this one is nested in.
    \*args, \*\*kwargs
        Passed on to the other base classes (``codec``, ``journal``).
    """

    _validators = (require_string_key,)

    def __init__(self, group=None, name=None, data=None, parent=None, *args, **kwargs):
        super().__init__(group, name, *args, data=data, parent=parent, **kwargs)


class ZarrList(ZarrCollection, SyncedList):
    r"""A list-like collection stored in a Zarr group.

    Parameters are those of :class:`ZarrDict`, with a non-string sequence as ``data``.
    """

    def __init__(self, group=None, name=None, data=None, parent=None, *args, **kwargs):
        super().__init__(group, name, *args, data=data, parent=parent, **kwargs)
