"""Integrations (docs/integrations.md): on_discard hooks, discard logging, the pytest
plugin, safe_data.stats() and the server's metrics.  Runs on both implementations."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

import safe_data
from safe_data import DiscardHookWarning, SafeDict, SafeList, SafeSet
from safe_data.journal import registry

from ._helpers import records

pytest_plugins = ["pytester"]

PLUGIN = "_safe_data_pytestplugin"  # loaded by pytest itself: the pytest11 entry point


# --- on_discard -------------------------------------------------------------------------------


def test_callback_gets_each_record_as_the_journal_holds_it(journal):
    got = []
    callback = got.append
    assert journal.on_discard(callback) is callback
    lst = SafeList([1, 2, 3], name="l", journal=journal)
    d = SafeDict(a=1, b=2, name="d", journal=journal)
    s = SafeSet({7}, name="s", journal=journal)
    lst.pop(0)
    lst.clear()
    d["a"] = 10
    del d["b"]
    s.discard(7)
    journal.record("dict", "pop", "direct", "k", {"k": "v"})
    stored = records(journal)
    assert len(got) == len(stored) == 6
    for live, kept in zip(got, stored, strict=True):
        assert live[:10] == kept[:10]  # seq time_ns container kind op key values pid thread caller
        assert live.writer == kept.writer
        assert live.segment is None and live.offset is None
    assert [(r.container, r.op, r.key, r.values) for r in got] == [
        ("l", "pop", 0, [1]),
        ("l", "clear", None, [2, 3]),
        ("d", "set", "a", {"a": 1}),
        ("d", "del", "b", {"b": 2}),
        ("s", "discard", None, {7}),
        ("direct", "pop", "k", {"k": "v"}),
    ]
    assert type(got[1].values) is list  # a copy, not the container emptied right after


def test_callback_runs_after_the_record_inside_the_operation(journal):
    lst = SafeList(["x", "y"], name="l", journal=journal)
    seen = []

    def callback(record):
        seen.append((len(records(journal)), threading.get_ident()))
        lst.append("from the callback")  # adding is allowed
        lst.pop(0)  # a change by code inside the operation is refused

    journal.on_discard(callback)
    with pytest.warns(safe_data.DiscardHookWarning, match="ReentrantChangeError"):
        assert lst.pop() == "y"
    assert seen == [(1, threading.get_ident())]
    assert lst == ["x", "from the callback"]
    assert [(r.op, r.values) for r in records(journal)] == [("pop", ["y"])]


def test_remove_and_order(journal):
    calls = []
    first = journal.on_discard(lambda r: calls.append("first"))
    second = journal.on_discard(lambda r: calls.append("second"))
    assert journal.discard_callbacks == (first, second)
    lst = SafeList([1, 2, 3], journal=journal)
    lst.pop()
    journal.remove_on_discard(first)
    lst.pop()
    journal.remove_on_discard(second)
    lst.pop()
    assert calls == ["first", "second", "second"]
    assert journal.discard_callbacks == ()
    with pytest.raises(ValueError, match="not an on_discard callback"):
        journal.remove_on_discard(second)
    with pytest.raises(TypeError):
        journal.on_discard("not callable")


def test_a_raising_callback_loses_nothing(journal):
    after = []

    def bad(record):
        raise RuntimeError("boom")

    journal.on_discard(bad)
    journal.on_discard(after.append)
    lst = SafeList([1, 2], name="l", journal=journal)
    d = SafeDict(k="v", journal=journal)
    before = safe_data.stats()["safe_data.discard_hook.errors"]
    with pytest.warns(DiscardHookWarning, match="RuntimeError: boom"):
        assert lst.pop() == 2
    with pytest.warns(DiscardHookWarning):
        assert d.pop("k") == "v"
    assert lst == [1] and d == {}  # the operations completed
    assert [r.values for r in records(journal)] == [[2], {"k": "v"}]
    assert len(after) == 2  # the next callbacks still ran
    assert safe_data.stats()["safe_data.discard_hook.errors"] == before + 2


def test_a_raising_callback_with_warnings_as_errors(journal):
    journal.on_discard(lambda r: 1 / 0)
    lst = SafeList([1, 2], journal=journal)
    unraisable = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert lst.pop() == 2
    finally:
        sys.unraisablehook = old_hook
    assert lst == [1] and len(records(journal)) == 1
    assert len(unraisable) == 1 and issubclass(unraisable[0].exc_type, DiscardHookWarning)


def test_reentrant_discards_are_journaled_but_fire_no_callbacks(journal, tmp_path):
    other = safe_data.Journal(tmp_path / "other")
    try:
        audit = SafeList(name="audit", journal=journal)
        elsewhere = SafeList(name="elsewhere", journal=other)
        other_calls = []
        other.on_discard(other_calls.append)
        calls = []

        def callback(record):
            calls.append(record.container)
            audit.append(record.values)
            audit.pop()  # a discard into the same journal, from the callback
            elsewhere.append(1)
            elsewhere.pop()  # and into another journal

        journal.on_discard(callback)
        SafeList([1], name="l", journal=journal).pop()
        assert calls == ["l"]  # no recursion
        assert other_calls == []
        assert [r.container for r in records(journal)] == ["l", "audit"]
        assert [r.container for r in records(other)] == ["elsewhere"]
        elsewhere.append(2)
        elsewhere.pop()
        assert len(other_calls) == 1  # outside a callback it fires again
    finally:
        other.close()


def test_callbacks_from_threads(journal):
    got = []
    lock = threading.Lock()

    def callback(record):
        with lock:
            got.append((record.seq, record.thread, threading.get_ident()))

    journal.on_discard(callback)
    lst = SafeList(range(4000), journal=journal)

    def work():
        for _ in range(1000):
            lst.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seq for seq, _, _ in got) == list(range(1, 4001))
    assert all(recorded == runner for _, recorded, runner in got)


def test_fsync_mode_and_failed_discards(tmp_path):
    j = safe_data.Journal(tmp_path / "j", durability="fsync", max_bytes=64 << 10, segment_size=32 << 10)
    try:
        got = []
        j.on_discard(got.append)
        lst = SafeList(range(10), journal=j)
        lst.pop()
        assert [r.seq for r in got] == [r.seq for r in records(j)] == [1]
        big = SafeList([os.urandom(40 << 10)], journal=j)
        with pytest.raises(safe_data.JournalFullError):
            for _ in range(3):
                big.append(os.urandom(40 << 10))
                big.pop()
        # a discard refused by the journal is not reported
        assert [r.seq for r in got] == [r.seq for r in records(j)]
    finally:
        j.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_callbacks_in_a_forked_child(journal):
    got = []
    journal.on_discard(got.append)
    lst = SafeList([1, 2, 3], journal=journal)
    lst.pop()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            lst.pop()
            ok = got[-1].pid == os.getpid() and got[-1].seq == 1 and len(got) == 2
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)


# --- logging ----------------------------------------------------------------------------------


def test_log_discards(journal, caplog):
    caplog.set_level(logging.INFO, logger="safe_data.discards")
    lst = SafeList([1, 2, 3], name="tasks", journal=journal)
    lst.pop()
    assert caplog.records == []  # off by default
    journal.log_discards()
    lst.pop(0)
    (rec,) = caplog.records
    assert rec.name == "safe_data.discards" and rec.levelno == logging.INFO
    assert rec.discard_container == "tasks"
    assert (rec.discard_kind, rec.discard_op, rec.discard_key) == ("list", "pop", 0)
    assert rec.discard_values == [1] and rec.discard_count == 1
    assert rec.discard_seq == 2 and rec.discard_journal == journal.path
    assert isinstance(rec.discard_time_ns, int)
    assert "list.pop discarded 1 value(s) from 'tasks'" in rec.getMessage()
    journal.log_discards(False)
    lst.pop()
    assert len(caplog.records) == 1
    assert journal.discard_callbacks == ()


def test_log_discards_logger_level_and_replacement(journal, caplog):
    caplog.set_level(logging.DEBUG)
    journal.log_discards(logger="app.audit", level="WARNING")
    journal.log_discards(logger=logging.getLogger("app.audit2"), level=logging.DEBUG)
    SafeSet({1}, journal=journal).clear()
    assert [(r.name, r.levelname) for r in caplog.records] == [("app.audit2", "DEBUG")]
    assert len(journal.discard_callbacks) == 1
    with pytest.raises(ValueError, match="unknown logging level"):
        journal.log_discards(level="LOUD")


def test_configure_log_discards(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="safe_data.discards")
    safe_data.configure(tmp_path / "configured", log_discards=True)
    SafeDict(a=1, name="cfg").clear()
    assert [r.discard_container for r in caplog.records] == ["cfg"]


def test_import_stays_light():
    code = (
        "import sys, safe_data; "
        "print(sorted(m for m in ('logging', 'safe_data.integrations.metrics', "
        "'safe_data.integrations.discard_logging', 'safe_data.testing', 'pytest') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- stats() ----------------------------------------------------------------------------------


def test_stats_counts_records_bytes_and_pending(tmp_path):
    before = safe_data.stats()
    names = {
        "safe_data.records",
        "safe_data.bytes",
        "safe_data.flushes",
        "safe_data.journals",
        "safe_data.discard_hook.errors",
        "safe_data.upload.pending_segments",
        "safe_data.upload.pending_bytes",
        "safe_data.upload.acked_segments",
        "safe_data.upload.acked_bytes",
        "safe_data.upload.errors",
        "safe_data.upload.rejected",
        "safe_data.upload.running",
        "safe_data.upload.last_good_drill_timestamp_seconds",
    }
    assert set(before) == names and all(type(v) is int for v in before.values())
    j = safe_data.Journal(tmp_path / "j")
    lst = SafeList(range(10), journal=j)
    for _ in range(3):
        lst.pop()
    now = safe_data.stats()
    assert now["safe_data.records"] == before["safe_data.records"] + 3
    assert now["safe_data.bytes"] - before["safe_data.bytes"] > 3 * 10  # (compact frames: ~15 bytes each)
    assert now["safe_data.journals"] == before["safe_data.journals"] + 1
    j.seal()
    sealed = _segments(j.path, ".seg")
    assert len(sealed) == 1
    now = safe_data.stats()
    assert now["safe_data.upload.pending_segments"] >= 1
    assert now["safe_data.upload.pending_bytes"] >= os.path.getsize(sealed[0])
    marks = os.path.join(j.path, "uploaded")
    os.makedirs(marks)
    open(os.path.join(marks, os.path.basename(sealed[0])[:-4]), "w").close()  # acknowledged
    acked = safe_data.stats()
    assert acked["safe_data.upload.pending_segments"] == now["safe_data.upload.pending_segments"] - 1
    j.close()  # closed journals still count
    after = safe_data.stats()
    assert after["safe_data.records"] == before["safe_data.records"] + 3
    assert after["safe_data.bytes"] >= now["safe_data.bytes"]
    assert after["safe_data.journals"] == before["safe_data.journals"]


def test_stats_counts_the_fdatasyncs_of_fsync_mode(tmp_path):
    """One thread: one fdatasync per pop ("fsync" mode), none in "process" mode; a closed
    journal's still count."""
    before = safe_data.stats()["safe_data.flushes"]
    with safe_data.Journal(tmp_path / "p") as j:
        lst = SafeList(range(10), journal=j)
        lst.pop()
    assert safe_data.stats()["safe_data.flushes"] == before
    with safe_data.Journal(tmp_path / "f", durability="fsync") as j:
        lst = SafeList(range(10), journal=j)
        for _ in range(3):
            lst.pop()
        assert safe_data.stats()["safe_data.flushes"] == before + 3
    assert safe_data.stats()["safe_data.flushes"] == before + 3


def _segments(path, suffix):
    return sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(suffix))


def test_stats_bytes_match_the_frames(tmp_path):
    j = safe_data.Journal(tmp_path / "j")
    try:
        start = safe_data.stats()["safe_data.bytes"]
        SafeList(["a" * 100, 2], journal=j).clear()
        SafeDict(k=[1, 2], journal=j).pop("k")
        j.seal()
        (seg,) = _segments(j.path, ".seg")
        from safe_data.journal import format as fmt

        assert safe_data.stats()["safe_data.bytes"] - start == os.path.getsize(seg) - fmt.SEGMENT_HEADER_SIZE
    finally:
        j.close()


def test_stats_upload_errors_from_a_running_uploader(tmp_path):
    pytest.importorskip("aiohttp")
    from safe_data.remote.sinks import Sink, TransientError

    class Down(Sink):
        async def put(self, segment_id, body, sha256):
            raise TransientError("backup server down")

    j = safe_data.Journal(tmp_path / "j")
    SafeList([1], journal=j).pop()
    j.seal()
    uploader = safe_data.Uploader(Down(), j, backoff=(0.01, 0.02), seal_every=None).start()
    try:
        deadline = time.monotonic() + 10
        while safe_data.stats()["safe_data.upload.errors"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        s = safe_data.stats()
        assert s["safe_data.upload.errors"] >= 2
        assert s["safe_data.upload.running"] >= 1
        assert s["safe_data.upload.pending_segments"] >= 1
        assert s["safe_data.upload.errors"] >= uploader.stats()["errors"] - 1
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "not acknowledged": the sink is down on purpose
            uploader.close(timeout=0.5)
        j.close()


def test_stats_is_cheap(journal):
    SafeList([1], journal=journal).pop()
    t = time.perf_counter()
    for _ in range(100):
        safe_data.stats()
    assert (time.perf_counter() - t) / 100 < 0.005


# --- the server's metrics ---------------------------------------------------------------------


def test_server_metrics_render_the_new_series():
    pytest.importorskip("aiohttp")
    from safe_data.server import app

    text = app._render_metrics(app._new_metrics())
    for line in (
        "# TYPE safe_data_store_unavailable_total counter",
        "safe_data_store_unavailable_total 0",
        "# TYPE safe_data_uploads_in_progress gauge",
        "safe_data_uploads_in_progress 0",
    ):
        assert line in text.splitlines()


def test_server_counts_store_unavailable():
    pytest.importorskip("aiohttp")
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from safe_data.server.app import make_app
    from safe_data.server.stores import StoreUnavailable

    class DownStore:
        async def list(self, namespace):
            raise StoreUnavailable("disk gone")

    async def main():
        app = make_app(DownStore(), {"ns": "tok-0123456789abcdef"})
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            auth = {"Authorization": "Bearer tok-0123456789abcdef"}
            async with client.get("/v1/segments", headers=auth) as resp:
                assert resp.status == 503
            async with client.get("/metrics", headers=auth) as resp:
                return await resp.text()

    text = asyncio.run(main())
    assert "safe_data_store_unavailable_total 1" in text.splitlines()
    assert "safe_data_uploads_in_progress 0" in text.splitlines()


# --- safe_data.testing and the pytest plugin --------------------------------------------------


def test_temporary_journal_is_the_default_for_the_block(tmp_path):
    from safe_data.testing import temporary_journal

    previous = registry.current()
    with temporary_journal(tmp_path / "t") as j:
        assert safe_data.default_journal() is j
        lst = SafeList([1, 2])
        assert lst.journal is j
        j.assert_nothing_discarded()
        with j.expect_discards() as expected:
            lst.pop()
        assert [r.values for r in expected] == [[2]]
        j.assert_nothing_discarded()
        lst.pop()
        with pytest.raises(
            AssertionError, match=r"1 unexpected discard\(s\)(.|\n)*list.pop key=0 values=\[1\]"
        ):
            j.assert_nothing_discarded()
        assert len(j.discards(include_expected=True)) == 2
    assert j.closed
    assert registry.current() is previous


def test_plugin_fixture_and_marker(pytester):
    pytester.makepyfile(
        """
        import pytest
        import safe_data
        from safe_data import SafeList

        kept = []

        def test_fixture_is_the_default_journal(safe_journal, tmp_path):
            assert safe_data.default_journal() is safe_journal
            assert safe_journal.path.startswith(str(tmp_path))
            lst = SafeList([1, 2])
            lst.pop()
            assert [r.values for r in safe_journal.discards()] == [[2]]
            kept.append(safe_journal)

        def test_journal_is_thrown_away():
            assert kept[0].closed
            assert safe_data.default_journal() is not kept[0]

        @pytest.mark.discards_nothing
        def test_marked_and_clean():
            lst = SafeList([1, 2])
            lst.append(3)

        @pytest.mark.discards_nothing
        def test_marked_and_expected(safe_journal):
            lst = SafeList([1, 2])
            with safe_journal.expect_discards() as got:
                lst.clear()
            assert len(got) == 1

        @pytest.mark.discards_nothing
        def test_marked_and_discarding():
            lst = SafeList([1, 2], name="precious")
            lst.pop()

        def test_helper_fails(safe_journal):
            SafeList(["a"], name="other").clear()
            safe_journal.assert_nothing_discarded()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(
        [
            "FAILED *::test_marked_and_discarding - *",
            "FAILED *::test_helper_fails - *",
        ]
    )
    result.stdout.no_fnmatch_line("*ERROR*")  # failures in the call phase, not teardown errors
    out = result.stdout.str()
    # the tracebacks' "E" lines: the summary repeats the message only on a wide terminal
    assert len(re.findall(r"^E +AssertionError: 1 unexpected discard\(s\) into", out, re.M)) == 2
    assert "precious: list.pop key=1 values=[2]" in out


def test_plugin_marker_is_registered(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--strict-markers", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.discards_nothing:*"])


def test_plugin_is_an_entry_point_that_can_be_turned_off_or_loaded_by_name(pytester, monkeypatch):
    import importlib.metadata

    (entry,) = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "safe_data"]
    assert entry.value == PLUGIN
    pytester.makepyfile("def test_uses_it(safe_journal): assert safe_journal.discards() == []")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:safe_data")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'safe_journal' not found*"])
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(errors=1)
    pytester.runpytest("-p", "no:cacheprovider", "-p", "safe_data").assert_outcomes(passed=1)


def test_loading_the_plugin_imports_nothing_of_safe_data():
    """pytest loads the plugin at every start wherever safe_data is installed, so it must
    cost nothing: safe_data (and its helpers, safe_data.testing) are imported when a test
    first uses the fixture or the marker."""
    code = (
        "import sys, pytest; before = set(sys.modules); "
        f"import {PLUGIN}; print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str([PLUGIN])


# --- docs/integrations.md ---------------------------------------------------------------------

DOC = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "integrations.md")


def test_doc_examples_run(tmp_path):
    import doctest

    result = doctest.testfile(
        DOC,
        module_relative=False,
        globs={"JOURNAL_DIR": str(tmp_path / "journal")},
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 10 and result.failed == 0


def test_doc_pytest_example_passes(pytester):
    import re

    text = Path(DOC).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    (example,) = [b for b in blocks if "discards_nothing" in b and ">>>" not in b]
    pytester.makepyfile(example)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)
    # and the marker is what makes the second one strict
    pytester.makepyfile(example.replace("queue.sort()", "queue.sort(); queue.pop()"))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1, failed=1)
