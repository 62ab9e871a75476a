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


class CorruptRecordError(SafeDataError, ValueError):
    """A record failed verification while it was decoded."""


class CorruptSegmentError(SafeDataError):
    """A segment holds a torn or corrupt frame (raised by readers asked to be strict)."""

    def __init__(self, problem):
        self.problem = problem
        super().__init__(str(problem))


class UndoError(SafeDataError):
    """There is nothing (or not enough) left to undo, or the container changed too much."""


class IncompleteHistoryError(SafeDataError):
    """The journal cannot say what a container held at that time.

    ``partial`` holds what it does know: the values the container discarded after that
    time (so it held them then), as a dict, list or set, or None if it saw nothing.
    """

    def __init__(self, name, at, partial):
        self.name = name
        self.at = at
        self.partial = partial
        when = "now" if at is None else f"at {at}"
        super().__init__(
            f"the journal cannot rebuild {name!r} {when}: it was not created with versioned=True, "
            f"so only what it discarded was recorded, not what it held. `.partial` has the values "
            f"it is known to have held; create it with versioned=True for exact restores."
        )


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
