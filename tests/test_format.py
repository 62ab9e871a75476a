"""The on-disk format: both implementations write the same bytes, and the bytes match docs/format.md."""

import os
import re
import struct
from pathlib import Path

import google_crc32c
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import safe_data
from safe_data import _core_py
from safe_data.errors import CorruptRecordError
from safe_data.journal import codec
from safe_data.journal import format as fmt

from ._helpers import frame_extents, records, timeless

try:
    from safe_data import _core
except ImportError:  # the pure-Python run of a build without the extension
    _core = None

KEY = b"k" * 32

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.builds(bytearray, st.binary())
)
hashables = st.recursive(
    scalars.filter(lambda v: type(v) is not bytearray),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=8,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(hashables, inner, max_size=4)
        | st.sets(hashables, max_size=4)
    ),
    max_leaves=20,
)


def python_bytes(value):
    out = bytearray()
    codec.encode_value(out, value, KEY)
    return bytes(out)


@given(values)
@settings(max_examples=400)
def test_codec_round_trip(value):
    decoder = codec.Decoder(python_bytes(value), KEY)
    assert decoder.value() == value and decoder.at_end()


@pytest.mark.skipif(_core is None, reason="the C extension is not built in this run")
@given(values)
@settings(max_examples=400)
def test_c_and_python_encoders_write_identical_bytes(value):
    assert _core.encode_value_bytes(value, KEY) == python_bytes(value)


@pytest.mark.skipif(_core is None, reason="the C extension is not built in this run")
@pytest.mark.parametrize(
    "value",
    [
        2**63,
        -(2**63) - 1,
        2**200,
        "\udcff",
        object,
        slice(1, 2),
        [[[]]] * 3,
        {"a": {"b": {"c": [1.5, None]}}},
    ],
)
def test_c_and_python_agree_on_edge_values(value):
    assert _core.encode_value_bytes(value, KEY) == python_bytes(value)


@pytest.mark.skipif(_core is None, reason="the C extension is not built in this run")
@given(st.binary(max_size=300))
def test_c_crc32c_is_crc32c(data):
    assert _core.crc32c(data) == google_crc32c.value(data)


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_decoder_rejects_garbage_cleanly(data):
    try:
        decoder = codec.Decoder(data, KEY)
        decoder.value()
    except CorruptRecordError:
        pass


def test_a_version_1_frame_is_laid_out_as_documented(tmp_path):
    """compact=False: the frames of format version 1 (compact ones: test_format_compact.py)."""
    journal = safe_data.Journal(tmp_path / "journal", compact=False)
    ab = safe_data.SafeList([7], name="ab", journal=journal)
    ab.pop()
    journal.close()
    (seg,) = [n for n in os.listdir(journal.path) if n.endswith(fmt.SEALED_SUFFIX)]
    data = Path(journal.path, seg).read_bytes()
    magic, version, header_size = struct.unpack_from("<8sHH", data)
    assert (magic, version, header_size) == (b"SAFEDATA", 1, 64)
    assert struct.unpack_from("<I", data, 60)[0] == google_crc32c.value(data[:60])
    frame_len, crc, seq, time_ns, thread, op, flags, name_len = struct.unpack_from("<IIQqQBBH", data, 64)
    assert frame_len == len(data) - 64
    assert crc == google_crc32c.value(data[64 + 8 : 64 + frame_len])
    assert (seq, fmt.OPS[op], flags, name_len) == (1, ("list", "pop"), fmt.FLAG_ID, 2)
    body = data[64 + 36 :]
    # name, the container's number (LEB128), then key (int 0 -> zigzag 0), then values:
    # a list of one int 7 (zigzag 14)
    assert 0 < ab.container_id < 0x80
    assert body == b"ab" + bytes([ab.container_id, fmt.T_INT, 0, fmt.T_LIST, 1, fmt.T_INT, 14])


def test_both_writers_produce_the_same_segment(tmp_path):
    """Same records through both writers: identical frames but for time, thread and writer."""
    if _core is None:
        pytest.skip("the C extension is not built in this run")
    from safe_data.journal.segments import SegmentManager

    frames = []
    for impl in (_core, _core_py):
        directory = tmp_path / impl.__name__
        directory.mkdir()
        manager = SegmentManager(
            str(directory), crc32c=google_crc32c.value, segment_size=1 << 20, max_bytes=None, durable=False
        )
        writer = impl.RecordWriter(manager, KEY, impl.DURABILITY_PROCESS, 64)
        writer.append(2, b"name", 3, ["x" * 100, {"a": (1, 2.5)}, {1, 2}], ("f.py", 3, "fn"))
        writer.append(16, b"d", None, {"k": b"v"}, None, 300)  # a container's number: 2 bytes
        writer.append(1, b"big", None, [i * 7919 % 1_000_003 for i in range(100_000)])  # incompressible
        writer.append(1, b"big", None, ["x" * 100] * 2000)  # compressible, past the probe size
        writer.close()
        assert len(os.listdir(directory)) == 1
        frames.append(_frames_without_time(directory))
    # a definition before the first record of each (thread, name, number)
    assert frames[0] == frames[1] and len(frames[0]) == 4 + 3
    flags = [f[1] for f in frames[0] if f[0] != fmt.OP_DEFINE]  # kept: op, flags, ...
    assert flags[2] & fmt.FLAG_COMPRESSED == 0 and flags[3] & fmt.FLAG_COMPRESSED


def test_record_too_deep_to_decode_is_refused():
    data = bytes([fmt.T_LIST, 1]) * (fmt.MAX_DECODE_DEPTH + 5) + bytes([fmt.T_NONE])
    with pytest.raises(CorruptRecordError, match="deep"):
        codec.Decoder(data, KEY).value()


def test_decompression_bomb_is_refused():
    from safe_data.journal.reader import _decompress

    with pytest.raises(CorruptRecordError, match="impossible"):
        _decompress(struct.pack("<I", 1 << 31) + b"\x00" * 10)


def test_journal_dir_and_files_are_private(journal):
    safe_data.SafeList([1], journal=journal).pop()
    assert os.stat(journal.path).st_mode & 0o777 == 0o700
    for name in os.listdir(journal.path):
        assert os.stat(os.path.join(journal.path, name)).st_mode & 0o777 == 0o600, name
    assert records(journal)


def _outcome(decode, data):
    try:
        return repr(decode(data, KEY, False, 1))
    except CorruptRecordError:
        return "corrupt"


@pytest.mark.skipif(_core is None, reason="the C extension is not built in this run")
@given(st.binary(max_size=200))
@settings(max_examples=1000)
def test_c_and_python_decoders_agree_on_garbage(data):
    assert _outcome(_core.decode_values, data) == _outcome(codec.decode_values, data)


@pytest.mark.skipif(_core is None, reason="the C extension is not built in this run")
@given(values)
@settings(max_examples=300)
def test_c_decoder_round_trip(value):
    assert _core.decode_values(python_bytes(value), KEY, False, 1) == [value]


def _frames_without_time(journal_path):
    """Each frame of a closed journal but for its length, CRC, time and thread (see
    _helpers.timeless): the bytes both writers must write alike."""
    out = []
    for name in sorted(os.listdir(journal_path)):
        if not name.endswith(fmt.SEALED_SUFFIX):
            continue
        data = Path(journal_path, name).read_bytes()
        out.extend(timeless(data, offset) for offset, _ in frame_extents(data))
    return out


def _one_item_discards(impl, journal, key, value):
    lst = impl.SafeList([value, value, value], name="l", journal=journal)
    lst.pop()
    lst.pop(0)
    del lst[0]
    lst.append(value)
    lst[0] = None if value is not None else 0
    d = impl.SafeDict({key: value}, name="d", journal=journal)
    d[key] = [value]  # an overwrite
    d[key] = value
    del d[key]
    d[key] = value
    d.pop(key)
    d[key] = value
    d.popitem()
    s = impl.SafeSet([key], name="s", journal=journal)
    s.discard(key)
    s.add(key)
    s.remove(key)


@pytest.mark.skipif(_core is None, reason="the C extension is not built in this run")
@given(key=hashables.filter(lambda k: type(k) is not float or k == k), value=scalars)
@settings(max_examples=150, deadline=None)
def test_one_item_discards_write_the_same_bytes_in_both_implementations(tmp_path_factory, key, value):
    """A one-item discard of a scalar is written straight into the mapping by the C writer
    (RecordWriter._direct); every other value goes through a buffer.  Both must give the
    twin's bytes."""
    from safe_data import _impl

    frames = []
    for impl in (_core, _core_py):
        path = tmp_path_factory.mktemp(impl.__name__.rsplit(".", 1)[-1])
        saved = _impl.RecordWriter
        _impl.RecordWriter = impl.RecordWriter
        try:
            journal = safe_data.Journal(str(path))
        finally:
            _impl.RecordWriter = saved
        try:
            _one_item_discards(impl, journal, key, value)
        finally:
            journal.close()
        frames.append(_frames_without_time(path))
    assert frames[0] == frames[1] and len(frames[0]) == 11 + 3  # and 3 definitions


#: a segment id as docs/format.md states it (16 lowercase hex digits, "-", 6 decimal
#: digits); fmt.parse_segment_id reads it without a regular expression
SEGMENT_ID = re.compile(r"([0-9a-f]{16})-([0-9]{6})")


@given(
    st.from_regex(SEGMENT_ID, fullmatch=True)
    | st.builds(
        lambda writer, dash, number: writer + dash + number,
        st.text("0123456789abcdefA", min_size=15, max_size=17),
        st.sampled_from("-+"),
        st.text("0123456789²٣ \n", min_size=5, max_size=7),  # (² and ٣ are digits to str.isdigit())
    )
)
@example("0123456789abcdef-00004²")
@example("0123456789abcdef-٠٠٠٠٤٢")
@example("0123456789abcdef-000042\n")
@example("0123456789abcdeF-000042")
def test_a_segment_id_is_read_as_the_format_states_it(text):
    match = SEGMENT_ID.fullmatch(text)
    assert fmt.parse_segment_id(text) == ((int(match[1], 16), int(match[2])) if match else None)
    assert fmt.is_segment_id(text) is (match is not None)
