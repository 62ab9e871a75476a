"""The C writer and the pure-Python twin write the same records, byte for byte.

Each implementation's containers, on a journal with its own writer, go through the same
discards of the same values: every kind of scalar, small lists, tuples and dicts of them
(the C writer's direct path writes those straight into the mapping), and values it must
encode the general way (nested, big ints, non-ASCII text, a payload to compress; not a
pickle: its MAC is keyed by each journal's own key).  Every frame's op, flags, name,
container number and payload must match.
"""

import pytest

import safe_data
from safe_data import _core_py, _impl
from safe_data.journal.reader import open_segments

from ._helpers import EXTENSION_EXPECTED

ROW = {"id": 7, "name": "item-000007", "price": 9.99, "qty": 3, "active": True}
SCALARS = [
    0,
    1,
    -1,
    63,
    64,
    -65,
    2**20,
    2**63 - 1,
    -(2**63),
    1.5,
    -0.0,
    True,
    False,
    None,
    "",
    "a",
    "abc",
    "four",
    "seven77",
    "eight888",
    "ascii text of some length",
    b"",
    b"\x00\xff",
    b"0123456789abcdef0",
]
FLAT = [ROW, [1, "a", None, 2.5], (1, b"x"), {}, [], (), list(range(16)), {i: -i for i in range(8)}]
GENERAL = [
    2**64,
    "h\u00e9llo",
    bytearray(b"ab"),
    [[1], [2]],
    {"a": [1]},
    list(range(17)),
    {i: i for i in range(9)},
    frozenset({1, 2}),
    "x" * 2000,
]
VALUES = SCALARS + FLAT + GENERAL
# (one of each equal group: 0 == False == -0.0)
HASHABLE = list(dict.fromkeys(v for v in VALUES if v.__hash__ is not None))


def frames_written_by(module, monkeypatch, directory):
    monkeypatch.setattr(_impl, "RecordWriter", module.RecordWriter)
    journal = safe_data.Journal(directory)
    try:
        items = module.SafeList(VALUES, name="l", journal=journal)
        while items:
            items.pop()
        table = module.SafeDict({i: v for i, v in enumerate(VALUES)}, name="d", journal=journal)
        for i in range(len(VALUES)):
            table[i] = ("new", i)  # an overwrite
        for i in range(len(VALUES)):
            del table[i]
        keyed = module.SafeDict({v: i for i, v in enumerate(HASHABLE)}, name="k", journal=journal)
        for v in HASHABLE:
            keyed.pop(v)
        bag = module.SafeSet(HASHABLE, name="s", journal=journal)
        for v in HASHABLE:
            bag.discard(v)
    finally:
        journal.close()
    return [
        (f.op, f.flags, f.name, f.container_number, bytes(f.payload))
        for view in open_segments(str(directory), _core_py.crc32c)
        for f in view.frames()
    ]


@pytest.mark.skipif(not EXTENSION_EXPECTED, reason="the C extension is not built in this run")
def test_c_and_twin_write_the_same_records(tmp_path, monkeypatch):
    from safe_data import _core

    c = frames_written_by(_core, monkeypatch, tmp_path / "c")
    twin = frames_written_by(_core_py, monkeypatch, tmp_path / "twin")
    assert len(c) == len(twin) > 4 * len(VALUES)
    for written_by_c, written_by_twin in zip(c, twin, strict=True):
        assert written_by_c == written_by_twin
