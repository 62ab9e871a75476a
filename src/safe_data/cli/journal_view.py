"""The journal, read only: its directory and key, and one summary per segment.

Inspecting commands read segments through these without opening a
:class:`~safe_data.Journal`, so they neither create files nor recover segments.
"""

from __future__ import annotations

import os

from .. import _impl
from ..journal.continuity import ChainContext, writer_chains
from ..journal.journal import default_path
from ..journal.keyfile import read_key
from ..journal.reader import Problem, SegmentView, open_segment
from ..journal.summary import segment_sizes, summarize
from .exits import EXIT_NOT_FOUND, Failure
from .output import _progress


def _journal_dir(journal_path: str | None) -> str:
    """The journal directory the command works on; exit 3 if there is none."""
    path = os.path.abspath(journal_path or default_path())
    if not os.path.isdir(path):
        raise Failure(f"no journal at {path}", EXIT_NOT_FOUND)
    return path


_read_key = read_key  # the journal's MAC key for reading, or None (see keyfile.read_key)


def _open_view(path: str) -> SegmentView | None:
    """Map one segment; an ``.open`` one sealed meanwhile is read under its new name."""
    return open_segment(path, _impl.crc32c)


def summarize_segments(directory: str, *, key=None, decode: bool = False, description: str):
    """Yield a :class:`~safe_data.journal.summary.SegmentSummary` per segment, with a
    progress bar over the bytes (see :func:`safe_data.journal.summary.summarize`)."""
    paths, total = segment_sizes(directory)
    with _progress(description, total) as advance:
        yield from summarize(paths, key=key, decode=decode, advance=advance)


def continuity_problems(directory: str, summaries) -> list[Problem]:
    """What the checks across segments find (:mod:`safe_data.journal.continuity`): for
    the summaries of every segment of the journal, read first."""
    chains, problems = writer_chains([s for s in summaries if s.header is not None])
    context = ChainContext(directory)  # its ledger, read after the segments were
    problems += context.ledger_problems
    for chain in chains.values():
        problems += context.problems([s.span for s in chain if s.span is not None])
    return [p for p in problems if not p.live]
