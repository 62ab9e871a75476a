import dataclasses
import os

import pytest

import safe_data
from safe_data import _impl
from safe_data.journal import registry

from ._helpers import CHILD, EXTENSION_EXPECTED, make_segment

# the real servers some tests talk to, each started once per session where installed:
# defined beside their helpers, made available to every module here
from .redis_server import redis_client, redis_server  # noqa: F401
from .seaweedfs import seaweedfs  # noqa: F401


def pytest_collection_modifyitems(config, items):
    """A test marked ``one_pass`` does not depend on which implementation runs: the pass
    that asks for the twin (SAFE_DATA_NO_EXTENSIONS=1, CI's second) skips it, since the
    pass on the extension ran it.  A machine without the extension runs it in its only pass."""
    if os.environ.get("SAFE_DATA_NO_EXTENSIONS", "") in ("", "0"):
        return
    skip = pytest.mark.skip(reason="one_pass: run in the pass on the C extension")
    for item in items:
        if item.get_closest_marker("one_pass"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own default journal directory, closed afterwards."""
    monkeypatch.setenv("SAFE_DATA_HOME", str(tmp_path / "default-journal"))
    # S3 keys are looked up as AWS's tools do: never in this machine's ~/.aws, its
    # environment or its instance metadata endpoint
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    previous = registry.swap_default(None)
    yield
    default = registry.swap_default(previous)
    if default is not None:
        default.close()


@pytest.fixture
def identity(tmp_path):
    """(identity file, its recipient): a long-term age key pair (needs pyrage)."""
    from safe_data.journal import encryption

    secret, recipient = encryption.new_identity()
    path = tmp_path / "identity"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return path, recipient


@pytest.fixture(params=["directory", "s3"])
def server_store(request, tmp_path):
    """A backup server's store: a DirectoryStore, or an S3Store on a fresh bucket of a
    real SeaweedFS (skipped where it is not installed)."""
    pytest.importorskip("aiohttp")
    if request.param == "directory":
        from safe_data.server.stores.directory import DirectoryStore

        return DirectoryStore(tmp_path / "store")
    from safe_data.server.stores.s3 import S3Store

    from .seaweedfs import new_bucket

    weed = request.getfixturevalue("seaweedfs")
    return S3Store(
        new_bucket(weed, "store-"),
        "backups/",
        endpoint_url=weed.endpoint,
        access_key=weed.access_key,
        secret_key=weed.secret_key,
    )


@pytest.fixture
def journal(request, tmp_path):
    if "impl" in request.fixturenames:
        request.getfixturevalue("impl")  # first: it chooses the writer the journal is made with
    j = safe_data.Journal(tmp_path / "journal")
    yield j
    j.close()


@pytest.fixture
def child_script(tmp_path):
    """The SIGKILLed writer of test_crash.py and test_kill_loop.py, as a script file."""
    script = tmp_path / "crash_child.py"
    script.write_text(CHILD)
    return script


@dataclasses.dataclass(frozen=True)
class Implementation:
    """The container classes of one implementation, as the ``impl`` fixture gives them."""

    name: str  # "c" (the extension) or "py" (the pure-Python twin)
    SafeList: type
    SafeDict: type
    SafeSet: type

    @property
    def extension(self) -> bool:
        return self.name == "c"


@pytest.fixture(params=["c", "py"])
def impl(request, monkeypatch):
    """Each implementation's containers in one run: the extension's (skipped where this run
    does not load it) and the twin's.  The journals made during the test (the ``journal``
    fixture waits for this one) get the writer of the same implementation."""
    if request.param == "c":
        if not EXTENSION_EXPECTED:
            pytest.skip("the C extension is not built, or SAFE_DATA_NO_EXTENSIONS=1")
        from safe_data import _core as implementation
    else:
        from safe_data import _core_py as implementation

        # The twin's containers need the twin's writer: the C writer encodes only the C
        # containers, so a twin container nested in a value would be pickled as a plain
        # list or dict, not recorded as nested (test_containers.py)
        monkeypatch.setattr(_impl, "RecordWriter", implementation.RecordWriter)
    return Implementation(
        request.param, implementation.SafeList, implementation.SafeDict, implementation.SafeSet
    )


@pytest.fixture
def segment(tmp_path):
    """A real sealed segment written by a Journal: (segment id, bytes)."""
    return make_segment(tmp_path)
