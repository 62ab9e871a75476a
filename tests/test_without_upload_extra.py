"""Without the ``upload`` extra (no aiohttp), what needs it says at once how to install it.

Each case runs in a real subprocess whose import of aiohttp fails as it does where aiohttp
is not installed (a ``sys.meta_path`` finder ahead of the real ones).
"""

import os
import subprocess
import sys
import time

import safe_data

INSTALL = "pip install 'safe_data[upload]'"

NO_AIOHTTP = """
import sys

class NoAiohttp:
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp" or name.startswith("aiohttp."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoAiohttp())
"""


def run_without_aiohttp(program: str, *args, env=None):
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", NO_AIOHTTP + program, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return proc, time.monotonic() - started


def cli_without_aiohttp(*args, env=None):
    return run_without_aiohttp("from safe_data.cli import main\nmain()", *args, env=env)


def journal_with_a_segment(path):
    with safe_data.Journal(path) as journal:
        safe_data.SafeList([1, 2, 3], name="orders", journal=journal).clear()
    return path


def assert_one_line_saying_how_to_install(proc, elapsed):
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and INSTALL in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and elapsed < 10


def test_push_to_a_server_or_a_bucket_says_how_to_install_aiohttp(tmp_path):
    source = journal_with_a_segment(tmp_path / "source")
    before = sorted(os.listdir(source))
    env = dict(os.environ, AWS_ACCESS_KEY_ID="id", AWS_SECRET_ACCESS_KEY="secret")
    for target in ("http://127.0.0.1:9", "s3://bucket"):
        proc, elapsed = cli_without_aiohttp("--journal", str(source), "push", target, "--token", "t", env=env)
        assert_one_line_saying_how_to_install(proc, elapsed)
    assert sorted(os.listdir(source)) == before


def test_serve_says_how_to_install_aiohttp(tmp_path):
    env = dict(os.environ, SAFE_DATA_TOKENS="app:token")
    proc, elapsed = cli_without_aiohttp("serve", "--store", str(tmp_path / "store"), "--port", "0", env=env)
    assert_one_line_saying_how_to_install(proc, elapsed)


def test_an_uploader_to_a_server_fails_at_once(tmp_path):
    proc, elapsed = run_without_aiohttp(f"""
import safe_data
try:
    safe_data.Uploader(safe_data.HttpSink("http://127.0.0.1:9", "token"), {str(tmp_path / "j")!r}).start()
except ImportError as exc:
    print(f"{{type(exc).__name__}}: {{exc}}")
""")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.startswith("MissingDependencyError: HttpSink needs aiohttp") and INSTALL in proc.stdout
    assert elapsed < 10


def test_what_needs_no_aiohttp_works_without_it(tmp_path):
    """The control: the finder blocks aiohttp only; a push to a directory still works."""
    source = journal_with_a_segment(tmp_path / "source")
    proc, _ = cli_without_aiohttp("--journal", str(source), "push", str(tmp_path / "backup"))
    assert proc.returncode == 0, proc.stderr
    assert "1 segment acknowledged" in proc.stdout
    proc, _ = run_without_aiohttp("import aiohttp")
    assert "No module named 'aiohttp'" in proc.stderr
