"""A file buffer of live objects: collections of one file share one data object.

While buffered, every collection of a file points its ``_data`` at the same dict or
list, held by the buffer: a change through one is seen by all at no cost, and nothing
is encoded until the flush.  The capacity counts *modified* files: reading alone never
fills the buffer (so it has no memory bound: use the serialized buffer for one).
"""

from __future__ import annotations

from ..errors import MetadataError
from .file_buffered_collection import FileBufferedCollection

# the original module's names (MetadataError is raised by the flush, in file_buffered_collection)
__all__ = ["FileBufferedCollection", "MetadataError", "SharedMemoryFileBufferedCollection"]


class SharedMemoryFileBufferedCollection(FileBufferedCollection):
    """A :class:`~.FileBufferedCollection` whose buffer holds the data objects themselves.

    Capacity (``_BUFFER_CAPACITY``, default 1000): the number of modified files the buffer
    holds before it writes them all back (they stay buffered).  Thread-safe: buffer reads,
    writes and flushes are serialized by the buffer lock.
    """

    _BUFFER_CAPACITY = 1000

    def _initialize_data_in_buffer(self, modified=False):
        type(self)._buffer[self._abspath] = {
            "contents": self._data,
            "metadata": self._version,
            "modified": modified,
        }

    def _load_from_buffer(self):
        cls = type(self)
        with cls._BUFFER_LOCK:
            entry = cls._buffer.get(self._abspath)
            if entry is None:
                entry = self._buffer_entry()
            else:  # the common case, inlined
                cls._buffered_collections[id(self)] = self
            self._data = entry["contents"]
        return None  # self._data is the buffered data: nothing to update

    def _save_to_buffer(self):
        cls = type(self)
        with self._BUFFER_LOCK:
            cls._buffered_collections[id(self)] = self
            entry = cls._buffer.get(self._abspath)
            if entry is None:
                self._initialize_data_in_buffer(modified=True)
                cls._CURRENT_BUFFER_SIZE += 1
            elif not entry["modified"]:
                entry["modified"] = True
                cls._CURRENT_BUFFER_SIZE += 1
            if cls._CURRENT_BUFFER_SIZE > cls._BUFFER_CAPACITY:
                cls._flush_buffer(force=True)

    def _flush(self, force=False):
        """Write this collection's file back if it was modified (see the module of
        :class:`~.FileBufferedCollection` for the check); with ``force`` it stays
        buffered.

        Raises
        ------
        MetadataError
            The file changed on disk meanwhile: the disk version was kept.
        """
        cls = type(self)
        with self._BUFFER_LOCK:
            if self._is_buffered and not force:
                return
            if not force:
                cls._buffered_collections.pop(id(self), None)
            entry = cls._buffer.get(self._abspath)
            if entry is None:
                # Another collection of this file flushed it: stop sharing its data.
                if not force:
                    with self._thread_lock:
                        self._reload()
                return
            try:
                if entry["modified"]:
                    self._write_back(entry["metadata"])
            finally:
                if entry["modified"]:
                    cls._CURRENT_BUFFER_SIZE -= 1
                if force:
                    entry.update(contents=self._data, metadata=self._version, modified=False)
                else:
                    del cls._buffer[self._abspath]

    @classmethod
    def _flush_buffer(cls, force=False):
        """Flush (see :meth:`FileBufferedCollection._flush_buffer`); a forced flush keeps
        the collections buffered."""
        super()._flush_buffer(force=force, retain_in_force=True)
