"""A file buffer of encoded data: bounded in bytes, shared by all collections of a file.

While buffered, a collection saves by encoding its data (JSON by default) into its
file's buffer entry and loads by decoding it, so collections of one file stay
consistent.  Each save stamps the entry with a new serial number; a collection whose
last save or load had that serial skips the decoding.  The flush writes the file back
only if the encoded data differs from what was buffered at first.
"""

from __future__ import annotations

import hashlib
import itertools
import json

from ..errors import MetadataError
from ..utils import SyncedCollectionJSONEncoder
from .file_buffered_collection import FileBufferedCollection

# the original module's names (MetadataError is raised by the flush, in file_buffered_collection)
__all__ = [
    "FileBufferedCollection",
    "MetadataError",
    "SerializedFileBufferedCollection",
    "SyncedCollectionJSONEncoder",
]

#: serial numbers of buffer contents, never reused in a process
_serials = itertools.count(1)


class SerializedFileBufferedCollection(FileBufferedCollection):
    """A :class:`~.FileBufferedCollection` whose buffer holds encoded data.

    Capacity (``_BUFFER_CAPACITY``, default 32 MiB): the bytes of encoded data the buffer
    holds before it flushes everything.  Thread-safe, by serializing every buffered
    operation (even reads, since a read can trigger a flush).  Subclasses may override
    :meth:`_encode` and :meth:`_decode`.
    """

    _BUFFER_CAPACITY = 32 * 2**20

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._buffer_serial = 0  # the serial of the buffered data our data matches

    @staticmethod
    def _encode(data):
        """Encode data for the buffer (JSON)."""
        return json.dumps(data, cls=SyncedCollectionJSONEncoder).encode()

    @staticmethod
    def _decode(blob):
        """Decode data from the buffer."""
        return json.loads(blob)

    @staticmethod
    def _hash(blob):
        return hashlib.blake2b(blob, digest_size=16).digest()

    def _initialize_data_in_buffer(self):
        blob = self._encode(self._data)
        serial = next(_serials)
        type(self)._buffer[self._abspath] = {
            "contents": blob,
            "hash": self._hash(blob),
            "metadata": self._version,
            "serial": serial,
        }
        type(self)._CURRENT_BUFFER_SIZE += len(blob)
        self._buffer_serial = serial

    def _load_from_buffer(self):
        cls = type(self)
        with self._BUFFER_LOCK:
            entry = self._buffer_entry()
            data = None
            if entry["serial"] != self._buffer_serial:
                data = self._decode(entry["contents"])
                self._buffer_serial = entry["serial"]
            if cls._CURRENT_BUFFER_SIZE > cls._BUFFER_CAPACITY:
                cls._flush_buffer(force=True)
        return data

    def _save_to_buffer(self):
        cls = type(self)
        with self._BUFFER_LOCK:
            cls._buffered_collections[id(self)] = self
            blob = self._encode(self._data)
            entry = cls._buffer.get(self._abspath)
            if entry is None:
                # saved without a load into the buffer: always write it back
                self._initialize_data_in_buffer()
                entry = cls._buffer[self._abspath]
                entry["hash"] = None
            cls._CURRENT_BUFFER_SIZE += len(blob) - len(entry["contents"])
            entry["contents"] = blob
            entry["serial"] = self._buffer_serial = next(_serials)
            if cls._CURRENT_BUFFER_SIZE > cls._BUFFER_CAPACITY:
                cls._flush_buffer(force=True)

    def _flush(self, force=False):
        """Write this collection's file back if its buffered data changed, and drop it
        from the buffer (see :class:`~.FileBufferedCollection` for the check).

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
            entry = cls._buffer.pop(self._abspath, None)
            if entry is None:
                return  # not loaded while buffered, or flushed by another collection
            cls._CURRENT_BUFFER_SIZE -= len(entry["contents"])
            if self._hash(entry["contents"]) == entry["hash"]:
                return
            if entry["serial"] != self._buffer_serial:
                with self._thread_lock, self._suspend_sync:
                    self._update(self._decode(entry["contents"]))
            self._write_back(entry["metadata"])

    @classmethod
    def _flush_buffer(cls, force=False):
        """Flush (see :meth:`FileBufferedCollection._flush_buffer`); a forced flush empties
        the buffer."""
        super()._flush_buffer(force=force, retain_in_force=False)
