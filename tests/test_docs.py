"""Docs are tests: the examples of docs/history.md and docs/tutorial.md run and print what
the pages say."""

import doctest
import os
from pathlib import Path

import pytest

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs")


@pytest.mark.parametrize("page", ["history.md"])
def test_doc_examples_run(tmp_path, page):
    result = doctest.testfile(
        os.path.join(DOCS, page),
        module_relative=False,
        globs={"JOURNAL_DIR": str(tmp_path / "journal")},
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 0 and result.failed == 0


def test_tutorial_runs(tmp_path, monkeypatch):
    """docs/tutorial.md runs top to bottom in an empty directory, as a reader would."""
    monkeypatch.chdir(tmp_path)
    result = doctest.testfile(
        os.path.join(DOCS, "tutorial.md"),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 20 and result.failed == 0


def test_cli_quick_start_commands_run(tmp_path):
    """Every command of docs/cli.md's quick start runs and succeeds on a real journal."""
    import re
    import subprocess
    import sys

    import safe_data

    home = tmp_path / "journal"
    with safe_data.Journal(home) as journal:
        cart = safe_data.SafeList(range(60), name="cart", journal=journal)
        while cart:
            cart.pop()
    text = Path(DOCS, "cli.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    commands = [
        line.split("#")[0].split(">")[0].split()
        for line in block.splitlines()
        if line.startswith("safe-data ")
    ]
    assert len(commands) >= 5
    env = dict(os.environ, SAFE_DATA_HOME=str(home))
    for command in commands:
        proc = subprocess.run(
            [sys.executable, "-m", "safe_data", *command[1:]],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, (command, proc.stdout[-500:], proc.stderr[-500:])
