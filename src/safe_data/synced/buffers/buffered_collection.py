"""The buffering protocol of synced collections.

While buffered, a collection loads from and saves to a buffer instead of its resource;
the buffer is written back ("flushed") when the last buffered context exits.  Two
contexts, freely nested:

.. code-block:: python

    with doc.buffered:                       # this collection
        with type(doc).buffer_backend():     # every collection of this class
            doc["a"] = 1
        # flushed here if nothing else still buffers it

Journaling does not wait for the flush: a buffered write that overwrites or deletes
journals the old value at once, like an unbuffered one.
"""

from __future__ import annotations

import logging

from ..data_types.synced_collection import _NULL_CONTEXT, SyncedCollection
from ..utils import _CounterFuncContext, _is_abstract

__all__ = ["BufferedCollection", "SyncedCollection", "logger"]

#: the module's logger, a public name of the original's module (which logs nothing to it either)
logger = logging.getLogger(__name__)


class BufferedCollection(SyncedCollection):
    """A synced collection that can be buffered.

    **This class itself does not buffer**: its ``_load_from_buffer`` and
    ``_save_to_buffer`` go to the resource.  Subclasses (see
    :class:`~.file_buffered_collection.FileBufferedCollection`) implement a buffer by
    overriding them, :meth:`_flush` (write back one collection) and
    :meth:`_flush_buffer` (write back the whole buffer of the class).

    While buffered, writes take no resource lock (nothing is written); the flush takes
    it.  Whether buffering is thread-safe depends on the subclass.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.buffered = _CounterFuncContext(self._flush)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not _is_abstract(cls):
            cls._buffer_context = _CounterFuncContext(cls._flush_buffer)

    @classmethod
    def buffer_backend(cls):
        """The context that buffers every collection of this class."""
        return cls._buffer_context

    @classmethod
    def backend_is_buffered(cls):
        """Whether :meth:`buffer_backend` is active."""
        return bool(cls._buffer_context)

    @property
    def _is_buffered(self):
        root = self._root if self._root is not None else self
        return root.buffered._count > 0 or type(root)._buffer_context._count > 0

    # _read, _write and _resource_lock are called on roots, on every write: the test of
    # _is_buffered is inlined

    def _read(self):
        if self.buffered._count or type(self)._buffer_context._count:
            return self._load_from_buffer()
        return self._load_from_resource()

    def _write(self):
        if self.buffered._count or type(self)._buffer_context._count:
            self._save_to_buffer()
        else:
            self._save_to_resource()

    def _resource_lock(self):
        if self.buffered._count or type(self)._buffer_context._count:
            return _NULL_CONTEXT
        return self._unbuffered_resource_lock()

    def _unbuffered_resource_lock(self):
        """The backend's resource lock whatever the buffering state (flushes take it)."""
        return super()._resource_lock()

    def _load_from_buffer(self):
        """The data to load while buffered (default: the resource's)."""
        return self._load_from_resource()

    def _save_to_buffer(self):
        """Save while buffered (default: to the resource)."""
        self._save_to_resource()

    def _flush(self):
        """Write this collection's buffered data back (default: nothing to do)."""

    @classmethod
    def _flush_buffer(cls):
        """Write back everything this class has buffered (default: nothing to do)."""
