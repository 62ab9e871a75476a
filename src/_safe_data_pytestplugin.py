"""safe_data's pytest plugin: a ``safe_journal`` fixture and a ``discards_nothing`` marker.

pytest loads it by itself (the ``pytest11`` entry point ``safe_data``) wherever safe_data
is installed; ``-p no:safe_data`` turns it off, ``-p safe_data`` loads it when plugin
autoloading is disabled.  It lives outside the package, as hypothesis's plugin does, so
that loading it imports nothing of safe_data: every pytest start of every environment
would pay for that, used or not.  ``safe_data.testing`` is imported when a test first
uses the fixture or the marker (docs/integrations.md).

* ``safe_journal``: a throw-away :class:`~safe_data.testing.TemporaryJournal` in the
  test's ``tmp_path``, the default journal while the test runs.
* ``@pytest.mark.discards_nothing``: the test fails (in its call phase, as a failure) if
  anything was discarded into its ``safe_journal`` outside ``expect_discards()``.
"""

from __future__ import annotations

import pytest

_JOURNAL = pytest.StashKey()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "discards_nothing: fail the test if it discards a value into its "
        "safe_journal (outside safe_journal.expect_discards()); see safe_data docs",
    )


@pytest.fixture
def safe_journal(request, tmp_path):
    """A throw-away journal in ``tmp_path``, the default journal during the test."""
    from safe_data.testing import temporary_journal

    with temporary_journal(tmp_path / "safe_data_journal") as journal:
        request.node.stash[_JOURNAL] = journal
        yield journal


@pytest.fixture(autouse=True)
def _safe_data_discards_nothing(request):
    """Gives a ``discards_nothing`` test its ``safe_journal`` (one marker look-up otherwise)."""
    if request.node.get_closest_marker("discards_nothing") is not None:
        request.getfixturevalue("safe_journal")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    if item.get_closest_marker("discards_nothing") is not None:
        journal = item.stash.get(_JOURNAL, None)
        if journal is not None:
            __tracebackhide__ = True
            journal.assert_nothing_discarded()
    return result
