"""Instructions per journaled operation, counted by valgrind's callgrind.

Times on a shared machine move by 2x between identical runs; instruction counts do not.
Each scenario runs twice, with n and 2n operations, in a fresh interpreter under
callgrind with a fixed hash seed; (count(2n) - count(n)) / n is the cost of one
operation, start-up and set-up cancelled out.  To compare a change, run it with the
Python of each build (each its own ``pip install -e .``)::

    python benchmarks/instructions.py                  # this interpreter's build
    python benchmarks/instructions.py --python /other/venv/bin/python

Needs valgrind.  The figures include the Python loop around each operation (the same
bytecode in every build), so compare them between builds, not with the builtins'.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

#: scenario -> the statements that build the container and run ``n`` operations
SCENARIOS = {
    "list.pop() small int": "L = safe_data.SafeList(range(n), name='l', journal=j)\n"
    "for _ in range(n): L.pop()",
    "del d[k]": "d = safe_data.SafeDict({str(i): i for i in range(n)}, name='d', journal=j)\n"
    "for k in list(d): del d[k]",
    "d[k] = v overwrite": "d = safe_data.SafeDict({i: i for i in range(100)}, name='d', journal=j)\n"
    "for i in range(n): d[i % 100] = i",
    "s.discard(x)": "s = safe_data.SafeSet(range(n), name='s', journal=j)\nfor i in range(n): s.discard(i)",
    "clear() per item, lists of 1000": "for _ in range(n // 1000):\n"
    "    L = safe_data.SafeList(range(1000), name='c', journal=j)\n"
    "    L.clear()",
}

_PROGRAM = """
import sys, tempfile, safe_data
n = int(sys.argv[1])
j = safe_data.Journal(tempfile.mkdtemp(dir=sys.argv[2]))
{body}
"""


def count(python: str, body: str, n: int, scratch: str) -> int:
    program = _PROGRAM.format(body=body)
    env = dict(os.environ, PYTHONHASHSEED="0")
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            python,
            "-c",
            program,
            str(n),
            scratch,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return int(re.search(r"Collected : (\d+)", out.stderr).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter of the build to count")
    parser.add_argument(
        "-n", type=int, default=20000, help="operations in the shorter run (a multiple of 1000)"
    )
    args = parser.parse_args()
    if args.n <= 0 or args.n % 1000:
        parser.error("-n must be a positive multiple of 1000")
    with tempfile.TemporaryDirectory() as scratch:
        # once outside valgrind: bytecode caches written, so no run counts a compilation
        subprocess.run([args.python, "-c", "import safe_data"], check=True)
        for name, body in SCENARIOS.items():
            short, long = (count(args.python, body, n, scratch) for n in (args.n, 2 * args.n))
            print(f"{name:34s} {(long - short) / args.n:9.1f} instructions/op")


if __name__ == "__main__":
    main()
