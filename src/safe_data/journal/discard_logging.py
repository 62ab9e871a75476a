"""Discards as :mod:`logging` records: :meth:`Journal.log_discards` (docs/integrations.md).

An ``on_discard`` callback, nothing more: one log record per discard on the
``safe_data.discards`` logger (or the one given), the record's fields in ``extra`` under
names prefixed ``discard_`` (a structured formatter, such as a JSON one, emits them as
fields; the prefix keeps them clear of LogRecord's own attributes and of other
libraries' extras).  :mod:`logging` is imported only when this is turned on.
"""

from __future__ import annotations

import logging

__all__ = ["DiscardLogger", "LOGGER_NAME"]

#: the logger discards go to by default
LOGGER_NAME = "safe_data.discards"


class DiscardLogger:
    """The callback :meth:`~safe_data.Journal.log_discards` registers."""

    __slots__ = ("journal_path", "logger", "level")

    def __init__(self, journal_path: str, logger=None, level: int | str = logging.INFO):
        if logger is None:
            logger = logging.getLogger(LOGGER_NAME)
        elif isinstance(logger, str):
            logger = logging.getLogger(logger)
        if isinstance(level, str):
            resolved = logging.getLevelName(level.upper())
            if not isinstance(resolved, int):
                raise ValueError(f"unknown logging level {level!r}")
            level = resolved
        self.journal_path = journal_path
        self.logger = logger
        self.level = level

    def __repr__(self):
        return f"<DiscardLogger to {self.logger.name!r} at {logging.getLevelName(self.level)}>"

    def __call__(self, record) -> None:
        logger = self.logger
        if not logger.isEnabledFor(self.level):
            return  # the common case when logging is off: one check, nothing built
        values = record.values
        try:
            count = len(values)
        except TypeError:
            count = 1
        logger.log(
            self.level,
            "%s.%s discarded %d value(s) from %r (key %r, record %d)",
            record.kind,
            record.op,
            count,
            record.container,
            record.key,
            record.seq,
            extra={
                "discard_container": record.container,
                "discard_kind": record.kind,
                "discard_op": record.op,
                "discard_key": record.key,
                "discard_count": count,
                "discard_values": values,
                "discard_seq": record.seq,
                "discard_time_ns": record.time_ns,
                "discard_journal": self.journal_path,
            },
        )
