import importlib.util
import os

import pytest

import safe_data
from safe_data.journal import journal as journal_module


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own default journal directory, closed afterwards."""
    monkeypatch.setenv("SAFE_DATA_HOME", str(tmp_path / "default-journal"))
    monkeypatch.setattr(journal_module, "_default", None)
    yield
    default = journal_module._default
    if default is not None:
        default.close()


@pytest.fixture
def journal(tmp_path):
    j = safe_data.Journal(tmp_path / "journal")
    yield j
    j.close()


def records(journal, container=None):
    return list(journal.records(container, on_error="raise"))


def discarded(journal, container=None):
    """Every discarded value in the journal, flattened (dict records give their values)."""
    out = []
    for r in records(journal, container):
        out.extend(r.values.values() if isinstance(r.values, dict) else r.values)
    return out


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


# The implementation this run must be on: the flags CI sets decide (with
# SAFE_DATA_REQUIRE_EXTENSIONS=1 a missing extension already fails `import safe_data`);
# without them, the extension wherever it was built: an install on a machine without a C
# compiler has the pure-Python twin only.
if _flag("SAFE_DATA_NO_EXTENSIONS"):
    EXTENSION_EXPECTED = False
elif _flag("SAFE_DATA_REQUIRE_EXTENSIONS"):
    EXTENSION_EXPECTED = True
else:
    EXTENSION_EXPECTED = importlib.util.find_spec("safe_data._core") is not None
