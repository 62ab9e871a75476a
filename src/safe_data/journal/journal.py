"""The Journal: a directory of segments, its writer for this process, and its readers.

One ``Journal`` object per directory per process (``journal_at`` finds it again).  It owns
a ``SegmentManager`` (segment files) and a ``RecordWriter`` (the C or Python hot path from
``safe_data._impl``).  Fork safety: after ``os.fork()`` the child's writer forgets the
parent's segment and starts its own on its first record; at exit every journal seals its
active segment.

Discard hooks: journal/hooks.py; the journals of this process (by path, the default one,
fork and exit): journal/registry.py.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
import warnings
import weakref
from datetime import datetime, timedelta, timezone
from typing import overload  # (this module loads with the first journal, not with import safe_data)

from .. import _impl
from ..errors import CorruptSegmentError, JournalReadOnlyError, JournalWarning, SafeDataError
from . import encryption, registry
from . import format as fmt
from .hooks import DiscardHooks
from .keyfile import load_or_create_key, read_key
from .reader import Problem, Record
from .records import read_record_batches, read_records, verify_directory
from .recovery import recover_dead_segments
from .segments import SegmentManager

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Literal

    from .batches import RecordBatch

    #: the durability modes (see Journal)
    Durability = Literal["process", "batch", "fsync"]

#: the writers' durability codes (both implementations define the same DURABILITY_* names)
DURABILITY_MODES = {"process": 0, "batch": 1, "fsync": 2}
DEFAULT_SEGMENT_SIZE = 16 << 20


def default_path() -> str:
    """``$SAFE_DATA_HOME``, else the platform's user data directory + ``/journal``."""
    home = os.environ.get("SAFE_DATA_HOME")
    if home:
        return os.path.abspath(home)
    import platformdirs

    return os.path.join(platformdirs.user_data_dir("safe-data", appauthor=False), "journal")


class Journal:
    """A crash-safe, append-only journal of discarded values.

    Parameters
    ----------
    path : str, optional
        The journal directory (created with mode 0700).  Default: :func:`default_path`.
    durability : {"process", "batch", "fsync"}
        ``"process"``: a record survives the process being killed the moment the call
        returns (it is in the shared page cache).  ``"batch"``: also survives power loss,
        except the records of the last ``batch_interval`` seconds.  ``"fsync"``: every
        record is on disk before the call returns (threads discarding at once share
        one ``fdatasync``; see docs/guarantees.md, "group commit").
    segment_size : int
        Bytes preallocated per segment file.
    max_bytes : int, optional
        Quota for the directory's segments; a discard that would exceed it raises
        :class:`~safe_data.errors.JournalFullError` and changes nothing.
    batch_interval : float
        Seconds between flushes in ``"batch"`` mode.
    compress_threshold : int
        Payloads of at least this many bytes are lz4-compressed.
    trust_pickles : bool
        Unpickle pickled values even when their MAC does not verify under this journal's
        key (a journal copied from elsewhere without its key).  Only for data you trust.
    compact : bool
        Write compact frames (format version 2: about 15 bytes for the discard of a small
        value, where version 1 took 50 or more).  False writes version-1 segments, which
        readers older than revision 6 read too (docs/format.md, "Versioning").
    readonly : bool
        Only read: nothing in the directory is created or changed (a journal on a
        read-only filesystem, a copy under inspection).  Segments left open by dead
        processes are read as recovery would keep them, in memory only; without a key
        file, pickled values read as ``UnverifiedPickle``.  Containers bound to it raise
        :class:`~safe_data.errors.JournalReadOnlyError` on any discard.
    encrypt_to : list of str, optional
        age recipients (``age1...``): each sealed segment of the directory is replaced by
        its age file when sealed (and any still in plaintext when the journal opens);
        readers then need an identity in ``SAFE_DATA_IDENTITY_FILE``.  The segment being
        written stays plaintext until sealed (docs/security.md, "Encryption at rest").
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        durability: Durability = "process",
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        max_bytes: int | None = None,
        batch_interval: float = 0.05,
        compress_threshold: int = fmt.DEFAULT_COMPRESS_THRESHOLD,
        trust_pickles: bool = False,
        readonly: bool = False,
        compact: bool = True,
        encrypt_to: list[str] | None = None,
    ):
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {sorted(DURABILITY_MODES)}, not {durability!r}")
        if segment_size < 4096:
            raise ValueError("segment_size must be at least 4096 bytes")
        self.path = os.path.abspath(os.fspath(path) if path is not None else default_path())
        self.durability = durability
        self.batch_interval = batch_interval
        self.trust_pickles = trust_pickles
        self.readonly = readonly
        # parsed first: a bad recipient or a missing pyrage fails here, before any write
        recipients = None if encrypt_to is None else encryption.parse_recipients(encrypt_to)
        if readonly:
            self._key, self._manager, self.recovered = self._open_for_reading()
        else:
            try:
                self._key, self._manager, self.recovered = self._open_for_writing(
                    segment_size, max_bytes, compact, recipients
                )
            except OSError as exc:
                if exc.errno != errno.EROFS:
                    raise
                raise OSError(
                    errno.EROFS,
                    f"the journal {self.path} is on a read-only "
                    f"filesystem: open it with readonly=True to read it",
                ) from exc
        self._writer = _impl.RecordWriter(
            self._manager, self._key or b"", DURABILITY_MODES[durability], compress_threshold
        )
        self._closed = False
        self._flusher: threading.Event | None = None
        self._hooks = DiscardHooks(self._manager)
        self._hooks_lock = threading.RLock()  # adding and removing callbacks (log_discards nests)
        self._log_hook = None
        if readonly:
            return  # never found by journal_at(), nothing to flush or seal at exit
        if durability == "batch":
            self._start_flusher()
        registry.register(self)

    def _open_for_writing(
        self, segment_size: int, max_bytes: int | None, compact: bool, recipients: list | None
    ):
        """(key, segment manager, what recovery set aside): the directory and key made if
        needed, dead writers' segments recovered (and, with ``recipients``, every sealed
        segment encrypted)."""
        _make_private_dir(self.path)
        key = load_or_create_key(self.path)
        durable = self.durability != "process"
        recovered: list[Problem] = recover_dead_segments(self.path, _impl.crc32c, durable)
        for problem in recovered:
            warnings.warn(
                f"recovered a segment left open by a dead process: {problem}", JournalWarning, stacklevel=3
            )
        if recipients is not None:
            encryption.seal_plaintext_segments(self.path, recipients, durable)
        manager = SegmentManager(
            self.path,
            crc32c=_impl.crc32c,
            segment_size=segment_size,
            max_bytes=max_bytes,
            durable=durable,
            compact=compact,
            encrypt_to=recipients,
        )
        return key, manager, recovered

    def _open_for_reading(self):
        """(key or None, a manager that refuses to write, []): nothing is created."""
        if not os.path.isdir(self.path):
            raise FileNotFoundError(errno.ENOENT, f"no journal at {self.path}", self.path)
        return read_key(self.path), _ReadOnlySegments(self.path), []

    def __repr__(self):
        state = "closed" if self._closed else "read-only" if self.readonly else self.durability
        return f"<Journal {self.path!r} ({state})>"

    # --- writing --------------------------------------------------------------------------

    def flush(self) -> None:
        """Make every record written so far by this process durable on disk."""
        self._writer.sync()

    def seal(self) -> None:
        """Seal this process's active segment now, so an uploader can ship it; the next
        record starts a new segment."""
        self._writer.seal_segment()

    def close(self) -> None:
        """Seal this process's active segment; containers bound to the journal then raise
        :class:`~safe_data.errors.JournalClosedError` on any discard."""
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            self._flusher.set()
        self._writer.close()
        registry.unregister(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def record(
        self,
        kind: str,
        op: str,
        container: str,
        key=None,
        values=None,
        *,
        caller: tuple | None = None,
        container_id: int = 0,
    ) -> int:
        """Journal one record directly; return its sequence number.

        For integrations that preserve what they discard themselves (proxies, database
        hooks): ``(kind, op)`` must be one of the operations of docs/format.md.  Take
        :attr:`operation_lock` around reading what you discard, this call and the change.
        """
        try:
            code = fmt.OP_CODES[kind, op]
        except KeyError:
            raise ValueError(f"unknown operation {kind!r}/{op!r}; see docs/format.md") from None
        return self._writer.append(code, container.encode("utf-8"), key, values, caller, container_id)

    # --- hooks -----------------------------------------------------------------------------

    def on_discard(self, callback):
        """Call ``callback(record)`` after each record is written to this journal.

        ``record`` is a :class:`~safe_data.journal.reader.Record` (``container``, ``kind``,
        ``op``, ``key``, ``values``, ``seq``, ``time_ns``/``time``, ``pid``, ``thread``,
        ``caller``, ``writer``; ``segment`` and ``offset`` are None).  The callback runs
        synchronously in the discarding thread, once the record is in the journal (in the
        "fsync" mode before it is on disk, which it is when the operation returns),
        inside the operation, with the operation lock held
        (whether the container already shows the change is not specified): keep it short;
        changing the container it reports on raises ReentrantChangeError.
        An exception it raises is reported as a :class:`DiscardHookWarning`; the record
        stays and the operation completes.  Discards made inside a callback are journaled
        but fire no callbacks.  Callbacks run in the order they were added; adding the
        same one twice calls it twice.  Returns ``callback`` (usable as a decorator).
        """
        if not callable(callback):
            raise TypeError(f"on_discard needs a callable, not {type(callback).__name__}")
        with self._hooks_lock:
            self._hooks.callbacks = self._hooks.callbacks + (callback,)
            self._writer.set_hook(self._hooks)
        return callback

    def remove_on_discard(self, callback) -> None:
        """Stop calling ``callback`` (its last registration); ValueError if it is not one."""
        with self._hooks_lock:
            callbacks = list(self._hooks.callbacks)
            for i in range(len(callbacks) - 1, -1, -1):
                if callbacks[i] == callback:
                    del callbacks[i]
                    break
            else:
                raise ValueError(f"{callback!r} is not an on_discard callback of {self!r}")
            self._hooks.callbacks = tuple(callbacks)
            if not callbacks:
                self._writer.set_hook(None)  # back to the one flag test

    @property
    def discard_callbacks(self) -> tuple:
        """The registered ``on_discard`` callbacks, in call order."""
        return self._hooks.callbacks

    def log_discards(self, enabled: bool = True, *, logger=None, level: int | str = "INFO") -> None:
        """Emit a :mod:`logging` record for each discard (off by default).

        One record per discard on ``logger`` (default: the ``safe_data.discards`` logger)
        at ``level``, with the fields in ``extra`` (see docs/integrations.md):
        ``discard_container``, ``discard_kind``, ``discard_op``, ``discard_key``,
        ``discard_count``, ``discard_values``, ``discard_seq``, ``discard_time_ns``,
        ``discard_journal``.  Built on :meth:`on_discard`.  Calling it again replaces the
        previous settings; ``enabled=False`` turns it off.
        """
        with self._hooks_lock:
            if self._log_hook is not None:
                self.remove_on_discard(self._log_hook)
                self._log_hook = None
            if enabled:
                from .discard_logging import DiscardLogger  # imports logging: only when asked

                self._log_hook = self.on_discard(DiscardLogger(self.path, logger, level))

    @property
    def operation_lock(self):
        """The reentrant lock every destructive operation on this journal holds (a context
        manager): read what you discard, :meth:`record` it and change your data under it."""
        return self._writer.operation_lock

    # --- reading --------------------------------------------------------------------------

    def records(
        self,
        container: str | None = None,
        since: datetime | int | str | None = None,
        until: datetime | int | str | None = None,
        *,
        nested: bool = False,
        on_error: str = "warn",
        nested_ids: bool = False,
        identity: tuple[int, int] | None = None,
    ) -> Iterator[Record]:
        """Yield the records of every process, oldest first.

        ``container`` filters by name (with ``nested=True``, the containers nested in it
        too: ``orders[3]["items"]`` is nested in ``orders``), ``identity`` by container
        (its writer id and ``container_id``, whatever its name); ``since``/``until`` by time
        (a datetime, nanoseconds since the epoch, or a string :func:`parse_time` reads).
        Torn or corrupt frames are reported per ``on_error``: "warn" (a
        :class:`JournalWarning`), "raise" (:class:`~safe_data.errors.CorruptSegmentError`)
        or "ignore".  With ``nested_ids``, a safe container inside a recorded value comes
        back as a :class:`~safe_data.journal.codec.NestedContainer` (its number and its
        contents) rather than as its contents.
        """
        options = self._read_options(container, since, until, nested, on_error, nested_ids, identity)
        return read_records(self.path, _impl.crc32c, self._key, **options)

    def record_batches(
        self,
        container: str | None = None,
        since: datetime | int | str | None = None,
        until: datetime | int | str | None = None,
        *,
        nested: bool = False,
        on_error: str = "warn",
        nested_ids: bool = False,
        identity: tuple[int, int] | None = None,
    ) -> Iterator[RecordBatch]:
        """The records of :meth:`records` (same arguments), in the same order, a batch at a
        time: :class:`~safe_data.journal.batches.RecordBatch` holds them column by column
        (``batch.seq``, ``batch.values``...), for readers of many records that need no
        Record object each (docs/history.md, "Reading everything back")."""
        options = self._read_options(container, since, until, nested, on_error, nested_ids, identity)
        return read_record_batches(self.path, _impl.crc32c, self._key, **options)

    def _read_options(self, container, since, until, nested, on_error, nested_ids, identity) -> dict:
        """The reader's keywords for the arguments of :meth:`records`."""
        return {
            "container": container,
            "nested": nested,
            "since_ns": to_ns(since),
            "until_ns": to_ns(until),
            "trust_pickles": self.trust_pickles,
            "report": _reporter(on_error),
            "nested_ids": nested_ids,
            "identity": identity,
            "save_indexes": not self.readonly,
        }

    def verify(self) -> list[Problem]:
        """Check every frame of every segment, that each sealed segment holds the records
        its header counts, and each writer's segments against one another (a segment
        missing, or present twice; purges recorded in the ledger are not missing); return
        the problems (empty when sound)."""
        return [p for p in verify_directory(self.path, _impl.crc32c, self._key) if not p.live]

    # --- retention ------------------------------------------------------------------------

    def purge(
        self,
        older_than: datetime | int | str | None = None,
        *,
        containers=(),
        max_bytes: int | None = None,
        keep_unsent: bool = True,
        dry_run: bool = False,
    ):
        """Delete sealed segments: by age, by container, or down to a size.

        ``older_than`` (as ``since`` of :meth:`records`: ``"30d"`` is thirty days ago):
        segments whose newest record is older; ``containers``: segments whose records all
        belong to these; ``max_bytes``: the oldest segments until the journal's take at
        most that on disk.  A segment goes only if it meets every criterion given (one at
        least).  Segments being written and damaged ones are never deleted.

        With ``keep_unsent`` (the default), a segment no remote backup has acknowledged
        is kept, and the others are deleted all the same; ``keep_unsent=False`` deletes
        it too.  ``dry_run`` deletes nothing.  Returns a
        :class:`~safe_data.journal.retention.PurgeResult`: ``deleted`` (or would be),
        ``kept`` (chosen but never backed up), ``damaged`` (left alone).
        """
        from . import retention  # first use here: keeps import safe_data light

        if older_than is None and not containers and max_bytes is None:
            raise ValueError("say what to purge: older_than, containers and/or max_bytes")
        if isinstance(containers, str):
            raise TypeError("containers must be a collection of names, not a str")
        if self.readonly and not dry_run:
            raise JournalReadOnlyError(
                f"the journal {self.path} was opened with readonly=True: "
                f"it cannot purge (dry_run=True only lists)"
            )
        return retention.purge(
            self.path,
            older_than_ns=to_ns(older_than),
            containers=tuple(containers),
            max_bytes=max_bytes,
            keep_unsent=keep_unsent,
            dry_run=dry_run,
        )

    # --- internals ------------------------------------------------------------------------

    def _start_flusher(self) -> None:
        stop = threading.Event()
        self._flusher = stop
        threading.Thread(
            target=_flush_loop,
            args=(weakref.ref(self), stop, self.batch_interval),
            name="safe_data-flusher",
            daemon=True,
        ).start()

    def _after_fork_in_child(self) -> None:
        self._writer.after_fork_in_child()
        if self._flusher is not None and not self._closed:
            self._start_flusher()


class _ReadOnlySegments:
    """The segment manager of a journal opened read-only: it never creates a segment."""

    writer_id = 0  # it never writes a record
    compact = True

    def __init__(self, directory: str):
        self.directory = directory

    def open(self, need: int, first_seq: int):
        raise JournalReadOnlyError(
            f"the journal {self.directory} was opened read-only (readonly=True); nothing was discarded"
        )

    def seal(self, used: int, last_seq: int) -> None:
        pass  # no segment was ever opened

    def forget_after_fork(self) -> None:
        pass


def _flush_loop(journal_ref, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        journal = journal_ref()
        if journal is None:
            return
        try:
            journal._writer.sync()
        except OSError as exc:  # keep flushing; the next sync retries
            warnings.warn(f"batch flush of {journal.path} failed: {exc}", JournalWarning, stacklevel=1)
        del journal


def _reporter(on_error: str):
    if on_error == "ignore":
        return None
    if on_error == "raise":

        def report(problem):
            raise CorruptSegmentError(problem)

        return report
    if on_error == "warn":

        def report(problem):
            warnings.warn(f"journal problem: {problem}", JournalWarning, stacklevel=3)

        return report
    raise ValueError(f"on_error must be 'warn', 'raise' or 'ignore', not {on_error!r}")


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


_AGE = re.compile(r"(\d+(?:\.\d*)?)\s*([smhdw])")
_AGE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str) -> datetime:
    """A moment written as the ``safe-data`` command takes it: an ISO 8601 time (without
    a zone: UTC, as the listings show it; a trailing ``Z`` too) or an age such as ``90s``,
    ``10m``, ``2h``, ``1d``, ``1w`` (that long ago).  ValueError otherwise."""
    text = text.strip()
    age = _AGE.fullmatch(text)
    if age:
        return datetime.now(timezone.utc) - timedelta(seconds=float(age[1]) * _AGE_SECONDS[age[2]])
    if text.endswith(("Z", "z")):  # fromisoformat accepts a trailing Z only from 3.11
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO time (2026-11-23T21:24:01) nor an age (30s, 10m, 2h, 1d, 1w)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@overload
def to_ns(t: None) -> None: ...


@overload
def to_ns(t: int | datetime | str) -> int: ...


def to_ns(t):
    """A moment as nanoseconds since the epoch: None, an int (already ns), a datetime (a
    naive one is local time, as :meth:`datetime.timestamp` reads it), or a string that
    :func:`parse_time` reads.  Exact to the microsecond: no float on the way."""
    if t is None or isinstance(t, int):
        return t
    if isinstance(t, str):
        t = parse_time(t)
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.astimezone()
        return (t - _EPOCH) // timedelta(microseconds=1) * 1000
    raise TypeError(f"expected a datetime or nanoseconds since the epoch, not {type(t).__name__}")


def _make_private_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise SafeDataError(f"journal path {path} is not a directory")
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        os.chmod(path, 0o700)


def journal_at(path: str) -> Journal:
    """The open journal of this process at ``path``, opening it if needed."""
    path = os.path.abspath(path)
    journal = registry.open_at(path)
    return journal if journal is not None else Journal(path)


def default_journal() -> Journal:
    """The journal containers use when none is given (see :func:`configure`)."""
    return registry.default()


def configure(path: str | os.PathLike | None = None, *, log_discards: bool = False, **options) -> Journal:
    """Open the journal that containers created without ``journal=`` will use.

    Takes the arguments of :class:`Journal`.  Containers created earlier keep theirs.
    ``log_discards=True`` turns on :meth:`Journal.log_discards` with its defaults.
    """
    journal = Journal(path, **options)
    if log_discards:
        journal.log_discards()
    registry.swap_default(journal)
    return journal
