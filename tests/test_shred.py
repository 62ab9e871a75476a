"""Crypto-shredding: per-segment data keys in a key store, destroyed by forget.

What must hold: with a key store, every shipped segment is encrypted to a data key of its
own, stored (wrapped to the long-term recipients) in the key store; push -> pull reads it
back with the key store and the long-term identity, and with neither alone; a forget with
the key store replaces the segment in the backup and destroys the old version's key, so a
copy of the old version taken before (an immutable backup) can no longer be read, with any
identity, and is reported as shredded, never as damaged; the other container's records
survive in the replacement.  Segments and keys: real directories, and a real SeaweedFS.
"""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import safe_data

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")
pytest.importorskip("aiohttp")

from safe_data.journal import encryption, forgotten  # noqa: E402
from safe_data.remote.drill import fetch_verified  # noqa: E402
from safe_data.remote.keystores import Shredded  # noqa: E402
from safe_data.remote.protocol import decompress_segment  # noqa: E402
from safe_data.remote.sinks.directory import DirectorySink  # noqa: E402

from ._helpers import alice_and_bob  # noqa: E402

SECRET = "s3cr3t-of-alice"


class Stores:
    """Where segments go and where their keys go, as the command line and the library
    name them: ``backup`` and ``keys`` (targets), ``options`` (the S3 ones), ``env``."""

    def __init__(self, backup, keys, options=(), env=None, s3=None):
        self.backup, self.keys, self.options, self.env, self._s3 = backup, keys, list(options), env, s3

    def sink(self):
        if self._s3 is None:
            return DirectorySink(self.backup)
        from safe_data.remote.sinks.s3 import S3Sink

        return S3Sink(self.backup.removeprefix("s3://"), **self._s3)

    def key_store(self):
        if self._s3 is None:
            from safe_data.remote.keystores.directory import DirectoryKeyStore

            return DirectoryKeyStore(self.keys)
        from safe_data.remote.keystores.s3 import S3KeyStore
        from safe_data.remote.sinks.s3 import S3Sink

        bucket, _, prefix = self.keys.removeprefix("s3://").partition("/")
        return S3KeyStore(S3Sink(bucket, prefix=prefix + "/", **self._s3))


@pytest.fixture(params=["directory", "seaweedfs"])
def stores(request, tmp_path):
    """Segments and keys in two directories, or in two buckets of a real SeaweedFS."""
    if request.param == "directory":
        return Stores(str(tmp_path / "backup"), str(tmp_path / "keys"))
    from .seaweedfs import new_bucket

    weed = request.getfixturevalue("seaweedfs")
    s3 = {"endpoint_url": weed.endpoint, "access_key": weed.access_key, "secret_key": weed.secret_key}
    env = {"AWS_ACCESS_KEY_ID": weed.access_key, "AWS_SECRET_ACCESS_KEY": weed.secret_key}
    return Stores(
        f"s3://{new_bucket(weed, 'segments-')}",
        f"s3://{new_bucket(weed, 'keys-')}/keys",
        ["--endpoint-url", weed.endpoint],
        env,
        s3,
    )


def _cli(stores, journal_dir, *args):
    env = {**os.environ, **(stores.env or {})}
    return subprocess.run(
        [sys.executable, "-m", "safe_data", "--journal", str(journal_dir), *args, *stores.options],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _drill(stores, journal, target, identity_path) -> dict:
    """``check-remote TARGET`` of every segment, with the identity and the key store: its
    JSON report (the command must succeed)."""
    drill = _cli(
        stores,
        journal,
        "check-remote",
        target,
        "--read-data-subset",
        "100%",
        "--identity",
        str(identity_path),
        "--key-store",
        stores.keys,
        "--json",
    )
    assert drill.returncode == 0, drill.stderr
    return json.loads(drill.stdout)


def _values(journal, container) -> list:
    return [
        v
        for r in journal.records(container=container)
        for v in (r.values.values() if isinstance(r.values, dict) else r.values)
    ]


def _stored(stores) -> dict:
    """{segment id: (sha256, body)} of what the backup holds."""

    async def fetch():
        sink = stores.sink()
        try:
            return {e["id"]: (e["sha256"], await sink.get(e["id"])) for e in await sink.list()}
        finally:
            await sink.close()

    return asyncio.run(fetch())


def _open(stores, copy, segment_id, sha256, identities) -> bytes:
    """The segment a copy's body holds, opened with the key store (or raising)."""

    async def run():
        key_store = stores.key_store()
        try:
            sink = _Copy(copy)
            return await fetch_verified(sink, segment_id, sha256, identities, key_store=key_store)
        finally:
            await key_store.close()

    return decompress_segment(asyncio.run(run()))


class _Copy:
    """Bodies held apart from any store: the immutable copy of a backup."""

    def __init__(self, bodies):
        self.bodies = bodies

    async def get(self, segment_id):
        return self.bodies[segment_id][1]


def test_push_and_pull_with_a_key_store(impl, tmp_path, stores, identity):
    """Each segment leaves encrypted to a data key of its own, whose wrapped key is in the
    key store; pull and check-remote read it back with the key store and the identity,
    and say in one line what is missing without either."""
    path, recipient = identity
    journal = alice_and_bob(impl, tmp_path / "journal", SECRET, 200)
    pushed = _cli(
        stores, journal, "push", stores.backup, "--recipient", recipient, "--key-store", stores.keys
    )
    assert pushed.returncode == 0, pushed.stderr
    stored = _stored(stores)
    assert len(stored) == 2
    keys = asyncio.run(_keys_of(stores, stored))
    assert all(keys.values()), keys  # each version's wrapped key, written before it
    for _, body in stored.values():
        assert encryption.is_encrypted(body)
        with pytest.raises(encryption.DecryptionError, match="another recipient"):
            encryption.decrypt(body, encryption.read_identities(path), "a segment")  # a data key's alone

    alone = _cli(stores, tmp_path / "none", "pull", stores.backup, "--identity", str(path))
    assert alone.returncode == 1 and "--key-store" in alone.stderr and len(alone.stderr.splitlines()) == 1
    missing = _cli(
        stores,
        tmp_path / "none",
        "pull",
        stores.backup,
        "--identity",
        str(path),
        "--key-store",
        str(tmp_path / "nowhere"),
    )
    assert missing.returncode == 1 and "no key store" in missing.stderr, missing.stderr

    pulled = tmp_path / "pulled"
    back = _cli(stores, pulled, "pull", stores.backup, "--identity", str(path), "--key-store", stores.keys)
    assert back.returncode == 0, back.stderr
    os.replace(Path(journal, "key"), pulled / "key")
    with safe_data.Journal(pulled, readonly=True) as restored:
        assert _values(restored, "bob") == [f"bob-{i}" for i in range(200)]
        assert _values(restored, "alice") == [f"{SECRET}-{i}" for i in range(200)]
    report = _drill(stores, journal, stores.backup, path)
    assert len(report["checked"]) == 2 and report["undecrypted"] == 0 and report["shredded"] == []


async def _keys_of(stores, stored) -> dict:
    key_store = stores.key_store()
    try:
        return {i: await key_store.get(i, sha) is not None for i, (sha, _) in stored.items()}
    finally:
        await key_store.close()


def test_a_wrong_identity_cannot_unwrap_the_data_keys(impl, tmp_path, stores, identity):
    _, recipient = identity
    journal = alice_and_bob(impl, tmp_path / "journal", SECRET, 200)
    pushed = _cli(
        stores, journal, "push", stores.backup, "--recipient", recipient, "--key-store", stores.keys
    )
    assert pushed.returncode == 0, pushed.stderr
    other = tmp_path / "other"
    other.write_text(encryption.new_identity()[0] + "\n")
    wrong = _cli(
        stores, tmp_path / "p", "pull", stores.backup, "--identity", str(other), "--key-store", stores.keys
    )
    assert wrong.returncode == 1 and "data key of segment" in wrong.stderr, wrong.stderr
    assert "not one of its keys" in wrong.stderr
    assert not list(Path(tmp_path / "p").glob("*.seg"))


def test_a_key_store_needs_recipients_and_is_not_a_backup_server(tmp_path, stores):
    journal = safe_data.Journal(tmp_path / "journal")
    with pytest.raises(ValueError, match="needs recipients"):
        safe_data.Uploader(safe_data.DirectorySink(tmp_path / "b"), journal, key_store=tmp_path / "k")
    journal.close()
    no_recipient = _cli(stores, tmp_path / "journal", "push", stores.backup, "--key-store", stores.keys)
    assert no_recipient.returncode == 2 and "--recipient" in no_recipient.stderr
    server = _cli(stores, tmp_path / "journal", "pull", stores.backup, "--key-store", "http://127.0.0.1:1/")
    assert server.returncode == 2 and "cannot hold data keys" in server.stderr, server.stderr


def test_forget_shreds_every_copy_of_the_old_version(impl, tmp_path, stores, identity):
    """Forgetting alice (whose records share each segment with bob's) with the key store:
    the backup's segments are replaced (bob's records all there, alice's gone) under new
    data keys, and the old versions' keys destroyed.  A copy of the old bodies taken
    before (an immutable backup) opened with the key store before the forget (the
    negative control); after it, it opens with no identity, and a pull of it reports each
    segment shredded by that forget, and restore() says so."""
    path, recipient = identity
    identities = encryption.read_identities(path)
    journal = alice_and_bob(impl, tmp_path / "journal", SECRET, 200)
    pushed = _cli(
        stores, journal, "push", stores.backup, "--recipient", recipient, "--key-store", stores.keys
    )
    assert pushed.returncode == 0, pushed.stderr
    copy = _stored(stores)  # the immutable copy, out of reach of forget
    for segment_id, (sha256, _) in copy.items():  # the negative control
        assert SECRET.encode() in _open(stores, copy, segment_id, sha256, identities)

    forget = _cli(
        stores,
        journal,
        "forget",
        "--name",
        "alice",
        "--remote",
        stores.backup,
        "--key-store",
        stores.keys,
        "--recipient",
        recipient,
        "--identity",
        str(path),
        "--json",
    )
    assert forget.returncode == 0, forget.stderr
    forget_id = json.loads(forget.stdout)["id"]

    for segment_id, (sha256, body) in copy.items():
        with pytest.raises(Shredded, match=f"shredded by forget {forget_id}"):
            _open(stores, copy, segment_id, sha256, identities)
        with pytest.raises(encryption.DecryptionError):  # not with the long-term identity either
            encryption.decrypt(body, identities, "the old copy")
    replaced = _stored(stores)
    assert sorted(replaced) == sorted(copy)
    assert all(replaced[i][0] != copy[i][0] for i in copy)  # new versions, new keys
    shreds = [e for e in forgotten.read(journal) if e.shredded]
    assert sorted((e.segment, e.shredded["sha256"]) for e in shreds) == sorted(
        (i, s) for i, (s, _) in copy.items()
    )
    assert all(e.id == forget_id and e.containers == ["alice"] for e in shreds)
    assert not list(Path(journal, "forgetting").glob("*/*"))  # nothing left to do

    pulled = tmp_path / "pulled"
    back = _cli(stores, pulled, "pull", stores.backup, "--identity", str(path), "--key-store", stores.keys)
    assert back.returncode == 0, back.stderr
    os.replace(Path(journal, "key"), pulled / "key")
    with safe_data.Journal(pulled, readonly=True) as restored:
        assert _values(restored, "bob") == [f"bob-{i}" for i in range(200)]  # in the replacements
        assert list(restored.records(container="alice")) == []

    immutable = tmp_path / "immutable"
    asyncio.run(_put_all(DirectorySink(immutable), copy))
    old = tmp_path / "from-the-copy"
    shredded = _cli(
        stores, old, "pull", str(immutable), "--identity", str(path), "--key-store", stores.keys, "--json"
    )
    assert shredded.returncode == 0, shredded.stderr
    assert json.loads(shredded.stdout)["shredded"] == 2
    assert not list(old.glob("*.seg"))
    report = _drill(stores, tmp_path / "elsewhere", str(immutable), path)  # shredded: no problem
    assert len(report["shredded"]) == 2 and report["checked"] == [] and report["problems"] == []
    with safe_data.Journal(old, readonly=True) as lost:
        assert [p for p in lost.verify() if "missing" in p.reason or "lost" in p.reason] == []
        for name in ("alice", "bob"):
            with pytest.raises(safe_data.IncompleteHistoryError, match="data key a forget destroyed") as exc:
                safe_data.restore(name, journal=lost)
            assert exc.value.reason == "shredded"


async def _put_all(sink, bodies) -> None:
    for segment_id, (sha256, body) in bodies.items():
        await sink.put(segment_id, body, sha256)


def test_a_crash_before_the_shred_is_finished_by_the_next_forget(tmp_path, identity):
    """The forgetting process dies (SIGABRT) after the backup stored a replacement, before
    the old version's key was destroyed: the shred waits in forgetting/; a forget without
    the key store refuses to go on, the next one with it destroys the key and logs it."""
    path, recipient = identity
    stores = Stores(str(tmp_path / "backup"), str(tmp_path / "keys"))
    journal = alice_and_bob(safe_data, tmp_path / "journal", SECRET, 200)
    pushed = _cli(
        stores, journal, "push", stores.backup, "--recipient", recipient, "--key-store", stores.keys
    )
    assert pushed.returncode == 0, pushed.stderr
    copy = _stored(stores)
    forget = ["forget", "--name", "alice", "--remote", stores.backup, "--recipient", recipient]
    forget += ["--identity", str(path)]
    crashed = subprocess.run(
        [sys.executable, "-m", "safe_data", "--journal", journal, *forget, "--key-store", stores.keys],
        env={**os.environ, "SAFE_DATA_FAULT": "forget.shred:1:abort"},
        capture_output=True,
        timeout=120,
    )
    assert crashed.returncode != 0
    waiting = sorted(p.name for p in Path(journal, "forgetting").glob("*/*"))
    assert len(waiting) == 2 and len([n for n in waiting if n.endswith(".shred")]) == 1  # and a body
    first = min(copy)
    assert SECRET.encode() in _open(stores, copy, first, copy[first][0], encryption.read_identities(path))

    without = _cli(stores, journal, *forget)
    assert without.returncode == 1 and "--key-store" in without.stderr, without.stderr
    again = _cli(stores, journal, *forget, "--key-store", stores.keys)
    assert again.returncode in (0, 3), again.stderr
    assert not list(Path(journal, "forgetting").glob("*/*"))
    for segment_id, (sha256, _) in copy.items():
        with pytest.raises(Shredded):
            _open(stores, copy, segment_id, sha256, encryption.read_identities(path))
    assert len([e for e in forgotten.read(journal) if e.shredded]) == 2
