"""Storage faults. Not client errors: the node logs them and stops serving (STYLE.md 2.6)."""

from __future__ import annotations

from pathlib import Path


class StorageError(Exception):
    """Base of every error the storage engine raises."""


class CorruptionError(StorageError):
    """A file failed a checksum or a format check. The message always names the file."""

    def __init__(self, path: Path | str, detail: str) -> None:
        self.path, self.detail = Path(path), detail
        super().__init__(f"corruption in {path}: {detail}")


class StorageClosed(StorageError):
    """The store was used after close()."""

    def __init__(self) -> None:
        super().__init__("storage engine is closed")
