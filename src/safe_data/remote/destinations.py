"""The destinations of an uploader: each sink under a stable name, with its own state.

An uploader ships to one sink or to several (``Uploader(sinks=[a, b, c],
acks_required=2)``, docs/remote.md).  Each destination has its own segments in flight,
its own retries and its own counters, so that one slow or down destination does not hold
the others back; its name is where its acknowledgement marks live
(``uploaded/to/<name>/``), so it must stay the same from one run to the next: the name
the user gives, or one derived from the sink's ``repr`` (its URL or path, never a
secret), which is stable as long as the sink is configured the same way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from .protocol import valid_namespace

__all__ = ["Destination", "destinations_of"]

_KIND = re.compile(r"[A-Za-z0-9]+")


def derived_name(sink) -> str:
    """``<kind>-<12 hex digits of the sink's repr>``, e.g. ``http-1f0c...``."""
    kind = type(sink).__name__.removesuffix("Sink").lower()
    kind = "".join(_KIND.findall(kind)) or "sink"
    return f"{kind}-{hashlib.sha256(repr(sink).encode()).hexdigest()[:12]}"


class Destination:
    """One sink under its name, and what shipping to it did in this run.

    The uploader's event loop alone changes it, but :meth:`status` may be read from
    other threads: the counters are plain values, replaced whole.
    """

    def __init__(self, name: str, sink) -> None:
        if not hasattr(sink, "put"):
            raise TypeError(f"sink must be a Sink, not {type(sink).__name__}")
        self.name = name
        self.sink = sink
        self.in_flight: set[str] = set()  # segment ids being shipped to it
        self.acked_ids: set[str] = set()  # acknowledged by it, this run
        self.rejected: dict[str, str] = {}  # id -> reason, this run
        self.acked = 0
        self.acked_bytes = 0
        self.errors = 0
        self.last_ack: str | None = None
        self.last_error: str | None = None
        self.last_error_at: str | None = None

    def __repr__(self) -> str:
        return f"<Destination {self.name} {self.sink!r}>"

    def status(self) -> dict:
        """Its part of the uploader's report (``safe-data stats`` adds its backlog)."""
        return {
            "name": self.name,
            "sink": repr(self.sink),
            "acked": self.acked,
            "acked_bytes": self.acked_bytes,
            "last_ack": self.last_ack,
            "errors": self.errors,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "rejected": len(self.rejected),
        }


def destinations_of(sinks) -> list[Destination]:
    """Destinations of a list of sinks (named after them) or of a ``{name: sink}`` mapping;
    ValueError for an empty one, an invalid name or two destinations of one name."""
    if isinstance(sinks, Mapping):
        named = list(sinks.items())
    else:
        named = [(derived_name(sink), sink) for sink in sinks]
    if not named:
        raise ValueError("sinks must name at least one destination")
    seen: set[str] = set()
    for name, _ in named:
        if not valid_namespace(name):
            raise ValueError(
                f"{name!r} is not a destination name: 1 to 64 letters, digits, '_', '.' or '-', "
                f"not starting with '.' or '-'"
            )
        if name in seen:
            raise ValueError(f"two destinations are named {name!r} (the same sink twice?)")
        seen.add(name)
    return [Destination(name, sink) for name, sink in named]
