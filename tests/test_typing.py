"""Typing that helps: ``mypy --strict`` over tests/typing/usage.py (code written against the
public API) finds exactly the errors its ``# E:`` comments expect, and ``mypy.stubtest``
finds the stub of the compiled module true of both implementations."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = os.path.dirname(__file__)
USAGE = os.path.join(HERE, "typing", "usage.py")
ALLOWLISTS = os.path.join(HERE, "typing", "stubtest-allowlist-{}.txt")


def test_mypy_strict_finds_exactly_the_expected_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(tmp_path), USAGE],
        capture_output=True,
        text=True,
    )
    got = sorted(re.findall(r"usage\.py:(\d+): error: (.*?)  \[", proc.stdout))
    expected = []
    for number, line in enumerate(Path(USAGE).read_text().splitlines(), 1):
        if "# E: " in line:
            expected.append((str(number), line.split("# E: ", 1)[1].strip()))
    assert got == sorted(expected), proc.stdout + proc.stderr


# stubtest imports the module it checks by name: the twin is checked by answering to the
# compiled module's name, so that both are held to the one stub
STUBTEST = """
import sys
if sys.argv.pop(1) == "twin":
    import safe_data._core_py
    sys.modules["safe_data._core"] = safe_data._core_py
from mypy import stubtest
sys.exit(stubtest.main())
"""


@pytest.mark.parametrize(
    "implementation",
    [
        pytest.param(
            "extension",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("safe_data._core") is None, reason="the extension is not built"
            ),
        ),
        "twin",
    ],
)
def test_the_stub_is_true_of_both_implementations(tmp_path, implementation):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            STUBTEST,
            implementation,
            "safe_data._core",
            "--mypy-config-file",
            os.devnull,
            "--allowlist",
            ALLOWLISTS.format("both"),
            "--allowlist",
            ALLOWLISTS.format(implementation),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
