"""Test helpers: a throw-away journal that fails a test when something was discarded.

``temporary_journal(path)`` opens a :class:`TemporaryJournal` in ``path``, makes it the
default journal (containers created without ``journal=`` use it) and, on exit, closes it
and restores the previous default.  Under pytest, safe_data's plugin (loaded by pytest
itself) gives the ``safe_journal`` fixture and the ``discards_nothing`` marker on top of
it (docs/integrations.md).  This module does not import pytest.
"""

from __future__ import annotations

import contextlib
import os

from .journal import registry
from .journal.journal import Journal

__all__ = ["TemporaryJournal", "temporary_journal"]


class TemporaryJournal(Journal):
    """A :class:`~safe_data.Journal` for one test, with assertions about what it holds."""

    __test__ = False  # not a test class, whatever a test module imports it as

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._expected: list[tuple[int, int, int]] = []  # (writer id, first seq, last seq)

    def discards(self, *, include_expected: bool = False) -> list:
        """The records in this journal, oldest first; without those made inside
        :meth:`expect_discards` unless ``include_expected``."""
        records = list(self.records(on_error="raise"))
        if include_expected or not self._expected:
            return records
        return [r for r in records if not self._is_expected(r)]

    def _is_expected(self, record) -> bool:
        return any(
            record.writer == writer and first <= record.seq <= last for writer, first, last in self._expected
        )

    @contextlib.contextmanager
    def expect_discards(self):
        """Discards inside the block are expected: :meth:`assert_nothing_discarded` and the
        ``discards_nothing`` marker ignore them.  Yields a list that holds their records
        once the block is over (to assert on what was discarded)."""
        found: list = []
        writer, first = self._manager.writer_id, self._writer.seq + 1
        try:
            yield found
        finally:
            if self._manager.writer_id == writer:  # not in a forked child
                last = self._writer.seq
                if last >= first:
                    self._expected.append((writer, first, last))
                    found.extend(
                        r
                        for r in self.records(on_error="raise")
                        if r.writer == writer and first <= r.seq <= last
                    )

    def assert_nothing_discarded(self) -> None:
        """AssertionError listing the discards (outside :meth:`expect_discards`), if any."""
        unexpected = self.discards()
        if unexpected:
            lines = [
                f"  {r.container}: {r.kind}.{r.op} key={r.key!r} values={_short(r.values)}"
                for r in unexpected[:20]
            ]
            if len(unexpected) > 20:
                lines.append(f"  ... and {len(unexpected) - 20} more")
            raise AssertionError(
                f"{len(unexpected)} unexpected discard(s) into {self.path}:\n" + "\n".join(lines)
            )


def _short(value, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def temporary_journal(path, **options):
    """Open a :class:`TemporaryJournal` at ``path`` (arguments of :class:`Journal`) as the
    default journal for the block; close it and restore the previous default after."""
    journal = TemporaryJournal(os.fspath(path), **options)
    previous = registry.swap_default(journal)
    try:
        yield journal
    finally:
        registry.swap_default(previous)
        journal.close()
