"""``S3KeyStore``: data keys as objects of an S3 bucket, through the S3 sink's client."""

from __future__ import annotations

from ..sinks import SinkError
from ..sinks.s3 import S3Error, S3Sink
from . import KeyStore, KeyStoreError

__all__ = ["S3KeyStore"]


class S3KeyStore(KeyStore):
    """Each key (and shred marker) is the object ``<prefix><namespace>/<segment id>.<sha256>.key``
    (``.shredded``) of the bucket ``sink`` names: the :class:`~..sinks.s3.S3Sink`'s
    signed requests, keys and retries, not a second client.  Use a bucket, or a prefix
    with its own credentials, apart from the segments', without versioning or object
    lock (a deleted key must be gone)."""

    def __init__(self, sink: S3Sink) -> None:
        self.sink = sink

    def __repr__(self) -> str:
        return f"S3KeyStore({self.sink!r})"

    async def check(self) -> None:
        try:
            await self.sink.check()
        except SinkError as exc:
            raise KeyStoreError(f"the key store {self!r}: {exc}") from exc

    async def close(self) -> None:
        await self.sink.close()

    @staticmethod
    def _split(name: str) -> tuple[str, str]:
        """(segment id, the rest of the name as the sink's suffix)."""
        segment_id, _, rest = name.partition(".")
        return segment_id, "." + rest

    async def _write(self, name: str, data: bytes) -> None:
        try:
            await self.sink.put_small(*self._split(name), data)
        except SinkError as exc:
            raise KeyStoreError(f"cannot write {name} to {self!r}: {exc}") from exc

    async def _read(self, name: str) -> bytes | None:
        try:
            return await self.sink.get_small(*self._split(name))
        except (SinkError, S3Error) as exc:
            raise KeyStoreError(f"cannot read {name} from {self!r}: {exc}") from exc

    async def _remove(self, name: str) -> None:
        try:
            await self.sink.delete(*self._split(name))
        except SinkError as exc:
            raise KeyStoreError(f"cannot delete {name} from {self!r}: {exc}") from exc
