"""Getting data back: a container's history, its discarded values, undo, restore and diff.

Everything here reads the journal; nothing is kept in memory by the containers.

* A plain container journals what it *discards*, so its past states are only partly known:
  :func:`restore` then raises :class:`IncompleteHistoryError`, whose ``partial`` holds what
  the journal saw.
* A container created with ``versioned=True`` also journals what it *adds* ("insert" and
  "assign" records) and a full "snapshot" when it is created and after any change that is
  cheaper to record whole (sort, re-init, undo).  Replaying from the last snapshot is exact.

Every record carries its container's identity, ``(writer, container_id)``, besides its
name; a nested container's name is its path as of the record, which moves as the items
before it come and go.  undo() and the containers nested in a restore() go by identity:
a safe container inside a recorded value is written with its number, so the replay of a
parent knows which container stood where, and takes each one's state from its own records.
"""

from __future__ import annotations

from .containers import SafeDict, SafeList, SafeSet, _support
from .errors import IncompleteHistoryError, UndoError
from .journal import forgotten
from .journal.codec import NestedContainer
from .journal.journal import to_ns

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .containers import SafeDict, SafeList, SafeSet
    from .journal.reader import Record

    Container = SafeList[Any] | SafeDict[Any, Any] | SafeSet[Any]

#: records of versioned containers that add; they discard nothing
ADDING_OPS = frozenset({"insert", "assign", "snapshot"})


def history(name: str | Container, journal=None, *, since=None, until=None) -> list[Record]:
    """Every record of container ``name``, oldest first (see :meth:`Journal.records`).

    ``name`` is a name (the records made under it, by whichever containers had it) or a
    safe container (its own records, by identity, under whatever paths it had).
    """
    if not isinstance(name, str):
        return _records_of(name, since, until)
    journal = _support.resolve_journal(journal)
    return list(journal.records(name, since, until))


def _identity(record):
    return record.writer, record.container_id


def _records_of(container, since=None, until=None, **options) -> list:
    """The records this process made of ``container``, found by its identity among those
    under its outermost container's name."""
    journal, root = container.journal, container._b.root
    me = (journal._manager.writer_id, container.container_id)
    return [
        r
        for r in journal.records(root, since, until, nested=root != container.name, **options)
        if _identity(r) == me
    ]


def discarded(name: str | Container, journal=None, *, since=None, until=None) -> list[Any]:
    """Every value container ``name`` (a name or a container, as for :func:`history`)
    discarded, in journal order.

    List and set records contribute their items, dict records ``(key, value)`` pairs,
    row records their column dict.
    """
    out: list = []
    for record in history(name, journal, since=since, until=until):
        if record.op in ADDING_OPS:
            continue
        values = record.values
        if isinstance(values, dict) and record.kind == "dict":
            out.extend(values.items())
        elif record.kind == "row":
            out.append(values)
        else:
            out.extend(values)
    return out


# --- undo ------------------------------------------------------------------------------------


def undo(container: Container, n: int = 1) -> list[Record]:
    """Revert the last ``n`` destructive operations this process made on ``container``.

    Values go back at their index or key (sets: back in).  What the undo itself
    overwrites is journaled first (op "undo", key = the seq of the undone record), so
    nothing is lost by undoing either.  Returns the records undone, newest first.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    if not isinstance(container, (SafeList, SafeDict, SafeSet)):
        raise TypeError(
            f"undo() reverts SafeList, SafeDict and SafeSet operations, not "
            f"{type(container).__name__}'s; use history() and restore the values yourself"
        )
    journal = container.journal
    with journal.operation_lock:
        mine = _records_of(container)
        done: set[int] = set()  # the seqs undone: an undo of a whole unit names all it reverted
        for r in mine:
            if r.op == "undo":
                done.update(r.key if type(r.key) is tuple else (r.key,))
        todo = [r for r in reversed(mine) if r.op != "undo" and r.op not in ADDING_OPS and r.seq not in done][
            :n
        ]
        if len(todo) < n:
            raise UndoError(
                f"{container.name!r} has {len(todo)} operation(s) of this process left "
                f"to undo, not {n}; undo reverts this process's own operations"
            )
        for record in todo:
            gone, apply = _UNDO[record.kind](container, record)
            _record(container, record.kind, "undo", record.seq, gone)  # first: nothing is lost
            apply()
            if getattr(container, "versioned", False):
                _record(container, record.kind, "snapshot", None, _contents(container))
    return todo


def _record(container, kind, op, key, values):
    container.journal.record(kind, op, container.name, key, values, container_id=container.container_id)


# Each _undo_<kind> returns what the undo overwrites and the function that makes it.
def _undo_list(lst, record):
    key, values, op = record.key, record.values, record.op
    gone: list = []
    if op in ("pop", "remove", "del") and type(key) is int:
        changes = [(slice(key, key), values)]
    elif op == "del":
        positions = range(key.start, key.stop, key.step)
        changes = [
            (slice(p, p), [v]) for p, v in sorted(zip(positions, values, strict=True), key=lambda pv: pv[0])
        ]
    elif op == "set" and type(key) is int:
        if key >= len(lst):
            raise UndoError(f"cannot undo: {record.container!r} no longer has index {key}")
        gone = [list.__getitem__(lst, key)]
        changes = [(slice(key, key + 1), values)]
    elif op == "set":  # key: (slice of the old items, how many items replaced them)
        where, replaced_by = key
        if where.step == 1:
            where = slice(where.start, where.start + replaced_by)
        gone = list.__getitem__(lst, where)
        changes = [(where, values)]
    elif op in ("clear", "*="):
        changes = [(slice(0, 0), values)]
    else:  # init: the old contents replace the new
        gone = list(lst)
        changes = [(slice(0, len(lst)), values)]

    def apply():
        for where, items in changes:
            list.__setitem__(lst, where, items)

    return gone, apply


def _undo_dict(d, record):
    old = record.values
    gone = {
        k: dict.__getitem__(d, k)
        for k in old
        if dict.__contains__(d, k) and dict.__getitem__(d, k) is not old[k]
    }
    return gone, lambda: dict.update(d, old)


def _undo_set(s, record):
    return set(), lambda: set.update(s, record.values)


_UNDO = {"list": _undo_list, "dict": _undo_dict, "set": _undo_set}


def _contents(container):
    return {"list": list, "dict": dict, "set": set}[_kind(container)](container)


def _kind(container) -> str:
    return "list" if isinstance(container, list) else "dict" if isinstance(container, dict) else "set"


# --- restore ---------------------------------------------------------------------------------


def restore(name: str | Container, *, at=None, journal=None) -> list[Any] | dict[Any, Any] | set[Any]:
    """The contents of container ``name`` as they were at time ``at`` (default: the last
    record), rebuilt from the journal.

    ``name`` is a name, or a safe container (then its own history, by identity: say a
    nested one, whose name has changed).  ``at`` is a datetime, nanoseconds since the
    epoch, or a string as the ``safe-data`` command takes it: an ISO time (UTC when it
    names no zone) or an age (``10m``, ``2h``).

    Exact for containers created with ``versioned=True``: the last snapshot before ``at``
    is replayed forward, and so is each container nested inside it, found by identity.
    Where the journal cannot know the state it never guesses: it raises
    :class:`IncompleteHistoryError`, whose ``reason`` says why (an unknown name, a moment
    before the container was created, a container that was not versioned, several
    containers of that name, a nested container without an exact history, records of
    that name (or of the container it is nested in) forgotten on request, or in a
    backed-up segment whose data key a forget destroyed) and whose
    ``partial`` holds what the journal does know.
    """
    until = None if at is None else to_ns(at) + 1
    if not isinstance(name, str):
        container = name
        histories = _Histories(container.journal, container._b.root)  # type: ignore[union-attr]
        named = histories.of((container.journal._manager.writer_id, container.container_id))
        name = container.name
    else:
        histories = _Histories(_support.resolve_journal(journal), name)
        named = [r for r in histories.records if r.container == name]
    path = histories.journal.path
    for shredded, reason in ((False, "forgotten"), (True, "shredded")):
        if path is not None and forgotten.names(path, shredded) & {name, name.split("[", 1)[0]}:
            raise IncompleteHistoryError(name, at, _partial(named, at) if named else None, reason)
    if not named:
        raise IncompleteHistoryError(name, at, None, "unknown")
    return _restore(name, at, until, histories, named)


class _Histories:
    """The records a restore reads, by container identity: those under the outermost
    container's name, and, should a container inside have come from elsewhere, all."""

    def __init__(self, journal, root: str):
        self.journal = journal
        self.records = list(journal.records(root, nested=True, nested_ids=True))
        self._by_identity = _by_identity(self.records)
        self._looked_up: set = set()  # identities read from the whole journal

    def of(self, identity) -> list:
        if identity not in self._by_identity and identity not in self._looked_up:
            self._looked_up.add(identity)
            if identity[1] is None:  # records written before they carried a number
                everything = _by_identity(self.journal.records(nested_ids=True))
                self._by_identity.setdefault(identity, everything.get(identity, []))
            else:  # through the segments' indexes: only that container's records are read
                self._by_identity[identity] = list(self.journal.records(nested_ids=True, identity=identity))
        return self._by_identity.get(identity, [])


def _by_identity(records) -> dict:
    out: dict = {}
    for record in records:
        out.setdefault(_identity(record), []).append(record)
    return out


def _restore(name, at, until, histories, named):
    """``named``: the records made under ``name`` (or of one identity), oldest first."""
    known = [r for r in named if until is None or r.time_ns < until]
    snapshots = [r for r in known if r.op == "snapshot"]
    if not snapshots:
        created = next((r for r in named if r.op == "snapshot"), None)
        if created is not None and not any(r.op not in ADDING_OPS for r in known):
            raise IncompleteHistoryError(name, at, _EMPTY[created.kind](), "not created", first=created.time)
        raise IncompleteHistoryError(name, at, _partial(named, at))
    base = snapshots[-1]
    state = _replay(histories.of(_identity(base)), base, until)
    if any(_identity(r) != _identity(base) and _after(r, base) for r in known):
        raise IncompleteHistoryError(name, at, _unmark(state), "several writers")
    if base.container_id is None and _nested_changed(name, base, until, histories):
        # written before records carried identities: which container was where is unknown
        raise IncompleteHistoryError(name, at, state, "nested")
    try:
        return _with_nested(state, base.writer, until, histories)
    except _NoHistory:
        raise IncompleteHistoryError(name, at, _unmark(state), "nested") from None


def global_order(record) -> tuple:
    """The order of records across writers: time, then writer, then seq (docs/history.md,
    "One moment across processes"); the journal's readers merge the writers by it."""
    return record.time_ns, record.writer, record.seq


def _after(record, base) -> bool:
    return global_order(record) > global_order(base)


def _replay(records, base, until):
    """The state ``base`` (a snapshot) and the records after it up to ``until`` make."""
    state = _EMPTY[base.kind](base.values)
    for record in records:
        if _after(record, base) and (until is None or record.time_ns < until):
            _REPLAY[record.kind](state, record)
    return state


def replay_by_seq(records, base, last_seq: int | None = None):
    """The state the snapshot ``base`` and the records of its container after it make, in
    their writer's order (seq), up to seq ``last_seq``: within one writer seq, not the
    clock, orders records (docs/history.md)."""
    state = _EMPTY[base.kind](base.values)
    for record in records:
        if record.seq > base.seq and (last_seq is None or record.seq <= last_seq):
            _REPLAY[record.kind](state, record)
    return state


class _NoHistory(Exception):
    """A container nested in the state has no exact history for the moment asked."""


def _with_nested(value, writer, until, histories):
    """``value`` with each nested container (a NestedContainer, as its parent recorded
    it) replaced by its own state at ``until``, replayed from its own records."""

    def state(nested):
        records = histories.of((writer, nested.container_id)) if nested.container_id else []
        known = [r for r in records if r.op == "snapshot" and (until is None or r.time_ns < until)]
        if not known:
            raise _NoHistory
        return _replay(records, known[-1], until)

    return _each_nested(value, state)


def _unmark(value):
    """``value`` with each nested container as its parent recorded it."""
    return _each_nested(value, lambda nested: nested.value)


def _each_nested(value, state):
    """``value`` with each NestedContainer inside replaced by ``state(it)``, itself walked."""
    t = type(value)
    if t is NestedContainer:
        value = state(value)
        t = type(value)
    if t is list:
        return [_each_nested(v, state) for v in value]
    if t is dict:
        return {k: _each_nested(v, state) for k, v in value.items()}
    if t is tuple:
        return tuple(_each_nested(v, state) for v in value)
    return value


def _nested_changed(name, base, until, histories) -> bool:
    inside = name + "["
    return any(
        r.container.startswith(inside) and _after(r, base) and (until is None or r.time_ns < until)
        for r in histories.records
    )


_EMPTY = {"list": list, "dict": dict, "set": set, "row": dict}


def _replay_list(state: list, record):
    op, key, values = record.op, record.key, record.values
    if op == "insert":
        state[key:key] = values
    elif op == "assign":
        if type(key) is int:
            state[key] = values[0]
        else:
            state[key] = values
    elif op in ("pop", "remove", "del"):
        del state[key]
    elif op in ("clear", "*="):
        state.clear()
    elif op == "snapshot":
        state[:] = values
    # "set", "init", "undo": the "assign"/"snapshot" record that follows carries the change


def _replay_dict(state: dict, record):
    op, values = record.op, record.values
    if op == "assign":
        state.update(values)
    elif op in ("pop", "popitem", "del"):
        for k in values:
            state.pop(k, None)
    elif op == "clear":
        state.clear()
    elif op == "snapshot":
        state.clear()
        state.update(values)


def _replay_set(state: set, record):
    op, values = record.op, record.values
    if op == "insert":
        state.update(values)
    elif op in ("clear", "init"):
        state.clear()
    elif op == "snapshot":
        state.clear()
        state.update(values)
    elif op != "undo":  # every other set record removes its values
        state.difference_update(values)


_REPLAY: dict[str, Callable[[Any, Any], None]] = {
    "list": _replay_list,
    "dict": _replay_dict,
    "set": _replay_set,
}


def _partial(everything, at):
    """What ``everything`` (a container's records) tells of it at ``at``: what it discarded
    afterwards."""
    since = None if at is None else to_ns(at)
    records = [
        r._replace(values=_unmark(r.values))
        for r in everything
        if r.op not in ADDING_OPS and (since is None or r.time_ns >= since)
    ]
    if not records:  # nothing discarded since: nothing is known to have been held
        return _EMPTY[everything[0].kind]()
    kind = records[0].kind
    if kind == "dict":
        known: dict = {}
        for r in records:  # the first discard after `at` is the value it had at `at`
            for k, v in r.values.items():
                known.setdefault(k, v)
        return known
    if kind == "set":
        return set().union(*(r.values for r in records))
    return [v for r in records for v in r.values]


# --- diff ------------------------------------------------------------------------------------


def diff(name: str, since, until=None, *, journal=None) -> dict[str, Any]:
    """What changed in versioned container ``name`` between two times.

    For a dict: ``{"added": {...}, "removed": {...}, "changed": {key: (old, new)}}``;
    for a list: ``{"opcodes": [...]}`` as :meth:`difflib.SequenceMatcher.get_opcodes`
    gives them (over the items' reprs), with ``before`` and ``after``.
    """
    before: Any = restore(name, at=since, journal=journal)  # (a list or a dict, checked below)
    after: Any = restore(name, at=until, journal=journal)
    if isinstance(before, dict):
        return {
            "added": {k: after[k] for k in after.keys() - before.keys()},
            "removed": {k: before[k] for k in before.keys() - after.keys()},
            "changed": {
                k: (before[k], after[k]) for k in before.keys() & after.keys() if before[k] != after[k]
            },
        }
    import difflib

    matcher = difflib.SequenceMatcher(None, list(map(repr, before)), list(map(repr, after)), autojunk=False)
    return {"opcodes": matcher.get_opcodes(), "before": before, "after": after}
