"""The ``safe-data`` click group: the global ``--journal`` option, the exit codes of a
closed pipe, Ctrl-C and OS errors, and the commands it runs."""

from __future__ import annotations

import os
import sys

import click

import safe_data

from .exits import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, Failure
from .exporting import export
from .files import file_versions, restore_file
from .forgetting import forget
from .keys import keygen
from .listing import log, show
from .maintenance import purge, stats, verify
from .output import IMPLEMENTATION
from .params import journal_option
from .restoring import restore
from .serving import serve
from .shipping import check_remote, pull, push
from .walkthrough import demo


class _Group(click.Group):
    """Turns a closed output pipe and Ctrl-C into quiet exits with their own codes
    (click's default, 1, would read as "problems found")."""

    def invoke(self, ctx):
        try:
            try:
                return super().invoke(ctx)
            finally:
                sys.stdout.flush()  # a closed pipe must surface here, not at interpreter exit
        except BrokenPipeError:
            _discard_stdout()
            raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except (OSError, safe_data.SafeDataError) as exc:  # a permission, a full disk, a
            raise Failure(str(exc)) from None  # refused key: a message


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the final flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@click.group(cls=_Group)
@click.version_option(
    safe_data.__version__,
    prog_name="safe-data",
    message=f"%(prog)s, version %(version)s ({IMPLEMENTATION}, Python {sys.version.split()[0]})",
)
@journal_option(
    "Journal directory (default: $SAFE_DATA_HOME, else the platform's user "
    "data directory); also accepted after the command."
)
def main() -> None:
    """See, restore and protect what your program discarded.

    Exit codes: 0 ok, 1 damaged journal or failure, 2 usage error, 3 nothing matched,
    4 refused without --partial, 5 done in part (docs/cli.md).
    """


_SAME_JOURNAL = "Journal directory, as --journal before the command."
for _command in (
    demo,
    log,
    show,
    export,
    restore,
    file_versions,
    restore_file,
    verify,
    stats,
    purge,
    forget,
    push,
    pull,
    check_remote,
):
    main.add_command(journal_option(_SAME_JOURNAL)(_command))
main.add_command(keygen)
main.add_command(serve)  # its --journal is the journal its web view shows
