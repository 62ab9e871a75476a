"""Validators: plain functions that raise on data a collection must not store.

A validator takes the data about to be stored (a value, or a mapping/sequence of
values), walks it recursively and raises; it returns nothing and changes nothing.
Collections list theirs in ``_validators`` (see
:meth:`~safe_data.synced.SyncedCollection._register_validators`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import InvalidKeyError, KeyTypeError
from .numpy_utils import (
    _is_atleast_1d_numpy_array,
    _is_complex,
    _is_numpy_scalar,
    _numpy_cache_blocklist,
)
from .utils import AbstractTypeResolver

#: values every validator accepts, and dicts, are recognized inline (hot paths)
_SCALARS = frozenset((str, int, float, bool, type(None)))

_container_resolver = AbstractTypeResolver(
    {
        "MAPPING": lambda obj: isinstance(obj, Mapping),
        "SEQUENCE": lambda obj: isinstance(obj, Sequence) and not isinstance(obj, str),
    }
)

_json_resolver = AbstractTypeResolver(
    {
        # >0-d arrays are sequences here; they are stored as lists
        "SEQUENCE": lambda obj: (
            (isinstance(obj, Sequence) and not isinstance(obj, str)) or _is_atleast_1d_numpy_array(obj)
        ),
        "NUMPY": _is_numpy_scalar,
        "BASE": lambda obj: isinstance(obj, (str, int, float, bool, type(None))),
        "MAPPING": lambda obj: isinstance(obj, Mapping),
    },
    cache_blocklist=_numpy_cache_blocklist,
)


def _check_string_key(key, no_dot: bool) -> None:
    if not isinstance(key, str):
        raise KeyTypeError(f"Mapping keys must be str, not {type(key).__name__}")
    if no_dot and "." in key:
        raise InvalidKeyError(f"Mapping keys may not contain dots ('.'): {key}")


def _check_keys(data, no_dot: bool) -> None:
    kind = "MAPPING" if type(data) is dict else _container_resolver.get_type(data)
    if kind == "MAPPING":
        for key, value in data.items():
            _check_string_key(key, no_dot)
            if type(value) not in _SCALARS:
                _check_keys(value, no_dot)
    elif kind == "SEQUENCE":
        for value in data:
            if type(value) not in _SCALARS:
                _check_keys(value, no_dot)


def no_dot_in_key(data) -> None:
    """Raise if a mapping anywhere in ``data`` has a key that is not a string or that
    contains a dot.

    Raises
    ------
    KeyTypeError
        A key is not a ``str``.
    InvalidKeyError
        A key contains ``.``.
    """
    _check_keys(data, no_dot=True)


def require_string_key(data) -> None:
    """Raise :class:`KeyTypeError` if a mapping anywhere in ``data`` (also inside
    sequences) has a key that is not a string: JSON and most databases need them."""
    _check_keys(data, no_dot=False)


def _check_json_scalar(data) -> None:
    if _is_numpy_scalar(data.item()):
        raise TypeError("NumPy extended precision types are not JSON serializable.")
    if _is_complex(data):
        raise TypeError("Complex numbers are not JSON serializable.")


def _check_json(data, no_dot: bool) -> None:
    """One walk checking that ``data`` has a JSON form and string keys (without dots)."""
    if type(data) in _SCALARS:
        return
    kind = "MAPPING" if type(data) is dict else _json_resolver.get_type(data)
    if kind == "BASE":
        return
    if kind == "MAPPING":
        for key, value in data.items():
            _check_string_key(key, no_dot)
            if type(value) not in _SCALARS:
                _check_json(value, no_dot)
    elif kind == "SEQUENCE":
        for value in data:
            if type(value) not in _SCALARS:
                _check_json(value, no_dot)
    elif kind == "NUMPY":
        _check_json_scalar(data)
    else:
        raise TypeError(f"Object of type {type(data).__name__} is not JSON serializable")


def json_format_validator(data) -> None:
    """Raise if ``data`` cannot be stored as JSON.

    Raises
    ------
    KeyTypeError
        A mapping key is not a ``str``.
    TypeError
        A value has no JSON form (a set, bytes, a complex or extended-precision number,
        an arbitrary object).
    """
    _check_json(data, no_dot=False)


def json_attr_dict_validator(data) -> None:
    """:func:`json_format_validator` and :func:`no_dot_in_key` in one walk (the validator
    of the attribute-access JSON dicts)."""
    _check_json(data, no_dot=True)
