"""Text output: times, sizes, and tables, progress bars and warnings (rich on a terminal,
imported only there; plain text when piped), and JSON on stdout.  What a record looks
like is :mod:`safe_data.present`'s, shared with the web view."""

from __future__ import annotations

import contextlib
import itertools
import sys
from datetime import timedelta

import click

from .. import _impl
from ..present import EPOCH, ONE_LINE, dumps

#: which implementation runs, as --version and the demo say it
IMPLEMENTATION = "C extension" if _impl.EXTENSION else "pure Python"


def _table_time(time_ns: int) -> str:
    return (EPOCH + timedelta(microseconds=time_ns // 1000)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


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

        table = Table(
            *columns,
            title=title,
            box=box.SIMPLE_HEAD,
            title_justify="left",
            show_edge=False,
            pad_edge=False,
            collapse_padding=True,
        )
        for row in rows:
            table.add_row(*(Text(str(cell)) for cell in row))
        _console().print(table)
        return
    if title:
        sys.stdout.write(f"# {title}\n")
    for row in itertools.chain([columns], rows):
        sys.stdout.write("\t".join(str(cell).translate(ONE_LINE) for cell in row) + "\n")


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
    with Progress(*columns, TimeElapsedColumn(), console=_console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _dump_json(obj) -> None:
    sys.stdout.write(dumps(obj, indent=2) + "\n")


def _warn(message: str) -> None:
    click.echo(f"safe-data: warning: {message}", err=True)


@contextlib.contextmanager
def _warnings_to_stderr():
    """Within it, warnings the library emits (a torn frame, a skipped record) are printed
    as ``_warn`` prints them."""
    import warnings

    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *args, **kwargs: _warn(str(message))
        yield
