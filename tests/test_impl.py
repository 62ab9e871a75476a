"""The selector: the implementation CI asked for is the one that runs."""

import os
import subprocess
import sys

import safe_data
from safe_data import _core_py

from ._helpers import EXTENSION_EXPECTED


def test_expected_implementation_is_loaded():
    if EXTENSION_EXPECTED:
        from safe_data import _core  # fails loudly if the extension was not built

        assert safe_data.EXTENSION
        assert safe_data.SafeList is _core.SafeList
        assert safe_data.SafeDict is _core.SafeDict
        assert safe_data.SafeSet is _core.SafeSet
        assert safe_data.default_journal()._writer.__class__ is _core.RecordWriter
    else:
        assert not safe_data.EXTENSION
        assert safe_data.SafeList is _core_py.SafeList
        assert safe_data.default_journal()._writer.__class__ is _core_py.RecordWriter


def test_both_implementations_export_the_same_names():
    try:
        from safe_data import _core
    except ImportError:
        return
    assert sorted(_core.__all__) == sorted(_core_py.__all__)
    for name in ("DURABILITY_PROCESS", "DURABILITY_BATCH", "DURABILITY_FSYNC"):
        assert getattr(_core, name) == getattr(_core_py, name)


def test_require_extensions_fails_loudly_when_missing(tmp_path):
    # An interpreter that cannot see the compiled module must refuse, not fall back.
    script = (
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'safe_data.journal._writer_c': raise ImportError('hidden')\n"
        "sys.meta_path.insert(0, Hide())\n"
        "import safe_data\n"
    )
    env = dict(os.environ, SAFE_DATA_REQUIRE_EXTENSIONS="1", SAFE_DATA_HOME=str(tmp_path))
    env.pop("SAFE_DATA_NO_EXTENSIONS", None)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "hidden" in proc.stderr
    env.pop("SAFE_DATA_REQUIRE_EXTENSIONS")
    proc = subprocess.run(
        [sys.executable, "-c", script + "assert not safe_data.EXTENSION\n"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_import_does_not_load_heavy_modules():
    code = (
        "import sys, safe_data; heavy = [m for m in ('aiohttp', 'zstandard', 'lz4', 'click', 'rich', "
        "'sqlalchemy', 'difflib', 'hmac') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
