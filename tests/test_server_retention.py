"""Retention on the backup server (docs/remote.md, "Retention on the server"): a real
``safe-data serve --keep-within/--keep-daily/--keep-weekly`` on a directory store and on
S3 (a real SeaweedFS) deletes exactly what its policy does not keep, tombstones first;
a dry run lists what would go and why; an append-only token changes nothing; and the
readers (check-remote, pull, verify) report what retention deleted, not a gap."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("zstandard")

from safe_data.server.retention import Policy, plan  # noqa: E402

from ._helpers import wait_until  # noqa: E402
from .seaweedfs import free_port  # noqa: E402
from .server_helpers import ADMIN, TOKEN, http_request, put_headers, start_cli, stop_cli, zstd  # noqa: E402

DAY = 86400
POLICY = ["--keep-within", "3d", "--keep-daily", "2", "--keep-weekly", "2"]
SAID = "keep-within 3d, keep-daily 2, keep-weekly 2"  # how the server says it

# A journal whose records carry the times given: the pure-Python writer (whose clock is
# time.time_ns) in a process of its own, one sealed segment per time.
_WRITER = """
import json, sys, time
now = [0]
time.time_ns = lambda: now[0]
import safe_data
journal = safe_data.Journal(sys.argv[1])
items = safe_data.SafeList(journal=journal)
for t in json.loads(sys.argv[2]):
    now[0] = int(t * 1e9)
    items.append(t)
    items.pop()
    journal.seal()
journal.close()
"""


def write_journal(path, times) -> list[str]:
    """A journal at ``path`` of one segment per time (seconds); its segment ids, in order."""
    env = dict(os.environ, SAFE_DATA_NO_EXTENSIONS="1")
    env.pop("SAFE_DATA_REQUIRE_EXTENSIONS", None)
    subprocess.run([sys.executable, "-c", _WRITER, str(path), json.dumps(times)], env=env, check=True)
    ids = sorted(name[: -len(".seg")] for name in os.listdir(path) if name.endswith(".seg"))
    assert len(ids) == len(times)
    return ids


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "safe_data", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, **(env or {})),
    )


def week_times(now: float) -> dict[str, float]:
    """Times around the Monday of last week (``w0``, UTC), so that which day and ISO week
    each falls in does not depend on today: keep-within 3d keeps only ``a7`` and ``b2``."""
    today = now // DAY * DAY
    w0 = today - dt.datetime.fromtimestamp(today, dt.timezone.utc).weekday() * DAY - 7 * DAY
    return {
        "a1": w0 - 14 * DAY + 4 * DAY + 12 * 3600,  # Friday two weeks before: goes
        "a2": w0 - 7 * DAY + DAY + 9 * 3600,  # Tuesday of the week before, 09:00: goes
        "a3": w0 - 7 * DAY + DAY + 15 * 3600,  # ... 15:00: that week's newest of writer a
        "a4": w0 + 2 * DAY + 12 * 3600,  # Wednesday: a kept day's newest
        "a5": w0 + 3 * DAY + 10 * 3600,  # Thursday 10:00: goes (a6 is newer that day)
        "a6": w0 + 3 * DAY + 14 * 3600,  # Thursday 14:00
        "a7": now - 3600,  # within 3d
        "b1": w0 + 3 * DAY + 11 * 3600,  # writer b's newest on Thursday: kept for b
        "b2": now - 2 * DAY,  # within 3d
    }


GOES = {"a1", "a2", "a5"}


def test_plan_keeps_all_without_a_policy_and_the_newest_per_writer_per_period():
    now = time.time()
    times = week_times(now)
    entries = [{"id": f"{name[0] * 16}-{name[1]:0>6}", "size": 10, "newest": t} for name, t in times.items()]
    assert all(d.keep for d in plan(entries, Policy(), now))
    decisions = {d.id: d for d in plan(entries, Policy(3 * DAY, 2, 2), now)}
    names = {f"{name[0] * 16}-{name[1]:0>6}": name for name in times}
    assert {names[i] for i, d in decisions.items() if not d.keep} == GOES
    assert decisions["aaaaaaaaaaaaaaaa-000007"].why == "within 3d"
    assert decisions["aaaaaaaaaaaaaaaa-000004"].why.startswith("daily: the newest of writer aaaaaaaaaaaaaaaa")
    assert decisions["aaaaaaaaaaaaaaaa-000003"].why.startswith("weekly: the newest of writer")
    assert "older than 3d" in decisions["aaaaaaaaaaaaaaaa-000005"].why


@pytest.fixture(params=["directory", "s3"])
def store_args(request, tmp_path):
    """(the serve options of a store, the environment it needs)."""
    if request.param == "directory":
        return ["--store", str(tmp_path / "store")], {}
    from .seaweedfs import new_bucket

    weed = request.getfixturevalue("seaweedfs")
    bucket = new_bucket(weed, "retention-")
    env = {"AWS_ACCESS_KEY_ID": weed.access_key, "AWS_SECRET_ACCESS_KEY": weed.secret_key}
    return ["--store", f"s3://{bucket}/backups", "--s3-endpoint-url", weed.endpoint], env


def metric(url: str, name: str) -> float:
    status, body = http_request(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    (value,) = re.findall(rf"^{name} (\S+)$", body.decode(), re.MULTILINE)
    return float(value)


def listing(url: str, what: str = "segments") -> list[dict]:
    status, body = http_request(f"{url}/v1/{what}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    return json.loads(body)


def test_retention_on_a_real_server_and_what_readers_report(tmp_path, store_args):
    store, env = store_args
    env = dict(env, SAFE_DATA_TOKENS=f"alpha:{TOKEN},alpha:{ADMIN}:admin")
    times = week_times(time.time())
    journals = {writer: tmp_path / writer for writer in "ab"}
    names, bodies = {}, {}  # a1 -> its segment id, its bytes
    for writer, journal in journals.items():
        mine = [n for n in times if n[0] == writer]
        names.update(zip(mine, write_journal(journal, [times[n] for n in mine]), strict=True))
        bodies.update({n: journal.joinpath(names[n] + ".seg").read_bytes() for n in mine})
    goes = {names[n] for n in GOES}
    port = free_port()  # both servers on one URL: the journals' ledgers name it
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115  (closed below)
    try:
        # 1. no policy: the server deletes nothing
        server, url = start_cli(*store, env=env, stderr=log, port=port)
        try:
            for journal in journals.values():
                pushed = cli("--journal", str(journal), "push", url, "--token", TOKEN)
                assert pushed.returncode == 0, pushed.stderr
            assert len(listing(url)) == len(names)
        finally:
            stop_cli(server)

        # 2. a dry run lists what would go and why, and deletes nothing
        dry = cli("serve", *store, "--prune-now", "--dry-run", *POLICY, env=env)
        assert dry.returncode == 0, dry.stderr
        lines = dry.stdout.splitlines()
        assert {line.split()[2].split("/")[1] for line in lines[:-1]} == goes
        assert all(line.startswith("would delete alpha/") and "older than 3d" in line for line in lines[:-1])
        assert lines[-1].startswith(f"retention ({SAID}): 6 kept, 3 would delete")

        # 3. the server with the policy: a pass at start deletes exactly those, tombstones first
        server, url = start_cli(*store, *POLICY, env=env, stderr=log, port=port)
        try:
            last_run = "safe_data_retention_last_run_timestamp_seconds"
            wait_until(lambda: metric(url, last_run) > 0, 30, "no retention pass")
            assert {e["id"] for e in listing(url)} == set(names.values()) - goes
            tombstones = listing(url, "deletions")
            assert {t["id"] for t in tombstones} == goes
            assert {t["reason"] for t in tombstones} == {"retention"}
            assert metric(url, "safe_data_retention_deleted_total") == 3  # so the dry run deleted none

            # 4. a client's append-only token can neither delete nor bring a deleted one back
            kept = names["a7"]
            status, _ = http_request(f"{url}/v1/segments/{kept}", "DELETE", headers=put_headers(b""))
            assert status == 403
            body = bodies["a5"]
            status, answer = http_request(
                f"{url}/v1/segments/{names['a5']}", "PUT", zstd(body), put_headers(body)
            )
            assert status == 200 and json.loads(answer)["status"] == "deleted"
            assert {e["id"] for e in listing(url)} == set(names.values()) - goes

            # 5. a drill of the journal that uploaded them: deleted by retention, no problem
            drill = cli("--journal", str(journals["a"]), "check-remote", url, "--token", TOKEN)
            assert drill.returncode == 0, drill.stderr
            today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
            for name in sorted(GOES):
                assert f"segment {names[name]}: deleted by retention on {today}" in drill.stdout

            # 6. pull into a new journal, then verify: deleted on the backup, not missing
            restored = tmp_path / "restored"
            pulled = cli("--journal", str(restored), "pull", url, "--token", TOKEN)
            assert pulled.returncode == 0, pulled.stderr
            assert "3 deleted on the backup" in pulled.stdout
        finally:
            stop_cli(server)
    finally:
        log.close()
    assert f"retention ({SAID}): 6 kept, 3 deleted" in (tmp_path / "serve.log").read_text()
    verified = cli("--journal", str(restored), "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for name in sorted(GOES):
        assert f"segment {names[name]}: deleted on the backup by retention on {today}" in verified.stdout
    assert "missing" not in verified.stdout.replace("(not missing", "")
    shutil.rmtree(restored)

    # 7. pull straight from the store (the server down): its tombstones are read there too
    direct = tmp_path / "direct"
    endpoint = ["--endpoint-url", store[3]] if len(store) > 2 else []
    pulled = cli("--journal", str(direct), "pull", store[1], "--namespace", "alpha", *endpoint, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert "3 deleted on the backup" in pulled.stdout
    verified = cli("--journal", str(direct), "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for name in sorted(GOES):
        assert f"segment {names[name]}: deleted on the backup by retention on {today}" in verified.stdout


def test_an_encrypted_segment_goes_by_the_time_the_server_received_it(tmp_path):
    """The server cannot read an age body's records: its time is when it arrived, so a
    segment of old records is kept as if new (its plain twin is not)."""
    pytest.importorskip("pyrage")
    old = time.time() - 40 * DAY
    plain, secret = tmp_path / "plain", tmp_path / "secret"
    (plain_id,) = write_journal(plain, [old])
    (secret_id,) = write_journal(secret, [old])
    recipient = cli("keygen", "--output", str(tmp_path / "id")).stdout.strip()
    store = ["--store", str(tmp_path / "store")]
    env = {"SAFE_DATA_TOKENS": f"alpha:{TOKEN}"}
    server, url = start_cli(*store, env=env, stderr=subprocess.DEVNULL)
    try:
        for journal, more in ((plain, []), (secret, ["--recipient", recipient])):
            pushed = cli("--journal", str(journal), "push", url, "--token", TOKEN, *more)
            assert pushed.returncode == 0, pushed.stderr
    finally:
        stop_cli(server)
    dry = cli("serve", *store, "--prune-now", "--dry-run", "--keep-within", "30d", env=env)
    assert dry.returncode == 0, dry.stderr
    assert [line.split()[2] for line in dry.stdout.splitlines()[:-1]] == [f"alpha/{plain_id}"]
    # the body's modification time: the time of its newest record, or when the server received it
    newest = {
        i: (tmp_path / "store" / "alpha" / f"{i}.seg.zst").stat().st_mtime for i in (plain_id, secret_id)
    }
    assert newest[plain_id] == pytest.approx(old, abs=0.01)
    assert time.time() - 600 < newest[secret_id] <= time.time()
