"""The documentation site builds without a single warning (scripts/build_docs.sh).

The docs tools are in the `docs` extra; without them these tests are skipped.  The build
takes a few seconds; it runs on whichever implementation the suite runs on, so both
docstring sets are checked.
"""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
SCRIPT = os.path.join(ROOT, "scripts", "build_docs.sh")
DOCS = os.path.join(ROOT, "docs")

_MISSING = [m for m in ("sphinx", "myst_parser", "furo") if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.one_pass,
    pytest.mark.skipif(
        bool(_MISSING), reason=f"docs tools not installed ({', '.join(_MISSING)}): pip install '.[docs]'"
    ),
]


def build(out, source=DOCS):
    return subprocess.run(
        ["bash", SCRIPT, str(out), str(source)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHON=sys.executable),
        timeout=120,
    )


def test_the_site_builds_without_warnings(tmp_path):
    proc = build(tmp_path / "html")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr[-3000:]
    pages = {name[:-3] for name in os.listdir(DOCS) if name.endswith(".md")}
    built = {name[:-5] for name in os.listdir(tmp_path / "html") if name.endswith(".html")}
    assert pages <= built, pages - built
    # autodoc really ran (a directive parsed as Markdown would render as plain text, silently)
    api = (tmp_path / "html" / "api.html").read_text(encoding="utf-8")
    for name in (
        "safe_data.Journal.records",
        "safe_data.atomic.open",
        "safe_data.synced.SyncedCollection",
        "safe_data.integrations.sqlalchemy.protect",
    ):
        assert f'id="{name}"' in api, name
    # every export of `import safe_data` has its entry: a new export fails until documented
    import safe_data

    missing = [name for name in safe_data.__all__ if f'id="safe_data.{name}"' not in api]
    assert not missing, f"add to docs/api.rst: {missing}"


def test_a_broken_link_fails_the_build(tmp_path):
    """Negative control: the strict build does catch a warning."""
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build"))
    with open(source / "caveats.md", "a", encoding="utf-8") as f:
        f.write("\nSee [nowhere](no-such-page.md).\n")
    proc = build(tmp_path / "html", source)
    assert proc.returncode != 0
    assert "no-such-page" in proc.stderr


def test_a_table_of_contents_fails_the_build(tmp_path):
    """Negative control: a ``contents`` directive builds without a warning from Sphinx, yet
    Furo shows it as a red "ERROR" box (its own table of contents is in the sidebar); the
    strict build catches it, in reStructuredText and in Markdown pages."""
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build"))
    api = (source / "api.rst").read_text(encoding="utf-8")  # under the title: it has entries
    (source / "api.rst").write_text(
        api.replace("=\n\n", "=\n\n.. contents::\n   :local:\n\n", 1), encoding="utf-8"
    )
    with open(source / "caveats.md", "a", encoding="utf-8") as f:
        f.write("\n```{contents}\n```\n")
    proc = build(tmp_path / "html", source)
    assert proc.returncode != 0
    assert "api.rst" in proc.stderr and "caveats.md" in proc.stderr, proc.stderr[-3000:]
    assert "table of contents" in proc.stderr, proc.stderr[-3000:]
