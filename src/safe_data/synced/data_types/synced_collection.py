"""The SyncedCollection: a collection kept in step with a resource, whose discards are journaled.

Design
------
A concrete collection is composed of two independent subclasses:

* a *backend* (``JSONCollection``, ...) knows a resource: ``_load_from_resource()``
  returns its plain data (or None: leave memory as it is), ``_save_to_resource()``
  writes ``self._to_base()``;
* a *data type* (``SyncedDict``, ``SyncedList``) offers a collection API over
  ``self._data`` and knows how to convert (``_to_base``, ``is_base_type``) and update in
  place (``_update``).

Nested values are collections of the same backend created with ``parent=``; their
``_load``/``_save`` go to the root, the only one that touches the resource.

Every write runs in the root's ``_load_and_save``: the thread lock of the resource, then
the backend's process-wide lock (``_resource_lock()``: a file lock for JSON), a load,
the change, a save.  A write that discards something (an overwrite, a deletion, clear,
reset) also holds the journal's ``operation_lock`` (``self._operation_lock``) while it
reads the old value, journals it (:meth:`SyncedCollection._journal_discard`) and changes
the data, so when it returns what it discarded is in the journal.  Inside a write, sync
is suspended only around code that may call a loading method (comparisons with nested
collections); ``_from_base`` and ``_to_base`` never load.
"""

from __future__ import annotations

import os
import threading
from abc import abstractmethod
from collections import defaultdict
from collections.abc import Collection

from ...journal.journal import Journal, default_journal, journal_at
from ..numpy_utils import _convert_numpy
from ..utils import AbstractTypeResolver, _CounterContext, _is_abstract, _NullContext

_sc_resolver = AbstractTypeResolver({"SYNCEDCOLLECTION": lambda obj: isinstance(obj, SyncedCollection)})
_collection_resolver = AbstractTypeResolver(
    {"COLLECTION": lambda obj: isinstance(obj, Collection) and not isinstance(obj, (str, bytes))}
)

_NULL_CONTEXT = _NullContext()

#: attributes of every synced collection; attribute-access dicts must not turn them into
#: keys (backends add theirs, see :class:`~safe_data.synced.data_types.attr_dict.AttrDict`)
SYNCED_ATTRIBUTES = frozenset(
    (
        "_data",
        "_root",
        "_parent",
        "_journal",
        "_suspend_sync",
        "_load_and_save",
        "_validators",
        "_all_validators",
        "_supports_threading",
        "_LoadSaveType",
        "registry",
        "_thread_lock",
        "_locks",
        "_cls_lock",
        "_threading_support_is_active",
        "_rlock",
        "_operation_lock",
    )
)


#: the types stored as they are, tested first on hot paths
_SCALARS = frozenset((str, int, float, bool, type(None)))


def _plain(value):
    """A stored value as plain data (what is journaled)."""
    if type(value) in _SCALARS:
        return value
    return value._to_base() if _sc_resolver.get_type(value) == "SYNCEDCOLLECTION" else value


def _resolve_journal(journal):
    """A Journal from ``journal=``: a Journal, a directory path, or None (the default)."""
    if journal is None:
        return default_journal()
    if isinstance(journal, Journal):
        return journal
    return journal_at(os.fspath(journal))


def _reinit_locks_after_fork():
    """In a forked child, locks held by the parent's other threads would never be
    released: make every thread lock of synced collections free again."""
    SyncedCollection._cls_lock._at_fork_reinit()
    for lock in SyncedCollection._locks.values():
        lock._at_fork_reinit()


class _LoadAndSave:
    """The context of every write: locks, a load before, a save after.

    Entered on the root.  Reentrant: the thread lock is an RLock and backends' resource
    locks count their depth.
    """

    __slots__ = ("_collection", "_held")

    def __init__(self, collection):
        self._collection = collection
        self._held = []  # (thread lock, resource lock) per entry, innermost last

    def __enter__(self):
        collection = self._collection
        thread_lock = collection._thread_lock
        thread_lock.__enter__()
        resource_lock = collection._resource_lock()
        if resource_lock is not _NULL_CONTEXT:
            try:
                resource_lock.__enter__()
            except BaseException:
                thread_lock.__exit__(None, None, None)
                raise
        self._held.append((thread_lock, resource_lock))
        try:
            collection._load()
        except BaseException:
            _LoadAndSave._unlock(self)
            raise

    def __exit__(self, exc_type, exc_val, exc_tb):
        # A write that raised changed nothing (each validates, reads and journals before
        # it changes the data): nothing to save, but reload next time to be sure.
        try:
            if exc_type is None:
                self._collection._save()
            else:
                self._collection._forget_loaded_state()
        finally:
            self._unlock()

    def _unlock(self):
        """Release what the innermost ``__enter__`` took."""
        thread_lock, resource_lock = self._held.pop()
        try:
            if resource_lock is not _NULL_CONTEXT:
                resource_lock.__exit__(None, None, None)
        finally:
            thread_lock.__exit__(None, None, None)


class _Locked:
    """:meth:`SyncedCollection.locked`: the locks and the load of ``_load_and_save``, no
    save (the writes inside save themselves)."""

    __slots__ = ("_context",)

    def __init__(self, context):
        self._context = context

    def __enter__(self):
        self._context.__enter__()

    def __exit__(self, exc_type, exc_val, exc_tb):
        self._context._unlock()


class SyncedCollection(Collection):
    r"""An abstract :class:`~collections.abc.Collection` synced with a resource.

    Subclasses combine a backend and a data type (see the module docstring).

    **Backends** implement :meth:`_load_from_resource`, :meth:`_save_to_resource`, the
    ``_backend`` string (by convention ``__name__`` of their module) and may override
    :meth:`_journal_name` (the container name of their journal records),
    :meth:`_resource_lock` (a process-wide lock around load-modify-save) and
    :meth:`_forget_loaded_state` (when they skip loads of unchanged data).

    **Data types** implement :meth:`is_base_type`, :meth:`_to_base` and :meth:`_update`.

    **Validation**: a validator is a callable that raises on data the collection must
    not store.  A class lists its own in ``_validators``; at class creation
    :meth:`_register_validators` collects those of every class along the MRO into
    ``_all_validators``, unless the class defines ``_all_validators`` itself.

    **Thread safety**: backends whose ``_save_to_resource`` is atomic set
    ``_supports_threading = True`` and give a ``_lock_id`` property (hashable, one per
    resource); writes then hold a per-resource :class:`threading.RLock`.
    :meth:`disable_multithreading` turns the locks off for a class,
    :meth:`enable_multithreading` back on.

    **Journaling**: whatever a collection overwrites or deletes is journaled first (see
    docs/synced.md): operation ``synced``/``set``, ``del``, ``clear`` or ``replace``,
    container :meth:`_journal_name`, key the path of keys and indexes from the root to
    the container changed.

    Parameters
    ----------
    parent : SyncedCollection, optional
        The collection this one is nested in; None for a root, which owns the resource.
    journal : Journal, str or os.PathLike, optional
        Where discarded values go: a :class:`~safe_data.Journal`, a journal directory, or
        None for :func:`~safe_data.default_journal` (roots only; nested collections use
        their root's).

    Note
    ----
    Data given together with the resource is validated but not compared with what the
    resource holds: it is assumed to be the same (this saves a read).
    """

    registry: defaultdict = defaultdict(list)
    _supports_threading: bool = False
    _LoadSaveType = _LoadAndSave
    #: the per-resource thread locks of every class, by ``_lock_id``
    _locks: dict = {}
    _cls_lock = threading.RLock()
    _thread_lock = _NULL_CONTEXT

    def __init__(self, parent=None, *args, journal=None, **kwargs):
        if parent is not None:
            root = parent._root if parent._root is not None else parent
            self._root = root
            self._parent = parent
            self._journal = None
            self._operation_lock = root._operation_lock
            self._suspend_sync = root._suspend_sync
            self._load_and_save = root._load_and_save
        else:
            self._root = None
            self._parent = None
            self._journal = _resolve_journal(journal)
            self._operation_lock = self._journal.operation_lock
            self._suspend_sync = _CounterContext()
            self._load_and_save = self._LoadSaveType(self)

    # --- class set-up: registry, validators, threading ------------------------------------

    def __init_subclass__(cls, **kwargs):
        """Register concrete subclasses by backend, collect validators, set up locks."""
        super().__init_subclass__(**kwargs)
        if not _is_abstract(cls):
            SyncedCollection.registry[cls._backend].append(cls)
        cls._register_validators()
        if cls._supports_threading:
            cls.enable_multithreading()
        else:
            cls.disable_multithreading()

    @classmethod
    def _register_validators(cls):
        """Set ``cls._all_validators`` to the ``_validators`` of every class of the MRO,
        without repeats, unless ``cls`` defines ``_all_validators`` itself."""
        if "_all_validators" in cls.__dict__:
            return
        validators = []
        for base in cls.__mro__:
            for validator in base.__dict__.get("_validators", ()):
                if validator not in validators:
                    validators.append(validator)
        cls._all_validators = validators

    @classmethod
    def enable_multithreading(cls):
        """Hold a per-resource lock during every write (the default where supported).

        Raises
        ------
        ValueError
            If the class does not support multithreaded use.
        """
        if not cls._supports_threading:
            raise ValueError("This class does not support multithreaded execution.")
        cls._thread_lock = SyncedCollection._resource_thread_lock
        cls._threading_support_is_active = True

    @classmethod
    def disable_multithreading(cls):
        """Take no thread locks (faster; only for single-threaded use)."""
        cls._thread_lock = _NULL_CONTEXT
        cls._threading_support_is_active = False

    @property
    def _resource_thread_lock(self):
        """The thread lock of this collection's resource (nested ones use their root's),
        cached in ``_rlock``: a backend whose resource can change resets it to None."""
        if self._root is not None:
            return self._root._thread_lock
        lock = self.__dict__.get("_rlock")
        if lock is None:
            lock = self._rlock = self._lock_for(self._lock_id)
        return lock

    @staticmethod
    def _lock_for(lock_id):
        try:
            return SyncedCollection._locks[lock_id]
        except KeyError:
            with SyncedCollection._cls_lock:
                return SyncedCollection._locks.setdefault(lock_id, threading.RLock())

    @property
    def _lock_id(self):
        raise NotImplementedError(
            "Backends must implement the _lock_id property to support multithreaded "
            "execution: a hashable identifier unique to the resource."
        )

    @property
    @abstractmethod
    def _backend(self):
        """str: the backend's identifier (subclasses set a plain class attribute)."""

    # --- backend hooks --------------------------------------------------------------------

    @abstractmethod
    def _load_from_resource(self):
        """Return the resource's data as plain data satisfying :meth:`is_base_type`, or
        None to leave the data in memory unchanged (the resource does not exist yet, or
        has not changed since it was last read or written)."""

    @abstractmethod
    def _save_to_resource(self):
        """Write ``self._to_base()`` to the resource."""

    def _resource_lock(self):
        """A reentrant context manager held around every load-modify-save of the root;
        backends that can lock their resource across processes return that lock."""
        return _NULL_CONTEXT

    def _forget_loaded_state(self):
        """Called when the data in memory may not match the resource (a load or a write
        failed half-way): a backend that skips loading unchanged data must load again."""

    def _journal_name(self) -> str:
        """The container name of this collection's journal records: a stable name of the
        resource.  Backends override it; the default is ``"<_backend>:<_lock_id>"``, or
        ``_backend`` alone for backends without a ``_lock_id``."""
        root = self._root if self._root is not None else self
        try:
            return f"{root._backend}:{root._lock_id}"
        except NotImplementedError:
            return root._backend

    # --- data-type hooks ------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def is_base_type(cls, data):
        """Whether ``data`` can be stored as this type of collection."""

    @abstractmethod
    def _to_base(self):
        """The data in memory as plain data (no load)."""

    @abstractmethod
    def _update(self, data):
        """Make the data in memory equal to ``data`` in place, keeping nested collections
        whose contents change (their identity is preserved).  None: no change."""

    # --- conversion and validation --------------------------------------------------------

    @classmethod
    def _from_base(cls, data, **kwargs):
        """``data`` (already validated) as a synced collection of this backend if it is a
        collection, or as a plain value (NumPy values converted)."""
        if type(data) in _SCALARS:
            return data
        if _collection_resolver.get_type(data) == "COLLECTION":
            for candidate in SyncedCollection.registry[cls._backend]:
                if candidate.is_base_type(data):
                    return candidate(data=data, _validate=False, **kwargs)
        return _convert_numpy(data)

    def _validate(self, data):
        for validator in self._all_validators:
            validator(data)

    # --- synchronization ------------------------------------------------------------------

    def _load(self):
        """Bring the data in memory up to date with the resource (via the root)."""
        if self._suspend_sync._count:  # (the counter, not its __bool__: a hot path)
            return
        if self._root is not None:
            self._root._load()
            return
        with self._thread_lock:
            data = self._read()
            if data is None:
                return
            with self._suspend_sync:
                try:
                    self._update(data)
                except BaseException:
                    self._forget_loaded_state()
                    raise

    def _save(self):
        """Write the data to the resource (via the root)."""
        if self._suspend_sync._count:
            return
        if self._root is not None:
            self._root._save()
        else:
            self._write()

    def _read(self):
        """The data to load: the resource's (buffered collections may read a buffer)."""
        return self._load_from_resource()

    def _write(self):
        """Save the data: to the resource (buffered collections may write a buffer)."""
        self._save_to_resource()

    # --- journaling -----------------------------------------------------------------------

    def _journal_discard(self, op: str, values, path=None):
        """Journal ``values`` discarded by operation ``op`` (``set``, ``del``, ``clear``
        or ``replace``) of the container at ``path`` (default: this one)."""
        if self._root is None:
            root, where = self, () if path is None else path
        else:
            root, where = self._root, self._path() if path is None else path
        root._journal.record("synced", op, root._journal_name(), where, values)

    def _path(self) -> tuple:
        """The keys and indexes from the root to this collection."""
        if self._parent is None:
            return ()
        return self._parent._path() + (self._parent._key_of(self),)

    def _key_of(self, child):
        """The key or index under which ``child`` (by identity) is stored here."""
        raise NotImplementedError

    def _journal_replaced(self):
        """Journal the whole of this collection before it is replaced: a ``replace``
        record for a root, a ``set`` of its key in the parent for a nested one."""
        old = self._to_base()
        if not old:
            return
        if self._parent is None:
            self._journal_discard("replace", old, ())
        else:
            path = self._path()
            self._journal_discard("set", {path[-1]: old}, path[:-1])

    # --- the shared collection API --------------------------------------------------------

    def locked(self):
        """Hold the collection's locks for a whole block, to make a read-modify-write
        atomic: ``with doc.locked(): doc["n"] += 1``.

        Inside, no other thread, and for backends with a resource lock (JSON) no other
        process, writes the resource.  The block starts with a load; every write inside
        saves as usual.  (An addition to the ``synced_collections`` API.)
        """
        root = self._root if self._root is not None else self
        return _Locked(root._load_and_save)

    def __getitem__(self, key):
        self._load()
        return self._data[key]

    def __iter__(self):
        self._load()
        return iter(self._data)

    def __len__(self):
        self._load()
        return len(self._data)

    def __contains__(self, value):
        self._load()
        return value in self._data

    def __call__(self):
        """The data as an unsynced plain object (a ``dict`` or ``list``), freshly loaded."""
        self._load()
        return self._to_base()

    def __eq__(self, other):
        if isinstance(other, SyncedCollection):
            other = other()
        return self() == other

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as the builtins

    def __repr__(self):
        return repr(self())

    def __str__(self):
        return str(self())


os.register_at_fork(after_in_child=_reinit_locks_after_fork)
