"""JSON output: any decoded value made JSON-safe, and records as JSON objects."""

from __future__ import annotations

import base64
import json
import math
import sys

from .output import _iso, _writer_hex


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
    fast = json.JSONEncoder(default=_json_default, allow_nan=False, indent=indent,
                            separators=separators)
    return fast, json.JSONEncoder(indent=indent, separators=separators)


# Built once: json.dumps with options builds a new encoder per call.
_ENCODERS = {indent: _encoders(indent) for indent in (None, 2)}


def record_fields(record) -> dict:
    """One record as a dict for JSON: the fields of :class:`~safe_data.Record` (``writer``
    as 16 hex digits, as in segment names) plus ``time``, ``time_ns`` in ISO 8601.
    ``key``, ``values`` and ``caller`` are as decoded: pass the dict to :func:`dumps`."""
    return {
        "seq": record.seq, "time_ns": record.time_ns, "time": _iso(record.time_ns),
        "container": record.container, "kind": record.kind, "op": record.op,
        "key": record.key, "values": record.values, "pid": record.pid, "thread": record.thread,
        "caller": record.caller, "writer": _writer_hex(record.writer), "segment": record.segment,
        "offset": record.offset, "container_id": record.container_id,
    }


def _dump_json(obj) -> None:
    sys.stdout.write(dumps(obj, indent=2) + "\n")
