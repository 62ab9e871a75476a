"""Formats: how a store's value becomes the bytes of its file, and back.

A format is named the way ``atomic_store`` takes it: ``None`` or ``"json"``, ``"pickle"``,
``"bson"`` (the ``bson`` package, or pymongo's), any module or object with ``dump``/``load``
(on files) or ``dumps``/``loads`` (on strings), or a subclass of the abstract classes below.
:class:`Codec` turns it into ``encode(value) -> bytes`` and ``decode(bytes) -> value``:
a commit holds the whole new content before it touches the disk, so it writes it in one
call and a format that raises half-way leaves no trace.

json and pickle are used through their one-shot ``dumps``/``loads``: the same bytes as
``dump``/``load`` on a file, and for json several times faster (its C encoder runs once
instead of handing out chunks to a file).  Text is UTF-8, read with universal newlines as
a file opened in text mode reads it.
"""

from __future__ import annotations

import io
import json
import pickle
import types


class AbstractFormatBstr:
    """Base class of a format that encodes to a string: implement ``dumps`` and ``loads``.

    The string is ``bytes``, or ``str`` for a store opened with ``is_binary=False``.
    """

    def dumps(self, obj, **kwargs):
        """Return ``obj`` encoded."""
        raise NotImplementedError(f"{type(self).__name__} must implement dumps(obj, **kwargs)")

    def loads(self, binary_string, **kwargs):
        """Return the object ``binary_string`` encodes."""
        raise NotImplementedError(f"{type(self).__name__} must implement loads(binary_string, **kwargs)")


class AbstractFormatFile:
    """Base class of a format that writes to a file object: implement ``dump`` and ``load``.

    The file is binary, or text for a store opened with ``is_binary=False``.
    """

    def dump(self, obj, fp, **kwargs):
        """Write ``obj`` encoded to the file ``fp``."""
        raise NotImplementedError(f"{type(self).__name__} must implement dump(obj, fp, **kwargs)")

    def load(self, fp, **kwargs):
        """Return the object the file ``fp`` holds."""
        raise NotImplementedError(f"{type(self).__name__} must implement load(fp, **kwargs)")


class WrapBinaryFormat:
    """A ``dumps``/``loads`` format (``format_bstr``) seen as a ``dump``/``load`` one."""

    def __init__(self, format_bstr):
        self.format_bstr = format_bstr

    def dump(self, obj, fp, **kwargs):
        fp.write(self.format_bstr.dumps(obj, **kwargs))

    def load(self, fp, **kwargs):
        return self.format_bstr.loads(fp.read(), **kwargs)


def resolve_format(format) -> tuple[bool, object]:
    """``(is_binary, format)``: whether the format works on bytes (everything but json),
    and an object with ``dump`` and ``load`` for it (a ``dumps``/``loads`` one wrapped in
    :class:`WrapBinaryFormat`).  Raise ValueError for a format it does not know."""
    if format is None or format is json or (isinstance(format, str) and format == "json"):
        return False, json
    if isinstance(format, str):
        if format == "pickle":
            return True, pickle
        if format == "bson":
            return True, WrapBinaryFormat(_bson())
        raise ValueError(
            f"unknown format {format!r}: use 'json', 'pickle', 'bson', or an "
            f"object with dump/load or dumps/loads"
        )
    if callable(getattr(format, "dump", None)) and callable(getattr(format, "load", None)):
        return True, format
    if callable(getattr(format, "dumps", None)) and callable(getattr(format, "loads", None)):
        return True, WrapBinaryFormat(format)
    raise ValueError(f"format {format!r} has neither dump/load nor dumps/loads")


def _bson():
    """The bson package's module, or pymongo's bson module (which names them encode/decode),
    as an object with dumps/loads."""
    try:
        import bson
    except ImportError:
        raise ValueError("format 'bson' needs the bson package: pip install bson") from None
    if hasattr(bson, "dumps"):
        return bson
    return types.SimpleNamespace(dumps=bson.encode, loads=bson.decode)


class Codec:
    """A resolved format bound to its keyword arguments: ``encode`` and ``decode``."""

    __slots__ = ("is_binary", "_dumps", "_loads", "_dump_kwargs", "_load_kwargs")

    def __init__(self, format, is_binary: bool, dump_kwargs: dict, load_kwargs: dict):
        self.is_binary = is_binary
        self._dump_kwargs = dump_kwargs
        self._load_kwargs = load_kwargs
        if format is json or format is pickle:
            self._dumps, self._loads = format.dumps, format.loads
        elif type(format) is WrapBinaryFormat:
            self._dumps, self._loads = format.format_bstr.dumps, format.format_bstr.loads
        else:
            self._dumps, self._loads = _through_buffer(format, is_binary)

    def encode(self, value) -> bytes:
        data = self._dumps(value, **self._dump_kwargs)
        if self.is_binary:
            if isinstance(data, str):
                raise TypeError(
                    "the format encoded to str, but the store is binary: open it with is_binary=False"
                )
            return bytes(data)
        if not isinstance(data, str):
            raise TypeError(
                f"the format encoded to {type(data).__name__}, but the store is "
                f"text: open it with is_binary=True"
            )
        return data.encode("utf-8")

    def decode(self, data: bytes):
        return self._loads(data if self.is_binary else _text(data), **self._load_kwargs)


def _through_buffer(format, is_binary: bool):
    """``dumps``/``loads`` for a ``dump``/``load`` format, through an in-memory file."""
    new_buffer = io.BytesIO if is_binary else io.StringIO

    def dumps(value, **kwargs):
        buffer = new_buffer()
        format.dump(value, buffer, **kwargs)
        return buffer.getvalue()

    def loads(data, **kwargs):
        return format.load(new_buffer(data), **kwargs)

    return dumps, loads


def _text(data: bytes) -> str:
    """``data`` as a file opened in text mode reads it: UTF-8, universal newlines."""
    text = data.decode("utf-8")
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
