"""``restore``: a container's past state, or what it discarded, as JSON or a pickle."""

from __future__ import annotations

import pickle
import sys

import click

import safe_data

from ..errors import IncompleteHistoryError
from ..journal import format as fmt
from ..present import dumps
from .exits import EXIT_NOT_FOUND, EXIT_REFUSED, Failure
from .journal_view import _journal_dir
from .output import _is_terminal, _progress, _warn, _warnings_to_stderr
from .params import TIME


@click.command()
@click.argument("name", required=False)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Every container at one moment (restore_all): a JSON object of the states by "
    "name, the ambiguous names by identity and what cannot be restored.",
)
@click.option(
    "--at",
    type=TIME,
    help="The state at this time (default: after the last record); "
    "with --discarded: what was discarded before it.",
)
@click.option(
    "--discarded",
    "only_discarded",
    is_flag=True,
    help="Write every value NAME discarded instead of its state.",
)
@click.option(
    "--format", "out_format", type=click.Choice(["json", "pickle"]), default="json", show_default=True
)
@click.option(
    "--output", "-o", default="-", metavar="FILE", show_default=True, help="Where to write (- for stdout)."
)
@click.option(
    "--partial", is_flag=True, help="When the state cannot be rebuilt exactly, write what is known of it."
)
@click.pass_obj
def restore(journal_path, name, everything, at, only_discarded, out_format, output, partial) -> None:
    """Write a container's past state, or what it discarded; or, with --all, every
    container's.

    Writes container NAME's state (or, with --discarded, its discarded values) as JSON
    or a pickle.  The state is exact for containers created with versioned=True; for
    others only what they discarded is known, so restore refuses (exit 4) unless
    --partial is given.  With --all (and no NAME), the states of every versioned
    container at one moment; the others are listed as incomplete (with --partial, with
    what is known of them).
    """
    if everything and (name is not None or only_discarded):
        raise click.UsageError("--all restores every container: give no NAME and no --discarded")
    if not everything and name is None:
        raise click.UsageError("give a container NAME, or --all")
    if out_format == "pickle" and output == "-" and _is_terminal(sys.stdout):
        raise click.UsageError(
            "refusing to write a pickle to a terminal; use --output FILE or redirect stdout"
        )
    directory = _journal_dir(journal_path)
    if everything:
        _write_result(_everything(directory, at, partial), out_format, output)
        return
    with _warnings_to_stderr():
        # read-only: restore changes nothing (no key created, no segment recovered)
        with safe_data.Journal(directory, readonly=True) as journal, _progress(f"reading {name}", None):
            if next(journal.records(name, on_error="ignore"), None) is None:
                raise Failure(f"no records of container {name!r} in {directory}", EXIT_NOT_FOUND)
            if only_discarded:
                result = safe_data.discarded(name, journal, until=at)
            else:
                result = _state(name, at, journal, partial)
    _write_result(result, out_format, output)


def _state(name: str, at, journal, partial: bool):
    try:
        return safe_data.restore(name, at=at, journal=journal)
    except IncompleteHistoryError as exc:
        if not partial:
            raise Failure(f"{exc}\nPass --partial to write what is known.", EXIT_REFUSED) from None
        _warn(f"writing a partial state: {exc}")
        return exc.partial


def _everything(directory: str, at, partial: bool) -> dict:
    """restore_all as builtin values: the states by name, the ambiguous names' states by
    identity (``<writer>:<container_id>``), the incomplete names with their reason (and,
    with ``partial``, what is known)."""
    with (
        _warnings_to_stderr(),
        safe_data.Journal(directory, readonly=True) as journal,
        _progress("reading every container", None),
    ):
        app = safe_data.restore_all(at=at, journal=journal)
    for name in app.ambiguous:
        _warn(f'{name!r} names several containers: see "ambiguous"')
    hint = "" if partial else "; --partial writes what is known"
    for name, error in app.incomplete.items():
        _warn(f"{name!r} is not restored ({error.reason}){hint}")
    return {
        "at": None if at is None else at.isoformat(),
        "containers": dict(app),
        "ambiguous": {
            name: {f"{writer:016x}:{cid}": state for (writer, cid), state in states.items()}
            for name, states in app.ambiguous.items()
        },
        "incomplete": {
            name: {"reason": error.reason, **({"partial": error.partial} if partial else {})}
            for name, error in app.incomplete.items()
        },
        "open_transactions": app.open_transactions,
    }


def _write_result(result, out_format: str, output: str) -> None:
    if out_format == "json":
        data = (dumps(result, indent=2) + "\n").encode("utf-8")
    else:  # builtin types: a pickle that loads without safe_data installed
        data = pickle.dumps(_builtin(result), protocol=fmt.PICKLE_PROTOCOL)
    if output == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        return
    with open(output, "wb") as f:
        f.write(data)


def _builtin(value):
    for base in (list, dict, set):
        if isinstance(value, base) and type(value) is not base:
            return base(value)
    return value
