"""``file-versions`` and ``restore-file``: the earlier contents of the files that
``safe_data.atomic`` stores replaced, listed and put back."""

from __future__ import annotations

import os
import sys

import click

import safe_data

from ..atomic.replace import revision_of
from ..atomic.versions import pick, restore_version, versions_in
from ..present import dumps, human_bytes, iso, writer_hex
from .exits import EXIT_NOT_FOUND, Failure
from .journal_view import _journal_dir
from .listing import matching_records
from .output import _is_terminal, _print_table, _table_time, _warn, _warnings_to_stderr
from .params import TIME

_NAME_HELP = "The store's name= if it was opened with one (default: the file's absolute path)."


@click.command("file-versions")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--name", help=_NAME_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version per line.")
@click.pass_obj
def file_versions(journal_path, path, name, as_json) -> None:
    """The earlier contents of the file PATH that the journal holds, oldest first.

    Version N held the file until the time shown, when a commit replaced it;
    "restore-file PATH --version N" puts it back.
    """
    found = _versions(journal_path, path, name)
    if as_json:
        for number, version in enumerate(found, 1):
            sys.stdout.write(
                dumps(
                    {
                        "version": number,
                        "path": version.path,
                        "time_ns": version.time_ns,
                        "time": iso(version.time_ns),
                        "bytes": len(version.content),
                        "revision": revision_of(version.content),
                        "seq": version.record.seq,
                        "writer": writer_hex(version.record.writer),
                        "pid": version.record.pid,
                    }
                )
                + "\n"
            )
        return
    _print_table(
        ("version", "replaced at (UTC)", "size", "revision", "pid"),
        [
            (
                number,
                _table_time(v.time_ns),
                human_bytes(len(v.content)),
                revision_of(v.content),
                v.record.pid,
            )
            for number, v in enumerate(found, 1)
        ],
        title=found[0].path,
    )


@click.command("restore-file")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--version",
    "number",
    type=click.IntRange(min=1),
    metavar="N",
    help="The version to restore, numbered as file-versions lists them "
    "(default: the newest, what PATH held before its last replace).",
)
@click.option("--at", type=TIME, help="The content PATH had at this time.")
@click.option("--name", help=_NAME_HELP)
@click.option(
    "--output", "-o", metavar="FILE", help="Write the version there (- for stdout) instead of replacing PATH."
)
@click.option("--json", "as_json", is_flag=True, help="What was restored, as one JSON object.")
@click.pass_obj
def restore_file(journal_path, path, number, at, name, output, as_json) -> None:
    """Put an earlier content of the file PATH back.

    PATH is replaced atomically and durably, as a commit replaces it, and what it holds
    now is journaled first: running restore-file again undoes the restore.
    """
    if number is not None and at is not None:
        raise click.UsageError("give --version or --at, not both")
    if as_json and output == "-":
        raise click.UsageError("--json and --output - would both write to stdout: give a FILE")
    index = None if number is None else number - 1
    try:
        if output is not None:
            version = pick(_versions(journal_path, path, name), path, index, at)
            _write(version.content, output)
        else:
            with _warnings_to_stderr(), safe_data.Journal(_journal_dir(journal_path)) as journal:
                version = restore_version(path, index, at=at, journal=journal, name=name)
    except LookupError as exc:
        raise Failure(str(exc), EXIT_NOT_FOUND) from None
    if as_json:
        sys.stdout.write(
            dumps(
                {
                    "path": version.path,
                    "output": output and os.path.abspath(output),
                    "time_ns": version.time_ns,
                    "time": iso(version.time_ns),
                    "bytes": len(version.content),
                    "revision": revision_of(version.content),
                }
            )
            + "\n"
        )
    elif output is None:
        click.echo(
            f"restored {version.path} to what it held until {iso(version.time_ns)} "
            f"({human_bytes(len(version.content))}); what it held before is journaled, "
            f"so restore-file again undoes this"
        )


def _versions(journal_path, path: str, name: str | None):
    """The versions of PATH, read without opening the journal; exit 3 if there are none."""
    directory = _journal_dir(journal_path)
    file = os.path.realpath(path)
    found = versions_in(matching_records(directory, containers=(name or file,)), file, _warn)
    if not found:
        raise Failure(f"the journal {directory} holds no earlier version of {file}", EXIT_NOT_FOUND)
    return found


def _write(content: bytes, output: str) -> None:
    if output == "-":
        if _is_terminal(sys.stdout) and not _is_text(content):
            raise click.UsageError(
                "refusing to write binary content to a terminal; use --output FILE or redirect stdout"
            )
        sys.stdout.flush()
        sys.stdout.buffer.write(content)
        return
    with open(output, "wb") as f:
        f.write(content)


def _is_text(content: bytes) -> bool:
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
