"""The stubs give users real types: mypy over tests/typing/usage.py finds exactly the expected errors."""

import os
import re
import subprocess
import sys

USAGE = os.path.join(os.path.dirname(__file__), "typing", "usage.py")


def test_mypy_sees_generic_safe_containers(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir", str(tmp_path), USAGE],
        capture_output=True, text=True,
    )
    got = sorted(re.findall(r"usage\.py:(\d+): error: (.*?)  \[", proc.stdout))
    expected = []
    for number, line in enumerate(open(USAGE), 1):
        if "# E: " in line:
            expected.append((str(number), line.split("# E: ", 1)[1].strip()))
    assert got == sorted(expected), proc.stdout + proc.stderr
