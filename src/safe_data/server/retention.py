"""Retention on the backup server (docs/remote.md, "Retention on the server").

The server holds the policy (``safe-data serve --keep-within 30d --keep-daily 7
--keep-weekly 4``) and applies it itself in a periodic pass, so no client needs the right
to delete, and a client's append-only token cannot shorten it.

A segment is a batch of discarded values, not a snapshot.  Its time is that of its
newest record, read by the server when it verified the upload (for an age-encrypted body,
which it cannot read, the time it received it: never earlier than the newest record, so
such a segment is kept at least as long).  Keep every segment whose time is within
``keep_within`` of now; of the older ones, ``keep_daily`` N keeps, for each of the N most
recent days (UTC) that have such segments, the newest segment of each writer of that
day (the writer is the first part of the segment id); ``keep_weekly`` likewise per ISO
week.  Everything else goes, through the store's ``delete`` (its tombstone first) with
the reason ``"retention"``.  No policy, no deletion.

:func:`plan` decides (nothing here does I/O but :func:`run_pass`, through the store
calls it is given).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import inspect
import re

from ..remote import tombstones

__all__ = ["Policy", "Decision", "parse_duration", "plan", "run_pass", "store_caller", "REASON"]

#: the tombstone's reason for a segment retention deleted
REASON = tombstones.RETENTION
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"([0-9]+)([smhdw])")


def parse_duration(text: str) -> int:
    """``"30d"`` -> seconds; units s, m, h, d, w (``"1w2d"`` adds up).  ValueError for
    anything else, or zero."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r}: expected a duration such as 30d, 12h or 1w (units s m h d w)")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be above zero")
    return seconds


def _duration_text(seconds: int) -> str:
    for unit in "wdhm":
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclasses.dataclass(frozen=True)
class Policy:
    """What the server keeps: ``keep_within`` seconds of everything, and the newest
    segment per writer of the ``keep_daily`` most recent days and ``keep_weekly`` ISO
    weeks before that.  A policy of nothing (all unset) deletes nothing."""

    keep_within: int | None = None
    keep_daily: int = 0
    keep_weekly: int = 0

    def __post_init__(self):
        if self.keep_within is not None and self.keep_within <= 0:
            raise ValueError("keep_within must be above zero")
        if self.keep_daily < 0 or self.keep_weekly < 0:
            raise ValueError("keep_daily and keep_weekly must not be negative")

    def __bool__(self) -> bool:
        return self.keep_within is not None or self.keep_daily > 0 or self.keep_weekly > 0

    def __str__(self) -> str:
        parts = []
        if self.keep_within is not None:
            parts.append(f"keep-within {_duration_text(self.keep_within)}")
        if self.keep_daily:
            parts.append(f"keep-daily {self.keep_daily}")
        if self.keep_weekly:
            parts.append(f"keep-weekly {self.keep_weekly}")
        return ", ".join(parts) or "no policy"


@dataclasses.dataclass(frozen=True)
class Decision:
    """What retention does with one segment: ``keep`` it or not, and ``why``."""

    id: str
    size: int
    newest: float  # seconds since the epoch
    keep: bool
    why: str


def _day(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%d")


def _week(t: _dt.datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


def plan(entries, policy: Policy, now: float) -> list[Decision]:
    """The decision for each of ``entries`` (``{"id", "size", "newest"}``, ``newest`` in
    seconds since the epoch), sorted by id.  Everything is kept when ``policy`` is empty."""
    kept: dict[str, str] = {}
    older = []
    for entry in entries:
        if not policy:
            kept[entry["id"]] = "no retention policy"
        elif policy.keep_within is not None and entry["newest"] >= now - policy.keep_within:
            kept[entry["id"]] = f"within {_duration_text(policy.keep_within)}"
        else:
            older.append(entry)
    for count, period, name, on in (
        (policy.keep_daily, _day, "daily", "on"),
        (policy.keep_weekly, _week, "weekly", "in"),
    ):
        if not count:
            continue
        newest_of: dict[tuple[str, str], dict] = {}  # (period, writer) -> its newest segment
        for entry in older:
            when = period(_dt.datetime.fromtimestamp(entry["newest"], _dt.timezone.utc))
            key = (when, entry["id"].split("-", 1)[0])
            best = newest_of.get(key)
            if best is None or (entry["newest"], entry["id"]) > (best["newest"], best["id"]):
                newest_of[key] = entry
        recent = sorted({when for when, _writer in newest_of}, reverse=True)[:count]
        for (when, writer), entry in sorted(newest_of.items()):
            if when in recent:
                kept.setdefault(entry["id"], f"{name}: the newest of writer {writer} {on} {when}")
    beyond = f"older than {_duration_text(policy.keep_within)}" if policy.keep_within else "older"
    decisions = [
        Decision(
            e["id"],
            e["size"],
            e["newest"],
            e["id"] in kept,
            kept.get(e["id"], f"{beyond}, and not the newest of its writer on a kept day or week"),
        )
        for e in entries
    ]
    return sorted(decisions, key=lambda d: d.id)


@dataclasses.dataclass
class PassResult:
    """What one pass did (or, dry, would do) in one namespace."""

    namespace: str
    decisions: list[Decision]
    deleted: list[Decision] = dataclasses.field(default_factory=list)

    @property
    def kept(self) -> int:
        return sum(d.keep for d in self.decisions)

    @property
    def freed(self) -> int:
        return sum(d.size for d in self.deleted)


async def run_pass(call, namespace: str, policy: Policy, now: float, *, dry_run: bool = False) -> PassResult:
    """One pass over ``namespace``: ``await call(method, *args)`` calls the store
    (``retention_entries``, then ``delete`` of each segment that goes, with the reason
    :data:`REASON`).  A dry run deletes nothing: its result's ``decisions`` say what
    would go and why.  A segment already deleted meanwhile (KeyError) is skipped."""
    result = PassResult(namespace, plan(await call("retention_entries", namespace), policy, now))
    for decision in result.decisions:
        if decision.keep or dry_run:
            continue
        try:
            await call("delete", namespace, decision.id, REASON)
        except KeyError:  # NotFound: gone meanwhile (an admin, another server)
            continue
        result.deleted.append(decision)
    return result


def store_caller(store):
    """``call(method, *args)`` for :func:`run_pass` outside the server: a store's method,
    awaited if it is a coroutine, else run in a worker thread."""

    async def call(method: str, *args):
        fn = getattr(store, method)
        if inspect.iscoroutinefunction(fn):
            return await fn(*args)
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    return call
