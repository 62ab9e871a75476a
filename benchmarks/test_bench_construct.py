"""Group 18: constructing a safe container, against the builtin's constructor.

Each round builds 10,000 containers, empty or from 10 items (10 int keys for a dict),
named and on the default journal (``configure()``), as application code writes them; each
is dropped before the next is built, so deallocation is in the figure too.  Nothing is
journaled.  ``x_builtin``: time per construction over the builtin's.  Target: <= 3x.
(Instruction counts of the same loops: ``benchmarks/instructions.py -k Safe``.)
"""

import pytest
from benchutil import run

import safe_data
from safe_data.journal import registry

CALLS = 10_000
ITEMS = list(range(10))
MAPPING = {i: i for i in range(10)}
KINDS = ("SafeList", "SafeDict", "SafeSet")

#: form -> (builtin, safe): the expression that builds one container
FORMS = {
    "SafeList(name=)": ("list()", "SafeList(name='l')"),
    "SafeDict(name=)": ("dict()", "SafeDict(name='d')"),
    "SafeSet(name=)": ("set()", "SafeSet(name='s')"),
    "SafeList(10 items, name=)": ("list(ITEMS)", "SafeList(ITEMS, name='l')"),
    "SafeDict(10 keys, name=)": ("dict(MAPPING)", "SafeDict(MAPPING, name='d')"),
    "SafeSet(10 items, name=)": ("set(ITEMS)", "SafeSet(ITEMS, name='s')"),
}


def loop_of(expression: str):
    """``for _ in range(CALLS): <expression>``, compiled as it is written (a function or
    lambda per call would add its own call to both rows)."""
    namespace = {"ITEMS": ITEMS, "MAPPING": MAPPING, **{n: getattr(safe_data, n) for n in KINDS}}
    exec(f"def construct_each():\n    for _ in range({CALLS}):\n        {expression}\n", namespace)
    return namespace["construct_each"]


@pytest.fixture
def default_journal(tmp_path):
    previous = registry.swap_default(None)
    journal = safe_data.configure(tmp_path / "j")
    yield journal
    registry.swap_default(previous)
    journal.close()


@pytest.mark.parametrize("variant", ["builtin", "c"])
@pytest.mark.parametrize("form", list(FORMS))
def test_construct(benchmark, default_journal, form, variant):
    run(
        benchmark,
        loop_of(FORMS[form][variant == "c"]),
        group=f"18 construct: {form}",
        variant=variant,
        ops=CALLS,
        rounds=7,
    )
