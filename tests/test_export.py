"""``safe-data export``: every record that matches, once, to JSON Lines or Parquet, read
back against ``Journal.records()``."""

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

import safe_data as sd
from safe_data.present import dumps, record_fields

from ._helpers import run_in_terminal

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def run_cli(journal, *args):
    return subprocess.run(
        [sys.executable, "-m", "safe_data", "--journal", str(journal), *args],
        capture_output=True,
        timeout=120,
    )


@pytest.fixture
def journal(tmp_path):
    """Two containers' records over many small segments, with values JSON cannot hold as
    they are (bytes, sets, NaN, tuples, int keys), and a time in the middle."""
    journal = sd.Journal(tmp_path / "journal", segment_size=8192)
    orders = sd.SafeDict(
        {i: (i, b"\x00raw", {i, -i}, float("nan")) for i in range(300)}, name="orders", journal=journal
    )
    queue = sd.SafeList(range(300), name="queue", journal=journal)
    for i in range(150):
        del orders[i]
        queue.pop()
    time.sleep(0.01)
    middle = time.time_ns()
    for i in range(150, 300):
        del orders[i]
        queue.pop()
    journal.close()
    reader = sd.Journal(tmp_path / "journal", readonly=True)
    assert len(list(reader.records())) == 600
    return reader, middle


def expected(records) -> list[dict]:
    """The records as "log --json" writes them, parsed back."""
    return [json.loads(dumps(record_fields(record))) for record in records]


def test_jsonl_holds_every_record_once_as_log_json_writes_it(journal, tmp_path):
    reader, _ = journal
    out = tmp_path / "all.jsonl"
    result = run_cli(reader.path, "export", "--format", "jsonl", "--output", out)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    records = list(reader.records())
    assert lines == expected(records)
    assert len({(line["writer"], line["seq"]) for line in lines}) == len(records) == 600
    first = next(line for line in lines if line["container"] == "orders")
    assert first["values"] == {"0": [0, "AHJhdw==", [0], "nan"]}  # bytes base64, set sorted
    assert result.stderr.decode().splitlines() == [f"exported 600 records to {out}"]  # no bar


def test_parquet_holds_every_record_once_with_the_same_fields(journal, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    reader, _ = journal
    out = tmp_path / "all.parquet"
    result = run_cli(reader.path, "export", "--format", "parquet", "--output", out)
    assert result.returncode == 0, result.stderr
    rows = pq.read_table(out).to_pylist()
    for row in rows:
        for name in ("key", "values", "caller"):
            row[name] = json.loads(row[name])
    assert rows == expected(reader.records())


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_filters_by_container_and_time(journal, tmp_path, file_format):
    if file_format == "parquet":
        pytest.importorskip("pyarrow")
    reader, middle = journal
    out = tmp_path / f"some.{file_format}"
    # the middle, to the microsecond below (an ISO time holds no more): 10 ms after the
    # records before it
    cut = (EPOCH + timedelta(microseconds=middle // 1000)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    result = run_cli(
        reader.path,
        "export",
        "--format",
        file_format,
        "--output",
        out,
        "--container",
        "queue",
        "--since",
        cut,
    )
    assert result.returncode == 0, result.stderr
    wanted = [r for r in reader.records("queue") if r.time_ns >= middle]
    assert len(wanted) == 150
    assert [row["seq"] for row in _rows(out, file_format)] == [r.seq for r in wanted]
    until = run_cli(reader.path, "export", "--format", file_format, "--output", out, "--until", cut)
    assert until.returncode == 0, until.stderr
    assert len(_rows(out, file_format)) == 300


def _rows(path, file_format) -> list[dict]:
    if file_format == "jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def test_no_match_exits_3_with_an_empty_file(journal, tmp_path):
    reader, _ = journal
    out = tmp_path / "none.jsonl"
    result = run_cli(reader.path, "export", "--format", "jsonl", "--output", out, "--container", "nope")
    assert result.returncode == 3
    assert out.read_text() == ""


def test_parquet_without_pyarrow_says_which_extra_in_one_line(journal, tmp_path):
    reader, _ = journal
    out = tmp_path / "all.parquet"
    blocked = (
        "import sys; sys.modules['pyarrow'] = None; from safe_data.cli import main; "
        "main(['--journal', sys.argv[1], 'export', '--format', 'parquet', '--output', sys.argv[2]])"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocked, reader.path, str(out)], capture_output=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        "Error: --format parquet needs pyarrow: pip install 'safe_data[parquet]'"
    ]
    assert not out.exists() and not list(tmp_path.glob(".export-*"))


def test_a_progress_bar_on_a_terminal(journal, tmp_path):
    reader, _ = journal
    out = tmp_path / "all.jsonl"
    code, shown = run_in_terminal(
        [
            sys.executable,
            "-m",
            "safe_data",
            "--journal",
            reader.path,
            "export",
            "--format",
            "jsonl",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    assert "exporting to all.jsonl" in shown and f"exported 600 records to {out}" in shown
    assert len(out.read_text().splitlines()) == 600
