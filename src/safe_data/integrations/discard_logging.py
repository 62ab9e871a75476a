"""Kept importable here: :class:`DiscardLogger` lives in ``safe_data.journal.discard_logging``."""

from ..journal.discard_logging import LOGGER_NAME, DiscardLogger

__all__ = ["DiscardLogger", "LOGGER_NAME"]
