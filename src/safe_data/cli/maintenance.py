"""``verify`` (and repair), ``stats`` and ``purge``: check, count and trim segments."""

from __future__ import annotations

import os
import time

import click

from ..journal import ledger, retention
from ..journal.journal import to_ns
from ..journal.reader import Problem
from ..journal.recovery import DAMAGED_DIR
from ..journal.repair import repair
from ..journal.summary import SegmentSummary, add_span
from ..present import brief, human_bytes, iso
from .exits import EXIT_FAILED, EXIT_PARTIAL
from .journal_view import _journal_dir, _read_key, continuity_problems, summarize_segments
from .output import _count, _dump_json, _print_table, _table_time, _warn
from .params import SIZE, TIME

NO_BACKUP_NOTE = (
    "not yet acknowledged by a remote backup (`safe-data push`, or an Uploader in the program, ships them)"
)


# --- verify -------------------------------------------------------------------------------------


@click.command()
@click.option(
    "--repair",
    "fix",
    is_flag=True,
    help="Set the damaged records of sealed segments aside, keeping every readable "
    "one, and seal dead writers' segments, after saving the originals in "
    "damaged/.",
)
@click.option("--json", "as_json", is_flag=True, help="The result as one JSON object.")
@click.pass_obj
def verify(journal_path, fix, as_json) -> None:
    """Check every segment; exit 1 if the journal is damaged.

    Every frame's length and checksum are checked and every record is decoded; each
    sealed segment must hold the records its header counts, and each writer's segments
    must follow one another (none missing, none twice; purges are in the ledger).
    Segments being written by live processes are read but never reported or changed.
    """
    directory = _journal_dir(journal_path)
    key = _read_key(directory)
    found, segments, forgotten = _check(directory, key)
    deleted = _deleted_on_backup(directory)
    repaired, remaining = [], found
    if fix and found:
        repaired = repair(directory, found)
        remaining, segments, forgotten = _check(directory, key)
    if as_json:
        _dump_json(
            {
                "journal": directory,
                "ok": not remaining,
                "segments": segments,
                "forgotten": forgotten,
                "problems": [_problem_json(p) for p in found],
                "repaired": repaired,
                "remaining": [_problem_json(p) for p in remaining],
                "deleted_on_backup": [{"segment": d.segment, "why": d.why} for d in deleted],
            }
        )
    else:
        _report_check(found, repaired, remaining, segments, fix)
        for d in deleted:
            click.echo(f"segment {d.segment}: {d.why} (not missing: recorded by pull)")
        if forgotten:
            click.echo(
                f"{_count(forgotten, 'record')} forgotten on request (`safe-data forget --log` says which)"
            )
    if remaining:
        raise click.exceptions.Exit(EXIT_FAILED)


def _deleted_on_backup(directory: str) -> list:
    """The ledger's departures of segments the backup deleted (``safe-data pull`` records
    them), which are not in the journal: reported as such, never as missing."""
    departures, _problems = ledger.read(directory)
    return sorted(
        (d for d in departures.values() if d.why.startswith(ledger.DELETED_ON_BACKUP)),
        key=lambda d: d.segment,
    )


def _check(directory: str, key) -> tuple[list[Problem], int, int]:
    """(the problems, the segments checked, the records forgotten on request in them)."""
    summaries = list(summarize_segments(directory, key=key, decode=True, description="verifying"))
    problems = [p for s in summaries for p in s.problems if not p.live]
    forgotten = sum(s.forgotten for s in summaries)
    return problems + continuity_problems(directory, summaries), len(summaries), forgotten


def _problem_json(problem: Problem) -> dict:
    return {"segment": problem.segment, "offset": problem.offset, "reason": problem.reason}


def _problem_rows(problems):
    return [(p.segment, p.offset, p.reason) for p in problems]


def _report_check(found, repaired, remaining, segments: int, fix: bool) -> None:
    columns = ("segment", "offset", "problem")
    if not found:
        click.echo(f"{_count(segments, 'segment')} checked: the journal is sound")
        return
    _print_table(
        columns,
        _problem_rows(found),
        title=f"{_count(len(found), 'problem')} in {_count(segments, 'segment')}",
    )
    for line in repaired:
        click.echo(f"repaired {line}")
    if not fix:
        click.echo(
            "run `safe-data verify --repair` to set damaged records aside (the "
            "originals are kept in damaged/)"
        )
    elif remaining:
        _print_table(
            columns, _problem_rows(remaining), title=f"{_count(len(remaining), 'problem')} remaining"
        )
    else:
        click.echo("after the repair the journal is sound")


# --- stats --------------------------------------------------------------------------------------


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The figures as one JSON object.")
@click.pass_obj
def stats(journal_path, as_json) -> None:
    """Records, bytes and segments, per container too.

    Also what awaits upload to a remote backup (today: every sealed segment).
    """
    directory = _journal_dir(journal_path)
    figures = journal_stats(directory)
    if as_json:
        _dump_json(figures)
    else:
        _print_stats(figures)


def journal_stats(directory: str) -> dict:
    """The figures ``safe-data stats`` prints, as a JSON-ready dict (docs/cli.md)."""
    totals = {
        "records": 0,
        "record_bytes": 0,
        "disk_bytes": 0,
        "sealed": 0,
        "open": 0,
        "live": 0,
        "sealed_bytes": 0,
        "problems": 0,
        "forgotten": 0,
    }
    containers: dict[bytes, list[int]] = {}
    summaries = []
    for s in summarize_segments(directory, description="counting"):
        summaries.append(s)
        totals["records"] += s.records
        totals["record_bytes"] += s.record_bytes
        totals["disk_bytes"] += s.disk_bytes
        totals["sealed" if s.sealed else "open"] += 1
        totals["live"] += s.live
        totals["sealed_bytes"] += s.disk_bytes if s.sealed else 0
        totals["problems"] += sum(not p.live for p in s.problems)
        totals["forgotten"] += s.forgotten
        for name, span in s.containers.items():
            add_span(containers, name, *span)
    totals["problems"] += len(continuity_problems(directory, summaries))
    by_size = sorted(containers.items(), key=lambda item: (-item[1][1], item[0]))
    return {
        "journal": directory,
        "records": totals["records"],
        "record_bytes": totals["record_bytes"],
        "disk_bytes": totals["disk_bytes"],
        "segments": {"sealed": totals["sealed"], "open": totals["open"], "live": totals["live"]},
        "problems": totals["problems"],
        "forgotten": totals["forgotten"],
        "damaged": _damaged_files(directory),
        "pending_upload": _pending(directory, summaries),
        "uploader": _uploader_status(directory),
        "drill": _drill_status(directory),
        "containers": {
            str(name, "utf-8", "replace"): {
                "records": records,
                "bytes": size,
                "oldest": iso(oldest),
                "newest": iso(newest),
                "oldest_ns": oldest,
                "newest_ns": newest,
            }
            for name, (records, size, oldest, newest) in by_size
        },
    }


def _uploader_status(directory: str) -> dict | None:
    """The report of the last uploader that ran on this journal (docs/remote.md), with
    ``alive``: whether its process still exists."""
    from ..remote._ledger import read_status, with_backlog  # no network library imported

    status = read_status(directory)
    if status is None:
        return None
    destinations = [d for d in status.get("destinations") or [] if isinstance(d, dict)]
    status["destinations"] = with_backlog(directory, destinations)
    alive = False
    if status.get("running") and isinstance(status.get("pid"), int):
        try:
            os.kill(status["pid"], 0)
        except ProcessLookupError:
            pass
        except PermissionError:  # exists, owned by someone else
            alive = True
        else:
            alive = True
    return {**status, "alive": alive}


def _drill_status(directory: str) -> dict | None:
    """The last restore drills' record (docs/remote.md), with ``last_good_age_seconds``."""
    from ..remote._ledger import DRILL_FILE, last_good_drill, read_status  # no network library

    record = read_status(directory, DRILL_FILE)
    if record is None:
        return None
    when = last_good_drill(directory)
    return {**record, "last_good_age_seconds": None if when is None else round(time.time() - when, 1)}


def _describe_destinations(status: dict) -> list[tuple[str, str]]:
    """A line per destination of an uploader with several: its backlog and last error."""
    destinations = status.get("destinations") or []
    if len(destinations) < 2:
        return []
    lines = [
        ("  destinations", f"{len(destinations)}, {status.get('acks_required')} acknowledgements required")
    ]
    for d in destinations:
        lag = "-" if d.get("lag_seconds") is None else f"{d['lag_seconds']:g} s"
        text = (
            f"{d.get('sink')}: {d.get('acked', 0)} acknowledged in that run, "
            f"{d.get('pending', 0)} pending, lag {lag}"
        )
        if d.get("last_error"):
            text += f"; last error {d.get('last_error_at')}: {' '.join(str(d['last_error']).split())[:200]}"
        lines.append((f"    {d.get('name')}", text))
    return lines


def _describe_drill(record: dict) -> list[tuple[str, str]]:
    age = record.get("last_good_age_seconds")
    good = "never good" if age is None else f"last good {record.get('last_good')} ({age:g} s ago)"
    lines = [("restore drill", good)]
    for target, run in sorted((record.get("targets") or {}).items()):
        outcome = "ok" if run.get("ok") else f"FAILED, {_count(run.get('problem_count', 0), 'problem')}"
        checked = f"{run.get('checked')} of {run.get('listed')} checked"
        lines.append(("  last run", f"{run.get('last_run')} of {target}: {outcome} ({checked})"))
    return lines


def _describe_uploader(status: dict) -> list[tuple[str, str]]:
    if status["alive"]:
        state = f"running (pid {status['pid']}), to {status['sink']}"
    elif status.get("running"):
        state = f"was running (pid {status['pid']}, gone since), to {status['sink']}"
    else:
        state = f"stopped, was shipping to {status['sink']}"
    lines = [
        ("uploader", f"{state}; report of {status.get('updated')}"),
        (
            "  acknowledged",
            f"{_count(status.get('acked', 0), 'segment')} "
            f"({human_bytes(status.get('acked_bytes', 0))}) since "
            f"{status.get('started')}; last at {status.get('last_ack') or '-'}",
        ),
    ]
    if status.get("last_error"):
        error = " ".join(str(status["last_error"]).split())[:300]  # one line, bounded
        lines.append(
            (
                "  last error",
                f"{status.get('last_error_at')}: {error} "
                f"({_count(status.get('errors', 0), 'error')} in that run)",
            )
        )
    if status.get("rejected"):
        lines.append(
            (
                "  rejected",
                f"{_count(len(status['rejected']), 'segment')} kept locally, "
                f"never sent again by that run: {', '.join(sorted(status['rejected']))}",
            )
        )
    return lines + _describe_destinations(status)


def _damaged_files(directory: str) -> dict:
    damaged = os.path.join(directory, DAMAGED_DIR)
    try:
        entries = [e for e in os.scandir(damaged) if e.is_file()]
    except FileNotFoundError:
        entries = []
    return {"files": len(entries), "bytes": sum(e.stat().st_size for e in entries)}


def _print_stats(figures: dict) -> None:
    segments, damaged, pending = figures["segments"], figures["damaged"], figures["pending_upload"]
    lines = [
        ("journal", figures["journal"]),
        ("records", f"{figures['records']:,} ({human_bytes(figures['record_bytes'])} of frames)"),
        (
            "on disk",
            f"{human_bytes(figures['disk_bytes'])} in "
            f"{_count(segments['sealed'] + segments['open'], 'segment')}: "
            f"{segments['sealed']} sealed, {segments['open']} open"
            + (
                f" ({segments['live']} being written; an open segment takes its whole preallocated size)"
                if segments["open"]
                else ""
            ),
        ),
        ("damaged/", f"{_count(damaged['files'], 'file')}, {human_bytes(damaged['bytes'])}"),
        (
            "pending upload",
            f"{_count(pending['segments'], 'sealed segment')}, "
            f"{human_bytes(pending['bytes'])}: "
            f"{pending['note']}",
        ),
    ]
    if figures["forgotten"]:
        lines.append(
            ("forgotten", f"{_count(figures['forgotten'], 'record')} on request (`safe-data forget --log`)")
        )
    if figures["uploader"] is not None:
        lines += _describe_uploader(figures["uploader"])
    if figures["drill"] is not None:
        lines += _describe_drill(figures["drill"])
    if figures["problems"]:
        lines.append(("problems", f"{figures['problems']}: run `safe-data verify` for details"))
    for name, value in lines:
        click.echo(f"{name + ':':<16}{value}")
    rows = [
        (
            name,
            f"{c['records']:,}",
            human_bytes(c["bytes"]),
            _table_time(c["oldest_ns"]),
            _table_time(c["newest_ns"]),
        )
        for name, c in figures["containers"].items()
    ]
    if rows:
        click.echo()
        _print_table(("container", "records", "bytes", "oldest (UTC)", "newest (UTC)"), rows)


# --- purge --------------------------------------------------------------------------------------


@click.command()
@click.option(
    "--older-than",
    type=TIME,
    metavar="TIME",
    help="Segments whose newest record is older than this (an age: 30d, or an ISO time).",
)
@click.option(
    "--container",
    "containers",
    multiple=True,
    metavar="NAME",
    help="Only segments whose records all belong to these containers (repeatable).",
)
@click.option(
    "--max-bytes",
    type=SIZE,
    metavar="SIZE",
    help="Delete the oldest segments until the journal takes at most SIZE on disk (500M, 2G).",
)
@click.option("--force", is_flag=True, help="Also delete segments no remote backup has acknowledged.")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted and kept.")
@click.option("--json", "as_json", is_flag=True, help="The plan or result as one JSON object.")
@click.pass_obj
def purge(journal_path, older_than, containers, max_bytes, force, dry_run, as_json) -> None:
    """Delete sealed segments: by age, by container, or down to a size.

    Criteria combine: a segment goes only if it meets every one given.  Segments being
    written and damaged segments are never deleted.  Segments no remote backup has
    acknowledged are kept and listed (exit 5) unless --force is given; the others are
    deleted all the same.
    """
    if older_than is None and not containers and max_bytes is None:
        raise click.UsageError("say what to purge: --older-than, --container and/or --max-bytes")
    directory = _journal_dir(journal_path)
    result = retention.purge(
        directory,
        older_than_ns=to_ns(older_than),
        containers=containers,
        max_bytes=max_bytes,
        keep_unsent=not force,
        dry_run=dry_run,
        summaries=summarize_segments(directory, description="scanning"),
    )
    action = "would delete" if dry_run else "deleted"
    if as_json:
        _dump_json(
            {
                "journal": directory,
                "action": action,
                "segments": [_segment_json(s) for s in result.deleted],
                "bytes": sum(s.disk_bytes for s in result.deleted),
                "kept": [_segment_json(s) for s in result.kept],
                "kept_bytes": sum(s.disk_bytes for s in result.kept),
                "skipped_damaged": result.damaged,
            }
        )
    else:
        _report_purge(result, action)
    if result.kept and not dry_run:
        _warn(f"kept {_count(len(result.kept), 'segment')} {NO_BACKUP_NOTE}; --force deletes them anyway")
        raise click.exceptions.Exit(EXIT_PARTIAL)


def _pending(directory: str, summaries) -> dict:
    acked = retention.acknowledged(directory)
    pending = [s for s in summaries if s.sealed and s.segment_id not in acked]
    return {"segments": len(pending), "bytes": sum(s.disk_bytes for s in pending), "note": NO_BACKUP_NOTE}


def _segment_json(summary: SegmentSummary) -> dict:
    return {
        "segment": summary.name,
        "records": summary.records,
        "bytes": summary.disk_bytes,
        "oldest": iso(summary.oldest_ns),
        "newest": iso(summary.newest_ns),
        "containers": sorted(summary.container_names),
    }


def _report_purge(result, action: str) -> None:
    if result.damaged:
        _warn(
            f"{_count(result.damaged, 'damaged segment')} left alone: damaged segments are "
            f"never purged; run `safe-data verify --repair` first"
        )
    if not result.deleted and not result.kept:
        click.echo("nothing to purge")
        return
    for segments, verb, why in (
        (result.deleted, action, ""),
        (result.kept, "kept", ": not yet acknowledged by a remote backup"),
    ):
        if segments:
            total = human_bytes(sum(s.disk_bytes for s in segments))
            _print_table(
                ("segment", "records", "bytes", "newest (UTC)", "containers"),
                [
                    (
                        s.name,
                        f"{s.records:,}",
                        human_bytes(s.disk_bytes),
                        _table_time(s.newest_ns),
                        brief(sorted(s.container_names)),
                    )
                    for s in segments
                ],
                title=f"{verb} {_count(len(segments), 'segment')} ({total}){why}",
            )
