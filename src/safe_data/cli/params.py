"""Option types: times (ISO or an age) and sizes (``500M``), and the ``--journal`` option."""

from __future__ import annotations

import os
import re
from datetime import datetime

import click

from ..journal.journal import parse_time


class TimeType(click.ParamType):
    """An ISO 8601 time (without a zone: UTC, as the listings show it) or an age such as
    ``90s``, ``10m``, ``2h``, ``1d``, ``1w`` (that long ago): see ``journal.parse_time``."""

    name = "time"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_time(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


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


def journal_option(help_text: str):
    """``--journal DIR``, before the command (the group's) or after it (each command's):
    the directory becomes the context's object, which the commands take with pass_obj.
    Given in both places, it must name the same directory."""

    def remember(ctx, param, value):
        if value is not None:
            before = ctx.parent.obj if ctx.parent is not None else None
            if before is not None and os.path.abspath(before) != os.path.abspath(value):
                raise click.BadParameter(
                    f"given before the command as {before!r} and after it as {value!r}: give one", ctx, param
                )
            ctx.obj = value
        return value

    return click.option(
        "--journal",
        "journal_path",
        type=click.Path(file_okay=False),
        metavar="DIR",
        default=None,
        callback=remember,
        expose_value=False,
        is_eager=True,
        help=help_text,
    )
