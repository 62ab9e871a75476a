"""Getting data back: a container's history, its discarded values, undo, restore and diff.

Everything here reads the journal; nothing is kept in memory by the containers.

* A plain container journals what it *discards*, so its past states are only partly known:
  :func:`restore` then raises :class:`IncompleteHistoryError`, whose ``partial`` holds what
  the journal saw.
* A container created with ``versioned=True`` also journals what it *adds* ("insert" and
  "assign" records) and a full "snapshot" when it is created and after any change that is
  cheaper to record whole (sort, re-init, undo).  Replaying from the last snapshot is exact.
"""

from __future__ import annotations

from . import _support
from .errors import IncompleteHistoryError, UndoError
from .journal.journal import to_ns

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:
    from typing import Any

    from ._impl import SafeDict, SafeList, SafeSet
    from .journal.reader import Record

#: records of versioned containers that add; they discard nothing
ADDING_OPS = frozenset({"insert", "assign", "snapshot"})


def history(name: str, journal=None, *, since=None, until=None) -> list[Record]:
    """Every record of container ``name``, oldest first (see :meth:`Journal.records`)."""
    journal = _support.resolve_journal(journal)
    return list(journal.records(name, since, until))


def discarded(name: str, journal=None, *, since=None, until=None) -> list[Any]:
    """Every value container ``name`` discarded, in journal order.

    List and set records contribute their items, dict records ``(key, value)`` pairs,
    row records their column dict.
    """
    out = []
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


def undo(container: SafeList[Any] | SafeDict[Any, Any] | SafeSet[Any], n: int = 1) -> list[Record]:
    """Revert the last ``n`` destructive operations this process made on ``container``.

    Values go back at their index or key (sets: back in).  What the undo itself
    overwrites is journaled first (op "undo", key = the seq of the undone record), so
    nothing is lost by undoing either.  Returns the records undone, newest first.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    from . import _impl

    if not isinstance(container, (_impl.SafeList, _impl.SafeDict, _impl.SafeSet)):
        raise TypeError(f"undo() reverts SafeList, SafeDict and SafeSet operations, not "
                        f"{type(container).__name__}'s; use history() and restore the values yourself")
    journal = container.journal
    with journal.operation_lock:
        mine = [r for r in journal.records(container.name)
                if r.writer == journal._manager.writer_id]
        done = {r.key for r in mine if r.op == "undo"}
        todo = [r for r in reversed(mine)
                if r.op != "undo" and r.op not in ADDING_OPS and r.seq not in done][:n]
        if len(todo) < n:
            raise UndoError(f"{container.name!r} has {len(todo)} operation(s) of this process left "
                            f"to undo, not {n}; undo reverts this process's own operations")
        for record in todo:
            _UNDO[record.kind](container, record, journal)
            if getattr(container, "versioned", False):
                journal.record(record.kind, "snapshot", container.name, None, _contents(container))
    return todo


def _undo_list(lst, record, journal):
    key, values, op = record.key, record.values, record.op
    gone: list = []
    if op in ("pop", "remove", "del") and type(key) is int:
        changes = [(slice(key, key), values)]
    elif op == "del":
        positions = range(key.start, key.stop, key.step)
        changes = [(slice(p, p), [v]) for p, v in sorted(zip(positions, values), key=lambda pv: pv[0])]
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
    journal.record("list", "undo", record.container, record.seq, gone)
    for where, items in changes:
        list.__setitem__(lst, where, items)


def _undo_dict(d, record, journal):
    old = record.values
    gone = {k: dict.__getitem__(d, k) for k in old
            if dict.__contains__(d, k) and dict.__getitem__(d, k) is not old[k]}
    journal.record("dict", "undo", record.container, record.seq, gone)
    dict.update(d, old)


def _undo_set(s, record, journal):
    journal.record("set", "undo", record.container, record.seq, set())
    set.update(s, record.values)


_UNDO = {"list": _undo_list, "dict": _undo_dict, "set": _undo_set}


def _contents(container):
    return {"list": list, "dict": dict, "set": set}[_kind(container)](container)


def _kind(container) -> str:
    return "list" if isinstance(container, list) else "dict" if isinstance(container, dict) else "set"


# --- restore ---------------------------------------------------------------------------------


def restore(name: str, *, at=None, journal=None) -> list[Any] | dict[Any, Any] | set[Any]:
    """The contents of container ``name`` as they were at time ``at`` (default: the last
    record), rebuilt from the journal.

    ``at`` is a datetime, nanoseconds since the epoch, or a string as the ``safe-data``
    command takes it: an ISO time (UTC when it names no zone) or an age (``10m``, ``2h``).

    Exact for containers created with ``versioned=True``: the last snapshot before ``at``
    is replayed forward.  Where the journal cannot know the state it never guesses: it
    raises :class:`IncompleteHistoryError`, whose ``reason`` says why (an unknown name, a
    moment before the container was created, a container that was not versioned, several
    processes changing containers of that name) and whose ``partial`` holds what the
    journal does know.
    """
    journal = _support.resolve_journal(journal)
    until = None if at is None else to_ns(at) + 1
    by_name: dict[str, list] = {}
    for record in journal.records(name, nested=True):
        by_name.setdefault(record.container, []).append(record)
    if name not in by_name:
        raise IncompleteHistoryError(name, at, None, "unknown")
    return _restore(name, at, until, by_name)


def _restore(name, at, until, by_name):
    everything = by_name[name]
    records = [r for r in everything if until is None or r.time_ns < until]
    snapshots = [r for r in records if r.op == "snapshot"]
    if not snapshots:
        created = next((r for r in everything if r.op == "snapshot"), None)
        if created is not None and not any(r.op not in ADDING_OPS for r in records):
            raise IncompleteHistoryError(name, at, _EMPTY[created.kind](), "not created", first=created.time)
        raise IncompleteHistoryError(name, at, _partial(everything, at))
    base = snapshots[-1]
    state = _EMPTY[base.kind](base.values)
    others = False
    for record in records:
        if (record.time_ns, record.writer, record.seq) <= (base.time_ns, base.writer, base.seq):
            continue
        if record.writer != base.writer:
            others = True  # another process's container of that name, changed meanwhile
            continue
        _REPLAY[record.kind](state, record)
    if others:
        raise IncompleteHistoryError(name, at, state, "several writers")
    return _with_nested(name, state, at, until, base, by_name)


def _with_nested(name, state, at, until, base, by_name):
    """Overlay the histories of the containers nested in ``name`` (deep=True) on state.

    A nested container journals its own changes under its path, ``name["key"]``.  In a
    dict the path names the same container for as long as it stays under that key, so
    the value there is restored from its own records.  In a list the path is the index
    it had when it was created, which later inserts and removals move: if a container
    nested in a list changed after the snapshot, the state cannot be told and the
    error says so, rather than giving the snapshot's stale copy.
    """
    inside = name + "["
    if isinstance(state, dict):
        for key, value in state.items():
            child = _support.child_name(name, key)
            if type(value) in (list, dict, set) and child in by_name:
                try:
                    state[key] = _restore(child, at, until, by_name)
                except IncompleteHistoryError as exc:
                    if exc.reason != "not created":  # (stored before it had a history)
                        raise IncompleteHistoryError(name, at, state, "nested") from exc
        return state
    changed = any(base.time_ns < r.time_ns and (until is None or r.time_ns < until)
                  for label, rs in by_name.items() if label.startswith(inside) for r in rs)
    if changed:
        raise IncompleteHistoryError(name, at, state, "nested")
    return state


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


_REPLAY = {"list": _replay_list, "dict": _replay_dict, "set": _replay_set}


def _partial(everything, at):
    """What ``everything`` (a container's records) tells of it at ``at``: what it discarded
    afterwards."""
    since = None if at is None else to_ns(at)
    records = [r for r in everything
               if r.op not in ADDING_OPS and (since is None or r.time_ns >= since)]
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
            "changed": {k: (before[k], after[k]) for k in before.keys() & after.keys() if before[k] != after[k]},
        }
    import difflib

    matcher = difflib.SequenceMatcher(None, list(map(repr, before)), list(map(repr, after)), autojunk=False)
    return {"opcodes": matcher.get_opcodes(), "before": before, "after": after}
