"""Instructions per operation of the safe containers, counted by valgrind's callgrind.

Times on a shared machine move by 2x between identical runs; instruction counts do not.
Each scenario runs twice, with n and 2n operations, in a fresh interpreter under
callgrind with a fixed hash seed; (count(2n) - count(n)) / n is the cost of one
operation, start-up and set-up cancelled out.  To compare a change, run it with the
Python of each build (each its own ``pip install -e .``)::

    python benchmarks/instructions.py                  # this interpreter's build
    python benchmarks/instructions.py --python /other/venv/bin/python
    python benchmarks/instructions.py -k Safe          # the scenarios named ...Safe...

Needs valgrind.  Each operation runs in a loop inside a function, on the builtin and on
the safe container, so the figures include the loop (the same bytecode for both);
builtin/safe is the share of the builtin's instructions per operation, the rate ratio
the benchmarks' x_builtin would show if both ran at the same instructions per cycle.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

#: scenario -> (the container, built from ``m`` items, as a builtin and as a safe one; the
#: loop of ``n`` operations on ``x``).  The container is the same size in both runs, so
#: building it cancels out; only the operations are counted.  In the loop, ``{kind}`` is
#: the class and ``{make}`` the container's expression; ``items`` (10 ints) and ``mapping``
#: (10 int keys) are there to build from.  The journal ``j`` is the default journal too
#: (configure()), so ``name=`` alone finds it as an application's code would.
SCENARIOS = {
    "list.pop() small int": (
        "list(range(m))",
        "safe_data.SafeList(range(m), name='l', journal=j)",
        "for _ in range(n): x.pop()",
    ),
    "list.pop() 5-field dict": (
        "[{'id': i, 'name': f'item-{i:06d}', 'price': 9.99, 'qty': 3, 'active': True} for i in range(m)]",
        "safe_data.SafeList([{'id': i, 'name': f'item-{i:06d}', 'price': 9.99, 'qty': 3, 'active': True}"
        " for i in range(m)], name='l', journal=j)",
        "for _ in range(n): x.pop()",
    ),
    "del d[k]": (
        "{str(i): i for i in range(m)}",
        "safe_data.SafeDict({str(i): i for i in range(m)}, name='d', journal=j)",
        "for k in itertools.islice(list(x), n): del x[k]",
    ),
    "d[k] = v overwrite": (
        "{i: i for i in range(100)}",
        "safe_data.SafeDict({i: i for i in range(100)}, name='d', journal=j)",
        "for i in range(n): x[i % 100] = i",
    ),
    "s.discard(x)": (
        "set(range(m))",
        "safe_data.SafeSet(range(m), name='s', journal=j)",
        "for i in range(n): x.discard(i)",
    ),
    "clear() per item, lists of 1000": (
        "None",
        "None",
        "for _ in range(n // 1000):\n        x = {kind}(range(1000), **kw)\n        x.clear()",
    ),
    "SafeList(name=)": ("list()", "safe_data.SafeList(name='l')", "for _ in range(n): x = {make}"),
    "SafeDict(name=)": ("dict()", "safe_data.SafeDict(name='d')", "for _ in range(n): x = {make}"),
    "SafeSet(name=)": ("set()", "safe_data.SafeSet(name='s')", "for _ in range(n): x = {make}"),
    "SafeList(10 items, name=)": (
        "list(items)",
        "safe_data.SafeList(items, name='l')",
        "for _ in range(n): x = {make}",
    ),
    "SafeDict(10 keys, name=)": (
        "dict(mapping)",
        "safe_data.SafeDict(mapping, name='d')",
        "for _ in range(n): x = {make}",
    ),
    "SafeSet(10 items, name=)": (
        "set(items)",
        "safe_data.SafeSet(items, name='s')",
        "for _ in range(n): x = {make}",
    ),
    "empty SafeDict.update(10 keys)": (
        "[dict() for _ in range(m)]",
        "[safe_data.SafeDict(name='d') for _ in range(m)]",
        "for y in itertools.islice(x, n): y.update(mapping)",
    ),
    "empty SafeList.extend(10 items)": (
        "[list() for _ in range(m)]",
        "[safe_data.SafeList(name='l') for _ in range(m)]",
        "for y in itertools.islice(x, n): y.extend(items)",
    ),
}

_PROGRAM = """
import itertools, sys, tempfile, safe_data
def main(n, m, j):
    kw = dict(name='c', journal=j) if {safe} else {{}}
    items, mapping = list(range(10)), {{i: i for i in range(10)}}
    x = {make}
    {loop}
n = int(sys.argv[1])
main(n, int(sys.argv[3]), safe_data.configure(tempfile.mkdtemp(dir=sys.argv[2])))
"""


def count(python: str, program: str, n: int, n_max: int, scratch: str) -> int:
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
            str(n_max),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return int(re.search(r"Collected : (\d+)", out.stderr).group(1))


def per_op(python: str, program: str, n: int, scratch: str) -> float:
    short, long = (count(python, program, k, 2 * n, scratch) for k in (n, 2 * n))
    return (long - short) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter of the build to count")
    parser.add_argument(
        "-n", type=int, default=20000, help="operations in the shorter run (a multiple of 1000)"
    )
    parser.add_argument("-k", default="", help="only the scenarios whose name contains this")
    args = parser.parse_args()
    if args.n <= 0 or args.n % 1000:
        parser.error("-n must be a positive multiple of 1000")
    with tempfile.TemporaryDirectory() as scratch:
        # once outside valgrind: bytecode caches written, so no run counts a compilation
        subprocess.run([args.python, "-c", "import safe_data"], check=True)
        print(f"{'operation':34s} {'builtin':>9s} {'safe':>9s}  instructions/op, builtin/safe")
        for name, (plain, safe, loop) in SCENARIOS.items():
            if args.k not in name:
                continue
            figures = []
            for kind, make in (("list", plain), ("safe_data.SafeList", safe)):
                body = loop.format(kind=kind, make=make)
                program = _PROGRAM.format(safe=kind != "list", make=make, loop=body)
                figures.append(per_op(args.python, program, args.n, scratch))
            builtin, ours = figures
            print(f"{name:34s} {builtin:9.1f} {ours:9.1f}  {builtin / ours:.2f}")


if __name__ == "__main__":
    main()
