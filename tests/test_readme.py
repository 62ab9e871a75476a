"""Every Python block of README.md runs, in order, as a reader would run them: in a fresh
interpreter (so that ``import safe_data`` is all a block has imported), in an empty
directory, with a real backup server for the remote backup block.  A block that prints
says what it prints in its ``# `` comment lines.

The README leaves two names to the reader, ``BACKUP_URL`` and ``TOKEN`` (their server's
address and token); the test gives them those of its own server, and nothing else.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import safe_data

from .backup_server import start_server_for, stop

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")
TOKEN = "readme-test-token-52b8"
END = "--- end of block ---"
#: a record's time, as printed: the only part of the output that changes from run to run
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\+\d\d:\d\d")

# run by a fresh interpreter: each block in one shared namespace, an END line after each
RUNNER = (
    """
import json, sys
namespace = {"__name__": "__main__", "BACKUP_URL": sys.argv[2], "TOKEN": sys.argv[3]}
for number, code in enumerate(json.load(open(sys.argv[1])), 1):
    exec(compile(code, f"README.md, Python block {number}", "exec"), namespace)
    print("""
    + repr(END)
    + """, flush=True)
"""
)


def python_blocks():
    text = Path(README).read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def claimed_output(block):
    """The ``# `` lines of a block that prints (others are comments, not output)."""
    if "print(" not in block:
        return []
    return [line[2:] for line in block.splitlines() if line.startswith("# ")]


def test_every_python_block_of_the_readme_runs(tmp_path):
    blocks = python_blocks()
    assert len(blocks) >= 4
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    (tmp_path / "RUNNER.py").write_text(RUNNER)
    server, url = start_server_for(tmp_path, TOKEN)
    try:
        work = tmp_path / "reader"
        work.mkdir()
        proc = subprocess.run(
            [sys.executable, str(tmp_path / "RUNNER.py"), str(tmp_path / "blocks.json"), url, TOKEN],
            cwd=work,
            env=dict(os.environ, SAFE_DATA_HOME=str(tmp_path / "journal")),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        outputs = proc.stdout.split(END + "\n")
        assert outputs[-1] == "" and len(outputs) == len(blocks) + 1, proc.stdout
        for number, (block, printed) in enumerate(zip(blocks, outputs[:-1], strict=True), 1):
            claimed = claimed_output(block)
            got = printed.splitlines()
            assert len(got) == len(claimed), (number, got, claimed)
            assert [TIME.sub("<time>", line) for line in got] == [
                TIME.sub("<time>", line) for line in claimed
            ], number

        # the uploader block shipped what the first block discarded
        pulled = tmp_path / "pulled"
        subprocess.run(
            [sys.executable, "-m", "safe_data", "--journal", str(pulled), "pull", url, "--token", TOKEN],
            check=True,
            capture_output=True,
            timeout=60,
        )
    finally:
        stop(server)
    with safe_data.Journal(pulled, readonly=True) as journal:
        shipped = {(r.container, r.op) for r in journal.records()}
    assert {("cart", "pop"), ("prefs", "set")} <= shipped, shipped


@pytest.mark.parametrize("module", ["atomic", "synced"])
def test_subpackages_are_attributes_after_import_safe_data_alone(module):
    """``import safe_data; safe_data.atomic.open(...)`` works, and loads nothing early."""
    code = (
        f"import sys, safe_data\n"
        f"assert 'safe_data.{module}' not in sys.modules\n"
        f"print(safe_data.{module}.__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == f"safe_data.{module}\n", proc.stderr
