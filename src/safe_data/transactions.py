"""Transactions and the undo log: the operations of several containers as one unit that
can be undone and redone (ZODB's undo log is the model).

A transaction is two marker records in the journal, ``txn``/``begin`` and ``txn``/``end``
(docs/format.md); the records its writer's same thread wrote between them are its
operations.  An operation made outside a transaction is a unit of its own.  Nothing is
kept in memory but what undo needs and the journal cannot give: the live containers,
held weakly, of those that recorded inside a transaction of this process.

Undo and redo go by states, not by inverse operations: a unit can be undone only while
each container it touched is still as the unit (or a redo of it) left it, so the state
before the unit, replayed from the journal, is exactly what undoing it gives back.  That
needs versioned containers: of a plain one the journal knows what it discarded, not what
it added, so undo of a unit refuses it rather than revert half of it.
"""

from __future__ import annotations

import threading
import weakref
from datetime import datetime, timezone
from typing import overload  # (this module loads on first use, not with import safe_data)

from .containers import SafeDict, SafeList, SafeSet, _support, watch_records
from .errors import TransactionError, UndoError
from .history import _EMPTY, _contents, _identity, _record, replay_by_seq
from .history import undo as undo_container
from .journal.reader import Record

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from .history import Container
    from .journal.journal import Journal

#: what a unit's ``outcome`` is while its end marker is missing (still open, or its process died)
OPEN = "open"
CONTAINER_KINDS = frozenset({"list", "dict", "set"})
#: (kind, op of a record) -> the op of the record the same operation of a versioned container
#: writes right after it (what it discarded, then what it added): one unit, not two
_SECOND_RECORD = {
    ("list", "set"): "assign",
    ("list", "init"): "snapshot",
    ("list", "undo"): "snapshot",
    ("dict", "set"): "assign",
    ("dict", "update"): "assign",
    ("dict", "|="): "assign",
    ("dict", "init"): "assign",
    ("dict", "assign"): "snapshot",
    ("dict", "undo"): "snapshot",
    ("set", "symmetric_difference_update"): "insert",
    ("set", "^="): "insert",
    ("set", "init"): "snapshot",
    ("set", "undo"): "snapshot",
}

_local = threading.local()  # .transaction: the one open in this thread
_open_lock = threading.Lock()
_open_count = 0  # transactions open in this process: the record watcher is on while > 0
#: (writer, container_id) -> the live container, for the containers that recorded inside a
#: transaction of this process (what undo(unit) finds them by)
_live: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def unit_id(writer: int, seq: int) -> str:
    """A unit's id: its writer (16 hex digits) and the seq of its first record."""
    return f"{writer:016x}:{seq}"


# --- transactions ----------------------------------------------------------------------------


class Transaction:
    """An open (or finished) transaction: the context manager :func:`transaction` returns.

    ``id`` is set once it has begun; ``outcome`` once it has ended ("committed", or
    "failed" when an exception left the ``with`` block: nothing is undone then, undo it
    with ``safe_data.undo(txn)`` if that is what you want).  ``containers`` are the live
    containers that recorded inside it.
    """

    def __init__(self, journal: Journal, note: str, user: str | None, reverting: dict | None = None):
        if not isinstance(note, str):
            raise TypeError(f"note must be a str, not {type(note).__name__}")
        if user is not None and not isinstance(user, str):
            raise TypeError(f"user must be a str or None, not {type(user).__name__}")
        self.journal = journal
        self.note = note
        self.user = user
        self._reverting = reverting or {}
        self.outcome: str | None = None
        self._writer = self._begin_seq = 0
        self._touched: dict[int, Any] = {}  # id(container) -> container (held: ids stay unique)

    @property
    def id(self) -> str | None:
        """The unit's id once it has begun (see :func:`undo_log`)."""
        return unit_id(self._writer, self._begin_seq) if self._begin_seq else None

    def __repr__(self):
        state = self.outcome or ("open" if self.id else "not begun")
        return f"<Transaction {self.id or ''} {self.note!r} ({state})>"

    @property
    def containers(self) -> list:
        return [c for c in self._touched.values() if c.journal is self.journal]

    def __enter__(self) -> Transaction:
        global _open_count
        if self._begin_seq:
            raise TransactionError(
                f"transaction {self.id} ({self.note!r}) was already used; "
                f"open a new one with safe_data.transaction()"
            )
        current = getattr(_local, "transaction", None)
        if current is not None:
            raise TransactionError(
                f"transaction {current.id} ({current.note!r}) is still open in this thread: a "
                f"thread runs one transaction at a time (asyncio tasks share their thread, so two "
                f"tasks cannot each have one open), because its operations are told apart by "
                f"thread; end it first"
            )
        values = {"note": self.note, "user": self.user, **self._reverting}
        self._begin_seq = self.journal.record("txn", "begin", "", None, values)
        self._writer = self.journal._manager.writer_id
        _local.transaction = self
        with _open_lock:
            _open_count += 1
            if _open_count == 1:
                watch_records(_watch)
        return self

    def __exit__(self, exc_type, exc, tb):
        global _open_count
        self.outcome = "committed" if exc_type is None else "failed"
        try:
            self.journal.record("txn", "end", "", self._begin_seq, {"outcome": self.outcome})
        finally:
            _local.transaction = None
            with _open_lock:
                _open_count -= 1
                if _open_count == 0:
                    watch_records(None)

    def _touch(self, container) -> None:
        self._touched[id(container)] = container
        if container.journal is self.journal:  # (those of other journals are units there)
            _live[self._writer, container.container_id] = container


def _watch(container) -> None:
    """The record watcher while transactions are open: note the containers of this
    thread's transaction (it runs before every record of every container: keep it short)."""
    txn = getattr(_local, "transaction", None)
    if txn is not None and id(container) not in txn._touched:
        txn._touch(container)


def transaction(note: str = "", user: str | None = None, journal: Journal | None = None) -> Transaction:
    """Group the operations this thread makes on the containers of ``journal`` (default:
    the default journal) inside ``with`` into one unit of the undo log::

        with safe_data.transaction(note="move the order") as txn:
            pending.remove(order)
            shipped.append(order)
        safe_data.undo(txn)   # both back as they were

    One transaction per thread at a time: opening a second raises TransactionError.
    An exception inside ends the unit with outcome "failed"; what it changed stays
    changed (``safe_data.undo(txn)`` reverts it).
    """
    return Transaction(_support.resolve_journal(journal), note, user)


# --- the undo log ----------------------------------------------------------------------------


class Unit:
    """One entry of the undo log: a transaction, or one operation made outside any.

    ``id``; ``note`` and ``user`` (None for an operation outside a transaction);
    ``start`` and ``end`` (datetimes; ``start_ns``/``end_ns``); ``outcome``: "committed",
    "failed", "open" (no end marker: still running, or its process died) or None (an
    operation outside a transaction); ``containers``: the names it changed, in order;
    ``records``: its records, oldest first; ``writer`` and ``thread``; ``undoes`` or
    ``redoes``: the id of the unit it reverted or re-applied (units undo() and redo()
    write); ``undone``: whether it is undone now (by a later undo not redone since).
    """

    __slots__ = (
        "id",
        "note",
        "user",
        "start_ns",
        "end_ns",
        "outcome",
        "records",
        "writer",
        "thread",
        "undoes",
        "redoes",
        "undone",
        "journal",
        "begin_seq",
    )

    def __init__(self, journal, first: Record, begin: bool):
        self.journal = journal
        self.writer, self.thread = first.writer, first.thread
        self.id = unit_id(first.writer, first.seq)
        self.begin_seq = first.seq if begin else None  # a transaction's begin marker
        values = first.values if begin and isinstance(first.values, dict) else {}
        self.note, self.user = values.get("note"), values.get("user")
        self.undoes, self.redoes = values.get("undo"), values.get("redo")
        self.start_ns = self.end_ns = first.time_ns
        self.outcome = OPEN if begin else None
        self.records: list[Record] = [] if begin else [first]
        self.undone = False

    def __repr__(self):
        return f"<Unit {self.id} {self.note!r} {self.outcome or 'operation'} {', '.join(self.containers)}>"

    @property
    def start(self) -> datetime:
        return _datetime(self.start_ns)

    @property
    def end(self) -> datetime:
        return _datetime(self.end_ns)

    @property
    def containers(self) -> list[str]:
        return list(dict.fromkeys(r.container for r in self.records))

    @property
    def is_transaction(self) -> bool:
        return self.begin_seq is not None

    @property
    def identities(self) -> list[tuple[int, int | None]]:
        """The (writer, container_id) of the containers it changed, in order."""
        return list(dict.fromkeys(_identity(r) for r in self.records))


def _datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def undo_log(journal: Journal | None = None, last: int | None = None) -> list[Unit]:
    """The units of the journal, newest first (the ``last`` newest, if given): each
    transaction, and each operation made outside one (see :class:`Unit`)."""
    if last is not None and last < 0:
        raise ValueError("last must be at least 0")
    units = _Log(_support.resolve_journal(journal)).units
    newest_first = units[::-1]
    return newest_first if last is None else newest_first[:last]


class _Log:
    """The units of a journal, read in one pass, with every record by container."""

    def __init__(self, journal):
        self.journal = journal
        self.units: list[Unit] = []  # by their first record, oldest first
        self.by_id: dict[str, Unit] = {}
        self.by_identity: dict[tuple, list[Record]] = {}
        self.unit_of: dict[tuple[int, int], Unit] = {}  # (writer, seq) of a record -> its unit
        open_units: dict[tuple[int, int], Unit] = {}  # (writer, thread) -> its open transaction
        last_unit: dict[tuple[int, int], Unit] = {}  # (writer, thread) -> its latest unit
        for record in journal.records():  # each writer's records in seq order
            where = (record.writer, record.thread)
            if record.kind == "txn":
                if record.op == "begin":
                    unit = Unit(journal, record, True)
                    open_units[where] = self._add(unit)
                    last_unit[where] = unit
                else:
                    unit = open_units.pop(where, None)
                    if unit is not None and record.key == unit.begin_seq and isinstance(record.values, dict):
                        unit.outcome = record.values.get("outcome")
                        unit.end_ns = record.time_ns
                continue
            self.by_identity.setdefault(_identity(record), []).append(record)
            unit = open_units.get(where)
            if unit is None:
                previous = last_unit.get(where)
                if (
                    previous is not None
                    and not previous.is_transaction
                    and _second(previous.records[-1], record)
                ):
                    unit = previous
                else:
                    unit = self._add(Unit(journal, record, False))
                    last_unit[where] = unit
                    self.unit_of[record.writer, record.seq] = unit
                    continue
            unit.records.append(record)
            unit.end_ns = max(unit.end_ns, record.time_ns)
            self.unit_of[record.writer, record.seq] = unit
        for unit in self.units:  # the latest undo or redo of a unit says whether it is undone
            target = self.by_id.get(unit.undoes or unit.redoes or "")
            if target is not None and unit.outcome == "committed":
                target.undone = unit.undoes is not None

    def _add(self, unit: Unit) -> Unit:
        self.units.append(unit)
        self.by_id[unit.id] = unit
        return unit


def _second(first: Record, record: Record) -> bool:
    """Whether ``record`` is the second record of the operation that wrote ``first``."""
    return (
        record.seq == first.seq + 1
        and _identity(record) == _identity(first)
        and _SECOND_RECORD.get((first.kind, first.op)) == record.op
    )


# --- undo and redo ---------------------------------------------------------------------------


@overload
def undo(target: Container, n: int = 1) -> list[Record]: ...


@overload
def undo(
    target: Transaction | Unit | str,
    *,
    containers: Iterable = (),
    user: str | None = None,
    journal: Journal | None = None,
) -> Transaction: ...


def undo(
    target, n: int = 1, *, containers: Iterable = (), user: str | None = None, journal: Journal | None = None
) -> Any:
    """Undo a unit, or the last ``n`` operations of one container.

    ``target`` is a :class:`Transaction`, a :class:`Unit` of :func:`undo_log` or a unit
    id (of ``journal``, default the default journal): every container it changed goes
    back to its state before the unit, the one changed last first, as one unit (by
    ``user``) that the undo log shows and :func:`redo` reverts.  The containers must be
    alive in this process: those that recorded inside a transaction are found; pass the
    others as ``containers``.  UndoError, with nothing changed, when the unit cannot be
    undone exactly: undone already, a container changed since by another unit, not
    versioned, not alive, or made by another process.  Returns the transaction the undo
    wrote.

    A container (SafeList, SafeDict, SafeSet): its last ``n`` operations, as
    ``container.undo(n)`` (docs/history.md).
    """
    if isinstance(target, (Transaction, Unit, str)):
        if n != 1:
            raise ValueError("n applies to a container's operations, not to a unit")
        return _revert(target, redoing=False, containers=containers, user=user, journal=journal)
    return undo_container(target, n)


def redo(
    target, *, containers: Iterable = (), user: str | None = None, journal: Journal | None = None
) -> Transaction:
    """Re-apply a unit that :func:`undo` reverted (``target`` as for undo): each
    container goes back to the state the unit left, as one new unit.  UndoError, with
    nothing changed, if the unit is not undone now, or a container changed since."""
    if not isinstance(target, (Transaction, Unit, str)):
        raise TypeError(
            f"redo() re-applies a unit (a transaction, an undo_log() entry or its id), "
            f"not a {type(target).__name__}"
        )
    return _revert(target, redoing=True, containers=containers, user=user, journal=journal)


def _revert(target, *, redoing: bool, containers: Iterable, user, journal) -> Transaction:
    journal, wanted = _journal_and_id(target, journal)
    with journal.operation_lock:  # nothing of this process changes between the checks and the change
        log = _Log(journal)
        unit = _unit(log, wanted)
        plan = [_Change(log, unit, identity, redoing, containers) for identity in _order(unit)]
        verb = "redo" if redoing else "undo"
        with Transaction(journal, f"{verb} {unit.id}", user, {verb: unit.id}) as txn:
            for change in plan:
                change.apply()
    return txn


def _journal_and_id(target, journal) -> tuple:
    if isinstance(target, Transaction):
        if target.id is None:
            raise UndoError("that transaction has not begun: there is nothing to undo")
        if target.outcome is None:
            raise UndoError(f"transaction {target.id} ({target.note!r}) is still open: end it first")
        return target.journal, target.id
    if isinstance(target, Unit):
        return target.journal, target.id
    return _support.resolve_journal(journal), target


def _unit(log: _Log, wanted: str) -> Unit:
    unit = log.by_id.get(wanted)
    if unit is None:
        raise UndoError(f"the journal {log.journal.path} has no unit {wanted!r}; undo_log() lists them")
    if unit.undoes or unit.redoes:
        raise UndoError(
            f"unit {unit.id} is the {'undo' if unit.undoes else 'redo'} of "
            f"{unit.undoes or unit.redoes}: undo or redo that unit instead"
        )
    if unit.outcome == OPEN:
        raise UndoError(f"unit {unit.id} ({unit.note!r}) has not ended (still open, or its process died)")
    if unit.writer != log.journal._manager.writer_id:
        raise UndoError(
            f"unit {unit.id} was made by another process (writer {unit.writer:016x}): undo "
            f"changes live containers, and those are not in this process; "
            f"safe_data.restore() rebuilds their states"
        )
    if not unit.records:
        raise UndoError(f"unit {unit.id} ({unit.note!r}) changed nothing")
    return unit


def _order(unit: Unit) -> list:
    """The identities the unit changed, the one changed last first."""
    last = {_identity(r): r.seq for r in unit.records}
    return sorted(last, key=last.__getitem__, reverse=True)


class _Change:
    """What undoing (or redoing) ``unit`` does to one container, checked on creation:
    UndoError if it cannot be done exactly."""

    def __init__(self, log: _Log, unit: Unit, identity, redoing: bool, given: Iterable):
        writer, cid = identity
        mine = [r for r in unit.records if _identity(r) == identity]
        name = mine[-1].container
        if mine[0].kind not in CONTAINER_KINDS or cid is None:
            raise UndoError(
                f"unit {unit.id} holds a {mine[0].kind!r} record ({name!r}): undo of a "
                f"unit reverts SafeList, SafeDict and SafeSet operations only"
            )
        self.container = _live_container(identity, given)
        if self.container is None:
            raise UndoError(
                f"{name!r} (container {cid}) of unit {unit.id} is not alive in this process "
                f"as a container that recorded inside a transaction: pass it, "
                f"undo(unit, containers=[...])"
            )
        if not getattr(self.container, "versioned", False):
            raise UndoError(
                f"{name!r} is not versioned: the journal knows what it discarded in unit "
                f"{unit.id}, not what it added, so the unit cannot be undone exactly "
                f"(container.undo() puts its discarded values back)"
            )
        records = log.by_identity[identity]
        others = [
            r
            for r in records
            if mine[0].seq < r.seq < mine[-1].seq and log.unit_of.get((r.writer, r.seq)) is not unit
        ]
        if others:
            raise UndoError(
                f"{name!r} was changed during unit {unit.id} by another thread "
                f"({others[0].op}, seq {others[0].seq}): the unit alone cannot be undone"
            )
        if unit.undone != redoing:
            raise UndoError(
                f"unit {unit.id} ({unit.note!r}) is already undone: redo() re-applies it"
                if unit.undone
                else f"unit {unit.id} ({unit.note!r}) is not undone: there is nothing to redo"
            )
        before = _state_through(records, mine[0].seq - 1, name, created_by=mine[0])
        after = _state_through(records, mine[-1].seq, name)
        now = _state_through(records, records[-1].seq, name)
        if now != (before if redoing else after):
            latest = log.unit_of.get((records[-1].writer, records[-1].seq))
            raise UndoError(
                f"{name!r} changed since unit {unit.id}, last in unit "
                f"{latest.id if latest else '?'} ({records[-1].op}): undo that one first; "
                f"nothing was changed"
            )
        if _contents(self.container) != now:
            raise UndoError(
                f"{name!r} is not what its records say (changed by a path that "
                f"journals nothing?): nothing was changed"
            )
        if _holds_containers(self.container):
            raise UndoError(
                f"{name!r} holds safe containers: undo of a unit reverts flat "
                f"containers; undo the nested ones one by one with container.undo()"
            )
        self.kind, self.name = mine[0].kind, name
        self.undone_seqs = tuple(r.seq for r in mine)
        self.target = after if redoing else before

    def apply(self) -> None:
        c = self.container
        _record(c, self.kind, "undo", self.undone_seqs, _contents(c))
        _replace(c, self.kind, self.target)
        _record(c, self.kind, "snapshot", None, _contents(c))


def _live_container(identity, given: Iterable):
    for container in given:
        if (container.journal._manager.writer_id, container.container_id) == identity:
            return container
    return _live.get(identity)


def _state_through(records: list[Record], last_seq: int, name: str, created_by: Record | None = None):
    """The state the records up to seq ``last_seq`` leave, replayed from the last snapshot
    among them; before the container's first snapshot, empty if ``created_by`` (the
    unit's first record) is that snapshot."""
    upto = [r for r in records if r.seq <= last_seq]
    bases = [r for r in upto if r.op == "snapshot"]
    if not bases:
        if created_by is not None and created_by.op == "snapshot" and created_by is records[0]:
            return _EMPTY[created_by.kind]()  # created inside the unit
        raise UndoError(
            f"the journal no longer holds a snapshot of {name!r} before that moment "
            f"(purged?): its state then is unknown; nothing was changed"
        )
    return replay_by_seq(upto, bases[-1])


def _holds_containers(container) -> bool:
    values = container.values() if isinstance(container, dict) else container
    return any(isinstance(v, (SafeList, SafeDict, SafeSet)) for v in values)


def _replace(container, kind: str, state) -> None:
    """Make ``container`` hold ``state`` through the builtin's own methods (journaled by
    the caller)."""
    if kind == "list":
        list.__setitem__(container, slice(None), state)
    elif kind == "dict":
        dict.clear(container)
        dict.update(container, state)
    else:
        set.clear(container)
        set.update(container, state)
