"""``demo``: a short walk-through on a temporary journal, a SIGKILLed writer included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import click

import safe_data


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


@click.command()
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
