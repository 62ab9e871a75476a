"""Per-namespace byte quotas of the backup server (docs/remote.md, "Quotas").

A namespace's usage is the sum of its stored (compressed) bodies.  It is counted from the
store once, when first needed (the store's ``usage()``), then kept up to date as the
server stores and deletes; uploads in progress hold a reservation of their declared size,
so concurrent uploads cannot together pass the quota.  Another process writing the same
store (a second server, a ``DirectorySink``) is not seen until this server restarts:
the quota is this server's bound, not the store's.
"""

from __future__ import annotations

from ..present import human_bytes

__all__ = ["Quotas"]


class Quotas:
    """The quotas (namespace -> bytes) and the usage of the namespaces that have one."""

    def __init__(self, limits: dict[str, int] | None):
        for namespace, limit in (limits or {}).items():
            if limit < 0:
                raise ValueError(f"negative quota for namespace {namespace!r}")
        self.limits = dict(limits or {})
        self.used: dict[str, int] = {}
        self.reserved: dict[str, int] = {}

    def needs_count(self, namespace: str) -> bool:
        """True if the namespace has a quota and its usage was not counted yet."""
        return namespace in self.limits and namespace not in self.used

    def counted(self, namespace: str, used: int) -> None:
        self.used.setdefault(namespace, used)

    def room(self, namespace: str) -> int | None:
        """Bytes the namespace may still take (None: no quota); counted first."""
        limit = self.limits.get(namespace)
        if limit is None:
            return None
        return limit - self.used[namespace] - self.reserved.get(namespace, 0)

    def refusal(self, namespace: str, size: int) -> str | None:
        """Why an upload of ``size`` bytes does not fit, or None if it does."""
        room = self.room(namespace)
        if room is None or size <= room:
            return None
        return (
            f"namespace {namespace!r} is over its quota of {human_bytes(self.limits[namespace])} "
            f"({human_bytes(self.used[namespace])} stored): an upload of {human_bytes(size)} does "
            "not fit; the client keeps the segment and retries later (make room by deleting "
            "with an admin token or by retention, or raise the quota)"
        )

    def reserve(self, namespace: str, size: int) -> None:
        if namespace in self.limits:
            self.reserved[namespace] = self.reserved.get(namespace, 0) + size

    def release(self, namespace: str, size: int) -> None:
        if namespace in self.limits:
            self.reserved[namespace] -= size

    def stored(self, namespace: str, size: int) -> None:
        if namespace in self.used:
            self.used[namespace] += size

    def deleted(self, namespace: str, size: int) -> None:
        if namespace in self.used:
            self.used[namespace] = max(0, self.used[namespace] - size)

    def metrics(self) -> list[str]:
        """Prometheus lines: each counted namespace's bytes and its quota."""
        lines = [
            "# HELP safe_data_namespace_bytes Compressed bytes stored in the namespace (those with a quota).",
            "# TYPE safe_data_namespace_bytes gauge",
        ]
        lines += [f'safe_data_namespace_bytes{{namespace="{ns}"}} {n}' for ns, n in sorted(self.used.items())]
        lines += [
            "# HELP safe_data_namespace_quota_bytes The namespace's quota.",
            "# TYPE safe_data_namespace_quota_bytes gauge",
        ]
        lines += [
            f'safe_data_namespace_quota_bytes{{namespace="{ns}"}} {n}'
            for ns, n in sorted(self.limits.items())
        ]
        return lines
