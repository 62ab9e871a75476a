"""The directory layout's one commit order (body first, hash file last), as DirectorySink
and the server's DirectoryStore both write it: a crash between the two files leaves
nothing a reader sees, and a retry completes the entry."""

import asyncio
import hashlib
import os

import pytest

zstandard = pytest.importorskip("zstandard")

from safe_data.remote.sinks import RejectedError  # noqa: E402
from safe_data.remote.sinks.directory import DirectorySink  # noqa: E402
from safe_data.server.stores import directory as directory_store  # noqa: E402

SEGMENT = "0123456789abcdef-000001"


def body_of(raw: bytes):
    return zstandard.ZstdCompressor().compress(raw), hashlib.sha256(raw).hexdigest()


def test_a_crash_between_body_and_hash_is_completed_by_a_retry(tmp_path, monkeypatch):
    sink = DirectorySink(tmp_path)
    first, first_sha = body_of(b"first" * 100)
    real = directory_store._atomic_write

    def crash_before_the_hash(directory, name, data):
        if name.endswith(".sha256"):
            raise KeyboardInterrupt  # the process dies between the two files
        real(directory, name, data)

    monkeypatch.setattr(directory_store, "_atomic_write", crash_before_the_hash)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(sink.put(SEGMENT, first, first_sha))
    monkeypatch.undo()
    assert os.path.exists(tmp_path / "default" / (SEGMENT + ".seg.zst"))
    assert asyncio.run(sink.list()) == []  # a body without its hash is no entry
    with pytest.raises(KeyError):
        asyncio.run(sink.get(SEGMENT))

    other, other_sha = body_of(b"other" * 100)  # never acknowledged: any content may follow
    asyncio.run(sink.put(SEGMENT, other, other_sha))
    assert asyncio.run(sink.get(SEGMENT)) == other
    assert [e["sha256"] for e in asyncio.run(sink.list())] == [other_sha]
    asyncio.run(sink.put(SEGMENT, other, other_sha))  # the same again: acknowledged
    with pytest.raises(RejectedError, match="another content"):
        asyncio.run(sink.put(SEGMENT, first, first_sha))


def test_a_hash_whose_body_is_lost_is_completed_by_the_same_content(tmp_path):
    # (what a crash left with the hash-first order; or a body deleted by hand)
    sink = DirectorySink(tmp_path)
    body, sha = body_of(b"data" * 100)
    asyncio.run(sink.put(SEGMENT, body, sha))
    os.unlink(tmp_path / "default" / (SEGMENT + ".seg.zst"))
    assert asyncio.run(sink.list()) == []
    asyncio.run(sink.put(SEGMENT, body, sha))
    assert asyncio.run(sink.get(SEGMENT)) == body
