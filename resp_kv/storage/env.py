"""The file-system seam (leveldb `Env`): every file operation the engine does goes through here.

`OsEnv` is the real thing. Tests subclass it (tests/unit/storage/faulty_env.py) to lose the bytes
that were never fsynced, the way a power cut does. Files are opened unbuffered so that one
`write()` on them is one `write(2)`. Reads go through `pread` so readers share no file offset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


class Env:
    """Interface; OsEnv implements it on the local file system. Thread-safe (no shared state)."""

    def open(self, path: Path, mode: str) -> BinaryIO:
        """Open unbuffered in binary `mode` ("rb", "wb", "ab", "r+b")."""
        raise NotImplementedError

    def fsync(self, file: BinaryIO) -> None:
        raise NotImplementedError

    def sync_dir(self, path: Path) -> None:
        """Make creations, renames and removals inside directory `path` durable."""
        raise NotImplementedError

    def pread(self, file: BinaryIO, size: int, offset: int) -> bytes:
        raise NotImplementedError

    def rename(self, src: Path, dst: Path) -> None:
        raise NotImplementedError

    def remove(self, path: Path) -> None:
        raise NotImplementedError

    def listdir(self, path: Path) -> list[str]:
        raise NotImplementedError

    def exists(self, path: Path) -> bool:
        raise NotImplementedError

    def size(self, path: Path) -> int:
        raise NotImplementedError

    def truncate(self, path: Path, size: int) -> None:
        raise NotImplementedError

    def read_bytes(self, path: Path) -> bytes:
        raise NotImplementedError

    def makedirs(self, path: Path) -> None:
        raise NotImplementedError


class OsEnv(Env):
    def open(self, path: Path, mode: str) -> BinaryIO:
        return open(path, mode, buffering=0)  # noqa: SIM115 - caller owns the file

    def fsync(self, file: BinaryIO) -> None:
        os.fdatasync(file.fileno())

    def sync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def pread(self, file: BinaryIO, size: int, offset: int) -> bytes:
        return os.pread(file.fileno(), size, offset)

    def rename(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)

    def remove(self, path: Path) -> None:
        os.remove(path)

    def listdir(self, path: Path) -> list[str]:
        return os.listdir(path)

    def exists(self, path: Path) -> bool:
        return os.path.exists(path)

    def size(self, path: Path) -> int:
        return os.path.getsize(path)

    def truncate(self, path: Path, size: int) -> None:
        os.truncate(path, size)

    def read_bytes(self, path: Path) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def makedirs(self, path: Path) -> None:
        os.makedirs(path, exist_ok=True)
