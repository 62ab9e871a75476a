"""``forget``: erase records on request, and list what was forgotten (``--log``)."""

from __future__ import annotations

import os

import click

from ..journal import forgotten
from ..journal.encryption import IDENTITY_ENV
from ..journal.journal import Journal
from ..present import iso
from .exits import EXIT_NOT_FOUND, EXIT_PARTIAL, Failure
from .journal_view import _journal_dir
from .output import _count, _dump_json, _print_table, _warn
from .params import TIME
from .shipping import (
    _CONNECT_TIMEOUT,
    _ENDPOINT,
    _IDENTITY,
    _KEY_STORE,
    _NAMESPACE,
    _PROFILE,
    _RECIPIENT,
    _REGION,
    _TOKEN,
    _reach_key_store,
    make_key_store,
    make_sink,
)


class IdentityType(click.ParamType):
    """A container's identity as ``safe-data log --json`` shows it: ``WRITER:ID`` (the
    writer's 16 hex digits, the container id)."""

    name = "identity"

    def convert(self, value, param, ctx) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        writer, _, number = value.partition(":")
        try:
            return int(writer, 16), int(number)
        except ValueError:
            self.fail(f"{value!r} is not WRITER:ID (16 hex digits, a number: 4f2a...9c:3)", param, ctx)


@click.command()
@click.option(
    "--name", metavar="NAME", help="The records of the containers of that name (and nested in them)."
)
@click.option(
    "--container-id",
    "container_id",
    type=IdentityType(),
    metavar="WRITER:ID",
    help="The records of one container, by identity (writer and container_id of log --json).",
)
@click.option(
    "--before", type=TIME, metavar="TIME", help="Only records older than this (ISO, or an age: 30d)."
)
@click.option("--after", type=TIME, metavar="TIME", help="Only records at least this recent.")
@click.option(
    "--encrypt-to",
    "at_rest",
    multiple=True,
    metavar="AGE1...",
    help="For a journal encrypted at rest: the recipients to encrypt rewritten segments to "
    "(repeatable; reading them needs SAFE_DATA_IDENTITY_FILE).",
)
@click.option(
    "--remote",
    "targets",
    multiple=True,
    metavar="TARGET",
    help="Forget in this backup too (repeatable): http(s)://SERVER with an admin --token, "
    "s3://BUCKET[/PREFIX] or a directory, as push takes them.",
)
@_TOKEN
@_NAMESPACE
@_ENDPOINT
@_REGION
@_PROFILE
@_CONNECT_TIMEOUT
@_RECIPIENT
@_IDENTITY
@_KEY_STORE
@click.option("--dry-run", is_flag=True, help="Only list the segments and records that would be forgotten.")
@click.option("--log", "show_log", is_flag=True, help="List what was forgotten so far, and change nothing.")
@click.option("--json", "as_json", is_flag=True, help="The result as one JSON object.")
@click.pass_obj
def forget(
    journal_path,
    name,
    container_id,
    before,
    after,
    at_rest,
    targets,
    token,
    namespace,
    endpoint_url,
    region,
    profile,
    connect_timeout,
    recipients,
    identity,
    key_store_target,
    dry_run,
    show_log,
    as_json,
) -> None:
    """Erase records for good: rewrite the sealed segments that hold them.

    Each run of chosen records becomes a hole marked forgotten; every other record
    stays, and verify reports the holes as forgotten, not as damage.  The journal's
    forgotten log says what was asked, which segments and how many records (never the
    values): --log lists it.  Records in segments other processes are still writing
    are not forgotten (exit 5): forget again once they are sealed.

    With --remote, every segment of each backup that holds chosen records (shipped
    from here, and perhaps gone from here since) is replaced by its rewrite: a server
    needs an admin token.  Encrypted copies are decrypted with --identity and encrypted
    again to --recipient.  With --key-store (the one they were pushed with), their data
    keys are unwrapped with --identity, each replacement gets a new one, and the old
    version's key is destroyed once the replacement is stored: every copy of the old
    version, wherever it is (immutable buckets, tapes), can no longer be read.
    """
    directory = _journal_dir(journal_path)
    if show_log:
        _print_log(forgotten.read(directory), as_json)
        return
    if name is None and container_id is None and before is None and after is None:
        raise click.UsageError("say what to forget: --name, --container-id, --before and/or --after")
    from ..erasure import forget as forget_records  # (loads the containers)
    from ..errors import SafeDataError
    from ..remote.sinks import SinkError

    if identity is not None:  # what the readers of encrypted segments look for
        os.environ[IDENTITY_ENV] = identity
    sinks = [make_sink(t, token, namespace, endpoint_url, connect_timeout, region, profile) for t in targets]
    key_store = None
    if key_store_target is not None:
        key_store = make_key_store(
            key_store_target, namespace, endpoint_url, connect_timeout, region, profile
        )
        _reach_key_store(key_store, connect_timeout)
    with Journal(directory, encrypt_to=list(at_rest) or None) as journal:
        try:
            result = forget_records(
                name=name,
                identity=container_id,
                before=before,
                after=after,
                journal=journal,
                backups=sinks,
                recipients=list(recipients) or None,
                key_store=key_store,
                dry_run=dry_run,
            )
        except (ValueError, SafeDataError, SinkError) as exc:
            raise Failure(f"forget stopped: {exc}") from None
    action = "would forget" if dry_run else "forgot"
    if as_json:
        _dump_json(
            {
                "journal": directory,
                "action": action,
                "id": None if dry_run else result.id,
                "records": result.records,
                "segments": result.segments,
                "unsealed": result.unsealed,
                "backups": result.backups,
            }
        )
    elif result.segments:
        rows = [(segment, f"{records:,}") for segment, records in sorted(result.segments.items())]
        _print_table(
            ("segment", "records"),
            rows,
            title=f"{action} {_count(result.records, 'record')} in {_count(len(rows), 'segment')}",
        )
    for backup, segments in [] if as_json else result.backups.items():
        click.echo(
            f"{action} {_count(sum(segments.values()), 'record')} in "
            f"{_count(len(segments), 'segment')} of {backup}"
        )
    if result.unsealed:
        _warn(
            f"{_count(len(result.unsealed), 'segment')} still being written hold chosen records, "
            f"not forgotten: {', '.join(result.unsealed)}; forget again once they are sealed"
        )
        raise click.exceptions.Exit(EXIT_PARTIAL)
    if not result.segments and not any(result.backups.values()):
        if not as_json:
            click.echo("nothing to forget")
        raise click.exceptions.Exit(EXIT_NOT_FOUND)


def _print_log(entries, as_json: bool) -> None:
    if as_json:
        _dump_json([e._asdict() for e in entries])
        return
    rows = [(e.time, e.id, _segment(e), f"{e.records or 0:,}", _asked(e.asked)) for e in entries]
    _print_table(("time (UTC)", "forget", "segment", "records", "asked"), rows)


def _segment(entry) -> str:
    """The segment, and for a shred which version's data key was destroyed."""
    if not isinstance(entry.shredded, dict):
        return str(entry.segment)
    return f"{entry.segment} (data key of {str(entry.shredded.get('sha256'))[:12]} destroyed)"


def _asked(asked) -> str:
    if not isinstance(asked, dict):
        return "?"
    parts = [f"{k}={v}" for k, v in asked.items() if k not in ("before_ns", "after_ns")]
    parts += [f"{k[:-3]}={iso(v)}" for k, v in asked.items() if k in ("before_ns", "after_ns")]
    return " ".join(parts)
