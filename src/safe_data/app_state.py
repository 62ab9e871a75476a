"""The whole application at one moment: every versioned container's state, restored
together from one read of the journal (``safe_data.restore_all``).

The moment is a cut through each writer's records (docs/history.md, "One moment across
processes"): of each writer, its records up to its last one stamped at or before the
moment, in the writer's own order (seq).  Every container belongs to one writer, so each
one's state is a state it really had; across writers the cut is as consistent as their
clocks.
"""

from __future__ import annotations

from collections.abc import Mapping

from .containers import _support
from .errors import AmbiguousNameError, IncompleteHistoryError
from .history import _each_nested, _identity, _partial, _unmark, global_order, replay_by_seq
from .journal.codec import NestedContainer
from .journal.journal import to_ns
from .transactions import CONTAINER_KINDS, unit_id

TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:
    from typing import Any

    from .journal.journal import Journal

    Identity = tuple[int, int]


class AppState(Mapping):
    """What :func:`restore_all` found: a read-only mapping of container name to state.

    ``app["orders"]`` is the state of the container named "orders" then: a list, dict or
    set, nested containers restored inside.  A name several containers had is resolved to
    the one created last when the others had stopped changing by then (an application
    restarted: today's "orders", not yesterday's); otherwise it raises
    :class:`AmbiguousNameError` and ``ambiguous[name]`` holds each one's state by
    identity.  A name of containers whose state the journal cannot know (not versioned,
    or a nested container that is not) raises its :class:`IncompleteHistoryError`, also
    in ``incomplete[name]``.  ``in name`` and iteration cover the names that restore.

    ``by_identity``: the state of every versioned container, by (writer, container_id),
    nested ones included; ``names``: the name each had then; ``open_transactions``: the
    ids of the transactions begun but not ended at the moment (their changes so far are
    in the states); ``at_ns``: the moment (None: after the last record).
    """

    def __init__(self, at_ns, states, by_identity, names, ambiguous, incomplete, open_transactions):
        self.at_ns: int | None = at_ns
        self._states: dict[str, Any] = states
        self.by_identity: dict[Identity, Any] = by_identity
        self.names: dict[Identity, str] = names
        self.ambiguous: dict[str, dict[Identity, Any]] = ambiguous
        self.incomplete: dict[str, IncompleteHistoryError] = incomplete
        self.open_transactions: list[str] = open_transactions

    def __getitem__(self, name: str):
        if name in self._states:
            return self._states[name]
        if name in self.ambiguous:
            raise AmbiguousNameError(name, self.ambiguous[name])
        if name in self.incomplete:
            raise self.incomplete[name]
        raise KeyError(name)

    def __contains__(self, name) -> bool:
        return name in self._states

    def __iter__(self):
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)

    def __repr__(self):
        extra = "".join(
            f", {label}={sorted(names)!r}"
            for label, names in (("ambiguous", self.ambiguous), ("incomplete", self.incomplete))
            if names
        )
        return f"<AppState at={self.at_ns} {self._states!r}{extra}>"


def restore_all(at=None, journal: Journal | None = None) -> AppState:
    """The state of every container of ``journal`` (default: the default journal), of
    every process that wrote to it, at moment ``at`` (as for :func:`restore`; default:
    after the last record).  See :class:`AppState`.

    The journal is read once, whole: what follows ``at`` is needed too, as a plain
    container is known only by what it discarded afterwards, and a writer whose clock
    stepped back wrote some of its records of the moment with a later time.
    """
    journal = _support.resolve_journal(journal)
    cut = to_ns(at)
    upto, later = _cut(list(journal.records(nested_ids=True)), cut)
    return _Restorer(at, cut, upto, later).result()


def _cut(records: list, cut: int | None) -> tuple[list, list]:
    """(the records of the moment ``cut``, those after it): of each writer, its records
    up to its last one stamped at or before ``cut``, in its own order (seq)."""
    if cut is None:
        return records, []
    last_seq: dict[int, int] = {}
    for r in records:
        if r.time_ns <= cut:
            last_seq[r.writer] = max(r.seq, last_seq.get(r.writer, 0))
    upto: list = []
    later: list = []
    for r in records:
        (upto if r.seq <= last_seq.get(r.writer, 0) else later).append(r)
    return upto, later


class _Restorer:
    def __init__(self, at, cut, records, later):
        self.at, self.cut = at, cut
        self.included: dict[Identity, list] = {}
        self.legacy: dict[str, list] = {}  # records without an identity, by name
        self.open: dict[tuple[int, int], int] = {}  # (writer, thread) -> seq of an open begin
        for r in sorted(records, key=lambda r: (r.writer, r.seq)):
            if r.kind == "txn":
                self._marker(r)
            elif r.kind in CONTAINER_KINDS:
                if r.container_id is None:
                    self.legacy.setdefault(r.container, []).append(r)
                else:
                    self.included.setdefault(_identity(r), []).append(r)
        self.everything = {identity: list(rs) for identity, rs in self.included.items()}
        self.names = {identity: rs[-1].container for identity, rs in self.included.items()}
        for r in later:
            if r.kind in CONTAINER_KINDS and r.container_id is not None:
                self.everything.setdefault(_identity(r), []).append(r)
                self.names.setdefault(_identity(r), r.container)  # its name closest to the moment
        self.raw: dict[Identity, Any] = {}  # versioned: its state, nested containers marked
        self.plain: list[Identity] = []  # only its discards are known
        for identity, rs in self.everything.items():
            upto = self.included.get(identity, [])
            snapshots = [r for r in upto if r.op == "snapshot"]
            if snapshots:
                self.raw[identity] = replay_by_seq(upto, snapshots[-1])
            elif upto or not any(r.op == "snapshot" for r in rs):  # (else created after the moment)
                self.plain.append(identity)

    def _marker(self, r):
        if r.op == "begin":
            self.open[r.writer, r.thread] = r.seq
        elif self.open.get((r.writer, r.thread)) == r.key:
            del self.open[r.writer, r.thread]

    def result(self) -> AppState:
        names = self.names
        nested: set = set()  # the containers inside another one's state (numbers are per writer)
        for (writer, _), state in self.raw.items():

            def note(inner, writer=writer):
                nested.add((writer, inner.container_id))
                return inner.value

            _each_nested(state, note)
        by_identity: dict = {}
        incomplete: dict[str, IncompleteHistoryError] = {}
        for identity, state in self.raw.items():
            try:
                by_identity[identity] = self._resolved(identity[0], state)
            except _NotVersioned:
                if identity not in nested:  # (else its parent reports it)
                    incomplete[names[identity]] = IncompleteHistoryError(
                        names[identity], self.at, _unmark(state), "nested"
                    )
        plain: dict[str, list] = {}
        for identity in self.plain:
            plain.setdefault(names[identity], []).extend(self.everything[identity])
        for name, rs in plain.items():
            rs.sort(key=global_order)
            since = None if self.cut is None else self.cut + 1
            incomplete[name] = IncompleteHistoryError(name, self.at, _partial(rs, since))
        for name in self.legacy:
            incomplete[name] = IncompleteHistoryError(name, self.at, None, "no identity")
        top = {identity: names[identity] for identity in by_identity if identity not in nested}
        states, ambiguous = self._by_name(top, by_identity)
        return AppState(
            self.cut,
            states,
            by_identity,
            names,
            ambiguous,
            incomplete,
            [unit_id(writer, seq) for (writer, _), seq in self.open.items()],
        )

    def _resolved(self, writer, state):
        """``state`` with each nested container replaced by its own state (restored)."""

        def nested_state(n: NestedContainer):
            if not n.container_id or (writer, n.container_id) not in self.raw:
                raise _NotVersioned
            return self.raw[writer, n.container_id]

        return _each_nested(state, nested_state)

    def _by_name(self, top: dict, by_identity: dict):
        """(name -> state, name -> {identity: state} for the names that stay ambiguous)."""
        holders: dict[str, list] = {}
        for identity, name in top.items():
            holders.setdefault(name, []).append(identity)
        states, ambiguous = {}, {}
        for name, identities in holders.items():
            newest = max(identities, key=lambda i: global_order(self.included[i][0]))
            created = global_order(self.included[newest][0])
            if all(global_order(self.included[i][-1]) < created for i in identities if i != newest):
                states[name] = by_identity[newest]
            else:
                ambiguous[name] = {i: by_identity[i] for i in identities}
        return states, ambiguous


class _NotVersioned(Exception):
    """A nested container has no exact history for the moment."""
