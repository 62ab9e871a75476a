"""``demo``: a short walk-through on a journal it keeps: discard, list, get it back
(``undo()`` and ``restore()``), survive a SIGKILL, and the commands to try next."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import click

import safe_data

from ..history import ADDING_OPS
from ..present import record_fields, writer_hex
from .output import IMPLEMENTATION, _dump_json


def _short(value, width=48) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


_CRASHING_CHILD = textwrap.dedent("""
    import os, signal, sys, safe_data
    journal = safe_data.Journal(sys.argv[1])
    queue = safe_data.SafeList(range(1000), name="queue", journal=journal)
    while queue:
        queue.pop()
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush, no atexit
""")


def _walk(journal) -> dict:
    """Run the walk-through on ``journal``; what it showed, as a dict."""
    cart = safe_data.SafeList(["apple", "bread", "milk", "eggs"], name="cart", journal=journal)
    prefs: safe_data.SafeDict[str, str] = safe_data.SafeDict(
        theme="light", lang="en", name="prefs", journal=journal, versioned=True
    )  # versioned: restore() knows its every state
    before = {"cart": list(cart), "prefs": dict(prefs)}
    changed_at = time.time_ns()
    cart.pop()
    cart.remove("apple")
    prefs["theme"] = "dark"
    del prefs["lang"]
    after = {"cart": list(cart), "prefs": dict(prefs)}
    discards = [r for r in journal.records() if r.op not in ADDING_OPS]

    safe_data.undo(cart, 2)  # the values go back at their index, newest first
    restored = {"cart": list(cart), "prefs": safe_data.restore("prefs", at=changed_at, journal=journal)}

    child = subprocess.run([sys.executable, "-c", _CRASHING_CHILD, journal.path])
    survived = sum(len(r.values) for r in journal.records("queue"))
    return {
        "before": before,
        "after": after,
        "discarded": discards,
        "restored": restored,
        "killed": child.returncode == -signal.SIGKILL,
        "child_exit": child.returncode,
        "survived": survived,
        "problems": [str(p) for p in journal.verify()],
    }


def _next_commands(path: str, first) -> list[str]:
    """Commands to try on the journal, the first record shown by its writer and seq (the
    killed child has its own writer, with the same seqs)."""
    journal = f"--journal {path}"
    writer = writer_hex(first.writer)[:8]
    return [
        f"safe-data {journal} log",
        f"safe-data {journal} show {first.seq} --writer {writer}",
        f"safe-data {journal} restore cart --discarded",
        f"safe-data {journal} stats",
        f"rm -r {path}",
    ]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="What the walk-through showed, as one JSON object.")
@click.pass_obj
def demo(journal_path: str | None, as_json: bool) -> None:
    """A short walk-through: discard, list, get it back, survive a kill.

    It uses a new directory (or the --journal given) and keeps it, so that the commands
    it suggests at the end can be tried on it.  Exit 1 if a step did not do what it says.
    """
    path = os.path.abspath(journal_path or tempfile.mkdtemp(prefix="safe-data-demo-"))
    with safe_data.Journal(path) as journal:
        shown = _walk(journal)
    commands = _next_commands(path, shown["discarded"][0])
    ok = (
        not shown["problems"]
        and shown["killed"]
        and shown["survived"] == 1000
        and shown["restored"] == shown["before"]
    )
    if as_json:
        _dump_json(
            {
                "version": safe_data.__version__,
                "implementation": IMPLEMENTATION,
                "journal": path,
                "ok": ok,
                **shown,
                "discarded": [record_fields(r) for r in shown["discarded"]],
                "next": commands,
            }
        )
    else:
        _tell(shown, path, commands)
    if not ok:
        raise SystemExit(1)


def _tell(shown: dict, path: str, commands: list[str]) -> None:
    before, after, restored = shown["before"], shown["after"], shown["restored"]
    echo = click.echo
    echo(f"safe_data {safe_data.__version__} ({IMPLEMENTATION}); journal at {path}\n")
    echo("1. A list and a dict that behave like list and dict, and lose nothing:")
    echo(f"   before:  cart = {before['cart']!r}, prefs = {before['prefs']!r}")
    echo("   cart.pop(); cart.remove('apple'); prefs['theme'] = 'dark'; del prefs['lang']")
    echo(f"   after:   cart = {after['cart']!r}, prefs = {after['prefs']!r}\n")

    echo("2. What was discarded, where and when (journal.records()):")
    echo(f"   {'seq':>3} {'time (UTC)':<15} {'container':<9} {'op':<6} {'key':<8} discarded")
    for r in shown["discarded"]:
        echo(
            f"   {r.seq:>3} {r.time.strftime('%H:%M:%S.%f'):<15} {r.container:<9} {r.op:<6} "
            f"{_short(r.key, 8):<8} {_short(r.values)}"
        )

    echo("\n3. Get it back:")
    echo(f"   safe_data.undo(cart, 2)              -> cart = {restored['cart']!r}")
    echo(f"   safe_data.restore('prefs', at=before) -> {restored['prefs']!r}")
    same = restored == before
    echo(f"   {'the same as before, in the same order' if same else 'NOT what it was before'}\n")

    echo("4. A process pops 1000 values and is killed with SIGKILL (no flush, no exit):")
    outcome = "was killed" if shown["killed"] else f"exited with {shown['child_exit']}"
    echo(f"   the child {outcome}; {shown['survived']} of 1000 popped values are in the journal\n")

    echo(f"5. journal.verify(): {len(shown['problems'])} problems")
    for problem in shown["problems"]:
        echo(f"   {problem}")

    echo(f"\nThe journal is kept at {path}. Try:")
    for command in commands:
        echo(f"   {command}")
