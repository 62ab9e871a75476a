"""``export``: every record that matches, to a JSON Lines or a Parquet file."""

from __future__ import annotations

import itertools
import os
import tempfile

import click

from ..present import dumps, record_fields
from .exits import EXIT_NOT_FOUND, Failure
from .journal_view import _journal_dir
from .listing import matching_records
from .output import _count, _progress
from .params import TIME

#: records per Parquet row group: what a Parquet export holds in memory at a time
ROW_GROUP = 65_536
#: records per write of a JSON Lines export, and per step of the progress bar
JSONL_CHUNK = 4096
#: the columns that hold a decoded value, as the JSON text "log --json" writes for it
JSON_COLUMNS = ("key", "values", "caller")


@click.command()
@click.option("--since", type=TIME, help="Only records at or after this time (ISO, or an age: 10m, 2h, 1d).")
@click.option("--until", type=TIME, help="Only records before this time.")
@click.option("--container", metavar="NAME", help="Only this container's records.")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["jsonl", "parquet"]),
    required=True,
    help="jsonl: one JSON object per line; parquet: a table (needs pyarrow).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    required=True,
    metavar="FILE",
    help="The file to write (replaced if it exists).",
)
@click.pass_obj
def export(journal_path, since, until, container, file_format, output) -> None:
    """Write every record that matches to FILE, oldest first.

    jsonl: one object per record, as "log --json" writes it.  parquet: one row per record,
    the same fields as columns, key, values and caller as their JSON text (pip install
    'safe_data[parquet]').  FILE appears whole or not at all, readable by its owner only.
    """
    directory = _journal_dir(journal_path)
    if file_format == "parquet":
        _pyarrow()  # before any record is read
    write = _write_parquet if file_format == "parquet" else _write_jsonl
    records = matching_records(
        directory, containers=(container,) if container else (), since=since, until=until, everything=True
    )
    with _progress(f"exporting to {os.path.basename(output)}", None) as advance:
        count = _written_whole(output, lambda f: write(records, f, advance))
    click.echo(f"exported {_count(count, 'record')} to {output}", err=True)
    if not count:
        raise Failure("no records match", EXIT_NOT_FOUND)


def _chunks(records, size: int, advance):
    """Lists of at most ``size`` of ``records``; ``advance(n)`` after each is written."""
    while chunk := list(itertools.islice(records, size)):
        yield chunk
        advance(len(chunk))


def _written_whole(path: str, write) -> int:
    """``write(file)`` into a temporary file beside ``path``, renamed to ``path`` once
    written: what ``write`` returns."""
    fd, temporary = tempfile.mkstemp(prefix=".export-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as f:
            count = write(f)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return count


def _write_jsonl(records, f, advance) -> int:
    count = 0
    for chunk in _chunks(records, JSONL_CHUNK, advance):
        f.write("".join([dumps(record_fields(record)) + "\n" for record in chunk]).encode())
        count += len(chunk)
    return count


def _pyarrow():
    """pyarrow, with pyarrow.parquet; a Failure naming the extra when it is missing."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise Failure("--format parquet needs pyarrow: pip install 'safe_data[parquet]'") from None
    return pyarrow


def _parquet_schema(pa):
    return pa.schema(
        [
            ("seq", pa.uint64()),
            ("time_ns", pa.int64()),
            ("time", pa.string()),
            ("container", pa.string()),
            ("kind", pa.string()),
            ("op", pa.string()),
            ("key", pa.string()),
            ("values", pa.string()),
            ("pid", pa.int64()),
            ("thread", pa.uint64()),
            ("caller", pa.string()),
            ("writer", pa.string()),
            ("segment", pa.string()),
            ("offset", pa.uint64()),
            ("container_id", pa.uint64()),
        ]
    )


def _write_parquet(records, f, advance) -> int:
    pa = _pyarrow()
    schema = _parquet_schema(pa)
    count = 0
    with pa.parquet.ParquetWriter(f, schema) as writer:
        for rows in _chunks(records, ROW_GROUP, advance):
            columns: dict[str, list] = {name: [] for name in schema.names}
            for record in rows:
                fields = record_fields(record)
                for name in JSON_COLUMNS:
                    fields[name] = dumps(fields[name])
                for name, column in columns.items():
                    column.append(fields[name])
            writer.write_table(pa.table(columns, schema=schema))
            count += len(rows)
    return count
