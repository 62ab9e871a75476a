"""``log`` (stream the records that match) and ``show`` (one record in full)."""

from __future__ import annotations

import itertools
import os
import pprint
import sys
import textwrap
import time

import click

from .. import _impl
from ..errors import CorruptRecordError
from ..history import ADDING_OPS
from ..journal import forgotten
from ..journal import format as fmt
from ..journal.journal import to_ns
from ..journal.reader import decode_frame, segment_paths
from ..journal.records import read_records
from ..present import ONE_LINE, OP_NAMES, brief, caller_text, dumps, iso, record_fields, writer_hex
from .exits import EXIT_NOT_FOUND, Failure
from .journal_view import _journal_dir, _open_view, _read_key
from .output import _console, _count, _dump_json, _is_terminal, _table_time, _warn
from .params import TIME


@click.command()
@click.option(
    "--container",
    "containers",
    multiple=True,
    metavar="NAME",
    help="Only this container (repeat for several).",
)
@click.option(
    "--op",
    "ops",
    multiple=True,
    type=click.Choice(OP_NAMES),
    metavar="OP",
    help="Only this operation, e.g. pop, clear, set (repeat for several).",
)
@click.option("--since", type=TIME, help="Only records at or after this time (ISO, or an age: 10m, 2h, 1d).")
@click.option("--until", type=TIME, help="Only records before this time.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Stop after N records.")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Also list what versioned containers added (insert, assign, snapshot).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record per line.")
@click.pass_obj
def log(journal_path, containers, ops, since, until, limit, everything, as_json) -> None:
    """What was discarded, where, when and by whom, oldest first.

    Streams: the first records print at once, however large the journal.  Long values
    are abbreviated; "show" and --json give them in full.
    """
    directory = _journal_dir(journal_path)
    records = matching_records(
        directory, containers=containers, ops=ops, since=since, until=until, everything=everything
    )
    if limit is not None:
        records = itertools.islice(records, limit)
    if as_json:
        count = _write_json_lines(records)
    elif _is_terminal(sys.stdout):
        count = _write_log_tables(records)
    else:
        count = _write_plain_lines(records)
    _note_forgotten(directory, containers)
    if not count:
        raise Failure("no records match", EXIT_NOT_FOUND)


def _note_forgotten(directory: str, containers) -> None:
    """Say on stderr how many records (of these containers) were forgotten on request:
    they are not listed, and not lost to damage."""
    entries = [
        e
        for e in forgotten.read(directory)
        if not e.shredded  # (a shred repeats the records its forget counted)
        and (not containers or set(containers) & set(e.containers if isinstance(e.containers, list) else ()))
    ]
    if entries:
        count = sum(e.records for e in entries if isinstance(e.records, int))
        _warn(f"{_count(count, 'record')} forgotten on request, not listed (`safe-data forget --log`)")


def matching_records(directory: str, *, containers=(), ops=(), since=None, until=None, everything=False):
    """Stream the journal's records that pass the filters, oldest first.

    Records of versioned containers that only add (``insert``, ``assign``, ``snapshot``)
    are left out unless ``everything`` is set or ``ops`` names them.  Problems found on
    the way go to stderr as warnings.
    """
    only = containers[0] if len(containers) == 1 else None  # the reader skips others undecoded
    records = read_records(
        directory,
        _impl.crc32c,
        _read_key(directory),
        container=only,
        since_ns=to_ns(since),
        until_ns=to_ns(until),
        report=lambda problem: _warn(f"journal problem: {problem}"),
    )
    wanted_containers, wanted_ops = set(containers), set(ops)
    for record in records:
        if wanted_containers and record.container not in wanted_containers:
            continue
        if wanted_ops:
            if record.op not in wanted_ops:
                continue
        elif not everything and record.op in ADDING_OPS:
            continue
        yield record


def _write_json_lines(records) -> int:
    write, count = sys.stdout.write, 0
    for record in records:
        write(dumps(record_fields(record)) + "\n")
        count += 1
    return count


PLAIN_FIELDS = ("seq", "writer", "time", "container", "op", "key", "values", "pid", "thread", "caller")


def _write_plain_lines(records) -> int:
    write, count = sys.stdout.write, 0
    write("\t".join(PLAIN_FIELDS) + "\n")
    for r in records:
        write(
            "\t".join(
                (
                    str(r.seq),
                    writer_hex(r.writer),
                    iso(r.time_ns),
                    r.container.translate(ONE_LINE),
                    r.op,
                    brief(r.key),
                    brief(r.values),
                    str(r.pid),
                    str(r.thread),
                    caller_text(r.caller),
                )
            )
            + "\n"
        )
        count += 1
    return count


#: column: (header, fixed width or None, ratio of the remaining width for the flexible ones)
_LOG_COLUMNS = {
    "seq": ("seq", 7, None),
    "writer": ("writer", 8, None),
    "time": ("time (UTC)", 23, None),
    "short time": ("time (UTC)", 14, None),
    "container": ("container", None, 2),
    "op": ("op", 8, None),
    "key": ("key", None, 1),
    "discarded": ("discarded", None, 4),
    "pid": ("pid", 7, None),
    "caller": ("caller", None, 2),
}
_PAGE_ROWS = 200
_PAGE_WAIT = 0.3  # seconds a started page may wait for more rows (sparse matches)


def _log_columns(width: int) -> list[str]:
    """The columns that fit a terminal ``width`` wide (all fields are in show and --json)."""
    if width < 100:
        return ["seq", "short time", "container", "op", "key", "discarded"]
    columns = ["seq", "writer", "time", "container", "op", "key", "discarded", "pid"]
    if width >= 140:
        columns.append("caller")
    return columns


def _write_log_tables(records) -> int:
    """Print rich tables page by page: a table needs its rows before it prints, and the
    listing must stream.  Fixed column widths make the pages read as one table."""
    console = _console()
    columns = _log_columns(console.width)
    page_rows = max(console.height - 4, 10)  # the first page fills the screen
    page: list = []
    count, deadline = 0, time.monotonic() + _PAGE_WAIT
    for record in records:
        page.append(_log_cells(record, columns))
        if len(page) >= page_rows or time.monotonic() >= deadline:
            console.print(_log_table(columns, page, header=count == 0))
            count += len(page)
            page, page_rows, deadline = [], _PAGE_ROWS, time.monotonic() + _PAGE_WAIT
    if page:
        console.print(_log_table(columns, page, header=count == 0))
        count += len(page)
    return count


def _log_cells(record, columns) -> list:
    from rich.text import Text  # cells are Text: a value like "[bold]" is not markup

    cells = {
        "seq": str(record.seq),
        "writer": writer_hex(record.writer)[:8],
        "time": _table_time(record.time_ns),
        "short time": _table_time(record.time_ns)[5:19],
        "container": record.container,
        "op": record.op,
        "key": brief(record.key),
        "discarded": brief(record.values),
        "pid": str(record.pid),
        "caller": caller_text(record.caller, short=True),
    }
    return [Text(cells[c]) for c in columns]


def _log_table(columns, rows, header: bool):
    from rich import box
    from rich.table import Table

    table = Table(
        box=box.SIMPLE_HEAD,
        show_header=header,
        show_edge=False,
        expand=True,
        padding=(0, 1),
        collapse_padding=True,
        pad_edge=False,
    )
    styles = {"time": "dim", "short time": "dim", "container": "bold cyan", "op": "yellow", "writer": "dim"}
    for name in columns:
        title, width, ratio = _LOG_COLUMNS[name]
        table.add_column(
            title,
            width=width,
            ratio=ratio,
            no_wrap=True,
            overflow="ellipsis",
            style=styles.get(name),
            justify="right" if name in ("seq", "pid") else "left",
        )
    for row in rows:
        table.add_row(*row)
    return table


@click.command()
@click.argument("address")
@click.option("--writer", metavar="HEX", help="The writer of SEQ (16 hex digits, or a unique prefix).")
@click.option("--json", "as_json", is_flag=True, help="The record as one JSON object.")
@click.pass_obj
def show(journal_path, address, writer, as_json) -> None:
    """Print one record in full.

    ADDRESS is SEQ (with --writer when several writers have that number) or
    SEGMENT:OFFSET, as "log --json" gives them.
    """
    directory = _journal_dir(journal_path)
    if ":" in address:
        segment, _, offset = address.rpartition(":")
        if not offset.isdigit():
            raise click.BadParameter(f"{address!r}: OFFSET must be a number", param_hint="ADDRESS")
        view, frame = _frame_at(directory, segment, int(offset))
    elif address.isdigit():
        view, frame = _frame_with_seq(directory, int(address), (writer or "").lower())
    else:
        raise click.BadParameter(f"{address!r} is neither SEQ nor SEGMENT:OFFSET", param_hint="ADDRESS")
    assert view.header is not None  # frames come only from segments with a valid header
    try:
        record = decode_frame(frame, view.header, view.name, _read_key(directory), False)
    except CorruptRecordError as exc:
        raise Failure(f"the record at {view.name}:{frame.offset} does not decode: {exc}") from None
    if as_json:
        _dump_json(record_fields(record))
    elif _is_terminal(sys.stdout):
        _print_record_rich(record)
    else:
        _print_record_plain(record)


def _frame_at(directory: str, segment: str, offset: int):
    for name in (
        segment,
        segment + fmt.SEALED_SUFFIX,
        segment + fmt.OPEN_SUFFIX,
        segment.removesuffix(fmt.OPEN_SUFFIX) + fmt.SEALED_SUFFIX,
    ):
        path = os.path.join(directory, name)
        if os.path.basename(name) == name and os.path.isfile(path):
            break
    else:
        raise Failure(f"no segment {segment!r} in {directory}", EXIT_NOT_FOUND)
    view = _open_view(path)
    for frame in view.frames() if view is not None else ():
        if frame.offset >= offset:
            if frame.offset == offset:
                return view, frame
            break
    raise Failure(f"no record starts at byte {offset} of {segment}", EXIT_NOT_FOUND)


def _frame_with_seq(directory: str, seq: int, writer_prefix: str):
    chains: dict[str, list[str]] = {}
    for path in segment_paths(directory):
        writer = os.path.basename(path).split("-", 1)[0]
        if writer.startswith(writer_prefix):
            chains.setdefault(writer, []).append(path)
    found = [hit for hit in (_seq_in_chain(paths, seq) for paths in chains.values()) if hit]
    if not found:
        where = f"writer {writer_prefix}" if writer_prefix else "the journal"
        raise Failure(f"no record with seq {seq} in {where}", EXIT_NOT_FOUND)
    if len(found) > 1:
        writers = ", ".join(writer_hex(view.header.writer_id) for view, _ in found)
        raise click.UsageError(
            f"seq {seq} exists in {len(found)} writers ({writers}); choose one with --writer"
        )
    return found[0]


def _seq_in_chain(paths, seq: int):
    """The (view, frame) of ``seq`` in one writer's segments (sorted by number), or None."""
    for path in paths:
        view = _open_view(path)
        for frame in view.frames() if view is not None else ():
            if frame.seq >= seq:
                return (view, frame) if frame.seq == seq else None
    return None


def _show_fields(record) -> list[tuple[str, object]]:
    return [
        (
            "container",
            record.container
            if record.container_id is None
            else f"{record.container} (container {record.container_id} of its writer)",
        ),
        ("kind", record.kind),
        ("op", record.op),
        ("key", record.key),
        ("values", record.values),
        ("time", f"{iso(record.time_ns, ' ')} ({record.time_ns} ns)"),
        ("seq", record.seq),
        ("writer", writer_hex(record.writer)),
        ("pid", record.pid),
        ("thread", record.thread),
        ("caller", caller_text(record.caller) or "not recorded (capture_caller=True records it)"),
        ("address", f"{record.segment}:{record.offset}"),
    ]


def _print_record_plain(record) -> None:
    for name, value in _show_fields(record):
        if name in ("key", "values"):
            text = pprint.pformat(value, width=88, sort_dicts=False)
        else:
            text = str(value)
        sys.stdout.write(f"{name + ':':<11}{textwrap.indent(text, ' ' * 11).lstrip()}\n")


def _print_record_rich(record) -> None:
    from rich.pretty import Pretty
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for name, value in _show_fields(record):
        grid.add_row(name, Pretty(value) if name in ("key", "values") else Text(str(value)))
    _console().print(grid)
