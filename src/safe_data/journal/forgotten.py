"""The forgotten log: what was erased on request, never the values.

Each forget (:mod:`.forget`) appends to ``<journal>/forgotten`` one line per segment it
rewrote, after the rename made the rewrite durable: ``{"id": forget id, "time": ISO UTC,
"asked": what was asked (names, identity, times, whether a predicate chose too, the user),
"segment": "<writer>-<n>", "records": how many, "seqs": [[first, last], ...],
"containers": the names of the containers whose records went}``.  A line with
``"shredded": {"sha256", "key_store", ...}`` says that the data key of that version of
the segment (the SHA-256 of its ciphertext) was destroyed in that key store
(crypto-shredding, docs/security.md): by the forget itself, after it replaced the segment
in a backup, or found so by a ``pull``.  The holes
the rewrite left in the segment carry the same id (docs/format.md, "Holes"), so each side
proves the other: a hole whose id the log lacks was forgotten by a process that died
before it could append, and still reads as forgotten.  The lines are checksummed as the
ledger's are (:func:`.ledger.checked_line`).
"""

from __future__ import annotations

import os
from collections import namedtuple

from . import ledger

FORGOTTEN_FILE = "forgotten"


class Entry(
    namedtuple("Entry", "id time asked segment records seqs containers shredded", defaults=([], None))
):
    """One line of the forgotten log (see the module's docstring)."""

    __slots__ = ()


def append(directory: str, entries) -> None:
    """Append ``entries`` (Entry) durably."""
    ledger.append(
        directory,
        FORGOTTEN_FILE,
        [{k: v for k, v in e._asdict().items() if k != "shredded" or v is not None} for e in entries],
        "log what was forgotten (the segment was rewritten; its holes say forgotten)",
    )


def names(directory: str, shredded: bool = False) -> set[str]:
    """The names of the containers some of whose records were forgotten (``shredded``:
    were in a segment version whose data key was destroyed)."""
    return {
        n
        for e in read(directory)
        if isinstance(e.containers, list) and bool(e.shredded) == shredded
        for n in e.containers
    }


def has_shred(directory: str, forget_id: str, segment: str, sha256: str) -> bool:
    """Whether the log already says that forget ``forget_id`` shredded that version."""
    return any(
        e.id == forget_id
        and e.segment == segment
        and isinstance(e.shredded, dict)
        and e.shredded.get("sha256") == sha256
        for e in read(directory)
    )


def read(directory: str) -> list[Entry]:
    """Every line of the log that verifies, oldest first."""
    try:
        with open(os.path.join(directory, FORGOTTEN_FILE), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    entries = []
    for line in data.splitlines():
        fields = ledger.parse_checked(line)
        if fields is not None and isinstance(fields.get("id"), str):
            entries.append(Entry(*(fields.get(name) for name in Entry._fields)))
    return entries
