"""Across a writer's segments: what vanished, what was cut short, what appears twice.

A writer numbers its segments 1, 2, 3 ... and its records 1, 2, 3 ... on through them, so
its segments must follow one another without a gap in either.  A number below the
writer's highest segment present that is neither in the directory nor in the ledger
(:mod:`.ledger`: purged after a backup acknowledged it, or set aside) is a segment that
vanished; a seq gap between two segments is records that did.  A segment's own shortfall
(fewer records than its header counts) is reported by the reader of that segment.
What cannot be told: the *last* segments of a writer vanishing whole (nothing after them
names them).
"""

from __future__ import annotations

import os
from collections import namedtuple

from . import format as fmt
from . import ledger
from .reader import Problem, records_text


class Span(namedtuple("Span", "name writer number first last end_known live")):
    """What one segment covers of its writer's seqs: it starts at ``first`` (None: no
    record tells) and ends at ``last`` (None with ``end_known``: it holds none, so the
    chain goes on as before it; ``end_known`` false: cut short, where it ends is unknown)."""

    __slots__ = ()

    @classmethod
    def of(cls, name: str, header: fmt.SegmentHeader, scan, live: bool) -> Span:
        if header.counted:  # what the writer stated when it sealed the segment
            first, last, end_known = header.last_seq - header.records + 1, header.last_seq, True
        else:
            first, last, end_known = scan.first_seq, scan.last_seq, scan.complete
        return cls(name, header.writer_id, header.segment_no, first, last, end_known, live)


def writer_chains(views):
    """({writer id: its segment views by number}, [Problem]): a segment present twice
    (the same writer and number in two files) is kept once, the copy named as its header
    says if there is one, and each other copy is reported; a segment whose name differs
    from its header is reported too (it is still read)."""
    by_identity: dict[tuple[int, int], list] = {}
    for view in views:
        by_identity.setdefault((view.header.writer_id, view.header.segment_no), []).append(view)
    chains: dict[int, list] = {}
    problems = []
    for (writer, _), copies in sorted(by_identity.items()):
        copies.sort(key=lambda v: (not _named_as_header(v), v.name))
        kept = copies[0]
        chains.setdefault(writer, []).append(kept)
        if not _named_as_header(kept):
            problems.append(
                Problem(
                    kept.name,
                    0,
                    f"named {kept.name} but its header says it is "
                    f"segment {kept.header.segment_id} (renamed?)",
                    kept.live,
                )
            )
        problems.extend(
            Problem(
                copy.name,
                0,
                f"the same segment as {kept.name} (writer and number "
                f"{copy.header.segment_id}) copied in again: its "
                f"records are read once, from {kept.name}",
            )
            for copy in copies[1:]
        )
    return chains, problems


def _named_as_header(view) -> bool:
    return view.name.rsplit(".", 1)[0] == view.header.segment_id


class ChainContext:
    """What the checks of a journal's chains need besides the segments: its ledger (read
    when this is made, so after the segments were opened: a segment purged meanwhile is
    in it) and a look at the directory."""

    def __init__(self, directory: str):
        self.directory = directory
        self.gone, self.ledger_problems = ledger.read(directory)

    def problems(self, spans) -> list[Problem]:
        """The problems of one writer's chain, given the spans of its segments present."""
        if not spans:
            return []
        present = {span.number: span for span in spans}
        writer = spans[0].writer
        problems: list[Problem] = []
        before: int | None = 0  # the seq the chain has reached, when known (None)
        number = 1
        while number <= max(present):
            span = present.get(number)
            if span is not None:
                problems.extend(_seam(before, span))
                before = _after(before, span)
                number += 1
            elif (writer, number) in self.gone:
                before = self.gone[writer, number].last
                number += 1
            elif self._exists(writer, number):  # a rename raced with the listing
                before, number = None, number + 1
            else:
                number, problem = self._missing_run(writer, number, before, present)
                problems.append(problem)
                before = None
        return problems

    def _missing_run(self, writer: int, first_missing: int, before, present):
        """(the number after the run of missing segments from ``first_missing``, its Problem)."""
        number = first_missing
        while (
            number not in present and (writer, number) not in self.gone and not self._exists(writer, number)
        ):
            number += 1
        following = (
            present[number].first
            if number in present
            else self.gone[writer, number].first
            if (writer, number) in self.gone
            else None
        )
        numbers = (
            f"segment {first_missing}"
            if number - 1 == first_missing
            else f"segments {first_missing}-{number - 1}"
        )
        lost = (
            f": {records_text(before + 1, following - 1)} lost"
            if before is not None and following is not None and following > before + 1
            else ""
        )
        name = fmt.segment_id(writer, first_missing) + fmt.SEALED_SUFFIX
        return number, Problem(
            name,
            0,
            f"{numbers} of writer {writer:016x} missing: not in the "
            f"journal, and not in its ledger as purged or set "
            f"aside{lost}",
        )

    def _exists(self, writer: int, number: int) -> bool:
        stem = os.path.join(self.directory, fmt.segment_id(writer, number))
        return os.path.exists(stem + fmt.SEALED_SUFFIX) or os.path.exists(stem + fmt.OPEN_SUFFIX)


def _seam(before, span: Span) -> list[Problem]:
    """The problem where ``span`` meets the chain's seq ``before`` it, if any."""
    if before is None or span.first is None or span.first == before + 1:
        return []
    if span.first > before + 1:
        reason = (
            f"{records_text(before + 1, span.first - 1)} missing before this segment "
            f"(the one before it ends at seq {before})"
        )
    else:
        reason = (
            f"starts at seq {span.first}, but the segments before it reach seq {before} "
            f"already (copied in twice?)"
        )
    return [Problem(span.name, fmt.SEGMENT_HEADER_SIZE, reason, span.live)]


def _after(before, span: Span):
    """The seq the chain has reached after ``span``."""
    if not span.end_known:
        return None
    return before if span.last is None else span.last
