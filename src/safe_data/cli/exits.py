"""The exit codes of ``safe-data`` and :class:`Failure`, the error that carries one."""

from __future__ import annotations

import click

#: exit codes scripts can rely on (docs/cli.md)
EXIT_OK = 0
EXIT_FAILED = 1  # the journal is damaged, or the command failed
EXIT_USAGE = 2  # click's usage errors
EXIT_NOT_FOUND = 3  # no journal, no matching record, unknown container
EXIT_REFUSED = 4  # would lose or misstate data without --force / --partial
EXIT_PARTIAL = 5  # done in part: purge kept segments no remote backup acknowledged
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `producer | head`


class Failure(click.ClickException):
    """An error for stderr and the exit code that goes with it."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self._exit_code = exit_code

    @property  # click reads it; it declares exit_code a class variable
    def exit_code(self) -> int:  # type: ignore[override]
        return self._exit_code
