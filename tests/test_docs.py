"""Docs are tests: the examples of docs/history.md run and print what the page says."""

import doctest
import os

import pytest

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs")


@pytest.mark.parametrize("page", ["history.md"])
def test_doc_examples_run(tmp_path, page):
    result = doctest.testfile(
        os.path.join(DOCS, page), module_relative=False,
        globs={"JOURNAL_DIR": str(tmp_path / "journal")},
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 0 and result.failed == 0
