"""``push``, ``pull`` and ``check-remote``: ship sealed segments to a remote backup now,
bring them back, and check that they can be brought back (a restore drill).

Both fail fast and say so in one line: each first checks that the backup answers
(``Sink.check``) within ``--connect-timeout``, then does its work within ``--timeout``
overall; when either runs out, or the backup refuses, the segments stay where they were
and the error is the only thing printed (the uploader's own warnings and log lines are
kept quiet: push reports them itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import warnings

import click

from ..journal import format as fmt
from ..present import human_bytes
from ..remote.protocol import valid_namespace
from .exits import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_USAGE, Failure
from .journal_view import _journal_dir
from .output import _count, _dump_json, _progress

CONNECT_TIMEOUT = 10.0  # seconds to reach the backup: connect, and its first answer
TIMEOUT = 300.0  # seconds for the whole command


def make_sink(
    target: str,
    token: str | None,
    namespace: str,
    endpoint_url: str | None,
    connect_timeout: float = CONNECT_TIMEOUT,
    region: str | None = None,
    profile: str | None = None,
):
    """A sink for TARGET: ``http(s)://server`` (or several, comma-separated: fail-over),
    ``s3://bucket[/prefix]`` or a directory."""
    if target.startswith(("http://", "https://")):
        from ..remote.sinks.http import HttpSink

        if not token:
            raise Failure("an HTTP backup server needs --token (or SAFE_DATA_TOKEN)", EXIT_USAGE)
        with _usage_error():
            return HttpSink(target.split(","), token, connect_timeout=connect_timeout)
    if target.startswith("s3://"):
        from ..remote.sinks.s3 import S3Sink
        from ..server.stores.s3 import parse_s3_url

        with _usage_error():  # also: no credentials found, an unknown profile
            bucket, prefix = parse_s3_url(target)
            return S3Sink(
                bucket,
                endpoint_url,
                prefix=prefix,
                namespace=namespace,
                connect_timeout=connect_timeout,
                region=region,
                profile=profile,
            )
    from ..remote.sinks.directory import DirectorySink

    return DirectorySink(target, namespace=namespace)


def make_key_store(
    target: str,
    namespace: str,
    endpoint_url: str | None,
    connect_timeout: float = CONNECT_TIMEOUT,
    region: str | None = None,
    profile: str | None = None,
):
    """The key store at TARGET: ``s3://bucket[/prefix]`` (through the S3 sink's client,
    with the same options) or a directory; a backup server cannot hold keys."""
    if target.startswith(("http://", "https://")):
        raise Failure(
            "a backup server cannot hold data keys (it stores only bodies it verifies as "
            "segments): give --key-store a directory or s3://BUCKET[/PREFIX]",
            EXIT_USAGE,
        )
    if target.startswith("s3://"):
        from ..remote.keystores.s3 import S3KeyStore

        return S3KeyStore(make_sink(target, None, namespace, endpoint_url, connect_timeout, region, profile))
    from ..remote.keystores.directory import DirectoryKeyStore

    return DirectoryKeyStore(target)


def _reach_key_store(key_store, connect_timeout: float) -> None:
    """Exit at once, in one line, if there is no key store to read from there."""
    from ..remote.keystores import KeyStoreError

    async def check() -> None:
        try:
            await asyncio.wait_for(key_store.check(), connect_timeout or None)
        finally:
            await key_store.close()

    try:
        asyncio.run(check())
    except asyncio.TimeoutError:
        raise Failure(f"cannot reach {key_store!r}: no answer within {connect_timeout:g} s") from None
    except KeyStoreError as exc:
        raise Failure(str(exc)) from None


@contextlib.contextmanager
def _usage_error():
    """A target the sink refuses (no S3 credentials, a bad URL or token): exit 2."""
    try:
        yield
    except ValueError as exc:
        raise Failure(str(exc), EXIT_USAGE) from None


def _reach(sink, connect_timeout: float) -> None:
    """Exit at once, in one line, if the backup cannot be reached or refuses us."""
    from ..remote.sinks import SinkError

    async def check() -> None:
        try:
            await asyncio.wait_for(sink.check(), connect_timeout or None)
        finally:
            await sink.close()

    try:
        asyncio.run(check())
    except asyncio.TimeoutError:
        raise Failure(
            f"cannot reach {sink!r}: no answer within {connect_timeout:g} s (--connect-timeout)"
        ) from None
    except SinkError as exc:
        raise Failure(f"cannot reach the backup: {exc}") from None


@contextlib.contextmanager
def _uploader_quiet():
    """Within it, the uploader's warnings and log lines are not printed: push says
    what happened itself, once."""
    from ..remote.uploader import UploadWarning

    logger = logging.getLogger("safe_data.upload")
    handler = logging.NullHandler()  # so that logging's last-resort handler stays silent
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UploadWarning)
            yield
    finally:
        logger.removeHandler(handler)


def _positive_or_none(ctx, param, value: float) -> float | None:
    if value < 0:
        raise click.BadParameter("must not be negative")
    return value or None  # 0: no limit


_TARGET = click.argument("target", metavar="TARGET")
_TOKEN = click.option("--token", envvar="SAFE_DATA_TOKEN", help="Bearer token of an HTTP backup server.")


def _namespace(ctx, param, value: str) -> str:
    if not valid_namespace(value):
        raise click.BadParameter(
            f"{value!r} is not a namespace: 1 to 64 letters, digits, '_', "
            f"'.' or '-', not starting with '.' or '-'"
        )
    return value


_NAMESPACE = click.option(
    "--namespace",
    default="default",
    show_default=True,
    callback=_namespace,
    help="Namespace in a directory or S3 store (a server takes it from the token).",
)
_ENDPOINT = click.option(
    "--endpoint-url", envvar="AWS_ENDPOINT_URL", help="S3-compatible endpoint (default: AWS)."
)
_CONNECT_TIMEOUT = click.option(
    "--connect-timeout",
    type=float,
    default=CONNECT_TIMEOUT,
    show_default=True,
    metavar="S",
    callback=_positive_or_none,
    help="Seconds to reach the backup (each connection, and its first answer); 0: no limit.",
)
_TIMEOUT = click.option(
    "--timeout",
    type=float,
    default=TIMEOUT,
    show_default=True,
    metavar="S",
    callback=_positive_or_none,
    help="Seconds for the whole command; 0: no limit.",
)
_RECIPIENT = click.option(
    "--recipient",
    "recipients",
    multiple=True,
    envvar="SAFE_DATA_RECIPIENTS",
    metavar="AGE1...",
    help="Encrypt each segment to this age recipient before it leaves (repeatable; "
    "$SAFE_DATA_RECIPIENTS: space-separated).",
)
_IDENTITY = click.option(
    "--identity",
    envvar="SAFE_DATA_IDENTITY_FILE",
    type=click.Path(dir_okay=False),
    help="age identity file that decrypts encrypted segments (safe-data keygen).",
)
_KEY_STORE = click.option(
    "--key-store",
    "key_store_target",
    envvar="SAFE_DATA_KEY_STORE",
    metavar="DIR|s3://BUCKET[/PREFIX]",
    help="Key store of per-segment data keys (crypto-shredding): a directory or an S3 "
    "bucket apart from the segments' (--namespace, --endpoint-url, --region, --profile apply).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="The result as one JSON object.")
_REGION = click.option(
    "--region", default=None, help="S3 region (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's)."
)
_PROFILE = click.option(
    "--profile", default=None, help="AWS profile of the shared config files (default: $AWS_PROFILE)."
)


def _remote_options(command):
    """The options every command that talks to a backup takes, in the order help lists them."""
    for option in reversed((_TOKEN, _NAMESPACE, _ENDPOINT, _REGION, _PROFILE, _CONNECT_TIMEOUT, _TIMEOUT)):
        command = option(command)
    return command


@click.command()
@click.argument("target", metavar="[TARGET]", required=False)
@click.option(
    "--to",
    "more",
    multiple=True,
    metavar="TARGET",
    help="A destination (repeat for several; TARGET counts as one).",
)
@click.option(
    "--acks-required",
    type=click.IntRange(min=1),
    default=None,
    metavar="K",
    help="Destinations that must acknowledge a segment before it is freed (default: all).",
)
@_remote_options
@_RECIPIENT
@_KEY_STORE
@_JSON
@click.pass_obj
def push(
    journal_path,
    target,
    more,
    acks_required,
    token,
    namespace,
    endpoint_url,
    region,
    profile,
    connect_timeout,
    timeout,
    recipients,
    key_store_target,
    as_json,
) -> None:
    """Upload every sealed segment now, and free the local copies once acknowledged.

    TARGET (or each --to) is http(s)://SERVER (or several servers of one store,
    comma-separated: each request fails over to the next when one does not answer),
    s3://BUCKET[/PREFIX] or a directory.  With several destinations, a segment is freed
    once --acks-required of them acknowledged it; a destination that cannot be reached is
    reported, and does not stop the others.  With --recipient, every segment is
    age-encrypted before it leaves: the backups store only ciphertext; with --key-store
    too, each to a data key of its own, stored (wrapped to the recipients) in the key store
    first, which a forget can destroy (docs/security.md).  Segments still
    being written by running programs are shipped by their own uploader or once sealed.
    Exit 1, leaving every segment not acknowledged in place, if too few destinations can
    be reached, one refuses a segment or the push does not finish within the timeout.
    """
    from ..journal.encryption import parse_recipients
    from ..journal.journal import Journal
    from ..remote.uploader import Uploader, pending_segments

    started = time.monotonic()
    directory = _journal_dir(journal_path)
    targets = ([target] if target else []) + list(more)
    if not targets:
        raise Failure("push needs a TARGET or --to TARGET", EXIT_USAGE)
    required = len(targets) if acks_required is None else acks_required
    if required > len(targets):
        raise Failure(
            f"--acks-required {required}, but only {_count(len(targets), 'destination')}", EXIT_USAGE
        )
    recipients = list(recipients) or None
    if recipients is not None:
        with _usage_error():  # a malformed recipient: before anything is sent
            parse_recipients(recipients)
    key_store = None
    if key_store_target is not None:
        if recipients is None:
            raise Failure(
                "--key-store needs --recipient: the data keys are stored encrypted to them", EXIT_USAGE
            )
        key_store = make_key_store(
            key_store_target, namespace, endpoint_url, connect_timeout, region, profile
        )
    sinks = [make_sink(t, token, namespace, endpoint_url, connect_timeout, region, profile) for t in targets]
    unreachable = _unreachable(sinks, connect_timeout)
    if len(sinks) - len(unreachable) < required:
        raise Failure(" ".join(unreachable))
    for problem in unreachable:  # the others go on; this one's segments wait for it
        click.echo(f"warning: {problem}", err=True)
    sink = sinks[0]
    pending = pending_segments(directory)
    with _uploader_quiet():
        where = {"sink": sink} if len(sinks) == 1 else {"sinks": sinks, "acks_required": required}
        uploader = Uploader(
            journal=Journal(directory), seal_every=None, recipients=recipients, key_store=key_store, **where
        ).start()
        try:
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            finished = _flush(uploader, pending, left)
        finally:
            uploader.close(timeout=0)  # what is not acknowledged by now stays local
        stats = uploader.stats()
    error = None
    if stats["rejected"]:
        error = (
            f"the backup refused {_count(stats['rejected'], 'segment')} "
            f"({', '.join(stats['rejected_ids'])}), kept locally: {stats['last_error']}"
        )
    elif not finished:
        error = (
            f"push did not finish within {timeout:g} s (--timeout): {stats['acked']} of "
            f"{len(pending)} segments acknowledged, the others stay in {directory}"
            + (f"; last error: {stats['last_error']}" if stats["last_error"] else "")
        )
    if as_json:
        _dump_json(
            {
                "journal": directory,
                "target": repr(sink) if len(sinks) == 1 else [repr(s) for s in sinks],
                "ok": error is None,
                "acknowledged": stats["acked"],
                "acknowledged_bytes": stats["acked_bytes"],
                "pending": stats["pending_segments"],
                "refused": stats["rejected_ids"],
                "unreachable": unreachable,
                "error": error,
            }
        )
    elif error is None:
        click.echo(
            f"{_count(stats['acked'], 'segment')} acknowledged "
            f"({human_bytes(stats['acked_bytes'])}), {stats['pending_segments']} pending"
        )
    if error is not None:
        raise Failure(error, EXIT_FAILED)


def _unreachable(sinks, connect_timeout: float) -> list[str]:
    """One line for each of ``sinks`` that cannot be reached or refuses us."""
    problems = []
    for sink in sinks:
        try:
            _reach(sink, connect_timeout)
        except Failure as exc:
            problems.append(exc.message)
    return problems


def _flush(uploader, pending, timeout: float | None) -> bool:
    """Flush with a progress bar over the bytes to send; False if it timed out."""
    timed_out = threading.Event()

    def flush() -> None:
        try:
            uploader.flush(timeout)
        except TimeoutError:
            timed_out.set()

    worker = threading.Thread(target=flush, daemon=True)
    worker.start()
    total = sum(segment.size for segment in pending)
    with _progress(f"uploading {_count(len(pending), 'segment')}", total) as advance:
        done = 0
        while worker.is_alive():
            worker.join(0.2)
            acked = uploader.counters()["acked_bytes"]
            advance(acked - done)
            done = acked
    return not timed_out.is_set()


@click.command()
@_TARGET
@_remote_options
@_IDENTITY
@_KEY_STORE
@_JSON
@click.pass_obj
def pull(
    journal_path,
    target,
    token,
    namespace,
    endpoint_url,
    region,
    profile,
    connect_timeout,
    timeout,
    identity,
    key_store_target,
    as_json,
) -> None:
    """Download the backed-up segments of TARGET into the journal directory.

    Segments already present are skipped, each downloaded one is verified (its hash,
    header and every frame; an encrypted one is decrypted with --identity first) before
    it is written; a segment the backup deleted (its retention, an admin token) is
    counted and recorded in the journal's ledger, so that safe-data verify reads it as
    deleted, not lost; the journal's key file does not travel (copy it back to read pickled
    values: docs/remote.md).  Segments shipped with a key store need it (--key-store) and
    the --identity their data keys are wrapped to; one whose data key a forget destroyed
    is reported as shredded, not written, and recorded in the journal's ledger and
    forgotten log.  Exit 1 if the backup cannot be reached, a segment cannot be
    decrypted or does not verify (it is not written, the others are) or the download does
    not finish within the timeout (what was downloaded stays), 3 if the backup holds
    nothing.
    """
    from ..journal.encryption import DecryptionError, read_identities
    from ..journal.journal import default_path
    from ..remote._ledger import record_backup_deletions, record_shredded
    from ..remote.drill import fetch_verified
    from ..remote.keystores import KeyStoreError, Shredded
    from ..remote.protocol import InvalidSegment, SegmentTooLarge, decompress_segment

    started = time.monotonic()
    identities = None if identity is None else read_identities(identity)
    directory = os.path.abspath(journal_path or default_path())
    sink = make_sink(target, token, namespace, endpoint_url, connect_timeout, region, profile)
    _reach(sink, connect_timeout)
    key_store = None
    if key_store_target is not None:
        key_store = make_key_store(
            key_store_target, namespace, endpoint_url, connect_timeout, region, profile
        )
        _reach_key_store(key_store, connect_timeout)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    counts = {"downloaded": 0, "already_here": 0, "listed": 0, "deleted_on_backup": 0, "shredded": 0}
    invalid: list[str] = []
    shredded: list = []

    async def fetch() -> None:
        try:
            entries = await sink.list()
            counts["listed"] = len(entries)
            deleted = await sink.deletions()  # what the backup deleted: recorded, not a gap
            counts["deleted_on_backup"] = len(deleted)
            await asyncio.get_running_loop().run_in_executor(
                None, record_backup_deletions, directory, deleted
            )
            with _progress(f"downloading {_count(len(entries), 'segment')}", len(entries)) as advance:
                for entry in entries:
                    path = os.path.join(directory, entry["id"] + fmt.SEALED_SUFFIX)
                    if os.path.exists(path):
                        counts["already_here"] += 1
                    else:
                        try:
                            body = await fetch_verified(
                                sink, entry["id"], entry.get("sha256"), identities, key_store=key_store
                            )
                        except (InvalidSegment, SegmentTooLarge) as exc:
                            invalid.append(f"segment {entry['id']} does not verify, not written: {exc}")
                        except Shredded as exc:
                            shredded.append(exc)
                        else:
                            _write_new(path, decompress_segment(body))
                            counts["downloaded"] += 1
                    advance(1)
            if shredded:
                await asyncio.get_running_loop().run_in_executor(
                    None, record_shredded, directory, shredded, identities, repr(sink), repr(key_store)
                )
                counts["shredded"] = len(shredded)
        finally:
            await sink.close()
            if key_store is not None:
                await key_store.close()

    async def fetch_in_time() -> None:
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        await asyncio.wait_for(fetch(), left)

    error = None
    try:
        asyncio.run(fetch_in_time())
    except (DecryptionError, InvalidSegment, SegmentTooLarge, KeyStoreError) as exc:
        raise Failure(f"pull stopped, nothing written for this segment: {exc}") from None
    except asyncio.TimeoutError:
        error = (
            f"pull did not finish within {timeout:g} s (--timeout): "
            f"{counts['downloaded']} of {counts['listed'] - counts['already_here']} "
            f"segments downloaded"
        )
    if error is None and invalid:
        error = "\n".join(invalid)
    if as_json:
        _dump_json(
            {"journal": directory, "target": repr(sink), "ok": error is None, **counts, "error": error}
        )
    elif error is None:
        deleted = counts["deleted_on_backup"]
        click.echo(
            f"{_count(counts['downloaded'], 'segment')} downloaded, "
            f"{counts['already_here']} already here, into {directory}"
            + (f"; {deleted} deleted on the backup (recorded in the journal's ledger)" if deleted else "")
        )
        for found in shredded:
            click.echo(f"{found}; recorded in the journal's ledger and forgotten log")
    if error is not None:
        raise Failure(error, EXIT_FAILED)
    if counts["downloaded"] + counts["already_here"] + counts["shredded"] == 0:
        raise Failure(f"nothing to pull from {target}", EXIT_NOT_FOUND)


def _write_new(path: str, data: bytes) -> None:
    temporary = path + ".new"
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(temporary, path)


def _subset(ctx, param, value: str):
    from ..remote.drill import parse_subset

    try:
        return parse_subset(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("check-remote")
@_TARGET
@click.option(
    "--read-data-subset",
    "subset",
    default="5%",
    show_default=True,
    callback=_subset,
    metavar="N|P%",
    help="Segments to download and verify: a number, or a percentage of those listed (at least 1).",
)
@_remote_options
@_IDENTITY
@_KEY_STORE
@_JSON
@click.pass_obj
def check_remote(
    journal_path,
    target,
    subset,
    token,
    namespace,
    endpoint_url,
    region,
    profile,
    connect_timeout,
    timeout,
    identity,
    key_store_target,
    as_json,
) -> None:
    """A restore drill: download a sample of TARGET's segments and verify them.

    Each sampled segment is checked as a restore would read it (its hash, header and
    every frame; an encrypted one is decrypted with --identity and checked inside, or
    without one checked as stored; one shipped with a key store is opened with its data key
    from --key-store, and one whose key a forget destroyed is reported as shredded, which
    is no problem); every segment this journal knows TARGET acknowledged must be listed.
    The result is recorded in the journal directory for safe-data stats.  Exit 1, one
    line per problem, if anything is missing or does not verify, or the drill does not
    finish within the timeout.
    """
    from ..journal.encryption import read_identities
    from ..journal.journal import default_path
    from ..remote import drill

    identities = None if identity is None else read_identities(identity)
    directory = os.path.abspath(journal_path or default_path())
    sink = make_sink(target, token, namespace, endpoint_url, connect_timeout, region, profile)
    _reach(sink, connect_timeout)
    key_store = None
    if key_store_target is not None:
        key_store = make_key_store(
            key_store_target, namespace, endpoint_url, connect_timeout, region, profile
        )
        _reach_key_store(key_store, connect_timeout)
    known = directory if os.path.isdir(directory) else None

    async def run() -> drill.DrillReport:
        try:
            return await asyncio.wait_for(
                drill.drill(sink, known, subset, identities=identities, key_store=key_store), timeout
            )
        finally:
            await sink.close()
            if key_store is not None:
                await key_store.close()

    try:
        report = asyncio.run(run())
    except asyncio.TimeoutError:
        report = drill.DrillReport(
            repr(sink), problems=[f"the drill did not finish within {timeout:g} s (--timeout)"]
        )
    if known is not None:
        drill.record(known, report)
    if as_json:
        _dump_json(
            {
                "journal": known,
                "target": report.target,
                "ok": report.ok,
                "listed": report.listed,
                "checked": report.checked,
                "undecrypted": report.undecrypted,
                "expected": report.expected,
                "deleted": report.deleted,
                "shredded": report.shredded,
                "problems": report.problems,
            }
        )
    elif report.ok:
        undecrypted = (
            f" ({report.undecrypted} encrypted: ciphertext only, no --identity)" if report.undecrypted else ""
        )
        checked = _count(len(report.checked), "segment")
        listed = (
            f"{report.expected - len(report.deleted)} listed, {len(report.deleted)} deleted by the backup"
            if report.deleted
            else "all listed"
        )
        click.echo(
            f"{checked} of {report.listed} downloaded and verified{undecrypted}; "
            f"{report.expected} acknowledged segments known here, {listed}"
        )
        for line in report.deleted + report.shredded:
            click.echo(line)
    if not report.ok:
        raise Failure("\n".join(report.problems), EXIT_FAILED)
