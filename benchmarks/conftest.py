"""pytest hooks and fixtures of the safe_data benchmark suite; the helpers, variants and
ratio rules are in benchutil.py (see benchmarks/README.md)."""

import json

import pytest
from benchutil import (
    Journals,
    check_targets,
    compute_ratios,
    make_sealed_segments,
    print_summary,
    summary_rows,
)


@pytest.fixture
def journals(tmp_path):
    js = Journals(tmp_path / "journals")
    yield js
    js.close()


@pytest.fixture(scope="session")
def upload_segments(tmp_path_factory):
    """(journal directory, names, total bytes) of sealed ~1 MiB segments to upload."""
    where = tmp_path_factory.mktemp("upload-source") / "journal"
    names, total = make_sealed_segments(where)
    return where, names, total


# --- hooks -------------------------------------------------------------------------------------


def pytest_addoption(parser):
    parser.addoption(
        "--bench-summary",
        default=None,
        metavar="PATH",
        help="write the safe_data ratio summary (rows and targets) as JSON to PATH",
    )


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    # Before pytest-benchmark's own sessionfinish, which saves --benchmark-json/--benchmark-save.
    bs = getattr(session.config, "_benchmarksession", None)
    if bs is not None and bs.benchmarks:
        compute_ratios(bs.benchmarks)
        rows = summary_rows(bs.benchmarks)
        session.config._safe_data_summary = rows
        path = session.config.getoption("--bench-summary")
        if path:
            with open(path, "w") as f:
                json.dump(
                    {
                        "rows": rows,
                        "targets": [
                            dict(zip(("target", "where", "value", "ok"), t, strict=True))
                            for t in check_targets(rows)
                        ],
                    },
                    f,
                    indent=2,
                )
    yield


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    rows = getattr(terminalreporter.config, "_safe_data_summary", None)
    if rows:
        print_summary(terminalreporter.write_line, rows)
