"""Group 11: synced collections, ``safe_data.synced`` against ``synced_collections``.

Both packages' JSON dicts hold the same 100-key document (a typical job document) in
their own file and overwrite one existing key per operation (``d["k5"] = i``), so every
operation of ``safe_data`` also journals the value it overwrites (C writer, durability
"process").  Rows of a group:

``synced_collections``  the original package (``synced_collections.backends.collection_json``)
``safe_data``           ``safe_data.synced.backends.collection_json``, same class name

Groups:

* unbuffered ``JSONDict``: every write is a load, a change and a save of the file.  The
  original reads and parses the file on every access and writes a temporary file renamed
  over it; ``safe_data`` skips the read of an unchanged file and exchanges a swap file
  with it (no new inode per write), under its file lock (200 writes per round);
* the same with ``write_concern=True`` (fsync of the data and the directory per write in
  ``safe_data``; a temporary file and rename in the original), for scale (50 per round);
* ``MemoryBufferedJSONDict`` and ``BufferedJSONDict`` (serialized): 5,000 writes inside
  ``with d.buffered:`` per round, the flush at the exit included;
* unbuffered reads ``d["k5"]`` (1,000 per round).

``speed_over_synced_collections`` (on the ``safe_data`` row) = the original's time per
operation / ours: 2.0 means twice the original's rate.  Targets: unbuffered writes >= 2,
memory-buffered writes >= 1.
"""

import pytest
from benchutil import run

original = pytest.importorskip("synced_collections.backends.collection_json")
from safe_data.synced.backends import collection_json as ours  # noqa: E402

KEYS = 100
GROUPS = {  # name: (class name, options, operation, ops per round, rounds)
    "JSONDict d[k] = v, unbuffered": ("JSONDict", {}, "write", 200, 20),
    "JSONDict d[k] = v, write_concern": ("JSONDict", {"write_concern": True}, "write", 50, 10),
    "MemoryBufferedJSONDict d[k] = v, buffered": ("MemoryBufferedJSONDict", {}, "buffered", 5000, 20),
    "BufferedJSONDict d[k] = v, buffered": ("BufferedJSONDict", {}, "buffered", 5000, 10),
    "JSONDict d[k] read, unbuffered": ("JSONDict", {}, "read", 1000, 20),
}
PACKAGES = {"synced_collections": original, "safe_data": ours}


def write(doc, n):
    for i in range(n):
        doc["k5"] = i


def write_buffered(doc, n):
    with doc.buffered:
        for i in range(n):
            doc["k5"] = i


def read(doc, n):
    for _ in range(n):
        doc["k5"]


OPERATIONS = {"write": write, "buffered": write_buffered, "read": read}


@pytest.mark.parametrize("package", list(PACKAGES))
@pytest.mark.parametrize("group", list(GROUPS))
def test_synced_json(benchmark, journals, tmp_path, group, package):
    class_name, options, operation, ops, rounds = GROUPS[group]
    if package == "safe_data":
        options = dict(options, journal=journals.open("c"))
    doc = getattr(PACKAGES[package], class_name)(str(tmp_path / "doc.json"), **options)
    doc.update({f"k{i}": i for i in range(KEYS)})
    run(
        benchmark,
        OPERATIONS[operation],
        group=f"11 synced: {group}",
        variant=package,
        ops=ops,
        rounds=rounds,
        args=(doc, ops),
        keys=KEYS,
    )
    assert doc["k5"] == (5 if operation == "read" else ops - 1)
    if package == "safe_data" and operation != "read" and benchmark.enabled:
        journal = options["journal"]
        assert journal._writer.seq >= ops  # every overwrite was journaled
