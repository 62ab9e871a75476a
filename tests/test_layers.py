"""The journal is the bottom layer: it imports nothing above it.  Above it, the record
formatting the command line and the web view share (``present.py``) needs neither of
them, the backup server and its web view need nothing of the command line, and ``serve``
leaves the web view to the server.

Two checks, because each misses what the other sees: an AST walk of the journal's
sources finds every import, the ones inside functions too; importing each module in a
fresh interpreter (with ``safe_data/__init__`` kept from running, since it pulls in every
layer) shows what the modules really load, Cython modules included.
"""

import ast
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

import safe_data

#: the sources, read from the repository (an installed wheel has no .pyx/.pxd); the
#: import probes run the installed package (where the extension is built)
PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "src" / "safe_data"
INSTALLED = pathlib.Path(safe_data.__file__).parent
JOURNAL = PACKAGE / "journal"
#: what the journal may use: itself and the package's foundation modules
BELOW_OR_AT = (
    "safe_data.journal",
    "safe_data.errors",
    "safe_data._faults",
    "safe_data._fs",
    "safe_data._impl",
)


def _allowed(module: str) -> bool:
    return not module.startswith("safe_data") or any(
        module == name or module.startswith(name + ".") for name in BELOW_OR_AT
    )


def _imports_of(path: pathlib.Path) -> set[str]:
    """Absolute names of every module ``path`` imports, at any depth of the code."""
    package = "safe_data." + ".".join(path.relative_to(PACKAGE).parent.parts)
    package = package.rstrip(".")
    if path.suffix != ".py":  # Cython: its import and cimport statements, read as text
        names = set()
        for match in re.finditer(
            r"^\s*from\s+(\.*)([\w.]*)\s+c?import\s+([\w, ()]+)", path.read_text(), re.M
        ):
            names |= _resolve(
                package,
                len(match.group(1)),
                match.group(2),
                [n.strip(" ()") for n in match.group(3).split(",")],
            )
        for match in re.finditer(r"^\s*c?import\s+([\w.]+)", path.read_text(), re.M):
            names.add(match.group(1))
        return names
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names |= _resolve(package, node.level, node.module or "", [a.name for a in node.names])
    return names


def _resolve(package: str, level: int, module: str, members: list[str]) -> set[str]:
    if level == 0:
        base = module
    else:
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - level + 1] + ([module] if module else []))
    # ``from . import format``: the members are modules; ``from .x import name``: x is one
    return {base} if module else {f"{base}.{m}" for m in members}


def _journal_sources():
    return sorted(p for p in JOURNAL.iterdir() if p.suffix in (".py", ".pyx", ".pxd"))


@pytest.mark.parametrize("path", _journal_sources(), ids=lambda p: p.name)
def test_journal_sources_import_nothing_above_the_journal(path):
    above = sorted(name for name in _imports_of(path) if not _allowed(name))
    assert above == [], f"{path.name} imports {above}"


_PROBE = """
import importlib, json, sys, types
package = types.ModuleType("safe_data")
package.__path__ = [sys.argv[1]]
sys.modules["safe_data"] = package
importlib.import_module(sys.argv[2])
print(json.dumps(sorted(m for m in sys.modules if m != "safe_data")))  # all but the stand-in
"""


@pytest.mark.parametrize(
    "module",
    [f"safe_data.journal.{p.stem}" for p in _journal_sources() if p.suffix == ".py"] + ["safe_data._impl"],
)
def test_importing_the_journal_loads_nothing_above_it(module):
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(INSTALLED), module],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr
    above = [name for name in json.loads(out.stdout) if not _allowed(name)]
    assert above == [], f"importing {module} loads {above}"


def test_the_c_constants_are_the_formats():
    from safe_data.journal import format as fmt

    declared = dict(re.findall(r"^\s+([A-Z_0-9]+) = (\w+)", (JOURNAL / "_format.pxd").read_text(), re.M))
    assert declared, "no constant found in _format.pxd"
    for name, value in declared.items():
        assert int(value, 0) == getattr(fmt, name), name


# --- above the journal -------------------------------------------------------------------------


def _within(module: str, packages) -> bool:
    return any(module == name or module.startswith(name + ".") for name in packages)


def _python_sources(*directories: pathlib.Path):
    return sorted(p for directory in directories for p in directory.rglob("*.py"))


#: what the shared record formatting may not use: the interfaces it serves
NOT_FOR_PRESENT = ("click", "rich", "aiohttp", "safe_data.cli", "safe_data.server", "safe_data.web")


def test_present_imports_no_interface():
    found = sorted(name for name in _imports_of(PACKAGE / "present.py") if _within(name, NOT_FOR_PRESENT))
    assert found == [], f"present.py imports {found}"


def test_importing_present_loads_no_interface():
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(INSTALLED), "safe_data.present"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr
    loaded = [name for name in json.loads(out.stdout) if _within(name, NOT_FOR_PRESENT)]
    assert loaded == [], f"importing safe_data.present loads {loaded}"


# the old name of the web view (web/) too: it must not bring the command line back in
@pytest.mark.parametrize(
    "path", _python_sources(PACKAGE / "server", PACKAGE / "web"), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_the_server_and_its_web_view_import_nothing_of_the_command_line(path):
    found = sorted(name for name in _imports_of(path) if _within(name, ("safe_data.cli",)))
    assert found == [], f"{path.relative_to(PACKAGE)} imports {found}"


def test_serve_leaves_the_web_view_to_the_server():
    found = sorted(
        name
        for name in _imports_of(PACKAGE / "cli" / "serving.py")
        if _within(name, ("safe_data.server.web", "safe_data.web"))
    )
    assert found == [], f"cli/serving.py imports {found}"
