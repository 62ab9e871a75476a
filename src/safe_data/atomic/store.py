"""The store: one value, one file, replaced whole by :meth:`AtomicStore.commit`."""

from __future__ import annotations

import os

from ..containers import _support
from .formats import Codec, resolve_format
from .replace import ANY_REVISION, read_file, remove_dead_temps, replace_file, revision_of

_NOT_HASHED = object()


class AtomicStore:
    """A value kept in a file, written only by :meth:`commit`, atomically and durably.

    Use :func:`safe_data.atomic.open` to make one.  As a context manager it commits when
    the ``with`` block exits without an exception (an exception keeps the file as it
    was); nested ``with`` blocks on the same store commit at each exit, or only at the
    outermost one with ``ignore_inner_exits=True``.

    Attributes
    ----------
    value
        The value; change it freely, nothing reaches the disk before a commit.
    path
        The path as given.
    name : str
        The container name of the store's records in the journal.
    revision : str or None
        The revision of the file the store last read or wrote (None: there was no file).
    """

    def __init__(
        self,
        path,
        default,
        format,
        is_binary,
        load_kwargs,
        dump_kwargs,
        ignore_inner_exits,
        *,
        name=None,
        journal=None,
        check_revision=False,
    ):
        self.path = path
        self.format = format
        self.is_binary = is_binary
        self.load_kwargs = load_kwargs
        self.dump_kwargs = dump_kwargs
        self.ignore_inner_exits = ignore_inner_exits
        self.journal = journal
        self.check_revision = check_revision
        self.level = 0
        self._codec = Codec(format, is_binary, dump_kwargs, load_kwargs)
        self._file = os.path.realpath(path)
        self.name = self._file if name is None else name
        remove_dead_temps(os.path.dirname(self._file))
        content = read_file(self._file)
        self.value = default if content is None else self._codec.decode(content)
        self._content = content
        self._revision = _NOT_HASHED

    def __repr__(self):
        return f"<AtomicStore {self._file!r} value={self.value!r:.60}>"

    @property
    def revision(self) -> str | None:
        if self._revision is _NOT_HASHED:  # hashed on demand: most stores never ask
            self._revision = revision_of(self._content)
            self._content = None
        return self._revision

    def commit(self, expected=ANY_REVISION) -> None:
        """Write the value to the file: atomically (a reader, and the file after a crash,
        hold the old content or the new, never a mix), durably (on disk when this
        returns), journaling the old content first.

        Parameters
        ----------
        expected : str or None, optional
            Write only if the file is at this revision (None: only if there is no file),
            else raise :class:`~safe_data.errors.RevisionConflictError` and write nothing.
            Default: :attr:`revision` if the store was opened with ``check_revision=True``,
            else no check.
        """
        data = self._codec.encode(self.value)
        if expected is ANY_REVISION and self.check_revision:
            expected = self.revision
        replace_file(
            self._file,
            data,
            journal=_support.resolve_journal(self.journal),
            container=self.name,
            expected=expected,
        )
        self._content, self._revision = data, _NOT_HASHED

    def __enter__(self) -> AtomicStore:
        self.level += 1
        return self

    def __exit__(self, exc_type, exc, tb):
        self.level -= 1
        assert self.level >= 0, f"{self!r} exited more often than entered"
        if exc_type is None and (self.level == 0 or not self.ignore_inner_exits):
            self.commit()


def open_store(
    path,
    default=None,
    format=None,
    is_binary=None,
    load_kwargs=None,
    dump_kwargs=None,
    ignore_inner_exits=False,
    *,
    name=None,
    journal=None,
    check_revision=False,
) -> AtomicStore:
    """Open the store kept in the file at ``path``; its value is the file's content, or
    ``default`` if there is no file.

    Parameters
    ----------
    path : str or os.PathLike
        The file (it need not exist; its directory must).  A symlink is followed: the file
        it points to is replaced, the link stays.
    default : object
        The value when there is no file (used as is, not copied).
    format : None, str, module or object
        None or "json" (the default), "pickle", "bson" (needs the ``bson`` package), any
        module or object with ``dump``/``load`` or ``dumps``/``loads``, or a subclass of
        :class:`AbstractFormatFile` / :class:`AbstractFormatBstr`.
    is_binary : bool, optional
        Whether the format works on bytes; default: True for everything but json.
    load_kwargs, dump_kwargs : dict, optional
        Passed to every load / dump call, e.g. ``dump_kwargs={"indent": 2}``.
    ignore_inner_exits : bool
        Commit only when the outermost ``with`` block on this store exits.
    name : str, optional
        The container name of the store's records in the journal (default: the file's
        absolute path, symlinks resolved).
    journal : safe_data.Journal, optional
        Where a commit journals the content it replaces (default:
        :func:`safe_data.default_journal`, opened at the first commit).
    check_revision : bool
        Make every commit check that the file is still at :attr:`AtomicStore.revision`,
        so that an update another writer made since is never silently overwritten.
    """
    is_binary_hint, format = resolve_format(format)
    return AtomicStore(
        path,
        default,
        format,
        is_binary_hint if is_binary is None else is_binary,
        {} if load_kwargs is None else load_kwargs,
        {} if dump_kwargs is None else dump_kwargs,
        ignore_inner_exits,
        name=name,
        journal=journal,
        check_revision=check_revision,
    )
