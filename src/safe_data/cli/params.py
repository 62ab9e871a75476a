"""Option types: times (ISO or an age) and sizes (``500M``), and times as nanoseconds."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import click

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class TimeType(click.ParamType):
    """An ISO 8601 time (without a zone: UTC, as the listings show it) or an age such as
    ``90s``, ``10m``, ``2h``, ``1d``, ``1w`` (that long ago)."""

    name = "time"
    _AGE = re.compile(r"(\d+(?:\.\d*)?)\s*([smhdw])")
    _SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        text = value.strip()
        age = self._AGE.fullmatch(text)
        if age:
            return datetime.now(timezone.utc) - timedelta(seconds=float(age[1]) * self._SECONDS[age[2]])
        if text.endswith(("Z", "z")):  # fromisoformat accepts a trailing Z only from 3.11
            text = text[:-1] + "+00:00"
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is neither an ISO time (2026-11-23T21:24:01) nor an age "
                      f"(30s, 10m, 2h, 1d, 1w)", param, ctx)
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


class SizeType(click.ParamType):
    """A number of bytes, optionally with a binary multiple: ``500M``, ``2GiB``, ``64k``."""

    name = "size"
    _SIZE = re.compile(r"(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        size = self._SIZE.fullmatch(value.strip())
        if not size:
            self.fail(f"{value!r} is not a size (1048576, 500M, 2GiB)", param, ctx)
        return int(float(size[1]) * 1024 ** " kmgt".index(size[2].lower() or " "))


TIME = TimeType()
SIZE = SizeType()

