"""The safe-data command."""

import os
import subprocess
import sys

from click.testing import CliRunner

from safe_data.cli import main


def test_demo_walks_through_and_succeeds(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--journal", str(tmp_path / "j")])
    assert result.exit_code == 0, result.output
    assert "1000 of 1000 popped values are in the journal" in result.output
    assert "['bread', 'milk', 'eggs', 'apple']" in result.output
    assert "0 problems" in result.output


def test_python_dash_m_and_version(tmp_path):
    env = dict(os.environ, SAFE_DATA_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "safe_data", "--version"], env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("safe-data, version ")
