"""Records as people read them: times, writer ids, abbreviated values, callers, and JSON.

What the ``safe-data`` command and the web view (:mod:`safe_data.server.web`) show of a
record is written here once, so that both show it alike.  It imports neither of them,
nor click, rich or aiohttp: any interface can use it.
"""

from __future__ import annotations

import base64
import json
import math
import os
import reprlib
from datetime import datetime, timedelta, timezone

from .journal import format as fmt

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: the operation names records carry, sorted
OP_NAMES = sorted({op for _, op in fmt.OPS.values()})


def iso(time_ns: int, sep: str = "T") -> str:
    """A time in nanoseconds since the epoch in ISO 8601, UTC, to the microsecond."""
    return (EPOCH + timedelta(microseconds=time_ns // 1000)).isoformat(sep)


def human_bytes(n: int) -> str:
    """``512 B``, ``1.5 KiB``, ``10.0 GiB``."""
    exponent = min(max(n.bit_length() - 1, 0) // 10, 4)  # 1024 ** exponent <= n
    if exponent == 0:
        return f"{n} B"
    return f"{n / 1024**exponent:.1f} {('KiB', 'MiB', 'GiB', 'TiB')[exponent - 1]}"


def writer_hex(writer: int) -> str:
    """A writer id as segment names spell it: 16 hex digits."""
    return f"{writer:016x}"


_BRIEF = reprlib.Repr()
_BRIEF.maxlist = _BRIEF.maxtuple = _BRIEF.maxset = _BRIEF.maxfrozenset = _BRIEF.maxdict = 10
_BRIEF.maxstring = _BRIEF.maxother = 80
_BRIEF.maxlevel = 3
#: a str.translate table that keeps text on one line
ONE_LINE = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": " "})


def brief(value) -> str:
    """A one-line repr of bounded length (a million discarded items print as ten)."""
    text = _BRIEF.repr(value)
    if isinstance(value, (list, tuple, set, frozenset, dict)) and len(value) > 10:
        text += f" ({len(value)} items)"
    return text.translate(ONE_LINE)


def caller_text(caller, short: bool = False) -> str:
    """Where a record was made, ``file:line in function`` (``short``: the file's base
    name), or "" when it was not recorded."""
    if caller is None:
        return ""
    if isinstance(caller, tuple) and len(caller) == 3:
        file, line, function = caller
        return f"{os.path.basename(file) if short else file}:{line} in {function}"
    return brief(caller)


# --- JSON --------------------------------------------------------------------------------------


def jsonable(value):
    """``value`` made of JSON types only (docs/cli.md, "JSON values").

    Tuples become lists; sets and frozensets sorted lists (in iteration order when the
    elements do not sort); bytes and bytearrays base64 strings; dict keys strings, written
    as ``json.dumps`` writes int, float, bool and None keys and as their ``repr``
    otherwise; NaN and infinities the strings ``"nan"``, ``"inf"``, ``"-inf"``; any
    other object its ``repr``; a container inside itself ``"..."``.
    """
    return _jsonable(value, set())


def _jsonable(value, open_ids: set):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if not isinstance(value, (list, tuple, set, frozenset, dict)):
        return _json_default(value)
    if id(value) in open_ids:
        return "..."
    open_ids.add(id(value))
    try:
        if isinstance(value, dict):
            return {_json_key(k): _jsonable(v, open_ids) for k, v in value.items()}
        if isinstance(value, (set, frozenset)):
            value = _sorted_if_possible(value)
        return [_jsonable(v, open_ids) for v in value]
    finally:
        open_ids.discard(id(value))


def _json_key(key) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int)) or (isinstance(key, float) and math.isfinite(key)):
        return json.dumps(key)  # as json.dumps writes such a key: 1 -> "1", None -> "null"
    return repr(key)


def _json_default(value):
    """What json.dumps cannot write itself (also the last step of :func:`jsonable`)."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value)  # TypeError when unsortable: dumps() then takes the careful path
    return repr(value)


def _sorted_if_possible(items) -> list:
    try:
        return sorted(items)
    except TypeError:
        return list(items)


def dumps(value, *, indent: int | None = None) -> str:
    """``json.dumps(jsonable(value))``, compact or indented, without walking ``value`` in
    Python when json's C encoder can write it (it then only calls back for sets and bytes)."""
    fast, careful = _ENCODERS[indent]
    try:
        return fast.encode(value)
    except (TypeError, ValueError):  # NaN, a cycle, a tuple key, an unsortable set
        return careful.encode(jsonable(value))


def _encoders(indent: int | None) -> tuple[json.JSONEncoder, json.JSONEncoder]:
    separators = (",", ":") if indent is None else (",", ": ")
    fast = json.JSONEncoder(default=_json_default, allow_nan=False, indent=indent, separators=separators)
    return fast, json.JSONEncoder(indent=indent, separators=separators)


# Built once: json.dumps with options builds a new encoder per call.
_ENCODERS = {indent: _encoders(indent) for indent in (None, 2)}


def record_fields(record) -> dict:
    """One record as a dict for JSON: the fields of :class:`~safe_data.Record` (``writer``
    as 16 hex digits, as in segment names) plus ``time``, ``time_ns`` in ISO 8601.
    ``key``, ``values`` and ``caller`` are as decoded: pass the dict to :func:`dumps`."""
    return {
        "seq": record.seq,
        "time_ns": record.time_ns,
        "time": iso(record.time_ns),
        "container": record.container,
        "kind": record.kind,
        "op": record.op,
        "key": record.key,
        "values": record.values,
        "pid": record.pid,
        "thread": record.thread,
        "caller": record.caller,
        "writer": writer_hex(record.writer),
        "segment": record.segment,
        "offset": record.offset,
        "container_id": record.container_id,
    }
