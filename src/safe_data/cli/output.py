"""Text output: times, abbreviated values, sizes, and tables, progress bars and warnings
(rich on a terminal, imported only there; plain text when piped)."""

from __future__ import annotations

import contextlib
import itertools
import os
import reprlib
import sys
from datetime import timedelta

import click

from .. import _impl
from .params import _EPOCH

#: which implementation runs, as --version and the demo say it
IMPLEMENTATION = "C extension" if _impl.EXTENSION else "pure Python"


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


@contextlib.contextmanager
def _warnings_to_stderr():
    """Within it, warnings the library emits (a torn frame, a skipped record) are printed
    as ``_warn`` prints them."""
    import warnings

    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *args, **kwargs: _warn(str(message))
        yield
