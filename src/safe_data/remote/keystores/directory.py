"""``DirectoryKeyStore``: data keys as files of a local or mounted directory."""

from __future__ import annotations

import asyncio
import os

from ..._fs import fsync_dir, write_temp
from . import KeyStore, KeyStoreError

__all__ = ["DirectoryKeyStore"]


class DirectoryKeyStore(KeyStore):
    """Each key (and shred marker) is a file of ``path`` (created 0700), mode 0600,
    written to a temp file, fsynced, renamed into place and the directory fsynced;
    a deletion is fsynced too.  Keep it apart from the segments' store, and back it up
    with deletion (a backup that keeps deleted files keeps the shredded keys)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.path.abspath(os.fspath(path))

    def __repr__(self) -> str:
        return f"DirectoryKeyStore({self.path!r})"

    async def check(self) -> None:
        if not os.path.isdir(self.path):
            raise KeyStoreError(f"there is no key store at {self.path} (push --key-store makes one)")

    async def _write(self, name: str, data: bytes) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._write_file, name, data)

    async def _read(self, name: str) -> bytes | None:
        return await asyncio.get_running_loop().run_in_executor(None, self._read_file, name)

    async def _remove(self, name: str) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._remove_file, name)

    def _write_file(self, name: str, data: bytes) -> None:
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            os.replace(write_temp(self.path, name, data), os.path.join(self.path, name))
            fsync_dir(self.path)
        except OSError as exc:
            raise KeyStoreError(f"cannot write {name} to the key store {self.path}: {exc}") from exc

    def _read_file(self, name: str) -> bytes | None:
        try:
            with open(os.path.join(self.path, name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {name} from the key store {self.path}: {exc}") from exc

    def _remove_file(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self.path, name))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise KeyStoreError(f"cannot delete {name} from the key store {self.path}: {exc}") from exc
        fsync_dir(self.path)
