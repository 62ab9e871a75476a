"""Buffering for file-based backends: one buffer per class, checked against the file.

When a file enters the buffer, the version of the file its data came from is noted (see
the file backend's ``_get_file_metadata``: device, inode, size, mtime and write
generation).  A flush writes the data back under the file's process lock only if the
file still has that version.  If someone else changed the file meanwhile, **the version
on disk wins**: the buffered data is journaled (``synced``/``replace``), the collection
reloads the file, and :class:`~safe_data.synced.errors.MetadataError` is raised (inside
a :class:`~safe_data.synced.errors.BufferedError` when the whole buffer is flushed).

A file backend combined with these classes (``class BufferedJSONCollection(
SerializedFileBufferedCollection, JSONCollection)``, the buffer class first) provides
``_filename``, ``_abspath`` (the buffer key), ``_version`` (the metadata of the data in
memory) and ``_get_file_metadata()``.

Lock order: buffer lock, then the collection's thread lock, then the file lock.
"""

from __future__ import annotations

import os
import threading
from abc import abstractmethod

from ..data_types.synced_collection import _NULL_CONTEXT, _LoadAndSave
from ..errors import BufferedError, MetadataError
from ..utils import _CounterFuncContext
from .buffered_collection import BufferedCollection

#: every buffer lock made, to free them in a forked child (see synced_collection.py)
_buffer_locks: list = []


def _reinit_buffer_locks_after_fork():
    for lock in _buffer_locks:
        lock._at_fork_reinit()


os.register_at_fork(after_in_child=_reinit_buffer_locks_after_fork)


class _FileBufferedContext(_CounterFuncContext):
    """``buffer_backend(buffer_capacity=None)``: buffer the class, optionally with another
    capacity until the context exits."""

    def __init__(self, cls):
        super().__init__(cls._flush_buffer)
        self._cls = cls
        self._requested = None
        self._saved = []  # capacities to restore, one per entered context (None: keep)

    def __call__(self, buffer_capacity=None):
        self._requested = buffer_capacity
        return self

    def __enter__(self):
        super().__enter__()
        capacity, self._requested = self._requested, None
        self._saved.append(None if capacity is None else self._cls.get_buffer_capacity())
        if capacity is not None:
            self._cls.set_buffer_capacity(capacity)

    def __exit__(self, exc_type, exc_val, exc_tb):
        try:
            super().__exit__(exc_type, exc_val, exc_tb)
        finally:
            saved = self._saved.pop()
            if saved is not None:
                self._cls.set_buffer_capacity(saved)


class _BufferedLoadAndSave(_LoadAndSave):
    """Writes to buffered collections also change the buffer: hold its lock first."""

    __slots__ = ()

    def __enter__(self):
        buffer_lock = self._collection._BUFFER_LOCK
        buffer_lock.__enter__()
        try:
            super().__enter__()
        except BaseException:
            buffer_lock.__exit__(None, None, None)
            raise

    def _unlock(self):
        try:
            super()._unlock()
        finally:
            self._collection._BUFFER_LOCK.__exit__(None, None, None)


class FileBufferedCollection(BufferedCollection):
    """A :class:`~.BufferedCollection` buffering files, with the integrity check described
    in the module docstring.

    Subclasses define how data is kept (:meth:`_initialize_data_in_buffer`,
    :meth:`_save_to_buffer`, :meth:`_flush`) and ``_BUFFER_CAPACITY``, in their own units.
    The buffer class must come before the backend in the bases.

    Warning
    -------
    Two collections of the same file in different buffering states (one buffered, one
    not) see different data until the flush; keep collections of one file in the same
    state.
    """

    _LoadSaveType = _BufferedLoadAndSave

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._CURRENT_BUFFER_SIZE = 0
        cls._buffer = {}  # absolute filename -> the entry of that file
        # collections to flush, by id: each decides for itself whether it is still buffered
        cls._buffered_collections = {}
        cls._buffer_context = _FileBufferedContext(cls)

    @classmethod
    def enable_multithreading(cls):
        """Enable thread locks, including the lock of the class's buffer."""
        super().enable_multithreading()
        cls._BUFFER_LOCK = threading.RLock()
        _buffer_locks.append(cls._BUFFER_LOCK)

    @classmethod
    def disable_multithreading(cls):
        """Disable thread locks, including the lock of the class's buffer."""
        super().disable_multithreading()
        cls._BUFFER_LOCK = _NULL_CONTEXT

    # --- capacity -----------------------------------------------------------------------------

    @classmethod
    def get_buffer_capacity(cls):
        """How much the buffer holds before it is flushed (in the class's units)."""
        return cls._BUFFER_CAPACITY

    @classmethod
    def set_buffer_capacity(cls, new_capacity):
        """Set the capacity; flush at once if the buffer already holds more."""
        cls._BUFFER_CAPACITY = new_capacity
        with cls._BUFFER_LOCK:
            if new_capacity < cls._CURRENT_BUFFER_SIZE:
                cls._flush_buffer(force=True)

    @classmethod
    def get_current_buffer_size(cls):
        """How much the buffer holds now (in the class's units)."""
        return cls._CURRENT_BUFFER_SIZE

    @classmethod
    def buffer_backend(cls, buffer_capacity=None):
        """The context that buffers every collection of this class.

        Parameters
        ----------
        buffer_capacity : int, optional
            The capacity to use until the context exits.
        """
        return cls._buffer_context(buffer_capacity)

    # --- loading into the buffer ----------------------------------------------------------------

    def _buffer_entry(self):
        """The buffer entry of this collection's file, loading the file into the buffer
        on first use; registers the collection to be flushed.  Call with the buffer lock."""
        cls = type(self)
        cls._buffered_collections[id(self)] = self
        try:
            return cls._buffer[self._abspath]
        except KeyError:
            pass
        data = self._load_from_resource()
        with self._thread_lock, self._suspend_sync:
            self._update(data)
        self._initialize_data_in_buffer()
        return cls._buffer[self._abspath]

    @abstractmethod
    def _initialize_data_in_buffer(self):
        """Create the buffer entry of this collection's file from its data in memory,
        with ``self._version`` as the metadata to check at the flush."""

    # --- flushing -----------------------------------------------------------------------------

    @classmethod
    def _flush_buffer(cls, force=False, retain_in_force=False):
        """Flush every collection of the buffer that is no longer buffered (all of them
        with ``force``; ``retain_in_force`` keeps them registered).

        Raises
        ------
        BufferedError
            Naming each file that could not be written back and why.
        """
        issues = {}
        remaining = {}
        while True:
            with cls._BUFFER_LOCK:
                if not cls._buffered_collections:
                    break
                key, collection = cls._buffered_collections.popitem()
            if collection._is_buffered and not force:
                remaining[key] = collection  # an outer buffered context is still open
                continue
            if force and retain_in_force:
                remaining[key] = collection
            try:
                collection._flush(force=force)
            except Exception as error:  # reported below; the other files still flush
                issues[collection._filename] = error
        with cls._BUFFER_LOCK:
            cls._buffered_collections.update(remaining)
        if issues:
            raise BufferedError(issues)

    def _write_back(self, metadata):
        """Write the data to the file if the file still has ``metadata``; else journal
        the data, reload the file and raise :class:`MetadataError`."""
        with self._thread_lock, self._unbuffered_resource_lock():
            if self._get_file_metadata() != metadata:
                lost = self._to_base()
                if lost:
                    with self._operation_lock:
                        self._journal_discard("replace", lost, ())
                try:
                    self._reload()
                except Exception:  # the file holds another type now: later loads say so
                    self._forget_loaded_state()
                raise MetadataError(self._filename, lost)
            self._save_to_resource()

    def _reload(self):
        """Replace the data in memory by the file's (new nested collections too)."""
        self._forget_loaded_state()
        with self._suspend_sync:
            self._data = type(self._data)()
            self._update(self._load_from_resource())
