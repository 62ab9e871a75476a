"""age encryption of the backups (docs/security.md): keygen, push --recipient through a real
``safe-data serve`` on a directory and an S3 store, pull --identity, and what is refused."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import stat
import subprocess
import sys

import pytest

pytest.importorskip("pyrage")
pytest.importorskip("aiohttp")
pytest.importorskip("zstandard")

import safe_data  # noqa: E402
from safe_data.errors import MissingDependencyError  # noqa: E402
from safe_data.journal.encryption import AGE_HEADER  # noqa: E402
from safe_data.remote.protocol import HASH_SUFFIX  # noqa: E402
from safe_data.remote.sinks.directory import DirectorySink  # noqa: E402
from safe_data.remote.sinks.s3 import S3Sink  # noqa: E402

from .backup_server import start_server_for, stop  # noqa: E402
from .seaweedfs import new_bucket  # noqa: E402
from .server_helpers import http_request, start_cli, stop_cli  # noqa: E402

TOKEN = "s3cret-token-of-app-0123456789"
#: a value the application discards, which no byte of the backup may show: random bytes,
#: which zstd stores as they are (a text would be Huffman-coded, and a plain backup would
#: not show it either); 1 KiB of them, so that Huffman-coding the literals around them
#: never pays (48 bytes among the compact frames' records were coded)
SECRET = random.Random(7).randbytes(1024)


def cli(*args, env=None, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "safe_data", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, **(env or {})),
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def keygen(path) -> str:
    return cli("keygen", "--output", str(path)).stdout.strip()


def journal_with_secrets(path) -> list:
    with safe_data.Journal(path) as journal:
        lst = safe_data.SafeList([SECRET] + [f"card-{i}" for i in range(50)], name="cards", journal=journal)
        while lst:
            lst.pop()
    return [r.values[0] for r in safe_data.Journal(path).records()]


def segments(path) -> list:
    return sorted(n for n in os.listdir(path) if n.endswith(".seg")) if os.path.isdir(path) else []


@pytest.fixture
def server(tmp_path):
    proc, url = start_server_for(tmp_path, TOKEN)
    yield url, tmp_path / "store" / "app"
    stop(proc)


def test_a_plain_backup_shows_the_secret(tmp_path):
    """The negative control of the ciphertext checks below: without recipients, the
    stored object does contain the secret."""
    source, backup = tmp_path / "source", tmp_path / "backup"
    journal_with_secrets(source)
    cli("--journal", str(source), "push", str(backup))
    (body,) = (backup / "default").glob("*.seg.zst")
    assert SECRET in body.read_bytes()


def test_keygen_writes_a_private_identity_and_prints_its_recipient(tmp_path):
    recipient = keygen(tmp_path / "id")
    assert recipient.startswith("age1") and len(recipient.split()) == 1
    assert stat.S_IMODE(os.stat(tmp_path / "id").st_mode) == 0o600
    text = (tmp_path / "id").read_text()
    assert recipient in text and "AGE-SECRET-KEY-1" in text
    again = cli("keygen", "--output", str(tmp_path / "id"), check=False)
    assert again.returncode == 4 and "never overwritten" in again.stderr
    assert (tmp_path / "id").read_text() == text


def test_round_trip_through_the_server_stores_only_ciphertext(tmp_path, server):
    url, stored = server
    recipient = keygen(tmp_path / "id")
    source = tmp_path / "source"
    popped = journal_with_secrets(source)
    cli("--journal", str(source), "push", url, "--token", TOKEN, "--recipient", recipient)
    assert segments(source) == []
    bodies = list(stored.glob("*.seg.zst"))
    assert len(bodies) == 1
    body = bodies[0].read_bytes()
    assert body.startswith(b"age-encryption.org/v1") and SECRET not in body
    # the server keeps the hash of the ciphertext: it never saw the plaintext's
    assert (stored / (bodies[0].name[: -len(".seg.zst")] + HASH_SUFFIX)).read_text().strip() == (
        hashlib.sha256(body).hexdigest()
    )

    restored = tmp_path / "restored"
    out = cli("--journal", str(restored), "pull", url, "--token", TOKEN, "--identity", str(tmp_path / "id"))
    assert "1 segment downloaded" in out.stdout
    os.replace(source / "key", restored / "key")
    assert [r.values[0] for r in safe_data.Journal(restored).records()] == popped


def test_a_drill_decrypts_with_the_identity_and_checks_ciphertext_without(tmp_path, server):
    """check-remote on an encrypted backup: with --identity every sampled segment is
    decrypted and verified inside; without, the stored ciphertext is checked (its hash)
    and the report says so; with the wrong identity, or a tampered body, it fails."""
    url, stored = server
    recipient = keygen(tmp_path / "id")
    keygen(tmp_path / "other")
    source = tmp_path / "source"
    journal_with_secrets(source)
    cli("--journal", str(source), "push", url, "--token", TOKEN, "--recipient", recipient)
    drill = ["--journal", str(source), "check-remote", url, "--token", TOKEN, "--read-data-subset", "100%"]

    out = cli(*drill, "--identity", str(tmp_path / "id"))
    assert "1 segment of 1 downloaded and verified;" in out.stdout
    out = cli(*drill, env={"SAFE_DATA_IDENTITY_FILE": ""})
    assert "verified (1 encrypted: ciphertext only, no --identity)" in out.stdout
    out = cli(*drill, "--identity", str(tmp_path / "other"), check=False)
    assert out.returncode == 1 and "cannot be decrypted" in out.stderr and "another recipient" in out.stderr

    (body,) = stored.glob("*.seg.zst")
    data = bytearray(body.read_bytes())
    data[-40] ^= 1
    body.write_bytes(bytes(data))
    for identity in ([], ["--identity", str(tmp_path / "id")]):
        out = cli(*drill, *identity, check=False, env={"SAFE_DATA_IDENTITY_FILE": ""})
        assert out.returncode == 1 and "does not match the encrypted body" in out.stderr


def test_pull_without_or_with_a_wrong_identity_writes_nothing(tmp_path, server):
    url, _ = server
    recipient = keygen(tmp_path / "id")
    keygen(tmp_path / "other")
    source, restored = tmp_path / "source", tmp_path / "restored"
    journal_with_secrets(source)
    cli("--journal", str(source), "push", url, "--token", TOKEN, "--recipient", recipient)

    out = cli("--journal", str(restored), "pull", url, "--token", TOKEN, check=False)
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "is age-encrypted: give the identity" in out.stderr and "--identity" in out.stderr
    assert segments(restored) == []

    out = cli(
        "--journal",
        str(restored),
        "pull",
        url,
        "--token",
        TOKEN,
        "--identity",
        str(tmp_path / "other"),
        check=False,
    )
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "encrypted to another recipient" in out.stderr and "Traceback" not in out.stderr
    assert segments(restored) == []
    # the identity can come from the environment too
    cli(
        "--journal",
        str(restored),
        "pull",
        url,
        "--token",
        TOKEN,
        env={"SAFE_DATA_IDENTITY_FILE": str(tmp_path / "id")},
    )
    assert len(segments(restored)) == 1


def test_a_tampered_ciphertext_is_refused(tmp_path):
    recipient = keygen(tmp_path / "id")
    source, backup, restored = tmp_path / "source", tmp_path / "backup", tmp_path / "restored"
    journal_with_secrets(source)
    with safe_data.Journal(source) as journal:
        with safe_data.Uploader(DirectorySink(backup), journal, seal_every=None, recipients=[recipient]):
            pass
    (body,) = (backup / "default").glob("*.seg.zst")
    data = bytearray(body.read_bytes())
    data[-40] ^= 1
    body.write_bytes(bytes(data))
    pull = ["--journal", str(restored), "pull", str(backup), "--identity", str(tmp_path / "id")]
    out = cli(*pull, check=False)  # the listed hash catches it first
    assert out.returncode == 1 and "X-Content-SHA256 does not match the encrypted body" in out.stderr
    # a store that also rewrote the hash: age's authentication catches it
    body.with_name(body.name[: -len(".seg.zst")] + HASH_SUFFIX).write_text(hashlib.sha256(data).hexdigest())
    out = cli(*pull, check=False)
    assert out.returncode == 1 and "damaged or was tampered with" in out.stderr
    assert segments(restored) == []


def test_the_server_refuses_an_age_header_without_recipients(tmp_path, server):
    url, stored = server
    body = AGE_HEADER + b"--- 0000\n" + bytes(64)
    status, answer = http_request(
        f"{url}/v1/segments/{'a' * 16}-000001",
        "PUT",
        body,
        {"Authorization": f"Bearer {TOKEN}", "X-Content-SHA256": hashlib.sha256(body).hexdigest()},
    )
    assert status == 400 and b"age" in answer
    assert not stored.exists() or not list(stored.iterdir())


def test_a_missing_pyrage_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrage", None)  # what `import pyrage` does when absent
    with safe_data.Journal(tmp_path / "j") as journal:
        with pytest.raises(MissingDependencyError, match=r"pip install 'safe_data\[encrypt\]'"):
            safe_data.Uploader(DirectorySink(tmp_path / "b"), journal, recipients=["age1x"])


def test_round_trip_through_the_server_on_s3(tmp_path, seaweedfs):
    bucket = new_bucket(seaweedfs, "enc-")
    recipient = keygen(tmp_path / "id")
    env = {
        "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
        "SAFE_DATA_TOKENS": f"app:{TOKEN}",
    }
    proc, url = start_cli("--store", f"s3://{bucket}/srv", "--s3-endpoint-url", seaweedfs.endpoint, env=env)
    try:
        source, restored = tmp_path / "source", tmp_path / "restored"
        popped = journal_with_secrets(source)
        cli("--journal", str(source), "push", url, "--token", TOKEN, env={"SAFE_DATA_RECIPIENTS": recipient})

        async def stored():
            async with S3Sink(
                bucket,
                seaweedfs.endpoint,
                access_key=seaweedfs.access_key,
                secret_key=seaweedfs.secret_key,
                prefix="srv/",
                namespace="app",
            ) as sink:
                (entry,) = await sink.list()
                return await sink.get(entry["id"])

        body = asyncio.run(stored())
        assert body.startswith(b"age-encryption.org/v1") and SECRET not in body
        cli("--journal", str(restored), "pull", url, "--token", TOKEN, "--identity", str(tmp_path / "id"))
    finally:
        stop_cli(proc, timeout=15)
    os.replace(source / "key", restored / "key")
    assert [r.values[0] for r in safe_data.Journal(restored).records()] == popped


# --- encrypt_to: sealed segments encrypted at rest -------------------------------------------


def sealed_bodies(path) -> list:
    return [(path / name).read_bytes() for name in segments(path)]


def test_sealed_segments_are_encrypted_at_rest_and_read_back_with_the_identity(tmp_path, monkeypatch):
    recipient = keygen(tmp_path / "id")
    journal_dir = tmp_path / "j"
    with safe_data.Journal(journal_dir, encrypt_to=[recipient], segment_size=4096) as journal:
        lst = safe_data.SafeList([SECRET] + [f"card-{i}" for i in range(200)], name="cards", journal=journal)
        while lst:
            lst.pop()
    bodies = sealed_bodies(journal_dir)
    assert len(bodies) > 1
    assert all(body.startswith(b"age-encryption.org/v1") and SECRET not in body for body in bodies)
    assert not list(journal_dir.glob("*.idx"))  # an index names containers: never on disk

    # without the identity: a clear problem per segment, no record, no crash
    with pytest.warns(safe_data.JournalWarning, match="is age-encrypted: give the identity"):
        assert list(safe_data.Journal(journal_dir, readonly=True).records()) == []
    out = cli("--journal", str(journal_dir), "verify", check=False)
    assert out.returncode == 1 and "SAFE_DATA_IDENTITY_FILE" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    out = cli("--journal", str(journal_dir), "verify", "--repair", check=False)
    assert "encrypted at rest, left as it is" in out.stdout + out.stderr
    assert sealed_bodies(journal_dir) == bodies  # repair never sets them aside

    monkeypatch.setenv("SAFE_DATA_IDENTITY_FILE", str(tmp_path / "id"))
    values = [r.values[0] for r in safe_data.Journal(journal_dir, readonly=True).records()]
    assert len(values) == 201 and SECRET in values
    assert safe_data.Journal(journal_dir, readonly=True).verify() == []
    keygen(tmp_path / "other")
    monkeypatch.setenv("SAFE_DATA_IDENTITY_FILE", str(tmp_path / "other"))
    with pytest.warns(safe_data.JournalWarning, match="encrypted to another recipient"):
        assert list(safe_data.Journal(journal_dir, readonly=True).records()) == []


def test_encrypt_to_encrypts_what_was_sealed_before_and_ships_it_as_it_is(tmp_path):
    recipient = keygen(tmp_path / "id")
    source, backup, restored = tmp_path / "source", tmp_path / "backup", tmp_path / "restored"
    popped = journal_with_secrets(source)  # sealed in plaintext
    assert SECRET in b"".join(sealed_bodies(source))
    with safe_data.Journal(source, encrypt_to=[recipient]) as journal:
        assert all(body.startswith(AGE_HEADER) for body in sealed_bodies(source))
        with safe_data.Uploader(DirectorySink(backup), journal, seal_every=None):
            pass  # no recipients: the segment is encrypted already, and goes as it is
    (body,) = (backup / "default").glob("*.seg.zst")
    assert body.read_bytes().startswith(AGE_HEADER) and SECRET not in body.read_bytes()
    cli("--journal", str(restored), "pull", str(backup), "--identity", str(tmp_path / "id"))
    os.replace(source / "key", restored / "key")
    assert [r.values[0] for r in safe_data.Journal(restored).records()] == popped
