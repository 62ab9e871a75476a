"""The value codec (docs/format.md, "Values"): pure-Python encoder and the only decoder.

Exact builtin types (None, bool, int, float, str, bytes, bytearray, tuple, list, dict,
set, frozenset, slice) have a compact tagged encoding that decodes without running code.
The safe containers encode as their builtin base; nested inside a value, that encoding
is preceded by the container's number (T_NESTED), so that a restore can tell which
container stood where.  Anything else is pickled (protocol 5)
and the pickle is authenticated with HMAC-SHA256 under the journal's secret key: the
decoder unpickles only a pickle whose MAC verifies, so a segment written elsewhere (or
tampered with) can never make the reader execute code.  ``_writer_c.pyx`` implements the same
encoder in C; the two must produce identical bytes (tests/test_format.py checks).
"""

from __future__ import annotations

import struct
import threading
from collections import namedtuple

from ..errors import CorruptRecordError, ReentrantChangeError, UnpicklableValueError
from . import format as fmt

_DOUBLE = struct.Struct("<d")
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


#: set while the reader unpickles: safe containers inside come back as plain builtins
#: (data, not live containers that would bind to a journal and write to it)
_reading = threading.local()


def reading() -> bool:
    return getattr(_reading, "active", 0) > 0


TYPE_CHECKING = False  # typing costs milliseconds at import; type checkers treat this name as True
if TYPE_CHECKING:  # the class below, with the types of its fields
    from typing import NamedTuple

    class NestedContainer(NamedTuple):
        container_id: int
        value: list | dict | set

else:
    NestedContainer = namedtuple("NestedContainer", ["container_id", "value"])
NestedContainer.__doc__ = """A safe container nested in a recorded value, as a reader asked to keep
identities returns it (``Journal.records(nested_ids=True)``): the container's number in the
journal (0: it was bound to another journal) and its contents when recorded."""


class _TooDeep(Exception):
    """Nesting exceeded MAX_ENCODE_DEPTH: the caller pickles the whole value instead."""


class UnverifiedPickle:
    """Stands in for a pickled value whose MAC did not verify under this journal's key.

    The bytes are kept so nothing is lost; call :meth:`load` only if you trust where the
    segment came from (unpickling runs code chosen by whoever wrote it).
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def load(self):
        import pickle

        return pickle.loads(self.data)

    def __repr__(self):
        return f"<UnverifiedPickle {len(self.data)} bytes>"


class UnloadablePickle:
    """Stands in for a verified pickle that cannot be loaded here: its class or module is
    gone, or unpickling raised.  The bytes and the reason are kept so nothing is lost and
    the rest of the record (and the journal) stays readable; :meth:`load` tries again,
    say once the module is importable."""

    __slots__ = ("data", "error")

    def __init__(self, data: bytes, error: str):
        self.data = data
        self.error = error

    def load(self):
        import pickle

        return pickle.loads(self.data)

    def __repr__(self):
        return f"<UnloadablePickle {len(self.data)} bytes: {self.error}>"


def put_varint(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def mac(key: bytes, data) -> bytes:
    import hmac  # imported on first use: pulls in OpenSSL, and most journals never pickle

    return hmac.digest(key, data, "sha256")


def _container_number(obj, key: bytes) -> int:
    """The number of safe container ``obj`` in the journal whose MAC key is ``key``; 0 if
    it is bound to another journal (or to none: a subclass that skipped ``__init__``)."""
    b = getattr(obj, "_b", None)
    return b.container_id if b is not None and b.writer.mac_key is key else 0


#: the tag each list, dict and set type encodes as; the safe containers add theirs
#: (register_containers): they encode as their builtin base
_CONTAINER_TAGS: dict[type, int] = {list: fmt.T_LIST, dict: fmt.T_DICT, set: fmt.T_SET}


def register_containers(tags: dict) -> None:
    """Encode the container types in ``tags`` (type -> T_LIST, T_DICT or T_SET) as their
    builtin base; nested in a value, preceded by their number.  Each container
    implementation registers its types when it is imported."""
    _CONTAINER_TAGS.update(tags)


def _encode(out: bytearray, obj, depth: int, key: bytes) -> None:
    t = type(obj)
    if obj is None:
        out.append(fmt.T_NONE)
    elif obj is True:
        out.append(fmt.T_TRUE)
    elif obj is False:
        out.append(fmt.T_FALSE)
    elif t is int:
        if _INT64_MIN <= obj <= _INT64_MAX:
            out.append(fmt.T_INT)
            put_varint(out, ((obj << 1) ^ (obj >> 63)) & 0xFFFFFFFFFFFFFFFF)
        else:
            raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
            out.append(fmt.T_BIGINT)
            put_varint(out, len(raw))
            out += raw
    elif t is float:
        out.append(fmt.T_FLOAT)
        out += _DOUBLE.pack(obj)
    elif t is str:
        try:
            raw = obj.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: let pickle keep them
            _encode_pickle(out, obj, key)
            return
        out.append(fmt.T_STR)
        put_varint(out, len(raw))
        out += raw
    elif t is bytes or t is bytearray:
        out.append(fmt.T_BYTES if t is bytes else fmt.T_BYTEARRAY)
        put_varint(out, len(obj))
        out += obj
    else:
        tag = _CONTAINER_TAGS.get(t)
        nested = depth and tag is not None and t is not list and t is not dict and t is not set
        if tag is None:
            if t is tuple:
                tag = fmt.T_TUPLE
            elif t is frozenset:
                tag = fmt.T_FROZENSET
            elif t is slice:
                out.append(fmt.T_SLICE)
                _encode(out, obj.start, depth, key)
                _encode(out, obj.stop, depth, key)
                _encode(out, obj.step, depth, key)
                return
            else:
                _encode_pickle(out, obj, key)
                return
        if depth >= fmt.MAX_ENCODE_DEPTH:
            raise _TooDeep
        if nested:
            out.append(fmt.T_NESTED)  # a safe container inside the value: say which
            put_varint(out, _container_number(obj, key))
        out.append(tag)
        put_varint(out, len(obj))
        if tag == fmt.T_DICT:
            for k, v in dict.items(obj):
                _encode(out, k, depth + 1, key)
                _encode(out, v, depth + 1, key)
        else:
            for item in obj:
                _encode(out, item, depth + 1, key)


def _encode_pickle(out: bytearray, obj, key: bytes) -> None:
    # imported on the first value pickled, not at import safe_data: pickle loads re and
    # enum, milliseconds that most values (builtins, encoded without it) never need
    import pickle

    try:
        data = pickle.dumps(obj, fmt.PICKLE_PROTOCOL)
    except ReentrantChangeError:
        raise  # the value's __reduce__ changed the container being changed: say that
    except Exception as exc:
        raise UnpicklableValueError(obj, exc) from exc
    out.append(fmt.T_PICKLE)
    put_varint(out, len(data))
    out += mac(key, data)
    out += data


def encode_value(out: bytearray, obj, key: bytes) -> None:
    """Append the encoding of ``obj`` to ``out``; too-deep or cyclic values are pickled whole."""
    start = len(out)
    try:
        _encode(out, obj, 0, key)
    except _TooDeep:
        del out[start:]
        _encode_pickle(out, obj, key)


# --- decoding -----------------------------------------------------------------------------


class Decoder:
    """Decodes one payload.  ``key`` is the journal's MAC key (None if unknown);
    ``trust_pickles`` loads pickles even without a valid MAC (only for data you trust)."""

    __slots__ = ("data", "pos", "key", "trust_pickles", "nested_ids")

    def __init__(self, data, key: bytes | None, trust_pickles: bool = False, nested_ids: bool = False):
        self.data = memoryview(data)
        self.pos = 0
        self.key = key
        self.trust_pickles = trust_pickles
        self.nested_ids = nested_ids  # T_NESTED gives a NestedContainer, not just the value

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def _fail(self, reason: str):
        raise CorruptRecordError(f"{reason} at payload byte {self.pos}")

    def _byte(self) -> int:
        if self.pos >= len(self.data):
            self._fail("payload truncated")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def _varint(self) -> int:
        n = shift = 0
        while True:
            b = self._byte()
            n |= (b & 0x7F) << shift
            if b < 0x80:
                return n
            shift += 7
            if shift > 63:
                self._fail("varint too long")

    def _take(self, n: int) -> memoryview:
        end = self.pos + n
        if end > len(self.data):
            self._fail(f"payload truncated (need {n} bytes)")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def value(self, depth: int = 0):
        if depth > fmt.MAX_DECODE_DEPTH:
            self._fail("nesting too deep")
        tag = self._byte()
        if tag == fmt.T_INT:
            z = self._varint()
            return (z >> 1) ^ -(z & 1)
        if tag == fmt.T_STR:
            try:
                return str(self._take(self._varint()), "utf-8")
            except UnicodeDecodeError:
                self._fail("invalid UTF-8")
        if tag == fmt.T_NONE:
            return None
        if tag == fmt.T_TRUE:
            return True
        if tag == fmt.T_FALSE:
            return False
        if tag == fmt.T_FLOAT:
            return _DOUBLE.unpack(self._take(8))[0]
        if tag == fmt.T_BYTES:
            return bytes(self._take(self._varint()))
        if tag == fmt.T_BYTEARRAY:
            return bytearray(self._take(self._varint()))
        if tag in (fmt.T_LIST, fmt.T_TUPLE, fmt.T_SET, fmt.T_FROZENSET):
            n = self._varint()
            if n > len(self.data) - self.pos:  # every item takes at least one byte
                self._fail("item count exceeds payload")
            items = [self.value(depth + 1) for _ in range(n)]
            if tag == fmt.T_LIST:
                return items
            if tag == fmt.T_TUPLE:
                return tuple(items)
            try:
                return set(items) if tag == fmt.T_SET else frozenset(items)
            except TypeError:
                self._fail("unhashable set element")
        if tag == fmt.T_DICT:
            n = self._varint()
            if 2 * n > len(self.data) - self.pos:
                self._fail("item count exceeds payload")
            out = {}
            for _ in range(n):
                k = self.value(depth + 1)
                try:
                    out[k] = self.value(depth + 1)
                except TypeError:
                    self._fail("unhashable dict key")
            return out
        if tag == fmt.T_SLICE:
            return slice(self.value(depth + 1), self.value(depth + 1), self.value(depth + 1))
        if tag == fmt.T_BIGINT:
            return int.from_bytes(self._take(self._varint()), "little", signed=True)
        if tag == fmt.T_PICKLE:
            n = self._varint()
            tag_mac = bytes(self._take(fmt.MAC_SIZE))
            return load_pickle(bytes(self._take(n)), tag_mac, self.key, self.trust_pickles)
        if tag == fmt.T_NESTED:
            number = self._varint()
            if self.pos >= len(self.data) or self.data[self.pos] not in (fmt.T_LIST, fmt.T_DICT, fmt.T_SET):
                self._fail("a nested container that is not a list, dict or set")
            value = self.value(depth)  # (its own tag was checked: no recursion through here)
            return NestedContainer(number, value) if self.nested_ids else value
        self._fail(f"unknown value tag 0x{tag:02x}")


def load_pickle(data: bytes, tag_mac: bytes, key: bytes | None, trust_pickles: bool):
    """Unpickle ``data`` only if its MAC verifies under ``key`` (or the caller trusts it)."""
    import pickle
    from hmac import compare_digest

    verified = key is not None and compare_digest(tag_mac, mac(key, data))
    if not (verified or trust_pickles):
        return UnverifiedPickle(data)
    _reading.active = getattr(_reading, "active", 0) + 1
    try:
        return pickle.loads(data)
    except Exception as exc:  # a class that no longer exists here, a failing __setstate__...
        return UnloadablePickle(data, f"{type(exc).__name__}: {exc}")
    finally:
        _reading.active -= 1


def decode_values(
    payload, key: bytes | None, trust_pickles: bool, count: int, nested_ids: bool = False
) -> list:
    """Decode exactly ``count`` consecutive values filling ``payload`` (the pure decoder)."""
    decoder = Decoder(payload, key, trust_pickles, nested_ids)
    values = [decoder.value() for _ in range(count)]
    if not decoder.at_end():
        raise CorruptRecordError("unexpected bytes after the payload")
    return values
