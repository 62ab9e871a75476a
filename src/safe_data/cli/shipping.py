"""``push`` and ``pull``: ship sealed segments to a remote backup now, and bring them back."""

from __future__ import annotations

import os
import threading

import click

from ..upload.layout import valid_namespace
from .exits import EXIT_FAILED, EXIT_NOT_FOUND, Failure
from .journal_view import _journal_dir
from .output import _count, _human_bytes, _progress


def make_sink(target: str, token: str | None, namespace: str, endpoint_url: str | None,
              region: str | None = None, profile: str | None = None):
    """A sink for TARGET: ``http(s)://server``, ``s3://bucket[/prefix]`` or a directory."""
    if target.startswith(("http://", "https://")):
        from ..upload.sinks import HttpSink

        if not token:
            raise Failure("an HTTP backup server needs --token (or SAFE_DATA_TOKEN)", 2)
        return HttpSink(target, token)
    if target.startswith("s3://"):
        from ..upload.s3 import S3Sink
        from ..upload.s3_store import parse_s3_url

        try:
            bucket, prefix = parse_s3_url(target)
            return S3Sink(bucket, endpoint_url, prefix=prefix, namespace=namespace, region=region,
                          profile=profile)
        except ValueError as exc:  # also: no credentials found, an unknown profile
            raise Failure(str(exc), 2) from None
    from ..upload.sinks import DirectorySink

    return DirectorySink(target, namespace=namespace)


_TARGET = click.argument("target", metavar="TARGET")
_TOKEN = click.option("--token", envvar="SAFE_DATA_TOKEN", help="Bearer token of an HTTP backup server.")
def _namespace(ctx, param, value: str) -> str:
    if not valid_namespace(value):
        raise click.BadParameter(f"{value!r} is not a namespace: 1 to 64 letters, digits, '_', "
                                 f"'.' or '-', not starting with '.' or '-'")
    return value


_NAMESPACE = click.option("--namespace", default="default", show_default=True, callback=_namespace,
                          help="Namespace in a directory or S3 store (a server takes it from the token).")
_ENDPOINT = click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL",
                         help="S3-compatible endpoint (default: AWS).")
_REGION = click.option("--region", default=None,
                       help="S3 region (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's).")
_PROFILE = click.option("--profile", default=None,
                        help="AWS profile of the shared config files (default: $AWS_PROFILE).")


@click.command()
@_TARGET
@_TOKEN
@_NAMESPACE
@_ENDPOINT
@_REGION
@_PROFILE
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@click.pass_obj
def push(journal_path, target, token, namespace, endpoint_url, region, profile, timeout) -> None:
    """Upload every sealed segment now, and free the local copies once acknowledged.

    TARGET is http(s)://SERVER, s3://BUCKET[/PREFIX] or a directory.  Segments still
    being written by running programs are shipped by their own uploader or once sealed.
    """
    from ..journal.journal import Journal
    from ..upload.uploader import Uploader, pending_segments

    directory = _journal_dir(journal_path)
    pending = pending_segments(directory)
    total = sum(segment.size for segment in pending)
    sink = make_sink(target, token, namespace, endpoint_url, region, profile)
    uploader = Uploader(sink, Journal(directory), seal_every=None)
    failure: list[BaseException] = []

    def flush() -> None:
        try:
            uploader.flush(timeout)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    with uploader:
        worker = threading.Thread(target=flush, daemon=True)
        worker.start()
        with _progress(f"uploading {_count(len(pending), 'segment')}", total) as advance:
            done = 0
            while worker.is_alive():
                worker.join(0.2)
                acked = uploader.stats()["acked_bytes"]
                advance(acked - done)
                done = acked
        stats = uploader.stats()
    click.echo(f"{_count(stats['acked'], 'segment')} acknowledged ({_human_bytes(stats['acked_bytes'])}), "
               f"{stats['pending_segments']} pending, {stats['rejected']} refused by the backup")
    if failure:
        raise Failure(f"push did not finish: {failure[0]}", EXIT_FAILED)
    if stats["rejected"]:
        raise Failure(f"the backup refused {', '.join(stats['rejected_ids'])}; they stay local", EXIT_FAILED)


@click.command()
@_TARGET
@_TOKEN
@_NAMESPACE
@_ENDPOINT
@_REGION
@_PROFILE
@click.pass_obj
def pull(journal_path, target, token, namespace, endpoint_url, region, profile) -> None:
    """Download the backed-up segments of TARGET into the journal directory.

    Segments already present are skipped; the journal's ``key`` file does not travel
    (copy it back to read pickled values: docs/remote.md).
    """
    import asyncio

    from ..upload.sinks import decompress_segment

    from ..journal.journal import default_path

    directory = os.path.abspath(journal_path or default_path())
    os.makedirs(directory, mode=0o700, exist_ok=True)
    sink = make_sink(target, token, namespace, endpoint_url, region, profile)

    async def fetch() -> tuple[int, int]:
        fetched = skipped = 0
        try:
            entries = await sink.list()
            with _progress(f"downloading {_count(len(entries), 'segment')}", len(entries)) as advance:
                for entry in entries:
                    path = os.path.join(directory, entry["id"] + ".seg")
                    if os.path.exists(path):
                        skipped += 1
                    else:
                        data = decompress_segment(await sink.get(entry["id"]))
                        _write_new(path, data)
                        fetched += 1
                    advance(1)
        finally:
            await sink.close()
        return fetched, skipped

    fetched, skipped = asyncio.run(fetch())
    click.echo(f"{_count(fetched, 'segment')} downloaded, {skipped} already here, into {directory}")
    if fetched + skipped == 0:
        raise Failure(f"nothing to pull from {target}", EXIT_NOT_FOUND)


def _write_new(path: str, data: bytes) -> None:
    temporary = path + ".new"
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(temporary, path)
