"""The ``safe-data`` command: see, restore, check and trim what a journal holds.

Every command works on the journal named by the global ``--journal DIR`` (default:
``$SAFE_DATA_HOME``, else the platform's user data directory).  Listings are rich tables
on a terminal and tab-separated text when piped; ``--json`` gives machine-readable
output.  docs/cli.md documents each command, the JSON shapes and the exit codes below.

Inspecting commands (log, show, stats, verify without --repair) only read: they do not
open a :class:`~safe_data.Journal`, so they neither create files nor recover segments.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import math
import os
import pickle
import pprint
import re
import reprlib
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from datetime import datetime, timedelta, timezone

import click

import safe_data

from . import _impl
from .errors import CorruptRecordError, IncompleteHistoryError
from .history import ADDING_OPS
from .journal import format as fmt
from .journal.journal import KEY_FILE, KEY_SIZE, default_path
from .journal.reader import Problem, SegmentView, decode_frame, read_records, segment_paths
from .journal.repair import DAMAGED_DIR, repair
from .journal.segments import fsync_dir

#: exit codes scripts can rely on (docs/cli.md)
EXIT_OK = 0
EXIT_FAILED = 1  # the journal is damaged, or the command failed
EXIT_USAGE = 2  # click's usage errors
EXIT_NOT_FOUND = 3  # no journal, no matching record, unknown container
EXIT_REFUSED = 4  # would lose or misstate data without --force / --partial
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `producer | head`

NO_BACKUP_NOTE = ("safe_data has no remote backup yet, so no record is backed up and every "
                  "sealed segment is pending upload")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Failure(click.ClickException):
    """An error for stderr and the exit code that goes with it."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self._exit_code = exit_code

    @property  # click reads it; it declares exit_code a class variable
    def exit_code(self) -> int:  # type: ignore[override]
        return self._exit_code


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
        except OSError as exc:  # a permission, a full disk: a message, not a traceback
            raise Failure(str(exc)) from None


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the final flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


# --- parameters ------------------------------------------------------------------------------


class TimeType(click.ParamType):
    """An ISO 8601 time (without a zone: UTC, as the listings show it) or an age such as
    ``90s``, ``10m``, ``2h``, ``1d``, ``1w`` (that long ago)."""

    name = "time"
    _AGE = re.compile(r"(\d+(?:\.\d*)?)\s*([smhdw])")
    _SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        text = value.strip()
        age = self._AGE.fullmatch(text)
        if age:
            return datetime.now(timezone.utc) - timedelta(seconds=float(age[1]) * self._SECONDS[age[2]])
        if text.endswith(("Z", "z")):  # fromisoformat accepts a trailing Z only from 3.11
            text = text[:-1] + "+00:00"
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is neither an ISO time (2026-11-23T21:24:01) nor an age "
                      f"(30s, 10m, 2h, 1d, 1w)", param, ctx)
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


class SizeType(click.ParamType):
    """A number of bytes, optionally with a binary multiple: ``500M``, ``2GiB``, ``64k``."""

    name = "size"
    _SIZE = re.compile(r"(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        size = self._SIZE.fullmatch(value.strip())
        if not size:
            self.fail(f"{value!r} is not a size (1048576, 500M, 2GiB)", param, ctx)
        return int(float(size[1]) * 1024 ** " kmgt".index(size[2].lower() or " "))


TIME = TimeType()
SIZE = SizeType()


def _ns(when: datetime | None) -> int | None:
    return None if when is None else (when - _EPOCH) // timedelta(microseconds=1) * 1000


# --- JSON --------------------------------------------------------------------------------------


def jsonable(value):
    """``value`` made of JSON types only (docs/cli.md, "JSON values").

    Tuples become lists; sets and frozensets sorted lists (in iteration order when the
    elements do not sort); bytes and bytearrays base64 strings; dict keys strings, written
    as ``json.dumps`` writes int, float, bool and None keys and as their ``repr``
    otherwise; NaN and infinities the strings ``"nan"``, ``"inf"``, ``"-inf"``; any
    other object its ``repr``; a container inside itself ``"..."``.
    """
    return _jsonable(value, set())


def _jsonable(value, open_ids: set):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if not isinstance(value, (list, tuple, set, frozenset, dict)):
        return _json_default(value)
    if id(value) in open_ids:
        return "..."
    open_ids.add(id(value))
    try:
        if isinstance(value, dict):
            return {_json_key(k): _jsonable(v, open_ids) for k, v in value.items()}
        if isinstance(value, (set, frozenset)):
            value = _sorted_if_possible(value)
        return [_jsonable(v, open_ids) for v in value]
    finally:
        open_ids.discard(id(value))


def _json_key(key) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int)) or (isinstance(key, float) and math.isfinite(key)):
        return json.dumps(key)  # as json.dumps writes such a key: 1 -> "1", None -> "null"
    return repr(key)


def _json_default(value):
    """What json.dumps cannot write itself (also the last step of :func:`jsonable`)."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value)  # TypeError when unsortable: dumps() then takes the careful path
    return repr(value)


def _sorted_if_possible(items) -> list:
    try:
        return sorted(items)
    except TypeError:
        return list(items)


def dumps(value, *, indent: int | None = None) -> str:
    """``json.dumps(jsonable(value))``, compact or indented, without walking ``value`` in
    Python when json's C encoder can write it (it then only calls back for sets and bytes)."""
    fast, careful = _ENCODERS[indent]
    try:
        return fast.encode(value)
    except (TypeError, ValueError):  # NaN, a cycle, a tuple key, an unsortable set
        return careful.encode(jsonable(value))


def _encoders(indent: int | None) -> tuple[json.JSONEncoder, json.JSONEncoder]:
    separators = (",", ":") if indent is None else (",", ": ")
    fast = json.JSONEncoder(default=_json_default, allow_nan=False, indent=indent,
                            separators=separators)
    return fast, json.JSONEncoder(indent=indent, separators=separators)


# Built once: json.dumps with options builds a new encoder per call.
_ENCODERS = {indent: _encoders(indent) for indent in (None, 2)}


def record_fields(record) -> dict:
    """One record as a dict for JSON: the fields of :class:`~safe_data.Record` (``writer``
    as 16 hex digits, as in segment names) plus ``time``, ``time_ns`` in ISO 8601.
    ``key``, ``values`` and ``caller`` are as decoded: pass the dict to :func:`dumps`."""
    return {
        "seq": record.seq, "time_ns": record.time_ns, "time": _iso(record.time_ns),
        "container": record.container, "kind": record.kind, "op": record.op,
        "key": record.key, "values": record.values, "pid": record.pid, "thread": record.thread,
        "caller": record.caller, "writer": _writer_hex(record.writer), "segment": record.segment,
        "offset": record.offset,
    }


def _dump_json(obj) -> None:
    sys.stdout.write(dumps(obj, indent=2) + "\n")


# --- text --------------------------------------------------------------------------------------


def _iso(time_ns: int, sep: str = "T") -> str:
    return (_EPOCH + timedelta(microseconds=time_ns // 1000)).isoformat(sep)


def _table_time(time_ns: int) -> str:
    return (_EPOCH + timedelta(microseconds=time_ns // 1000)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _writer_hex(writer: int) -> str:
    return f"{writer:016x}"


_BRIEF = reprlib.Repr()
_BRIEF.maxlist = _BRIEF.maxtuple = _BRIEF.maxset = _BRIEF.maxfrozenset = _BRIEF.maxdict = 10
_BRIEF.maxstring = _BRIEF.maxother = 80
_BRIEF.maxlevel = 3
_ONE_LINE = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": " "})


def _brief(value) -> str:
    """A one-line repr of bounded length (a million discarded items print as ten)."""
    text = _BRIEF.repr(value)
    if isinstance(value, (list, tuple, set, frozenset, dict)) and len(value) > 10:
        text += f" ({len(value)} items)"
    return text.translate(_ONE_LINE)


def _caller_text(caller, short: bool = False) -> str:
    if caller is None:
        return ""
    if isinstance(caller, tuple) and len(caller) == 3:
        file, line, function = caller
        return f"{os.path.basename(file) if short else file}:{line} in {function}"
    return _brief(caller)


def _human_bytes(n: int) -> str:
    exponent = min(max(n.bit_length() - 1, 0) // 10, 4)  # 1024 ** exponent <= n
    if exponent == 0:
        return f"{n} B"
    return f"{n / 1024 ** exponent:.1f} {('KiB', 'MiB', 'GiB', 'TiB')[exponent - 1]}"


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def _console(stderr: bool = False):
    from rich.console import Console  # only on a terminal: rich costs ~40 ms to import

    return Console(stderr=stderr, highlight=False)


def _print_table(columns, rows, *, title: str | None = None) -> None:
    """A small table: rich on a terminal, tab-separated lines with a header when piped."""
    if _is_terminal(sys.stdout):
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = Table(*columns, title=title, box=box.SIMPLE_HEAD, title_justify="left",
                      show_edge=False, pad_edge=False, collapse_padding=True)
        for row in rows:
            table.add_row(*(Text(str(cell)) for cell in row))
        _console().print(table)
        return
    if title:
        sys.stdout.write(f"# {title}\n")
    for row in itertools.chain([columns], rows):
        sys.stdout.write("\t".join(str(cell).translate(_ONE_LINE) for cell in row) + "\n")


@contextlib.contextmanager
def _progress(description: str, total: int | None):
    """Yield ``advance(n)``: a rich progress bar on stderr when it is a terminal (over
    ``total`` bytes, or pulsing without a total), nothing at all when it is not."""
    if not _is_terminal(sys.stderr):
        yield lambda n: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn()]
    if total is not None:
        columns.append(DownloadColumn(binary_units=True))
    with Progress(*columns, TimeElapsedColumn(), console=_console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _warn(message: str) -> None:
    click.echo(f"safe-data: warning: {message}", err=True)


# --- the journal, read only --------------------------------------------------------------------


def _journal_dir(journal_path: str | None) -> str:
    """The journal directory the command works on; exit 3 if there is none."""
    path = os.path.abspath(journal_path or default_path())
    if not os.path.isdir(path):
        raise Failure(f"no journal at {path}", EXIT_NOT_FOUND)
    return path


def _read_key(directory: str) -> bytes | None:
    """The journal's MAC key, or None (its pickles then read as UnverifiedPickle)."""
    try:
        with open(os.path.join(directory, KEY_FILE), "rb") as f:
            key = f.read()
    except FileNotFoundError:
        return None
    return key if len(key) == KEY_SIZE else None


def _open_view(path: str) -> SegmentView | None:
    """Map one segment; an ``.open`` one sealed meanwhile is read under its new name."""
    try:
        return SegmentView(path, _impl.crc32c)
    except FileNotFoundError:
        if path.endswith(fmt.OPEN_SUFFIX):
            return _open_view(path[: -len(fmt.OPEN_SUFFIX)] + fmt.SEALED_SUFFIX)
        return None  # purged meanwhile


class SegmentSummary:
    """What one pass over a segment's frames found (no values are decoded unless asked)."""

    def __init__(self, view: SegmentView, disk_bytes: int):
        self.name = view.name
        self.path = view.path
        self.sealed = view.sealed
        self.live = view.live
        self.size = len(view.data)
        self.disk_bytes = disk_bytes
        self.created_ns = view.header.created_ns if view.header else 0
        self.records = 0
        self.record_bytes = 0
        #: container name (bytes) -> [records, bytes, oldest ns, newest ns]
        self.containers: dict[bytes, list[int]] = {}
        self.problems: list[Problem] = []

    def count(self, frame) -> None:
        size = fmt.FRAME_HEADER_SIZE + len(frame.name) + len(frame.payload)
        _add_span(self.containers, frame.name, 1, size, frame.time_ns, frame.time_ns)
        self.records += 1
        self.record_bytes += size

    @property
    def newest_ns(self) -> int:
        return max((c[3] for c in self.containers.values()), default=self.created_ns)

    @property
    def oldest_ns(self) -> int:
        return min((c[2] for c in self.containers.values()), default=self.created_ns)

    @property
    def container_names(self) -> set[str]:
        return {str(name, "utf-8", "replace") for name in self.containers}


def _add_span(spans: dict, name, records: int, size: int, oldest: int, newest: int) -> None:
    """Add to ``spans[name]``, a tally of [records, bytes, oldest ns, newest ns]."""
    span = spans.get(name)
    if span is None:
        spans[name] = [records, size, oldest, newest]
        return
    span[0] += records
    span[1] += size
    span[2] = min(span[2], oldest)
    span[3] = max(span[3], newest)


def summarize_segments(directory: str, *, key=None, decode: bool = False, description: str):
    """Yield a :class:`SegmentSummary` per segment, with a progress bar over the bytes.

    With ``decode``, every frame is decoded too, so that records whose checksum holds but
    whose content does not decode are reported (what ``verify`` needs).
    """
    paths = segment_paths(directory)
    total = sum(_file_size(p) for p in paths)
    with _progress(description, total) as advance:
        for path in paths:
            view = _open_view(path)
            if view is not None:
                yield _summarize(view, key, decode, advance)


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _summarize(view: SegmentView, key, decode: bool, advance) -> SegmentSummary:
    try:
        disk_bytes = os.stat(view.path).st_blocks * 512
    except FileNotFoundError:
        disk_bytes = 0
    summary = SegmentSummary(view, disk_bytes)
    reported = 0
    for frame in view.frames():
        summary.count(frame)
        problem = _undecodable(view, frame, key) if decode else None
        if problem is not None:
            summary.problems.append(problem)
        if summary.records % 4096 == 0:
            advance(frame.offset - reported)
            reported = frame.offset
    if view.problem is not None:
        summary.problems.append(view.problem)
    advance(summary.size - reported)
    return summary


def _undecodable(view: SegmentView, frame, key) -> Problem | None:
    """The problem of a frame whose checksum holds but whose record does not decode."""
    assert view.header is not None  # frames come only from segments with a valid header
    try:
        decode_frame(frame, view.header, view.name, key, False)
    except CorruptRecordError as exc:  # reported as the reader reports it
        return Problem(view.name, frame.offset, f"undecodable record: {exc}", view.live)
    return None


# --- the command -------------------------------------------------------------------------------


@click.group(cls=_Group)
@click.version_option(safe_data.__version__, prog_name="safe-data")
@click.option("--journal", "journal_path", type=click.Path(file_okay=False), default=None,
              metavar="DIR", help="Journal directory (default: $SAFE_DATA_HOME, else the "
                                  "platform's user data directory).")
@click.pass_context
def main(ctx, journal_path: str | None) -> None:
    """See, restore and protect what your program discarded.

    Exit codes: 0 ok, 1 damaged journal or failure, 2 usage error, 3 nothing matched,
    4 refused without --force/--partial (docs/cli.md).
    """
    ctx.obj = journal_path


# --- log and show ---------------------------------------------------------------------------------


OP_NAMES = sorted({op for _, op in fmt.OPS.values()})


@main.command()
@click.option("--container", "containers", multiple=True, metavar="NAME",
              help="Only this container (repeat for several).")
@click.option("--op", "ops", multiple=True, type=click.Choice(OP_NAMES), metavar="OP",
              help="Only this operation, e.g. pop, clear, set (repeat for several).")
@click.option("--since", type=TIME,
              help="Only records at or after this time (ISO, or an age: 10m, 2h, 1d).")
@click.option("--until", type=TIME, help="Only records before this time.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Stop after N records.")
@click.option("--all", "everything", is_flag=True,
              help="Also list what versioned containers added (insert, assign, snapshot).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record per line.")
@click.pass_obj
def log(journal_path, containers, ops, since, until, limit, everything, as_json) -> None:
    """What was discarded, where, when and by whom, oldest first.

    Streams: the first records print at once, however large the journal.  Long values
    are abbreviated; `show` and --json give them in full.
    """
    directory = _journal_dir(journal_path)
    records = matching_records(directory, containers=containers, ops=ops, since=since,
                               until=until, everything=everything)
    if limit is not None:
        records = itertools.islice(records, limit)
    if as_json:
        count = _write_json_lines(records)
    elif _is_terminal(sys.stdout):
        count = _write_log_tables(records)
    else:
        count = _write_plain_lines(records)
    if not count:
        raise Failure("no records match", EXIT_NOT_FOUND)


def matching_records(directory: str, *, containers=(), ops=(), since=None, until=None,
                     everything=False):
    """Stream the journal's records that pass the filters, oldest first.

    Records of versioned containers that only add (``insert``, ``assign``, ``snapshot``)
    are left out unless ``everything`` is set or ``ops`` names them.  Problems found on
    the way go to stderr as warnings.
    """
    only = containers[0] if len(containers) == 1 else None  # the reader skips others undecoded
    records = read_records(directory, _impl.crc32c, _read_key(directory), container=only,
                           since_ns=_ns(since), until_ns=_ns(until),
                           report=lambda problem: _warn(f"journal problem: {problem}"))
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
    for count, record in enumerate(records, 1):
        write(dumps(record_fields(record)) + "\n")
    return count


PLAIN_FIELDS = ("seq", "writer", "time", "container", "op", "key", "values", "pid", "thread", "caller")


def _write_plain_lines(records) -> int:
    write, count = sys.stdout.write, 0
    write("\t".join(PLAIN_FIELDS) + "\n")
    for count, r in enumerate(records, 1):
        write("\t".join((str(r.seq), _writer_hex(r.writer), _iso(r.time_ns),
                         r.container.translate(_ONE_LINE), r.op, _brief(r.key), _brief(r.values),
                         str(r.pid), str(r.thread), _caller_text(r.caller))) + "\n")
    return count


#: column: (header, fixed width or None, ratio of the remaining width for the flexible ones)
_LOG_COLUMNS = {
    "seq": ("seq", 7, None), "writer": ("writer", 8, None), "time": ("time (UTC)", 23, None),
    "short time": ("time (UTC)", 14, None), "container": ("container", None, 2),
    "op": ("op", 8, None), "key": ("key", None, 1), "discarded": ("discarded", None, 4),
    "pid": ("pid", 7, None), "caller": ("caller", None, 2),
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
        "seq": str(record.seq), "writer": _writer_hex(record.writer)[:8],
        "time": _table_time(record.time_ns), "short time": _table_time(record.time_ns)[5:19],
        "container": record.container,
        "op": record.op, "key": _brief(record.key), "discarded": _brief(record.values),
        "pid": str(record.pid), "caller": _caller_text(record.caller, short=True),
    }
    return [Text(cells[c]) for c in columns]


def _log_table(columns, rows, header: bool):
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_header=header, show_edge=False, expand=True,
                  padding=(0, 1), collapse_padding=True, pad_edge=False)
    styles = {"time": "dim", "short time": "dim", "container": "bold cyan", "op": "yellow",
              "writer": "dim"}
    for name in columns:
        title, width, ratio = _LOG_COLUMNS[name]
        table.add_column(title, width=width, ratio=ratio, no_wrap=True, overflow="ellipsis",
                         style=styles.get(name),
                         justify="right" if name in ("seq", "pid") else "left")
    for row in rows:
        table.add_row(*row)
    return table


@main.command()
@click.argument("address")
@click.option("--writer", metavar="HEX",
              help="The writer of SEQ (16 hex digits, or a unique prefix).")
@click.option("--json", "as_json", is_flag=True, help="The record as one JSON object.")
@click.pass_obj
def show(journal_path, address, writer, as_json) -> None:
    """Print one record in full.

    ADDRESS is SEQ (with --writer when several writers have that number) or
    SEGMENT:OFFSET, as `log --json` gives them.
    """
    directory = _journal_dir(journal_path)
    if ":" in address:
        segment, _, offset = address.rpartition(":")
        if not offset.isdigit():
            raise click.BadParameter(f"{address!r}: OFFSET must be a number",
                                     param_hint="ADDRESS")
        view, frame = _frame_at(directory, segment, int(offset))
    elif address.isdigit():
        view, frame = _frame_with_seq(directory, int(address), (writer or "").lower())
    else:
        raise click.BadParameter(f"{address!r} is neither SEQ nor SEGMENT:OFFSET",
                                 param_hint="ADDRESS")
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
    for name in (segment, segment + fmt.SEALED_SUFFIX, segment + fmt.OPEN_SUFFIX,
                 segment.removesuffix(fmt.OPEN_SUFFIX) + fmt.SEALED_SUFFIX):
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
        writers = ", ".join(_writer_hex(view.header.writer_id) for view, _ in found)
        raise click.UsageError(f"seq {seq} exists in {len(found)} writers ({writers}); "
                               f"choose one with --writer")
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
        ("container", record.container), ("kind", record.kind), ("op", record.op),
        ("key", record.key), ("values", record.values),
        ("time", f"{_iso(record.time_ns, ' ')} ({record.time_ns} ns)"),
        ("seq", record.seq), ("writer", _writer_hex(record.writer)), ("pid", record.pid),
        ("thread", record.thread), ("caller", _caller_text(record.caller) or None),
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


# --- restore ------------------------------------------------------------------------------------


@main.command()
@click.argument("name")
@click.option("--at", type=TIME, help="The state at this time (default: after the last record); "
                                      "with --discarded: what was discarded before it.")
@click.option("--discarded", "only_discarded", is_flag=True,
              help="Write every value NAME discarded instead of its state.")
@click.option("--format", "out_format", type=click.Choice(["json", "pickle"]), default="json",
              show_default=True)
@click.option("--output", "-o", default="-", metavar="FILE", show_default=True,
              help="Where to write (- for stdout).")
@click.option("--partial", is_flag=True,
              help="When the state cannot be rebuilt exactly, write what is known of it.")
@click.pass_obj
def restore(journal_path, name, at, only_discarded, out_format, output, partial) -> None:
    """Write a container's past state, or what it discarded.

    Writes container NAME's state (or, with --discarded, its discarded values) as JSON
    or a pickle.  The state is exact for containers created with versioned=True; for
    others only what they discarded is known, so restore refuses (exit 4) unless
    --partial is given.
    """
    if out_format == "pickle" and output == "-" and _is_terminal(sys.stdout):
        raise click.UsageError("refusing to write a pickle to a terminal; use --output FILE "
                               "or redirect stdout")
    directory = _journal_dir(journal_path)
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *args, **kwargs: _warn(str(message))
        with safe_data.Journal(directory) as journal, _progress(f"reading {name}", None):
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


# --- verify -------------------------------------------------------------------------------------


@main.command()
@click.option("--repair", "fix", is_flag=True,
              help="Cut damaged tails off sealed segments and seal dead writers' segments, "
                   "after saving the originals in damaged/.")
@click.option("--json", "as_json", is_flag=True, help="The result as one JSON object.")
@click.pass_obj
def verify(journal_path, fix, as_json) -> None:
    """Check every segment; exit 1 if the journal is damaged.

    Every frame's length and checksum are checked and every record is decoded.
    Segments being written by live processes are read but never reported or changed.
    """
    directory = _journal_dir(journal_path)
    key = _read_key(directory)
    found, segments = _check(directory, key)
    repaired, remaining = [], found
    if fix and found:
        repaired = repair(directory, found)
        remaining, segments = _check(directory, key)
    if as_json:
        _dump_json({"journal": directory, "ok": not remaining, "segments": segments,
                    "problems": [_problem_json(p) for p in found], "repaired": repaired,
                    "remaining": [_problem_json(p) for p in remaining]})
    else:
        _report_check(found, repaired, remaining, segments, fix)
    if remaining:
        raise click.exceptions.Exit(EXIT_FAILED)


def _check(directory: str, key) -> tuple[list[Problem], int]:
    problems: list[Problem] = []
    segments = 0
    for summary in summarize_segments(directory, key=key, decode=True, description="verifying"):
        segments += 1
        problems.extend(p for p in summary.problems if not p.live)
    return problems, segments


def _problem_json(problem: Problem) -> dict:
    return {"segment": problem.segment, "offset": problem.offset, "reason": problem.reason}


def _problem_rows(problems):
    return [(p.segment, p.offset, p.reason) for p in problems]


def _report_check(found, repaired, remaining, segments: int, fix: bool) -> None:
    columns = ("segment", "offset", "problem")
    if not found:
        click.echo(f"{_count(segments, 'segment')} checked: the journal is sound")
        return
    _print_table(columns, _problem_rows(found),
                 title=f"{_count(len(found), 'problem')} in {_count(segments, 'segment')}")
    for line in repaired:
        click.echo(f"repaired {line}")
    if not fix:
        click.echo("run `safe-data verify --repair` to cut damaged tails (the originals are "
                   "kept in damaged/)")
    elif remaining:
        _print_table(columns, _problem_rows(remaining),
                     title=f"{_count(len(remaining), 'problem')} remaining")
    else:
        click.echo("after the repair the journal is sound")


# --- stats --------------------------------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="The figures as one JSON object.")
@click.pass_obj
def stats(journal_path, as_json) -> None:
    """Records, bytes and segments, per container too.

    Also what awaits upload to a remote backup (today: every sealed segment).
    """
    directory = _journal_dir(journal_path)
    figures = journal_stats(directory)
    if as_json:
        _dump_json(figures)
    else:
        _print_stats(figures)


def journal_stats(directory: str) -> dict:
    """The figures ``safe-data stats`` prints, as a JSON-ready dict (docs/cli.md)."""
    totals = {"records": 0, "record_bytes": 0, "disk_bytes": 0, "sealed": 0, "open": 0,
              "live": 0, "sealed_bytes": 0, "problems": 0}
    containers: dict[bytes, list[int]] = {}
    for s in summarize_segments(directory, description="counting"):
        totals["records"] += s.records
        totals["record_bytes"] += s.record_bytes
        totals["disk_bytes"] += s.disk_bytes
        totals["sealed" if s.sealed else "open"] += 1
        totals["live"] += s.live
        totals["sealed_bytes"] += s.disk_bytes if s.sealed else 0
        totals["problems"] += sum(not p.live for p in s.problems)
        for name, span in s.containers.items():
            _add_span(containers, name, *span)
    by_size = sorted(containers.items(), key=lambda item: (-item[1][1], item[0]))
    return {
        "journal": directory,
        "records": totals["records"], "record_bytes": totals["record_bytes"],
        "disk_bytes": totals["disk_bytes"],
        "segments": {"sealed": totals["sealed"], "open": totals["open"], "live": totals["live"]},
        "problems": totals["problems"],
        "damaged": _damaged_files(directory),
        "pending_upload": {"segments": totals["sealed"], "bytes": totals["sealed_bytes"],
                           "note": NO_BACKUP_NOTE},
        "containers": {
            str(name, "utf-8", "replace"): {
                "records": records, "bytes": size, "oldest": _iso(oldest), "newest": _iso(newest),
                "oldest_ns": oldest, "newest_ns": newest}
            for name, (records, size, oldest, newest) in by_size},
    }


def _damaged_files(directory: str) -> dict:
    damaged = os.path.join(directory, DAMAGED_DIR)
    try:
        entries = [e for e in os.scandir(damaged) if e.is_file()]
    except FileNotFoundError:
        entries = []
    return {"files": len(entries), "bytes": sum(e.stat().st_size for e in entries)}


def _print_stats(figures: dict) -> None:
    segments, damaged, pending = figures["segments"], figures["damaged"], figures["pending_upload"]
    lines = [
        ("journal", figures["journal"]),
        ("records", f"{figures['records']:,} ({_human_bytes(figures['record_bytes'])} of frames)"),
        ("on disk", f"{_human_bytes(figures['disk_bytes'])} in "
                    f"{_count(segments['sealed'] + segments['open'], 'segment')}: "
                    f"{segments['sealed']} sealed, {segments['open']} open" + (
                        f" ({segments['live']} being written; an open segment takes its whole "
                        f"preallocated size)" if segments["open"] else "")),
        ("damaged/", f"{_count(damaged['files'], 'file')}, {_human_bytes(damaged['bytes'])}"),
        ("pending upload", f"{_count(pending['segments'], 'sealed segment')}, "
                           f"{_human_bytes(pending['bytes'])}: "
                           f"{pending['note']}"),
    ]
    if figures["problems"]:
        lines.append(("problems", f"{figures['problems']}: run `safe-data verify` for details"))
    for name, value in lines:
        click.echo(f"{name + ':':<16}{value}")
    rows = [(name, f"{c['records']:,}", _human_bytes(c["bytes"]), _table_time(c["oldest_ns"]),
             _table_time(c["newest_ns"])) for name, c in figures["containers"].items()]
    if rows:
        click.echo()
        _print_table(("container", "records", "bytes", "oldest (UTC)", "newest (UTC)"), rows)


# --- purge --------------------------------------------------------------------------------------


@main.command()
@click.option("--older-than", type=TIME, metavar="TIME",
              help="Segments whose newest record is older than this (an age: 30d, or an ISO "
                   "time).")
@click.option("--container", "containers", multiple=True, metavar="NAME",
              help="Only segments whose records all belong to these containers (repeatable).")
@click.option("--max-bytes", type=SIZE, metavar="SIZE",
              help="Delete the oldest segments until the journal takes at most SIZE on disk "
                   "(500M, 2G).")
@click.option("--force", is_flag=True,
              help="Delete records that are not backed up (today that is every record).")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="The plan or result as one JSON object.")
@click.pass_obj
def purge(journal_path, older_than, containers, max_bytes, force, dry_run, as_json) -> None:
    """Delete sealed segments: by age, by container, or down to a size.

    Criteria combine: a segment goes only if it meets every one given.  Segments being
    written and damaged segments are never deleted.  No record is backed up yet, so
    without --force purge lists what it would delete and exits 4.
    """
    if older_than is None and not containers and max_bytes is None:
        raise click.UsageError("say what to purge: --older-than, --container and/or --max-bytes")
    directory = _journal_dir(journal_path)
    summaries = list(summarize_segments(directory, description="scanning"))
    plan = purge_plan(summaries, older_than=older_than, containers=containers, max_bytes=max_bytes)
    skipped = sum(1 for s in summaries if s.sealed and s.problems)
    action = _purge_action(plan, force=force, dry_run=dry_run)
    if action == "deleted":
        _delete(directory, plan)
    if as_json:
        _dump_json({"journal": directory, "action": action,
                    "segments": [_segment_json(s) for s in plan],
                    "bytes": sum(s.disk_bytes for s in plan), "skipped_damaged": skipped})
    else:
        _report_purge(plan, "would delete" if action == "refused" else action, skipped)
    if action == "refused":
        raise Failure(f"refusing to delete {_count(len(plan), 'segment')}: {NO_BACKUP_NOTE}. "
                      f"Pass --force to delete them anyway, or --dry-run to only list them.",
                      EXIT_REFUSED)


def _purge_action(plan, *, force: bool, dry_run: bool) -> str:
    if dry_run:
        return "would delete"
    if force:
        return "deleted"
    # No uploader exists yet, so no record is backed up: every deletion needs --force.
    # Once remote backup lands, segments already uploaded can go without it.
    return "refused" if plan else "would delete"


def purge_plan(summaries, *, older_than=None, containers=(), max_bytes=None) -> list:
    """The sealed, undamaged segments to delete, oldest first (see ``purge``)."""
    cutoff = _ns(older_than)
    candidates = [s for s in summaries if s.sealed and not s.problems
                  and (cutoff is None or s.newest_ns < cutoff)
                  and (not containers or s.container_names <= set(containers))]
    candidates.sort(key=lambda s: (s.newest_ns, s.name))
    if max_bytes is None:
        return candidates
    excess = sum(s.disk_bytes for s in summaries) - max_bytes
    plan = []
    for summary in candidates:
        if excess <= 0:
            break
        plan.append(summary)
        excess -= summary.disk_bytes
    return plan


def _delete(directory: str, plan) -> None:
    for summary in plan:
        with contextlib.suppress(FileNotFoundError):  # purged by someone else meanwhile
            os.unlink(summary.path)
    fsync_dir(directory)


def _segment_json(summary: SegmentSummary) -> dict:
    return {"segment": summary.name, "records": summary.records, "bytes": summary.disk_bytes,
            "oldest": _iso(summary.oldest_ns), "newest": _iso(summary.newest_ns),
            "containers": sorted(summary.container_names)}


def _report_purge(plan, action: str, skipped: int) -> None:
    if skipped:
        _warn(f"{_count(skipped, 'damaged segment')} left alone: damaged segments are never "
              f"purged; run `safe-data verify --repair` first")
    if not plan:
        click.echo("nothing to purge")
        return
    rows = [(s.name, f"{s.records:,}", _human_bytes(s.disk_bytes), _table_time(s.newest_ns),
             _brief(sorted(s.container_names))) for s in plan]
    total = _human_bytes(sum(s.disk_bytes for s in plan))
    _print_table(("segment", "records", "bytes", "newest (UTC)", "containers"), rows,
                 title=f"{action} {_count(len(plan), 'segment')} ({total})")


# --- demo ---------------------------------------------------------------------------------------


def _short(value, width=48) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _print_records(records) -> None:
    click.echo(f"  {'time (UTC)':<15} {'container':<10} {'op':<8} {'key':<8} discarded")
    for r in records:
        click.echo(f"  {r.time.strftime('%H:%M:%S.%f'):<15} {r.container:<10} {r.op:<8} "
                   f"{_short(r.key, 8):<8} {_short(r.values)}")


_CRASHING_CHILD = textwrap.dedent("""
    import os, signal, sys, safe_data
    journal = safe_data.Journal(sys.argv[1])
    queue = safe_data.SafeList(range(1000), name="queue", journal=journal)
    while queue:
        queue.pop()
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush, no atexit
""")


@main.command()
@click.option("--journal", "path", type=click.Path(file_okay=False), default=None,
              help="Journal directory to use (default: the global --journal if given, "
                   "else a fresh temporary one).")
@click.pass_obj
def demo(journal_path: str | None, path: str | None) -> None:
    """A short walk-through: discard, list, restore, survive a kill."""
    with tempfile.TemporaryDirectory(prefix="safe-data-demo-") as tmp:
        journal = safe_data.Journal(path or journal_path or os.path.join(tmp, "journal"))
        impl = "C extension" if safe_data.EXTENSION else "pure Python"
        click.echo(f"safe_data {safe_data.__version__} ({impl}); journal at {journal.path}\n")

        click.echo("1. Containers that behave like list, dict and set, and lose nothing:")
        cart = safe_data.SafeList(["apple", "bread", "milk", "eggs"], name="cart", journal=journal)
        prefs: safe_data.SafeDict[str, str] = safe_data.SafeDict(theme="light", lang="en",
                                                                 name="prefs", journal=journal)
        tags = safe_data.SafeSet({"new", "sale"}, name="tags", journal=journal)
        cart.pop()
        cart.remove("apple")
        prefs["theme"] = "dark"
        del prefs["lang"]
        tags.clear()
        click.echo(f"   cart = {cart!r}, prefs = {prefs!r}, tags = {tags!r}\n")

        click.echo("2. What was discarded, where and when (journal.records()):")
        _print_records(journal.records())

        click.echo("\n3. Restore the cart from the journal:")
        for record in journal.records("cart"):
            cart.extend(record.values)
        click.echo(f"   cart = {cart!r}\n")

        click.echo("4. A process pops 1000 values and is killed with SIGKILL (no flush, no exit):")
        child = subprocess.run([sys.executable, "-c", _CRASHING_CHILD, journal.path])
        killed = child.returncode == -signal.SIGKILL
        survived = [v for r in safe_data.Journal(journal.path).records("queue") for v in r.values]
        click.echo(f"   child {'was killed' if killed else f'exited with {child.returncode}'}; "
                   f"{len(survived)} of 1000 popped values are in the journal\n")

        problems = journal.verify()
        click.echo(f"5. journal.verify(): {len(problems)} problems")
        journal.close()
        if problems or len(survived) != 1000 or not killed:
            raise SystemExit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
