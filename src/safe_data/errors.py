"""The exception hierarchy.  Every error says what happened and what to do about it.

When a destructive call raises one of these, the container was not changed: the value
was neither journaled nor discarded.
"""

from __future__ import annotations


class SafeDataError(Exception):
    """Base class of every safe_data error."""


class JournalError(SafeDataError):
    """The journal could not take a record."""


class JournalFullError(JournalError, OSError):
    """The quota (``max_bytes``) or the filesystem is full."""


class JournalClosedError(JournalError):
    """The journal was closed; containers bound to it can no longer discard."""


class JournalReadOnlyError(JournalError):
    """The journal was opened with ``readonly=True``; containers bound to it cannot discard."""


class RecordTooLargeError(JournalError, ValueError):
    """One record would exceed the 4 GiB frame limit of the format."""


class UnpicklableValueError(SafeDataError, TypeError):
    """A discarded value can be neither encoded nor pickled, so it cannot be preserved."""

    def __init__(self, value, cause: BaseException):
        self.value_type = type(value)
        super().__init__(
            f"cannot preserve a {type(value).__module__}.{type(value).__qualname__} value: "
            f"it is not picklable ({cause}); the container was not changed. Make the type "
            f"picklable (define __reduce__) or remove it by a non-safe path."
        )


class ReentrantChangeError(SafeDataError, RuntimeError):
    """Code that an operation of a safe container ran (a value's ``__reduce__``, ``__eq__``
    or ``__hash__``, a finalizer) tried to change that same container.

    That inner change is refused and the container is left as the operation leaves it;
    adding through a plain ``SafeList``'s or ``SafeSet``'s own methods is always allowed.
    """

    def __init__(self, name: str):
        self.container = name
        super().__init__(
            f"container {name!r} cannot be changed by code that runs inside one of its own "
            f"operations (a value's __reduce__, __eq__ or __hash__, or a finalizer); that "
            f"change was refused. Change it after the operation returns."
        )


class CorruptRecordError(SafeDataError, ValueError):
    """A record failed verification while it was decoded."""


class CorruptSegmentError(SafeDataError):
    """A segment holds a torn or corrupt frame (raised by readers asked to be strict)."""

    def __init__(self, problem):
        self.problem = problem
        super().__init__(str(problem))


class UndoError(SafeDataError):
    """There is nothing (or not enough) left to undo, or the container changed too much."""


class TransactionError(SafeDataError, RuntimeError):
    """A transaction was opened where it cannot be: another one is open in the thread, or
    the same one is entered twice."""


class AmbiguousNameError(SafeDataError, LookupError):
    """Several containers had that name at that moment, none of them the obvious one
    (``restore_all``): pick one by identity.  A LookupError but not a KeyError, so that
    ``.get(name)`` does not quietly answer None."""

    def __init__(self, name: str, identities):
        self.name = name
        self.identities = list(identities)
        which = ", ".join(f"{writer:016x}:{cid}" for writer, cid in self.identities)
        super().__init__(
            f"{len(self.identities)} containers were named {name!r} then ({which}), each changed "
            f"after another was created, so the name alone does not say which one is meant; "
            f"`.ambiguous[{name!r}]` has each one's state by (writer, container_id)"
        )


class IncompleteHistoryError(SafeDataError):
    """The journal cannot say what a container held at that time.

    ``reason`` says why: ``"unknown"`` (no record has that name), ``"not created"`` (a
    versioned container asked for a moment before its creation), ``"not versioned"``
    (only its discards were recorded), ``"several writers"`` (more than one container of
    that name, in one process or several, changed after its last snapshot), ``"nested"``
    (a container nested inside it has no exact history for that moment), ``"no identity"``
    (``restore_all``: records older than container identities), ``"forgotten"`` (records
    of that name were forgotten on request: ``safe_data.forget``), ``"shredded"`` (records
    of that name were in a segment whose data key a forget destroyed, as ``pull`` found
    it: crypto-shredding).  ``partial``
    holds what the journal does know, as a dict, list or set: the values the container
    discarded after that time (so it held them then); for several writers, the state the
    last snapshot's container left; for a nested one, the state with the copies of the
    nested containers recorded when they were stored; empty before its creation.  It is
    None only for an unknown name.
    """

    _MESSAGES = {
        "unknown": "the journal has no record of a container named {name!r}; `safe-data log` "
        "lists the names it has",
        "not created": "{name!r} did not exist yet {when}: it was created (versioned) at "
        "{first}. `.partial` is empty.",
        "not versioned": "the journal cannot rebuild {name!r} {when}: it was not created with "
        "versioned=True, so only what it discarded was recorded, not what it "
        "held. `.partial` has the values it is known to have held; create it "
        "with versioned=True for exact restores.",
        "nested": "the journal cannot rebuild {name!r} {when}: a container nested inside it "
        "has no exact history then (it was not versioned, belongs to another "
        "journal, or its records are missing). `.partial` has the state with the "
        "copies of the nested containers recorded when they were stored.",
        "no identity": "the journal cannot rebuild {name!r} {when} among the other containers: its "
        "records were written before records carried container identities "
        "(format revision 3); restore({name!r}) rebuilds it on its own.",
        "forgotten": "the journal cannot rebuild {name!r} {when}: records of that name were "
        "forgotten on request (`safe-data forget --log` lists them). `.partial` has "
        "the values it is known to have held among the records left.",
        "shredded": "the journal cannot rebuild {name!r} {when}: records of that name were in a "
        "backed-up segment whose data key a forget destroyed, so it cannot be read "
        "(`safe-data forget --log` lists them). `.partial` has the values it is known to "
        "have held among the records left.",
        "several writers": "the journal cannot rebuild {name!r} {when}: after its last snapshot, "
        "more than one container of that name (in one process or several) "
        "changed, so no one state follows from the records. `.partial` has "
        "the state the last snapshot's container left; give each container "
        "a name of its own.",
    }

    def __init__(self, name, at, partial, reason: str = "not versioned", first=None):
        self.name = name
        self.at = at
        self.partial = partial
        self.reason = reason
        when = "now" if at is None else f"at {at}"
        super().__init__(self._MESSAGES[reason].format(name=name, when=when, first=first))


class RevisionConflictError(SafeDataError):
    """A file changed since its revision was taken: committing would silently overwrite
    another writer's update (``safe_data.atomic``, ``check_revision``)."""

    def __init__(self, path: str, expected, found):
        self.path = path
        self.expected = expected
        self.found = found
        now = "was deleted" if found is None else f"is now at revision {found}"
        was = "did not exist" if expected is None else f"was at revision {expected}"
        super().__init__(
            f"{path} changed underneath: it {was} when read and {now}; nothing was written. "
            f"Open it again, reapply your change to what it holds now, and commit that."
        )


class MissingDependencyError(SafeDataError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class JournalWarning(UserWarning):
    """A reader found a torn or corrupt frame (the warning names segment and offset)."""


class DiscardHookWarning(JournalWarning):
    """An ``on_discard`` callback raised; the record it was told about is in the journal."""
