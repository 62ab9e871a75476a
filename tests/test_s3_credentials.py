"""S3 keys and region found as AWS's tools find them, and renewed: against a real SeaweedFS
whose IAM API issues and revokes access keys mid-run, and a real aiohttp server answering
``ExpiredToken`` as AWS does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
import warnings

import pytest

pytest.importorskip("aiohttp")
botocore_session = pytest.importorskip("botocore.session")

import safe_data  # noqa: E402
from safe_data.remote.sinks import TransientError  # noqa: E402
from safe_data.remote.sinks.s3 import S3Sink  # noqa: E402
from safe_data.remote.uploader import Uploader  # noqa: E402

from .seaweedfs import new_bucket  # noqa: E402

# A credential_process: prints the keys of KEYFILE, expiring EXPIRES_IN seconds from now
# (as AWS's tools expect), and counts its runs in KEYFILE.runs.
KEY_PROCESS = textwrap.dedent("""\
    import datetime, json, sys
    path = sys.argv[1]
    keys = json.load(open(path))
    open(path + ".runs", "a").write("run\\n")
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=keys["expires_in"])
    print(json.dumps({"Version": 1, "AccessKeyId": keys["id"], "SecretAccessKey": keys["secret"],
                      "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}))
""")


class RotatingKeys:
    """A profile ``rotating`` whose keys come from a credential_process reading a file the
    test rewrites (AWS_CONFIG_FILE: the conftest's temporary file)."""

    def __init__(self, tmp_path, expires_in: float = 3600) -> None:
        self.keyfile = tmp_path / "current-keys.json"
        self.expires_in = expires_in
        script = tmp_path / "key_process.py"
        script.write_text(KEY_PROCESS)
        with open(os.environ["AWS_CONFIG_FILE"], "a") as config:
            config.write(
                f"[profile rotating]\ncredential_process = {sys.executable} {script} {self.keyfile}\n"
            )

    def publish(self, key_id: str, secret: str) -> None:
        self.keyfile.write_text(json.dumps({"id": key_id, "secret": secret, "expires_in": self.expires_in}))

    @property
    def runs(self) -> int:
        try:
            return len((self.keyfile.parent / (self.keyfile.name + ".runs")).read_text().split())
        except FileNotFoundError:
            return 0


@pytest.fixture
def iam(seaweedfs):
    """SeaweedFS's IAM API, as its administrator."""
    return botocore_session.get_session().create_client(
        "iam",
        endpoint_url=seaweedfs.endpoint,
        region_name="us-east-1",
        aws_access_key_id=seaweedfs.access_key,
        aws_secret_access_key=seaweedfs.secret_key,
    )


@pytest.fixture
def user(iam):
    """A fresh IAM user allowed everything on S3; its first access key is issued by the test."""
    name = "u" + uuid.uuid4().hex[:10]
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="s3",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::*"]}],
            }
        ),
    )
    return name


@pytest.fixture
def bucket(seaweedfs):
    return new_bucket(seaweedfs, "cred-")


def new_key(iam, user) -> tuple[str, str]:
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def stored(seaweedfs, bucket) -> list[str]:
    async def go():
        async with S3Sink(
            bucket, seaweedfs.endpoint, access_key=seaweedfs.access_key, secret_key=seaweedfs.secret_key
        ) as sink:
            return [e["id"] for e in await sink.list(with_sha256=False)]

    return asyncio.run(go())


def ship_across_a_rotation(tmp_path, iam, user, keys: RotatingKeys, sink_for) -> dict:
    """Ship one segment with the user's first key, then issue a second key, publish it,
    revoke the first, and ship another segment with the same uploader: its stats."""
    first = new_key(iam, user)
    keys.publish(*first)
    journal = safe_data.Journal(tmp_path / "journal")
    uploader = Uploader(sink_for(first), journal, seal_every=None, backoff=(0.05, 0.2)).start()
    try:
        data = safe_data.SafeList([1, 2, 3], journal=journal, name="before")
        data.clear()
        uploader.flush(30)
        assert uploader.stats()["acked"] == 1, uploader.stats()
        keys.publish(*new_key(iam, user))
        iam.delete_access_key(UserName=user, AccessKeyId=first[0])
        data = safe_data.SafeList([4, 5], journal=journal, name="after")
        data.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a refused segment warns: its stats tell
            uploader.flush(30)
        return uploader.stats()
    finally:
        uploader.close()
        journal.close()


@pytest.mark.parametrize("source", ["profile", "fixed keys"])
def test_revoked_keys_are_renewed_from_the_profile_and_the_segment_lands(
    tmp_path, seaweedfs, iam, user, bucket, source
):
    keys = RotatingKeys(tmp_path)

    def sink_for(first):
        if source == "profile":
            return S3Sink(bucket, seaweedfs.endpoint, profile="rotating")
        return S3Sink(bucket, seaweedfs.endpoint, access_key=first[0], secret_key=first[1])

    stats = ship_across_a_rotation(tmp_path, iam, user, keys, sink_for)
    if source == "profile":
        assert (stats["acked"], stats["rejected"]) == (2, 0), stats
        assert len(stored(seaweedfs, bucket)) == 2
        assert keys.runs == 2  # once at the start, once when the store refused the first key
    else:  # the negative control: the revoked key stays in use and the segment is refused
        assert (stats["acked"], stats["rejected"]) == (1, 1), stats
        assert "credentials were refused" in stats["last_error"]
        assert len(stored(seaweedfs, bucket)) == 1


@pytest.mark.parametrize("expires_in", [300, 3600])
def test_keys_about_to_expire_are_renewed_before_use(tmp_path, seaweedfs, iam, user, bucket, expires_in):
    # botocore's own object, which the sink cannot make resolve again: only renewal
    # ahead of expiry (botocore starts 15 minutes before) brings the second key in
    keys = RotatingKeys(tmp_path, expires_in=expires_in)

    def sink_for(first):
        credentials = botocore_session.Session(profile="rotating").get_credentials()
        return S3Sink(bucket, seaweedfs.endpoint, credentials=credentials)

    stats = ship_across_a_rotation(tmp_path, iam, user, keys, sink_for)
    if expires_in == 300:
        assert (stats["acked"], stats["rejected"]) == (2, 0), stats
        assert keys.runs > 2  # asked again before requests
    else:  # the negative control: keys valid for an hour are not renewed, so refused
        assert (stats["acked"], stats["rejected"]) == (1, 1), stats
        assert keys.runs == 1


# ------------------------------------------------------------------ ExpiredToken, as AWS answers


class ExpiringStore:
    """A real HTTP server answering as S3 does to keys whose session token has expired:
    ``400 ExpiredToken`` (a bare 400 to HEAD, which has no body); other keys' PUTs are
    stored.  ``seen``: (method, access key) of every request, ``regions`` their regions."""

    def __init__(self) -> None:
        self.expired: set[str] = set()
        self.seen: list[tuple[str, str]] = []
        self.objects: set[str] = set()
        self.regions: set[str] = set()

    async def handle(self, request):
        from aiohttp import web

        key, _date, region = request.headers["Authorization"].split("Credential=")[1].split("/")[:3]
        self.seen.append((request.method, key))
        self.regions.add(region)
        if key in self.expired:
            body = (
                b"<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>"
            )
            return web.Response(status=400, body=b"" if request.method == "HEAD" else body)
        if request.method == "PUT":
            await request.read()
            self.objects.add(request.path)
            return web.Response(status=200)
        is_bucket = request.path.strip("/").count("/") == 0  # every bucket exists
        return web.Response(status=200 if is_bucket or request.path in self.objects else 404)

    async def __aenter__(self) -> str:
        from aiohttp import web

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()

    @contextlib.contextmanager
    def in_thread(self):
        """Serve from a thread of its own (for a CLI run in a subprocess): the endpoint."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            yield asyncio.run_coroutine_threadsafe(self.__aenter__(), loop).result(10)
            asyncio.run_coroutine_threadsafe(self.__aexit__(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


SEG = "0123456789abcdef-000001"


@pytest.mark.parametrize("check_first", [True, False], ids=["head-first", "put-only"])
def test_an_expired_token_is_renewed_and_the_request_sent_again(tmp_path, check_first):
    keys = RotatingKeys(tmp_path)
    keys.publish("AKIDOLD", "old-secret")
    store = ExpiringStore()

    async def go():
        async with store as endpoint:
            async with S3Sink("bucket", endpoint, profile="rotating", check_first=check_first) as sink:
                store.expired.add("AKIDOLD")
                keys.publish("AKIDNEW", "new-secret")
                await sink.put(SEG, b"body", "0" * 64)

    asyncio.run(go())
    first = "HEAD" if check_first else "PUT"
    assert store.seen[:2] == [(first, "AKIDOLD"), (first, "AKIDNEW")]
    assert store.seen[-1] == ("PUT", "AKIDNEW") and len(store.objects) == 1


def test_expired_keys_without_newer_ones_are_transient_not_refused(tmp_path):
    # the segment is tried again later (when the source may have new keys), never refused
    store = ExpiringStore()
    store.expired.add("AKIDOLD")

    async def go():
        async with store as endpoint:
            async with S3Sink(
                "bucket",
                endpoint,
                access_key="AKIDOLD",
                secret_key="s",
                session_token="token",
                check_first=False,
            ) as sink:
                with pytest.raises(TransientError, match="expired"):
                    await sink.put(SEG, b"body", "0" * 64)

    asyncio.run(go())
    assert store.seen == [("PUT", "AKIDOLD")]


# ------------------------------------------------------------------ where keys and region come from


def write_profile(name: str, *, region: str | None = None, keys: tuple[str, str] | None = None) -> None:
    """A profile in the shared config and credentials files (the conftest's temporary ones)."""
    if region:
        with open(os.environ["AWS_CONFIG_FILE"], "a") as f:
            f.write(f"[profile {name}]\nregion = {region}\n")
    if keys:
        with open(os.environ["AWS_SHARED_CREDENTIALS_FILE"], "a") as f:
            f.write(f"[{name}]\naws_access_key_id = {keys[0]}\naws_secret_access_key = {keys[1]}\n")


def test_region_as_aws_tools_find_it(monkeypatch):
    write_profile("paris", region="eu-west-3", keys=("AKIDPARIS", "secret"))
    assert S3Sink("b", access_key="a", secret_key="s").region == "us-east-1"
    sink = S3Sink("b", profile="paris")
    assert sink.region == "eu-west-3" and sink.endpoint == "https://b.s3.eu-west-3.amazonaws.com"
    monkeypatch.setenv("AWS_PROFILE", "paris")
    assert S3Sink("b").region == "eu-west-3"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert S3Sink("b").region == "ap-south-1"
    monkeypatch.setenv("AWS_REGION", "ca-central-1")
    assert S3Sink("b").region == "ca-central-1"
    assert S3Sink("b", region="sa-east-1").region == "sa-east-1"


def test_keys_from_a_profile_and_clear_errors(monkeypatch):
    write_profile("backup", keys=("AKIDBACKUP", "backup-secret"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")

    async def keys(sink):
        return (await sink._credentials.keys()).access_key

    assert asyncio.run(keys(S3Sink("b"))) == "AKIDENV"  # the environment first, as the AWS CLI
    assert asyncio.run(keys(S3Sink("b", profile="backup"))) == "AKIDBACKUP"  # unless a profile is named
    assert "backup-secret" not in repr(S3Sink("b", profile="backup")._credentials)
    with pytest.raises(ValueError, match="nosuch"):
        S3Sink("b", profile="nosuch")
    with pytest.raises(ValueError, match="go together"):
        S3Sink("b", access_key="AKID")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(ValueError, match="AWS_ACCESS_KEY_ID"):
        S3Sink("b")


def test_without_botocore_keys_come_from_the_environment():
    script = textwrap.dedent("""
        import sys
        sys.modules["botocore"] = None  # as if not installed
        import os, pytest
        from safe_data.remote.sinks.s3 import S3Sink
        with pytest.raises(ValueError, match="install botocore"):
            S3Sink("b")
        with pytest.raises(ValueError, match="needs botocore"):
            S3Sink("b", profile="backup")
        os.environ.update(AWS_ACCESS_KEY_ID="AKIDENV", AWS_SECRET_ACCESS_KEY="s", AWS_REGION="eu-north-1")
        sink = S3Sink("b")
        assert sink.region == "eu-north-1" and sink._credentials._supply.access_key == "AKIDENV"
        assert "botocore" not in [m for m in sys.modules if sys.modules[m] is not None]
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def cli(*args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "safe_data.cli", *args], capture_output=True, text=True, timeout=120
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_push_and_pull_take_a_profile_and_a_region(tmp_path, seaweedfs, bucket):
    write_profile("backup", keys=(seaweedfs.access_key, seaweedfs.secret_key))
    source, restored = tmp_path / "source", tmp_path / "restored"
    with safe_data.Journal(source) as journal:
        safe_data.SafeList(["a", "b"], journal=journal, name="items").clear()
    target = f"s3://{bucket}/backups"
    where = ("--endpoint-url", seaweedfs.endpoint, "--profile", "backup", "--region", "eu-west-1")
    assert "1 segment acknowledged" in cli("--journal", str(source), "push", target, *where).stdout
    assert "1 segment downloaded" in cli("--journal", str(restored), "pull", target, *where).stdout
    bad = cli("--journal", str(source), "push", target, "--profile", "nosuch", check=False)
    assert bad.returncode == 2 and "nosuch" in bad.stderr and "Traceback" not in bad.stderr
    nothing = cli(
        "--journal", str(source), "pull", target, "--endpoint-url", seaweedfs.endpoint, check=False
    )  # no keys anywhere: says where to put them
    assert nothing.returncode == 2 and "AWS_ACCESS_KEY_ID" in nothing.stderr


def test_push_signs_for_the_region_given(tmp_path):
    write_profile("backup", region="eu-west-3", keys=("AKIDBACKUP", "secret"))

    def discard():
        with safe_data.Journal(tmp_path / "source") as journal:
            safe_data.SafeList(["a"], journal=journal, name="items").clear()

    store = ExpiringStore()
    with store.in_thread() as endpoint:
        push = (
            "--journal",
            str(tmp_path / "source"),
            "push",
            "s3://bucket",
            "--endpoint-url",
            endpoint,
            "--profile",
            "backup",
        )
        discard()
        cli(*push)
        assert store.regions == {"eu-west-3"}  # the profile's
        discard()
        cli(*push, "--region", "ap-northeast-2")
    assert store.regions == {"eu-west-3", "ap-northeast-2"}
