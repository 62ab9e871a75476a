"""An encrypted segment is the same body every time it is sent (docs/remote.md, *Encryption*).

age encryption is randomised: a segment encrypted again after a crash would be another body
under the same id, which a store that took the first refuses for good (409).  So the
uploader keeps the body it made in ``<journal>/uploading/`` until the segment is freed.
Real parts: uploading processes killed at ``upload.ack`` (the store took the segment, the
uploader recorded nothing), ``safe-data serve`` on a directory and on a real SeaweedFS,
key stores in a directory and in a SeaweedFS bucket.
"""

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import safe_data

pytest.importorskip("pyrage")
pytest.importorskip("aiohttp")
pytest.importorskip("zstandard")

from safe_data.journal import encryption  # noqa: E402
from safe_data.remote.sinks.http import HttpSink  # noqa: E402
from safe_data.remote.uploader import Uploader, UploadWarning  # noqa: E402

from ._helpers import alice_and_bob  # noqa: E402
from .backup_server import start_server, start_server_for, stop  # noqa: E402
from .seaweedfs import free_port, new_bucket  # noqa: E402
from .server_helpers import start_cli, stop_cli  # noqa: E402

TOKEN = "s3cret-token-of-app-0123456789"
FAST = {"seal_every": None, "backoff": (0.01, 0.2)}


class Backup:
    """A running ``safe-data serve`` (``url``) and a key store (``keys``), with the options
    and environment the command line needs to reach them."""

    def __init__(self, url, keys, options=(), env=None):
        self.url, self.keys, self.options, self.env = url, keys, list(options), env or {}


@pytest.fixture(params=["directory", "seaweedfs"])
def backup(request, tmp_path):
    """A server on a directory with a directory key store, or a server on a SeaweedFS
    bucket with a key store in another bucket."""
    if request.param == "directory":
        proc, url = start_server_for(tmp_path, TOKEN)
        yield Backup(url, str(tmp_path / "keys"))
        stop(proc)
        return
    weed = request.getfixturevalue("seaweedfs")
    env = {"AWS_ACCESS_KEY_ID": weed.access_key, "AWS_SECRET_ACCESS_KEY": weed.secret_key}
    with open(tmp_path / "server.log", "w") as log:  # a pipe nobody reads would fill
        proc, url = start_cli(
            "--store",
            f"s3://{new_bucket(weed, 'resend-')}/srv",
            "--s3-endpoint-url",
            weed.endpoint,
            env={**env, "SAFE_DATA_TOKENS": f"app:{TOKEN}"},
            stderr=log,
        )
    yield Backup(url, f"s3://{new_bucket(weed, 'keys-')}/keys", ["--endpoint-url", weed.endpoint], env)
    stop_cli(proc, timeout=15)


def cli(backup, journal_dir, *args, fault=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFE_DATA_FAULT")}
    env.update(backup.env)
    if fault:
        env["SAFE_DATA_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "safe_data", "--journal", str(journal_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def journal_of_two_segments(impl, path) -> list:
    """A journal of two sealed segments; the values popped."""
    popped = []
    with safe_data.Journal(path) as journal:
        items = impl.SafeList(
            [f"item-{i:03d}-" + "x" * 100 for i in range(100)], name="items", journal=journal
        )
        for i in range(100):
            popped.append(items.pop(0))
            if i % 50 == 49:
                journal.seal()
    return popped


def sealed(path) -> list:
    return sorted(n for n in os.listdir(path) if n.endswith(".seg"))


def prepared(path) -> list:
    """What waits in ``<journal>/uploading/``."""
    folder = Path(path, "uploading")
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def metric(url, name) -> int:
    """A counter of the server's /metrics: ``stored``, ``duplicate``, ``conflict``."""
    request = urllib.request.Request(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    return int(re.search(rf"^safe_data_uploads_{name}_total (\d+)$", text, re.MULTILINE).group(1))


def values(path) -> list:
    with safe_data.Journal(path, readonly=True) as journal:
        return [v for r in journal.records(container="items") for v in r.values]


@pytest.mark.parametrize("key_store", [False, True], ids=["recipient", "key-store"])
def test_a_segment_stored_before_a_crash_is_acknowledged_after_it(
    impl, tmp_path, backup, identity, key_store
):
    """push --recipient (with a key store or not) dies at upload.ack: the store holds the
    segment, the journal has no record of it.  The next push sends the same body: the
    server answers "duplicate", the segment is freed, the kept body removed, and a pull
    with the identity reads every value back.  (Encrypted again, the body differed: 409,
    and the segment was kept for ever.)"""
    path, recipient = identity
    journal = tmp_path / "journal"
    popped = journal_of_two_segments(impl, journal)
    segments = sealed(journal)
    push = ["push", backup.url, "--token", TOKEN, "--recipient", recipient, *backup.options]
    if key_store:
        push += ["--key-store", backup.keys]

    crashed = cli(backup, journal, *push, fault="upload.ack:1:abort")
    assert crashed.returncode == -6, crashed.stderr  # SIGABRT
    assert sealed(journal) == segments  # nothing acknowledged
    assert metric(backup.url, "stored") >= 1
    assert prepared(journal)  # the bodies sent, kept
    verify = cli(backup, journal, "verify")
    assert verify.returncode == 0 and "the journal is sound" in verify.stdout, verify.stdout + verify.stderr
    stats = cli(backup, journal, "stats", "--json")
    assert stats.returncode == 0 and json.loads(stats.stdout)["problems"] == 0, stats.stderr

    again = cli(backup, journal, *push)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sealed(journal) == [] and prepared(journal) == []  # freed, and their bodies gone
    assert metric(backup.url, "duplicate") >= 1 and metric(backup.url, "conflict") == 0

    pull = ["pull", backup.url, "--token", TOKEN, "--identity", str(path), *backup.options]
    if key_store:
        pull += ["--key-store", backup.keys]
    pulled = tmp_path / "pulled"
    back = cli(backup, pulled, *pull)
    assert back.returncode == 0 and "2 segments downloaded" in back.stdout, back.stdout + back.stderr
    os.replace(journal / "key", pulled / "key")
    assert values(pulled) == popped


def held(url) -> dict:
    """{segment id: body} of what a server holds."""
    import asyncio

    async def fetch():
        sink = HttpSink(url, TOKEN)
        try:
            return {entry["id"]: await sink.get(entry["id"]) for entry in await sink.list()}
        finally:
            await sink.close()

    return asyncio.run(fetch())


def tokens_file(tmp_path, lines: str) -> Path:
    tokens = tmp_path / "tokens"
    tokens.write_text(lines)
    tokens.chmod(0o600)
    return tokens


def ship_while_b_is_down(journal, url_a, url_b, recipient) -> None:
    """An uploader round to a and b (down): a takes every segment, the journal keeps them
    for b."""
    with pytest.warns(UploadWarning, match="not acknowledged"):
        sinks = {"a": HttpSink(url_a, TOKEN), "b": HttpSink(url_b, TOKEN)}
        with Uploader(sinks=sinks, journal=journal, recipients=[recipient], **FAST) as up:
            with pytest.raises(TimeoutError):
                up.flush(timeout=3)
            up.close(timeout=0.1)


def test_two_destinations_one_down_at_first_get_the_same_ciphertext(impl, tmp_path, identity):
    """a takes every segment while b is down; the uploader stops, b comes back, the next
    one sends b what a has: the very same bytes (encrypted again, they differed)."""
    _, recipient = identity
    tokens = tokens_file(tmp_path, f"app:{TOKEN}\n")
    proc_a, url_a = start_server(tmp_path / "a", tokens)
    proc_b, url_b = start_server(tmp_path / "b", tokens)
    stop(proc_b)  # down from the start
    journal = tmp_path / "journal"
    try:
        journal_of_two_segments(impl, journal)
        segments = sealed(journal)
        ship_while_b_is_down(journal, url_a, url_b, recipient)
        assert sealed(journal) == segments and len(held(url_a)) == 2
        assert prepared(journal)  # kept for b

        proc_b, url_b = start_server(tmp_path / "b", tokens)  # back, on another port
        sinks = {"a": HttpSink(url_a, TOKEN), "b": HttpSink(url_b, TOKEN)}
        with Uploader(sinks=sinks, journal=journal, recipients=[recipient], **FAST) as up:
            up.flush(timeout=60)
        assert sealed(journal) == [] and prepared(journal) == []
        assert held(url_b) == held(url_a)
        assert all(encryption.is_encrypted(body) for body in held(url_a).values())
    finally:
        stop(proc_a)
        stop(proc_b)


def test_bodies_of_segments_gone_are_tidied(impl, tmp_path, identity):
    """A kept body whose segment left the journal (a crash between the two deletions), and
    a temp directory of a crash while keeping one, go at the uploader's next round; the
    body of a segment it ships goes once acknowledged."""
    _, recipient = identity
    journal = tmp_path / "journal"
    journal_of_two_segments(impl, journal)
    gone = "0123456789abcdef-000001"
    for name in (f"{gone}.{'0' * 64}", f".{gone}.{'1' * 64}.123.abcdef.tmp"):
        Path(journal, "uploading", name).mkdir(parents=True)
        Path(journal, "uploading", name, "body").write_bytes(b"age-encryption.org/v1\n")
    with Uploader(
        safe_data.DirectorySink(tmp_path / "backup"), journal, recipients=[recipient], **FAST
    ) as up:
        up.flush(timeout=60)
    assert sealed(journal) == [] and prepared(journal) == []


SECRET = "alice-secret-4f2a"
ADMIN = "admin-token-of-app-0123456789"


def kept_plaintexts(path, identity_file) -> list:
    """The segments kept in ``<journal>/uploading/``, decrypted with the identity."""
    import zstandard

    identities = encryption.read_identities(identity_file)
    out = []
    for name in prepared(path):
        body = Path(path, "uploading", name, "body").read_bytes()
        out.append(zstandard.ZstdDecompressor().decompress(encryption.decrypt(body, identities, name)))
    return out


def ship_to_nowhere(path, recipient) -> None:
    """An uploader round whose destination is down: each segment's body made, kept, not sent."""
    dead = HttpSink(f"http://127.0.0.1:{free_port()}", TOKEN, connect_timeout=0.2)
    with pytest.warns(UploadWarning, match="not acknowledged"):
        with Uploader(dead, journal=path, recipients=[recipient], **FAST) as up:
            with pytest.raises(TimeoutError):
                up.flush(timeout=2)
            up.close(timeout=0.1)


def test_a_forget_leaves_no_kept_body_of_what_it_forgot(impl, tmp_path, identity):
    """The bodies kept for a destination that is down hold the segments as they were: a
    forget drops those of the segments it rewrote (they would still decrypt to alice's
    values); one left by a forget that died before dropping it goes at the uploader's
    next round, which sees it is of another version of its segment."""
    path, recipient = identity
    journal = tmp_path / "journal"
    alice_and_bob(impl, journal, SECRET, 100)
    ship_to_nowhere(journal, recipient)
    assert len(prepared(journal)) == 2
    assert all(SECRET.encode() in plain for plain in kept_plaintexts(journal, path))

    with safe_data.Journal(journal) as opened:
        assert safe_data.forget(name="alice", journal=opened).records == 100
    assert prepared(journal) == []

    # a forget that died after its rewrites, before dropping the bodies: as the journal
    # layer leaves it
    from safe_data.journal.forget import Choice, forget

    other = tmp_path / "other"
    alice_and_bob(impl, other, SECRET, 100)
    ship_to_nowhere(other, recipient)
    with safe_data.Journal(other) as opened:
        key = opened._key
    assert forget(str(other), Choice(names=("alice",), asked={}), key).records == 100
    assert len(prepared(other)) == 2
    ship_to_nowhere(other, recipient)  # a round: stale bodies go, the rewrites' are made
    plains = kept_plaintexts(other, path)
    assert len(plains) == 2 and not any(SECRET.encode() in plain for plain in plains)


def test_forget_in_a_backup_and_the_uploader_send_the_same_rewrite(impl, tmp_path, identity, monkeypatch):
    """a holds the encrypted segments while b is down, so they stay in the journal; a
    forget in a replaces a's copies with encrypted rewrites.  When b comes back, the
    uploader sends b the very body the forget stored in a.  (Encrypted again, it differed
    from a's copy; and were it sent to a again, after a lost acknowledgement, a would
    refuse it for good: 409.)"""
    path, recipient = identity
    monkeypatch.setenv(encryption.IDENTITY_ENV, str(path))
    tokens = tokens_file(tmp_path, f"app:{TOKEN}\napp:{ADMIN}:admin\n")
    proc_a, url_a = start_server(tmp_path / "a", tokens)
    proc_b, url_b = start_server(tmp_path / "b", tokens)
    stop(proc_b)  # down from the start
    journal = tmp_path / "journal"
    try:
        alice_and_bob(impl, journal, SECRET, 100)
        ship_while_b_is_down(journal, url_a, url_b, recipient)
        assert len(held(url_a)) == 2 and len(sealed(journal)) == 2

        with safe_data.Journal(journal) as opened:
            result = safe_data.forget(
                name="alice", journal=opened, backups=[HttpSink(url_a, ADMIN)], recipients=[recipient]
            )
        assert (
            result.records == 100 and sum(n for done in result.backups.values() for n in done.values()) == 100
        )

        proc_b, url_b = start_server(tmp_path / "b", tokens)  # back, on another port
        sinks = {"a": HttpSink(url_a, TOKEN), "b": HttpSink(url_b, TOKEN)}
        with Uploader(sinks=sinks, journal=journal, recipients=[recipient], **FAST) as up:
            up.flush(timeout=60)
        assert sealed(journal) == [] and prepared(journal) == []
        assert held(url_b) == held(url_a) and len(held(url_a)) == 2
    finally:
        stop(proc_a)
        stop(proc_b)
