"""Erasure on request: safe_data.forget() and `safe-data forget`.

What must hold: the chosen records' values are nowhere in the journal directory any more;
every other record is still there, exactly once; the journal verifies (the holes left
say "forgotten", not damage); a crash at any step of a rewrite leaves each segment old or
new; the forgotten log says what was forgotten, never the values.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import safe_data
from safe_data.journal import forgotten

from ._helpers import alice_and_bob, journal_cli

SECRET = "s3cr3t-of-alice"


def _everything_in(directory) -> bytes:
    """Every byte of every file under the journal directory."""
    out = bytearray()
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                out += f.read()
    return bytes(out)


def _values(journal, **options) -> list:
    return [
        v
        for r in journal.records(**options)
        for v in (r.values.values() if isinstance(r.values, dict) else r.values)
    ]


def _two_containers(impl, journal):
    """alice (secrets), bob (not): discards interleaved over several segments."""
    alice = impl.SafeDict({f"k{i}": f"{SECRET}-{i}" for i in range(300)}, name="alice", journal=journal)
    bob = impl.SafeList([f"bob-{i}" for i in range(300)], name="bob", journal=journal)
    for i in range(300):
        del alice[f"k{i}"]
        bob.pop(0)
        if i % 100 == 99:
            journal.seal()
    return alice, bob


@pytest.mark.parametrize("compact", [True, False], ids=["v2", "v1"])
def test_forget_a_container_keeps_every_other_record(impl, tmp_path, compact):
    journal = safe_data.Journal(tmp_path / "journal", compact=compact)
    with journal:
        alice, _ = _two_containers(impl, journal)
        bob_before = [r[:10] for r in journal.records("bob")]
        assert SECRET.encode() in _everything_in(journal.path)

        result = safe_data.forget(alice)

        assert result.records == 300 and len(result.segments) == 3 and not result.unsealed
        assert list(journal.records("alice")) == []
        assert [r[:10] for r in journal.records("bob")] == bob_before  # exactly once each
        assert _values(journal, container="bob") == [f"bob-{i}" for i in range(300)]
        assert journal.verify() == []
        assert SECRET.encode() not in _everything_in(journal.path)
        # the journal goes on: new records follow the rewritten segments
        alice["new"] = 1
        del alice["new"]
        assert [r.values for r in journal.records("alice")] == [{"new": 1}]
        assert journal.verify() == []


def test_forget_by_identity_leaves_a_namesake(impl, journal):
    first = impl.SafeList(["one", "two"], name="same", journal=journal)
    second = impl.SafeList(["three", "four"], name="same", journal=journal)
    first.clear()
    second.clear()
    assert safe_data.forget(first).records == 1
    assert _values(journal, container="same") == ["three", "four"]
    assert safe_data.forget(name="same", journal=journal).records == 1
    assert list(journal.records("same")) == []


def test_forget_by_time_and_predicate(impl, journal):
    items = impl.SafeList(range(10), name="items", journal=journal)
    for _ in range(10):
        items.pop()
    records = list(journal.records("items"))
    middle = records[5].time_ns
    gone = safe_data.forget(name="items", before=middle, journal=journal, predicate=lambda r: r.values[0] % 2)
    assert gone.records == sum(1 for r in records if r.time_ns < middle and r.values[0] % 2)
    kept = [v for r in journal.records("items") for v in r.values]
    assert kept == [v for r in records for v in r.values if not (r.time_ns < middle and v % 2)]
    assert journal.verify() == []


def test_dry_run_changes_nothing(impl, journal):
    alice, _ = _two_containers(impl, journal)
    before = _everything_in(journal.path)
    result = safe_data.forget(name="alice", journal=journal, dry_run=True)
    assert result.records == 300
    after = _everything_in(journal.path)
    assert SECRET.encode() in after and not os.path.exists(os.path.join(journal.path, "forgotten"))
    assert len(list(journal.records("alice"))) == 300
    assert len(before) <= len(after)  # (only the seal's new segment and indexes were added)


def test_forget_needs_a_choice(journal):
    with pytest.raises(ValueError, match="say what to forget"):
        safe_data.forget(journal=journal)


def test_the_log_says_what_was_forgotten_without_the_values(impl, journal):
    alice, _ = _two_containers(impl, journal)
    result = safe_data.forget(alice)
    entries = forgotten.read(journal.path)
    assert {e.segment for e in entries} == set(result.segments)
    assert all(e.id == result.id and e.asked["container"] == "alice" for e in entries)
    assert sum(e.records for e in entries) == 300
    assert sum(b - a + 1 for e in entries for a, b in e.seqs) == 300
    with open(os.path.join(journal.path, forgotten.FORGOTTEN_FILE), "rb") as f:
        assert SECRET.encode() not in f.read()


def test_verify_and_stats_report_forgotten_not_damage(impl, journal):
    _two_containers(impl, journal)
    safe_data.forget(name="alice", journal=journal)
    out = journal_cli(journal.path, "verify", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and report["forgotten"] == 300 and report["problems"] == []
    assert "300 records forgotten on request" in journal_cli(journal.path, "verify").stdout
    stats = json.loads(journal_cli(journal.path, "stats", "--json").stdout)
    assert stats["forgotten"] == 300 and "alice" not in stats["containers"]


FORGETTER = textwrap.dedent("""
    import sys
    import safe_data
    journal = safe_data.Journal(sys.argv[1])
    safe_data.forget(name="alice", journal=journal)
    print("forgotten", flush=True)
""")


@pytest.mark.parametrize(
    ("fault", "left"),
    [("segment.rewrite:2", "old"), ("dir.fsync:3", "new")],
    ids=["before-the-rename", "after-the-rename"],
)
def test_a_crash_mid_rewrite_leaves_the_old_or_the_new_segment(impl, tmp_path, fault, left):
    """The forgetting process is killed (SIGABRT) at the second segment's rewrite: the
    first is new, the second old (killed before its rename) or new (after it, before the
    directory's fsync; the first segment's passes are its own and the forgotten log's
    creation), the third old; never a segment missing, never a record twice."""
    journal = safe_data.Journal(tmp_path / "journal")
    _two_containers(impl, journal)
    journal.close()
    script = tmp_path / "forgetter.py"
    script.write_text(FORGETTER)
    env = {**os.environ, "SAFE_DATA_FAULT": f"{fault}:abort"}
    proc = subprocess.run(
        [sys.executable, str(script), journal.path], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode != 0 and b"forgotten" not in proc.stdout, proc.stderr

    with safe_data.Journal(journal.path) as reopened:
        assert reopened.verify() == []
        per_segment = {}
        for r in reopened.records("alice"):
            per_segment.setdefault(r.segment, []).append(r.values)
        kept = sum(len(v) for v in per_segment.values())
        assert kept == (200 if left == "old" else 100), sorted(per_segment)
        assert _values(reopened, container="bob") == [f"bob-{i}" for i in range(300)]
        # forgetting again finishes the job
        assert safe_data.forget(name="alice", journal=reopened).records == kept
        assert list(reopened.records("alice")) == [] and reopened.verify() == []


def test_the_command_lists_forgets_and_logs(impl, journal):
    _two_containers(impl, journal)
    journal.close()  # (the command seals nothing of another process's: this one is done)
    dry = journal_cli(journal.path, "forget", "--name", "alice", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["action"] == "would forget" and plan["records"] == 300 and len(plan["segments"]) == 3
    assert SECRET.encode() in _everything_in(journal.path)

    done = journal_cli(journal.path, "forget", "--name", "alice")
    assert done.returncode == 0, done.stderr
    assert "forgot 300 records in 3 segments" in done.stdout
    assert SECRET.encode() not in _everything_in(journal.path)
    assert journal_cli(journal.path, "forget", "--name", "alice").returncode == 3  # nothing left

    log = json.loads(journal_cli(journal.path, "forget", "--log", "--json").stdout)
    assert sum(e["records"] for e in log) == 300 and {e["asked"]["name"] for e in log} == {"alice"}
    assert "alice" in journal_cli(journal.path, "forget", "--log").stdout
    listed = journal_cli(journal.path, "log", "--container", "alice")
    assert listed.returncode == 3 and "300 records forgotten on request" in listed.stderr
    assert "forgotten" not in journal_cli(journal.path, "log", "--container", "bob").stderr
    assert journal_cli(journal.path, "forget").returncode == 2  # no choice: a usage error


# --- in backups: a real `safe-data serve` on a directory, and on a real SeaweedFS -------------

APPEND, ADMIN = "append-token-of-the-app", "admin-token-of-the-app"


@pytest.fixture(params=["directory", "seaweedfs"])
def backup_server(request, tmp_path):
    """A real `safe-data serve` (append-only and admin tokens for namespace "app"), on a
    directory store or on a fresh bucket of a real SeaweedFS: its URL."""
    pytest.importorskip("aiohttp")
    pytest.importorskip("zstandard")
    from .server_helpers import start_cli, stop_cli

    tokens = tmp_path / "tokens"
    tokens.write_text(f"app:{APPEND}\napp:{ADMIN}:admin\n")
    tokens.chmod(0o600)
    args, env = ["--store", str(tmp_path / "store")], None
    if request.param == "seaweedfs":
        from .seaweedfs import new_bucket

        weed = request.getfixturevalue("seaweedfs")
        args = ["--store", f"s3://{new_bucket(weed, 'forget-')}/srv", "--s3-endpoint-url", weed.endpoint]
        env = {"AWS_ACCESS_KEY_ID": weed.access_key, "AWS_SECRET_ACCESS_KEY": weed.secret_key}
    with open(tmp_path / "server.log", "w") as log:
        proc, url = start_cli(*args, "--tokens", str(tokens), env=env, stderr=log)
    yield url
    stop_cli(proc, timeout=15)


def _stored_segments(url) -> dict:
    """{segment id: the segment's bytes} of everything the server holds for "app"."""
    import asyncio

    from safe_data.remote.protocol import decompress_segment
    from safe_data.remote.sinks.http import HttpSink

    async def fetch():
        sink = HttpSink(url, APPEND)
        try:
            return {e["id"]: decompress_segment(await sink.get(e["id"])) for e in await sink.list()}
        finally:
            await sink.close()

    return asyncio.run(fetch())


def test_forget_across_local_and_backup(impl, tmp_path, backup_server):
    """Two segments shipped (and so deleted here), one still only here: forgetting alice
    with --remote rewrites the local one and replaces the two in the backup; a journal
    pulled back from the backup has every bob record once and no alice record, and
    verifies; the server's tombstones say why; an append-only token cannot do it."""
    url = backup_server
    journal = safe_data.Journal(tmp_path / "journal")
    alice = impl.SafeDict({f"k{i}": f"{SECRET}-{i}" for i in range(300)}, name="alice", journal=journal)
    bob = impl.SafeList([f"bob-{i}" for i in range(300)], name="bob", journal=journal)
    for i in range(300):
        del alice[f"k{i}"]
        bob.pop(0)
        if i == 199:
            journal.seal()
            pushed = journal_cli(journal.path, "push", url, "--token", APPEND)
            assert pushed.returncode == 0, pushed.stderr
        elif i % 100 == 99:
            journal.seal()
    journal.close()
    shipped = _stored_segments(url)
    assert len(shipped) == 2 and all(SECRET.encode() in raw for raw in shipped.values())

    refused = journal_cli(journal.path, "forget", "--name", "alice", "--remote", url, "--token", APPEND)
    assert refused.returncode == 1 and "admin" in refused.stderr, refused.stderr
    assert _stored_segments(url) == shipped  # nothing replaced (the local copy was rewritten)

    dry = journal_cli(
        journal.path, "forget", "--name", "alice", "--remote", url, "--token", ADMIN, "--dry-run", "--json"
    )
    assert dry.returncode == 0, dry.stderr
    assert [sum(s.values()) for s in json.loads(dry.stdout)["backups"].values()] == [200]
    assert _stored_segments(url) == shipped

    done = journal_cli(journal.path, "forget", "--name", "alice", "--remote", url, "--token", ADMIN, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    ((backup, segments),) = report["backups"].items()
    assert sorted(segments) == sorted(shipped) and sum(segments.values()) == 200

    stored = _stored_segments(url)
    assert sorted(stored) == sorted(shipped)
    assert not any(SECRET.encode() in raw for raw in stored.values())
    assert SECRET.encode() not in _everything_in(journal.path)
    assert _pending(journal.path) == []  # each replacement's body went once stored
    with safe_data.Journal(journal.path, readonly=True) as here:
        assert here.verify() == []
    pulled = tmp_path / "pulled"
    assert journal_cli(pulled, "pull", url, "--token", APPEND).returncode == 0
    for name in os.listdir(journal.path):  # the segment only here, and the key
        if name.endswith(".seg") or name == "key":
            os.replace(os.path.join(journal.path, name), pulled / name)
    with safe_data.Journal(pulled, readonly=True) as back:
        assert list(back.records("alice")) == []
        assert _values(back, container="bob") == [f"bob-{i}" for i in range(300)]
        problems = [p for p in back.verify() if "ledger" not in p.reason]
        assert problems == []
    deletions = _deletions(url)
    assert {d["id"] for d in deletions} == set(shipped)
    assert all(d["reason"].startswith("forget ") and len(d["replaced_by"]) == 64 for d in deletions)


def _pending(journal_dir) -> list:
    """The replacements' bodies waiting in the journal's forgetting/ (any backup)."""
    return sorted(p.name for p in Path(journal_dir, "forgetting").glob("*/*"))


def test_a_crash_between_deletion_and_upload_loses_nothing(tmp_path, backup_server):
    """The forgetting process dies (SIGABRT) after the backup deleted the first segment,
    before its replacement was stored: the replacement's body waits in forgetting/, and
    the next forget stores it first, then finishes; bob's records are all in the backup."""
    url = backup_server
    journal = alice_and_bob(safe_data, tmp_path / "journal", SECRET, 100)
    assert journal_cli(journal, "push", url, "--token", APPEND).returncode == 0
    forget = ("forget", "--name", "alice", "--remote", url, "--token", ADMIN)
    env = {**os.environ, "SAFE_DATA_FAULT": "forget.replace:1:abort"}
    crashed = subprocess.run(
        [sys.executable, "-m", "safe_data", "--journal", journal, *forget],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert crashed.returncode != 0
    assert len(_stored_segments(url)) == 1 and len(_pending(journal)) == 1

    again = journal_cli(journal, *forget)
    assert again.returncode == 0, again.stderr
    stored = _stored_segments(url)
    assert len(stored) == 2 and _pending(journal) == []
    assert not any(SECRET.encode() in raw for raw in stored.values())
    pulled = tmp_path / "pulled"
    assert journal_cli(pulled, "pull", url, "--token", APPEND).returncode == 0
    os.replace(os.path.join(journal, "key"), pulled / "key")
    with safe_data.Journal(pulled, readonly=True) as back:
        assert _values(back, container="bob") == [f"bob-{i}" for i in range(100)]
        assert list(back.records("alice")) == []


def _deletions(url) -> list:
    import asyncio

    from safe_data.remote.sinks.http import HttpSink

    async def fetch():
        sink = HttpSink(url, APPEND)
        try:
            return await sink.deletions()
        finally:
            await sink.close()

    return asyncio.run(fetch())


def test_restore_says_records_were_forgotten(impl, journal):
    """restore() never rebuilds a state from what forgetting left as if it were whole."""
    prefs = impl.SafeDict({"theme": "dark", "lang": "en"}, name="prefs", journal=journal, versioned=True)
    prefs["theme"] = "light"
    assert safe_data.restore("prefs", journal=journal) == {"theme": "light", "lang": "en"}
    safe_data.forget(name="prefs", journal=journal, predicate=lambda r: r.op == "snapshot")
    with pytest.raises(safe_data.IncompleteHistoryError, match="forgotten on request") as exc:
        safe_data.restore("prefs", journal=journal)
    assert exc.value.reason == "forgotten" and exc.value.partial == {"theme": "dark"}
    entry = forgotten.read(journal.path)[-1]
    assert entry.containers == ["prefs"] and entry.asked["predicate"].endswith("<lambda>")


def test_a_journal_encrypted_at_rest_needs_its_identity(impl, tmp_path, monkeypatch):
    pytest.importorskip("pyrage")
    pytest.importorskip("zstandard")
    from safe_data.journal.encryption import IDENTITY_ENV, new_identity

    secret_key, recipient = new_identity()
    identity = tmp_path / "identity"
    identity.write_text(secret_key + "\n")
    with safe_data.Journal(tmp_path / "journal", encrypt_to=[recipient]) as journal:
        alice, _ = _two_containers(impl, journal)
        monkeypatch.delenv(IDENTITY_ENV, raising=False)
        with pytest.raises(safe_data.SafeDataError, match="age-encrypted"):
            safe_data.forget(alice)
        monkeypatch.setenv(IDENTITY_ENV, str(identity))
        assert safe_data.forget(alice).records == 300
        assert list(journal.records("alice")) == []
        assert _values(journal, container="bob") == [f"bob-{i}" for i in range(300)]
        assert journal.verify() == []
        segments = [n for n in os.listdir(journal.path) if n.endswith(".seg")]
        for name in segments:  # encrypted again
            assert (Path(journal.path) / name).read_bytes().startswith(b"age-encryption.org/v1")
