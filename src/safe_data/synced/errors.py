"""Errors raised by synced collections (the names of ``synced_collections.errors``).

They are also :class:`~safe_data.errors.SafeDataError`, so one ``except`` catches every
error of the package.
"""

from __future__ import annotations

import os

from ..errors import SafeDataError


class BufferException(SafeDataError, RuntimeError):
    """Something went wrong while buffering."""


class BufferedError(BufferException):
    """One or more buffered files could not be flushed.

    Attributes
    ----------
    files : dict
        ``{filename: reason}`` for every file that failed (the reason is the exception,
        e.g. a :class:`MetadataError`, or None when unknown).
    """

    def __init__(self, files):
        super().__init__(files)
        self.files = files

    def __str__(self):
        reasons = "; ".join(f"{name}: {reason}" for name, reason in self.files.items())
        return f"{len(self.files)} buffered file(s) could not be flushed: {reasons}"


class MetadataError(BufferException):
    """A buffered file was changed on disk by someone else while it was buffered.

    The version on disk wins: the buffered contents that lost are in
    ``buffer_contents`` and were journaled (operation ``synced``/``replace``) before the
    collection reloaded the file.
    """

    def __init__(self, filename, contents):
        super().__init__(filename, contents)
        self.filename = filename
        self.buffer_contents = contents

    def __str__(self):
        path = os.path.abspath(self.filename)
        return (
            f"{self.filename} was modified on disk while it was buffered; the version "
            f"on disk was kept and the buffered data was journaled (see "
            f"`safe-data log --container {path}`)"
        )


class KeyTypeError(SafeDataError, TypeError):
    """A key of a type the collection cannot store (most backends need ``str`` keys)."""


class InvalidKeyError(SafeDataError, ValueError):
    """A key the collection cannot store (for example one containing a dot)."""
