"""``serve``: run the backup server (docs/remote.md) on a directory or S3 store.

aiohttp is imported only when the command runs, so ``safe-data`` stays quick to start.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import click

TOKENS_ENV = "SAFE_DATA_TOKENS"


#: the roles a tokens entry may end with (``namespace:token:admin``); append is the default
ROLES = ("append", "admin")


def parse_tokens(text: str, source: str, *, commas: bool) -> tuple[dict[str, str], dict[str, str]]:
    """``namespace:token[:role]`` entries, one a line (or comma-separated); ``#`` starts a
    comment.  The role is ``append`` (the default: upload, list, download) or ``admin``
    (may also delete).  Return (namespace -> append-only token, namespace -> admin token).

    Raise click.UsageError on a malformed entry, an invalid namespace, an empty token, a
    namespace given twice with one role or a token given twice.  Tokens never appear in
    the messages.
    """
    from ..remote.protocol import valid_namespace

    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        parts = line.split(",") if commas else [line]
        for part in parts:
            part = part.strip()
            if part:
                entries.append((number, part))
    tables: dict[str, dict[str, str]] = {role: {} for role in ROLES}
    seen: set[str] = set()
    for number, entry in entries:
        namespace, sep, token = entry.partition(":")
        role = "append"
        head, _, last = token.rpartition(":")
        if last.strip() in ROLES:
            token, role = head, last.strip()
        namespace, token = namespace.strip(), token.strip()
        where = f"{source}, line {number}"
        if not sep or not token:
            raise click.UsageError(f"{where}: expected namespace:token or namespace:token:admin")
        if not valid_namespace(namespace):
            raise click.UsageError(
                f"{where}: invalid namespace {namespace!r} (letters, digits, '_', '.', '-', at most 64)"
            )
        if namespace in tables[role]:
            raise click.UsageError(f"{where}: namespace {namespace!r} given twice (role {role})")
        if token in seen:
            raise click.UsageError(f"{where}: the token of {namespace!r} is already used by another entry")
        seen.add(token)
        tables[role][namespace] = token
    return tables["append"], tables["admin"]


def load_tokens(tokens_file: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(append-only tokens, admin tokens) from the file or $SAFE_DATA_TOKENS."""
    if tokens_file is not None:
        with open(tokens_file, encoding="utf-8") as f:
            tokens = parse_tokens(f.read(), tokens_file, commas=False)
        mode = os.stat(tokens_file).st_mode
        if mode & 0o077:
            click.echo(
                f"warning: {tokens_file} is readable by other users (mode {mode & 0o777:o}); chmod 600 it",
                err=True,
            )
    else:
        text = os.environ.get(TOKENS_ENV)
        if not text:
            raise click.UsageError(f"no tokens: give --tokens FILE or set {TOKENS_ENV}")
        tokens = parse_tokens(text, TOKENS_ENV, commas=True)
    if not any(tokens):
        raise click.UsageError("no namespace:token entries found")
    return tokens


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _browser_url(host: str, port: int) -> str:
    """The URL a browser on this machine opens (a wildcard address is no place to go)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return _url(host, port)


async def _run(app, host: str, port: int, ui: bool) -> None:
    from aiohttp import web

    from ..server.state import STORE_KEY
    from ..server.stores import StoreUnavailable

    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        incoming = getattr(app[STORE_KEY], "incoming", None)
        if incoming is not None:  # a directory store: what a killed server left there
            from ..server.incoming import clean

            for name in clean(incoming()):
                click.echo(f"removed {name}: left in .incoming by a server that is gone", err=True)
        check = getattr(app[STORE_KEY], "check", None)
        if check is not None:  # S3: the bucket exists and the credentials are accepted
            try:
                await check()
            except StoreUnavailable as exc:
                raise click.ClickException(f"store unavailable: {exc}") from None
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = port
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            bound = server.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        click.echo(f"serving on {_url(host, bound)}")
        if ui:
            click.echo(f"web view on {_browser_url(host, bound)}/ui/")
        sys.stdout.flush()
        await stop.wait()
        click.echo("stopping", err=True)
    finally:
        await runner.cleanup()


@click.command()
@click.option(
    "--store",
    "store_spec",
    required=True,
    metavar="DIR|s3://BUCKET[/PREFIX]",
    help="Directory store: <DIR>/<namespace>/<segment id>.seg.zst; or an S3 bucket: "
    "objects <PREFIX>/<namespace>/<segment id>.seg.zst (keys and region found "
    "as the AWS CLI finds them, e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
    "or AWS_PROFILE).",
)
@click.option(
    "--s3-endpoint-url",
    default=None,
    metavar="URL",
    help="S3-compatible endpoint (SeaweedFS, MinIO, ...) for an s3:// store. "
    "Default: $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL, else AWS.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port, printed when ready).",
)
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(dir_okay=False, exists=True),
    metavar="FILE",
    default=None,
    help=f"'namespace:token' lines (append-only tokens, for clients); a line ending in "
    "':admin' gives an admin token (may also delete); '#' comments. Default: "
    f"${TOKENS_ENV} (same entries, comma- or newline-separated).",
)
@click.option(
    "--max-segment-bytes",
    default=256 << 20,
    show_default=True,
    type=click.IntRange(1),
    help="Largest decompressed segment accepted.",
)
@click.option(
    "--max-concurrent-uploads",
    default=4,
    show_default=True,
    type=click.IntRange(1),
    help="Uploads received and checked at once; others are answered 503 (retry later).",
)
@click.option(
    "--journal",
    "journal_dir",
    default=None,
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False),
    help="A local journal the web view (/ui/) browses too, read only (default: "
    "the global --journal if given, else none).",
)
@click.option(
    "--journal-namespace",
    "journal_readers",
    multiple=True,
    metavar="NS",
    help="A namespace whose tokens may browse --journal (repeatable). Needed when "
    "the tokens have several namespaces; with one, it is that one.",
)
@click.option(
    "--quota",
    "quota_specs",
    multiple=True,
    metavar="NS=SIZE",
    help="Most bytes the namespace NS may hold, compressed as stored (10GiB, 500M); "
    "repeatable. An upload that does not fit is answered 507: the client keeps it and "
    "retries later.",
)
@click.option(
    "--keep-within",
    default=None,
    metavar="DURATION",
    help="Retention: keep every segment whose newest record is younger than this "
    "(30d, 12h, 2w); older ones go unless --keep-daily or --keep-weekly keep them.",
)
@click.option(
    "--keep-daily",
    default=0,
    type=click.IntRange(0),
    metavar="N",
    help="Retention: beyond --keep-within, keep the newest segment of each writer on "
    "each of the N most recent days (UTC) that have segments.",
)
@click.option(
    "--keep-weekly",
    default=0,
    type=click.IntRange(0),
    metavar="N",
    help="Retention: likewise, for each of the N most recent ISO weeks.",
)
@click.option(
    "--retention-every",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="How often the server applies the retention policy (and once at start).",
)
@click.option(
    "--prune-now",
    is_flag=True,
    help="Apply the retention policy once to every namespace, print what went and why, "
    "and exit (no server is started).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="With --prune-now: delete nothing, print what would go and why.",
)
@click.option(
    "--ui/--no-ui", default=True, show_default=True, help="Serve the web view at /ui/ (docs/web.md)."
)
@click.pass_obj
def serve(
    global_journal,
    store_spec,
    s3_endpoint_url,
    host,
    port,
    tokens_file,
    max_segment_bytes,
    max_concurrent_uploads,
    journal_dir,
    journal_readers,
    quota_specs,
    keep_within,
    keep_daily,
    keep_weekly,
    retention_every,
    prune_now,
    dry_run,
    ui,
) -> None:
    """Run the backup server: receive sealed segments over HTTP and store them.

    Also serves a web view at /ui/: search discarded values in the store (and in the
    --journal DIR given), see a record and its caller, download a restore.  Prints
    'serving on http://HOST:PORT' when ready (then 'web view on URL'); SIGTERM or Ctrl-C
    stop it.

    With --keep-within, --keep-daily or --keep-weekly the server deletes what the policy
    does not keep, at start and every --retention-every (docs/remote.md, "Retention on
    the server"); without, it never deletes (only an admin token does).
    """
    import logging

    from ..server.app import make_app

    journal_dir = journal_dir or global_journal
    if journal_dir is not None and not ui:
        raise click.UsageError("--journal is for the web view: drop --no-ui or --journal")
    if journal_dir is not None and not os.path.isdir(journal_dir):
        raise click.BadParameter(f"no journal at {journal_dir}", param_hint="'--journal'")
    tokens, admin_tokens = load_tokens(tokens_file)
    namespaces = set(tokens) | set(admin_tokens)
    journal_readers = _journal_readers(journal_dir, journal_readers, namespaces)
    quotas = _quotas(quota_specs, namespaces)
    policy, every = _retention(keep_within, keep_daily, keep_weekly, retention_every, prune_now, dry_run)
    store = _open_store(store_spec, s3_endpoint_url)
    if prune_now:
        asyncio.run(_prune(store, sorted(namespaces), policy, dry_run))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    app = make_app(
        store,
        tokens,
        admin_tokens=admin_tokens,
        quotas=quotas,
        max_segment_bytes=max_segment_bytes,
        max_concurrent_uploads=max_concurrent_uploads,
        web_view=ui,
        journal=journal_dir,
        journal_readers=journal_readers,
        retention=policy,
        retention_every=every,
    )
    asyncio.run(_run(app, host, port, ui))


def _retention(keep_within, keep_daily, keep_weekly, every, prune_now, dry_run):
    """(the retention Policy, seconds between passes) from the options."""
    from ..server.retention import Policy, parse_duration

    try:
        within = None if keep_within is None else parse_duration(keep_within)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--keep-within'") from None
    try:
        seconds = parse_duration(every)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--retention-every'") from None
    policy = Policy(within, keep_daily, keep_weekly)
    if dry_run and not prune_now:
        raise click.UsageError("--dry-run goes with --prune-now")
    if prune_now and not policy:
        raise click.UsageError("--prune-now needs a policy: --keep-within, --keep-daily or --keep-weekly")
    return policy, seconds


async def _prune(store, namespaces: list[str], policy, dry_run: bool) -> None:
    """``--prune-now``: one retention pass over ``namespaces``, each segment that goes (or
    would) printed with why, then a summary line."""
    import time

    from ..present import human_bytes
    from ..server.retention import run_pass, store_caller
    from ..server.stores import StoreUnavailable

    verb = "would delete" if dry_run else "deleted"
    gone = kept = freed = 0
    try:
        for namespace in namespaces:
            result = await run_pass(store_caller(store), namespace, policy, time.time(), dry_run=dry_run)
            going = [d for d in result.decisions if not d.keep] if dry_run else result.deleted
            for d in going:
                click.echo(f"{verb} {namespace}/{d.id} ({_when(d.newest)}, {human_bytes(d.size)}): {d.why}")
            gone += len(going)
            kept += result.kept
            freed += sum(d.size for d in going)
    except StoreUnavailable as exc:
        raise click.ClickException(f"store unavailable: {exc}") from None
    finally:
        aclose = getattr(store, "aclose", None)
        if aclose is not None:
            await aclose()
    freeing = (
        f"{human_bytes(freed)} would be freed (dry run: nothing deleted)"
        if dry_run
        else (f"{human_bytes(freed)} freed")
    )
    click.echo(f"retention ({policy}): {kept} kept, {gone} {verb}, {freeing}")


def _when(seconds: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _journal_readers(journal_dir, readers: tuple[str, ...], namespaces: set[str]):
    """The namespaces whose tokens may browse the journal: those named, or the only one."""
    if journal_dir is None:
        if readers:
            raise click.UsageError("--journal-namespace names who may read --journal DIR: give --journal too")
        return None
    unknown = sorted(set(readers) - namespaces)
    if unknown:
        raise click.BadParameter(
            f"no token has the namespace {unknown[0]!r}", param_hint="'--journal-namespace'"
        )
    if readers:
        return frozenset(readers)
    if len(namespaces) > 1:
        raise click.UsageError(
            f"the tokens have {len(namespaces)} namespaces: name those whose "
            "tokens may browse --journal with --journal-namespace NS"
        )
    return frozenset(namespaces)


def _quotas(specs: tuple[str, ...], namespaces: set[str]) -> dict[str, int]:
    """``NS=SIZE`` options -> namespace -> bytes."""
    from .params import SIZE

    quotas: dict[str, int] = {}
    for spec in specs:
        namespace, sep, size = spec.partition("=")
        if not sep:
            raise click.BadParameter(f"expected NS=SIZE, got {spec!r}", param_hint="'--quota'")
        if namespace not in namespaces:
            raise click.BadParameter(f"no token has the namespace {namespace!r}", param_hint="'--quota'")
        if namespace in quotas:
            raise click.BadParameter(f"namespace {namespace!r} given twice", param_hint="'--quota'")
        quotas[namespace] = SIZE.convert(size, None, None)
    return quotas


def _open_store(spec: str, s3_endpoint_url: str | None):
    if spec.startswith("s3://"):
        from ..server.stores.s3 import S3Store

        try:
            return S3Store.from_url(spec, endpoint_url=s3_endpoint_url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--store'") from None
    if s3_endpoint_url is not None:
        raise click.UsageError("--s3-endpoint-url needs an s3://BUCKET store")
    if "://" in spec:
        raise click.BadParameter(
            f"unknown store URL {spec!r} (a directory or s3://BUCKET[/PREFIX])", param_hint="'--store'"
        )
    if os.path.exists(spec) and not os.path.isdir(spec):
        raise click.BadParameter(f"{spec!r} is not a directory", param_hint="'--store'")
    from ..server.stores.directory import DirectoryStore

    return DirectoryStore(spec)


if __name__ == "__main__":
    serve()
