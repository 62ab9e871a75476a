"""Hostile input at every entry point (docs/guarantees.md).

* A malicious pickle (a canary: unpickling it creates a file) planted in a segment is
  never run by any reader: the library's readers, every ``safe-data`` command, the backup
  server's ingest, ``safe-data pull`` from a store that serves it.  0 canaries.
* The journal is private whatever the umask (0700 directory, 0600 files), and its key is
  never read through a symlink nor from a file others could have replaced.
* The segment reader and the server's ingest are fuzzed (hypothesis, bounded time; set
  ``SAFE_DATA_FUZZ_EXAMPLES`` for a longer run): any bytes give sound records or a
  report, never an exception of another kind, never a run pickle.
"""

import asyncio
import hashlib
import io
import os
import shutil
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safe_data
from safe_data import SafeList

from ._helpers import Canary, journal_cli, plant

zstandard = pytest.importorskip("zstandard")
FUZZ_EXAMPLES = int(os.environ.get("SAFE_DATA_FUZZ_EXAMPLES", "300"))


@pytest.fixture
def planted(tmp_path):
    """A victim's journal holding one record of its own and an attacker's segment whose
    frame carries a canary pickle; (journal directory, canary path)."""
    canary = tmp_path / "canary"
    victim = tmp_path / "victim"
    with safe_data.Journal(victim) as journal:
        SafeList(["mine"], name="own", journal=journal).pop()
    for segment in plant(tmp_path, Canary(str(canary))):
        shutil.copy(segment, victim)
    assert not canary.exists()
    return victim, canary


def test_no_reader_runs_a_planted_pickle(planted):
    victim, canary = planted
    with safe_data.Journal(victim) as journal:
        records = list(journal.records())
        assert {r.container for r in records} == {"own", "planted"}
        assert journal.verify() == []
        safe_data.discarded("planted", journal=journal)
        safe_data.history("planted", journal=journal)
        try:
            safe_data.restore("planted", journal=journal)
        except Exception:  # may refuse an untrusted pickle: it must not run it
            pass
    assert not canary.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["log"],
        ["log", "--json"],
        ["show", "1"],
        ["show", "--container", "planted"],
        ["verify"],
        ["verify", "--repair"],
        ["stats"],
        ["restore", "planted", "--to", "-"],
        ["purge", "--container", "planted", "--dry-run"],
    ],
)
def test_no_command_runs_a_planted_pickle(planted, command):
    victim, canary = planted
    journal_cli(victim, *command)
    assert not canary.exists(), command


def test_the_backup_server_and_pull_never_run_a_planted_pickle(planted, tmp_path):
    """The server checks the canary's segment (it is sound) and stores it without decoding a
    value; a victim pulling it from there gets an UnverifiedPickle, not a run one."""
    from aiohttp.test_utils import TestClient, TestServer

    from safe_data.server.app import make_app
    from safe_data.server.stores.directory import DirectoryStore

    victim, canary = planted
    [segment] = [p for p in victim.iterdir() if p.suffix == ".seg" and b"planted" in p.read_bytes()]
    raw = segment.read_bytes()

    async def upload():
        app = make_app(DirectoryStore(tmp_path / "store"), {"attacker": "t0ken"})
        async with TestClient(TestServer(app)) as client:
            async with client.put(
                f"/v1/segments/{segment.stem}",
                data=zstandard.compress(raw),
                headers={
                    "Authorization": "Bearer t0ken",
                    "X-Content-SHA256": hashlib.sha256(raw).hexdigest(),
                },
            ) as resp:
                return resp.status

    assert asyncio.run(upload()) == 201
    pulled = tmp_path / "pulled"
    proc = journal_cli(pulled, "pull", str(tmp_path / "store"), "--namespace", "attacker")
    assert proc.returncode == 0, proc.stderr
    journal_cli(pulled, "log")
    with safe_data.Journal(pulled, readonly=True) as journal:  # no key: the pickle is not trusted
        [record] = [r for r in journal.records() if r.container == "planted"]
        assert isinstance(record.values[0], safe_data.UnverifiedPickle)
    assert not canary.exists()


def test_the_journal_is_private_under_umask_000(tmp_path):
    old = os.umask(0)
    try:
        with safe_data.Journal(tmp_path / "journal", segment_size=4096) as journal:
            items = SafeList([f"{i}" * 300 for i in range(40)], name="l", journal=journal)
            while items:
                items.pop()
        from safe_data.remote.sinks.directory import DirectorySink

        with safe_data.Uploader(
            DirectorySink(tmp_path / "sink"), tmp_path / "journal", keep_for=60, seal_every=None
        ) as up:
            up.flush(timeout=10)
    finally:
        os.umask(old)
    modes = {}
    for root, dirs, files in os.walk(tmp_path / "journal"):
        for name in dirs + files:
            modes[os.path.relpath(os.path.join(root, name), tmp_path)] = stat.S_IMODE(
                os.stat(os.path.join(root, name)).st_mode
            )
    assert stat.S_IMODE(os.stat(tmp_path / "journal").st_mode) == 0o700
    assert "journal/key" in modes and "journal/uploaded/status.json" in modes
    assert {p: m for p, m in modes.items() if m not in (0o700, 0o600)} == {}
    for root, dirs, files in os.walk(tmp_path / "sink"):
        for name in dirs + files:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) in (0o700, 0o600), name


def test_a_key_that_could_have_been_planted_is_refused(tmp_path):
    """A symlinked key (the attacker's own key, so their pickles would verify) or a key
    others may write: refused, with the reason; nothing is unpickled."""
    journal_dir = tmp_path / "journal"
    safe_data.Journal(journal_dir).close()
    key = journal_dir / "key"
    attacker_key = tmp_path / "attacker-key"
    attacker_key.write_bytes(os.urandom(len(key.read_bytes())))
    attacker_key.chmod(0o600)
    key.unlink()
    key.symlink_to(attacker_key)
    with pytest.raises(safe_data.SafeDataError, match="is a symlink"):
        safe_data.Journal(journal_dir)
    proc = journal_cli(journal_dir, "log")
    assert proc.returncode != 0 and "refus" in proc.stderr and "Traceback" not in proc.stderr
    key.unlink()
    shutil.copy(attacker_key, key)
    key.chmod(0o666)
    with pytest.raises(safe_data.SafeDataError, match="writable by others"):
        safe_data.Journal(journal_dir)
    key.chmod(0o600)
    safe_data.Journal(journal_dir).close()  # fixed: accepted


def test_a_segment_name_taken_by_a_symlink_is_never_written_through(tmp_path):
    """A symlink where the next segment would be created: the writer refuses to create
    through it (O_EXCL), the target is untouched, and nothing is lost."""
    journal_dir = tmp_path / "journal"
    target = tmp_path / "victim-file"
    target.write_text("precious")
    with safe_data.Journal(journal_dir, segment_size=4096) as journal:
        items = SafeList(["a" * 100] * 3, name="l", journal=journal)
        items.pop()
        writer = journal._manager
        stem = f"{writer.writer_id:016x}-{writer.segment_no + 1:06d}"
        for suffix in (".new", ".open", ".seg"):
            (journal_dir / (stem + suffix)).symlink_to(target)
        big = SafeList([os.urandom(3000) for _ in range(3)], name="big", journal=journal)
        popped = []
        with pytest.raises(OSError):
            while big:
                popped.append(big.pop())
        assert big and len(big) + len(popped) == 3  # the refused pop discarded nothing
        for suffix in (".new", ".open", ".seg"):
            (journal_dir / (stem + suffix)).unlink()
        big.pop()  # the name is free again: journaling resumes
    assert target.read_text() == "precious"


# --- fuzzing ----------------------------------------------------------------------------------


def _sound_segment(tmp_path_factory):
    where = tmp_path_factory.mktemp("fuzz") / "journal"
    with safe_data.Journal(where) as journal:
        SafeList(
            [1, "two", b"3", [4.0], {"5": None}, Canary("/nonexistent")], name="f", journal=journal
        ).clear()
    [segment] = [p for p in where.iterdir() if p.suffix == ".seg"]
    return segment.read_bytes()


@pytest.fixture(scope="module")
def sound_segment(tmp_path_factory):
    return _sound_segment(tmp_path_factory)


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzz_the_segment_reader(tmp_path_factory, sound_segment, data):
    """Random damage to a sound segment (flips, cuts, splices, garbage): the reader yields
    records or reports problems; it never raises anything else, never unpickles."""
    from safe_data.journal.records import read_records

    damaged = bytearray(sound_segment)
    for _ in range(data.draw(st.integers(1, 4))):
        how = data.draw(st.sampled_from(["flip", "cut", "splice", "garbage"]))
        at = data.draw(st.integers(0, len(damaged) - 1))
        if how == "flip":
            damaged[at] ^= 1 << data.draw(st.integers(0, 7))
        elif how == "cut":
            del damaged[at:]
        elif how == "splice":
            damaged[at:at] = data.draw(st.binary(max_size=64))
        else:
            damaged[at : at + 16] = data.draw(st.binary(min_size=16, max_size=16))
        if not damaged:
            damaged = bytearray(b"\0")
    where = tmp_path_factory.mktemp("fuzzed")
    (where / "0123456789abcdef-000001.seg").write_bytes(bytes(damaged))
    from safe_data import _impl

    problems = []
    for record in read_records(str(where), _impl.crc32c, None, report=problems.append):
        for value in record.values:
            assert not (isinstance(value, Canary)), "a pickle was run"


@settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=4096), flip=st.integers(0, 1 << 20))
def test_fuzz_the_servers_ingest(sound_segment, body, flip):
    """What the server does with a body (random bytes, or a damaged sound segment): accept
    a sound segment, refuse the rest with InvalidSegment/SegmentTooLarge; nothing else."""
    from safe_data.remote.verify import InvalidSegment, SegmentTooLarge, check_compressed

    candidates = [body, zstandard.compress(body)]
    damaged = bytearray(sound_segment)
    damaged[flip % len(damaged)] ^= 1 << (flip % 8)
    candidates.append(zstandard.compress(bytes(damaged)))
    for candidate in candidates:
        raw_hash = hashlib.sha256(bytes(damaged)).hexdigest()
        try:
            check_compressed(io.BytesIO(candidate), 1 << 20, raw_hash)
        except (InvalidSegment, SegmentTooLarge):
            pass
