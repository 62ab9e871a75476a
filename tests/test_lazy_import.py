"""``import safe_data`` loads what the containers need to be made and to journal, and
nothing else: the rest of the API loads on first use (the package's ``__getattr__``).

Each test runs a fresh interpreter: this one has imported everything already.  The
import time itself is measured in benchmarks/test_bench_footprint.py.
"""

import subprocess
import sys

import pytest

import safe_data

#: the package modules a C container needs at construction and on its first discard
#: that ``import safe_data`` may load; the twin's writer needs a few more
NEEDED = {
    "safe_data",
    "safe_data._faults",
    "safe_data._impl",
    "safe_data.containers",
    "safe_data.containers._containers_c",
    "safe_data.containers._support",
    "safe_data.errors",
    "safe_data.journal",
    "safe_data.journal._records_c",
    "safe_data.journal._writer_c",
    "safe_data.journal.codec",
    "safe_data.journal.format",
    "safe_data.journal.registry",
}
#: what ``import safe_data`` must not load, on either implementation
DEFERRED = {
    # the layers above the containers, the journal's reading side, the old module names
    "safe_data.app_state",
    "safe_data.history",
    "safe_data.transactions",
    "safe_data.present",
    "safe_data.protect",
    "safe_data.containers.protect",
    "safe_data.containers.proxies",
    "safe_data.containers.patching",
    "safe_data.journal.journal",
    "safe_data.journal.reader",
    "safe_data.journal.records",
    "safe_data.journal.recovery",
    "safe_data.journal.index",
    "safe_data.remote",
    "safe_data.atomic",
    "safe_data.synced",
    # heavy third-party and standard modules
    "aiohttp",
    "zstandard",
    "lz4",
    "click",
    "rich",
    "sqlalchemy",
    "hmac",
    "difflib",
    "copy",
    "datetime",
    "enum",
    "json",
    "pickle",
    "re",
    "typing",
}


def run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def loaded_by_import() -> set[str]:
    return set(run("import sys, safe_data; print('\\n'.join(sys.modules))").split())


def test_import_loads_none_of_what_the_containers_do_not_need():
    assert sorted(loaded_by_import() & DEFERRED) == []


@pytest.mark.skipif(not safe_data.EXTENSION, reason="the twin's writer needs more of the journal")
def test_import_loads_only_what_the_c_containers_need():
    ours = {name for name in loaded_by_import() if name.startswith("safe_data")}
    assert sorted(ours - NEEDED) == []


def test_every_public_name_resolves_after_import_alone(tmp_path):
    code = f"""
import safe_data
missing = set(safe_data.__all__) - set(dir(safe_data))
assert not missing, f"not in dir(safe_data): {{sorted(missing)}}"
for name in safe_data.__all__:
    assert getattr(safe_data, name) is not None, name
    exec(f"from safe_data import {{name}}")
journal = safe_data.configure({str(tmp_path)!r})
x = safe_data.SafeList([1, 2], name="x")
x.pop()
assert [r.values for r in safe_data.history("x")] == [[2]]
journal.close()
"""
    run(code)


def test_history_stays_the_function_when_its_module_loads_first(tmp_path):
    """The module ``safe_data.history`` and the function ``safe_data.history`` share a
    name: loading the module on its own (here through safe_data.transactions) must leave
    the package's attribute the function."""
    code = f"""
import safe_data
import safe_data.transactions
from safe_data.history import ADDING_OPS
with safe_data.Journal({str(tmp_path)!r}) as journal:
    assert safe_data.history("nobody", journal) == []
"""
    run(code)


@pytest.mark.parametrize("old", ["protect", "proxies", "patching", "_support"])
def test_an_old_module_name_imports_in_a_fresh_interpreter(old):
    code = f"""
import importlib, safe_data
old = importlib.import_module("safe_data.{old}")
assert old is importlib.import_module("safe_data.containers.{old}") is safe_data.{old}
print(old.__spec__.name)
"""
    assert run(code) == f"safe_data.containers.{old}\n"
