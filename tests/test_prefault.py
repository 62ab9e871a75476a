"""The C writer's prefaulter (src/safe_data/_prefault.h): a thread of the writer's own
faults in the pages of the active segment's mapping a window ahead of the records, so
that the thread that discards takes no page fault for them.  It lets go of a mapping
before the mapping is released, ends before a fork and starts again with the records after it.

Linux and the C writer only: elsewhere, and in the pure-Python writer, the thread that
writes a record takes the page faults itself, as it always did.
"""

import gc
import os
import resource
import subprocess
import sys
import textwrap
import time
import weakref

import pytest

import safe_data as sd
from safe_data.journal import format as fmt
from safe_data.journal import registry

from ._helpers import EXTENSION_EXPECTED

pytestmark = pytest.mark.skipif(
    not (EXTENSION_EXPECTED and sys.platform == "linux"), reason="the C writer's prefaulter runs on Linux"
)

PAGE = 4096
AHEAD = 2 << 20  # _writer_c.pyx PREFAULT_AHEAD


def wait_for(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the prefaulter did not get there"
        time.sleep(0.001)


def exit_code(pid, seconds=30.0):
    """The forked child's exit code; it fails the test if the child hangs."""
    deadline = time.monotonic() + seconds
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.01)
    return os.waitstatus_to_exitcode(done[1])


def thread_page_faults():
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def test_the_discarding_thread_takes_no_page_fault_for_its_records(tmp_path):
    journal = sd.Journal(tmp_path / "journal", segment_size=16 << 20)
    items = sd.SafeList(range(1000, 301_000), name="items", journal=journal)
    items.pop()  # the first record opens a segment, whose pages the prefaulter takes on
    writer = journal._writer
    wait_for(lambda: writer.prefaulted_to >= AHEAD)
    written, faults = writer.bytes_written, thread_page_faults()
    for _ in range(len(items)):
        items.pop()
    pages = (writer.bytes_written - written) // PAGE
    faults = thread_page_faults() - faults
    assert pages > 1000  # (~16 bytes a record)
    # the writer before the prefaulter: 289 faults for 923 pages (a store into each page
    # the records reach is a fault; see also the control below)
    assert faults < pages // 10, f"{faults} page faults for {pages} pages of records"
    assert len([r for r in journal.records() if r.container == "items"]) == 300_000
    journal.close()


def test_the_control_faults_once_per_page_without_the_prefaulter(tmp_path):
    """The measure above can fail: a store into each page of a fresh mapping that no
    other thread faulted in is a fault in the storing thread."""
    import mmap

    path = tmp_path / "segment"
    with open(path, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, 4 << 20)
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 4 << 20) as m:
        faults = thread_page_faults()
        for offset in range(0, 4 << 20, PAGE):
            m[offset] = 1
        faults = thread_page_faults() - faults
    assert faults >= (4 << 20) // PAGE * 0.9


def test_the_prefaulter_keeps_a_window_not_the_whole_segment(tmp_path):
    """A segment sealed early (an uploader seals every few seconds) costs the window's
    faults and dirty pages, not the segment's."""
    journal = sd.Journal(tmp_path / "journal", segment_size=256 << 20)
    sd.SafeList(range(10), name="items", journal=journal).pop()
    writer = journal._writer
    wait_for(lambda: writer.prefaulted_to >= AHEAD)
    time.sleep(0.05)  # time enough to fault in far more, were it not held back
    assert AHEAD <= writer.prefaulted_to <= AHEAD + PAGE
    journal.close()


def test_segments_sealed_while_the_prefaulter_populates_them(tmp_path):
    """Each seal releases a mapping the prefaulter is still faulting in: it must let go
    first (or it would fault in whatever is mapped there next)."""
    journal = sd.Journal(tmp_path / "journal", segment_size=64 << 20)
    items = sd.SafeList(range(200), name="items", journal=journal)
    for _ in range(200):
        items.pop()
        journal.seal()
    journal.close()
    assert sorted(r.values[0] for r in journal.records()) == list(range(200))
    assert len(list((tmp_path / "journal").glob("*" + fmt.SEALED_SUFFIX))) == 200
    assert sd.Journal(tmp_path / "journal", readonly=True).verify() == []


def test_a_fork_ends_the_prefaulter_and_the_parent_starts_it_again(tmp_path):
    journal = sd.Journal(tmp_path / "journal", segment_size=256 << 20)
    items = sd.SafeList(range(1000), name="items", journal=journal)
    items.pop()
    writer = journal._writer
    wait_for(lambda: writer.prefaulted_to > 0)
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            for _ in range(500):
                items.pop()
            journal.close()
            code = 0
        finally:
            os._exit(code)
    assert exit_code(pid) == 0
    assert writer.prefaulted_to == 0  # ended before the fork...
    more = sd.SafeList(range(40_000), name="more", journal=journal)
    for _ in range(40_000):  # ... and started again by the next chunk of records
        more.pop()
    wait_for(lambda: writer.prefaulted_to > 0)
    for _ in range(499):
        items.pop()
    journal.close()
    popped = sorted(r.values[0] for r in journal.records() if r.container == "items")
    by_parent, by_child = [999, *range(500, 999)], range(499, 999)
    assert popped == sorted([*by_parent, *by_child])


def test_a_child_drops_a_prefaulter_the_fork_hooks_did_not_reach(tmp_path, monkeypatch):
    """A writer whose journal the fork hooks do not see (the journal dropped while its
    containers hold the writer) keeps its prefaulter across a fork.  In the child no
    thread runs it and its lock may have been held at the fork: dropping the writer there
    must leave it untouched (joining its thread would wait for ever)."""
    journal = sd.Journal(tmp_path / "journal", segment_size=256 << 20)
    items = sd.SafeList(range(1000), name="items", journal=journal)
    items.pop()
    writer = journal._writer
    wait_for(lambda: writer.prefaulted_to > 0)
    monkeypatch.setattr(registry, "_every", weakref.WeakSet())  # the hooks find no journal
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            del items, writer, journal  # the last references: the writer is deallocated
            gc.collect()
            code = 0
        finally:
            os._exit(code)
    assert exit_code(pid) == 0
    items.pop()  # the parent's own prefaulter still works
    wait_for(lambda: writer.prefaulted_to > 0)
    journal.close()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="CPython 3.12 added the warning")
def test_a_fork_does_not_warn_that_the_process_has_threads(tmp_path):
    """CPython 3.12+ counts the process's threads at os.fork() and warns if there is more
    than one: the prefaulter's thread must not count (it ends before the fork).  The
    control hides the journal from the fork hooks, so its thread is there at the fork."""

    def fork_after_a_discard(hide_from_the_hooks):
        script = textwrap.dedent(
            f"""
            import os, sys, time, weakref, safe_data as sd
            from safe_data.journal import registry
            journal = sd.Journal({str(tmp_path / "journal")!r})
            sd.SafeList(range(10), name="items", journal=journal).pop()
            while journal._writer.prefaulted_to == 0:
                time.sleep(0.001)
            if {hide_from_the_hooks}:
                registry._every = weakref.WeakSet()
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
            """
        )
        # (CPython prints the warning, even with -W error: it is reported as unraisable)
        run = subprocess.run([sys.executable, "-W", "always", "-c", script], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stderr

    assert "multi-threaded" not in fork_after_a_discard(False)
    assert "multi-threaded" in fork_after_a_discard(True)
