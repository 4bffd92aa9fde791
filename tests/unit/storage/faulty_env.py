"""FaultyEnv: an OsEnv that can forget every byte never fsynced, like a power cut (leveldb
fault_injection_test). Files created since their directory's last sync_dir disappear too."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import BinaryIO

from resp_kv.storage.env import OsEnv


class FaultyEnv(OsEnv):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.synced: dict[str, int] = {}          # path -> durable length
        self.new_files: set[str] = set()          # created, directory entry not yet durable
        self.open_files: list[BinaryIO] = []

    def open(self, path: Path, mode: str) -> BinaryIO:
        key = str(path)
        with self._lock:
            if "w" in mode or "a" in mode:
                if not os.path.exists(key):
                    self.new_files.add(key)
                if "w" in mode:
                    self.synced[key] = 0
            f = super().open(path, mode)
            self.open_files.append(f)
        return f

    def fsync(self, file: BinaryIO) -> None:
        super().fsync(file)
        with self._lock:
            self.synced[str(file.name)] = os.fstat(file.fileno()).st_size

    def sync_dir(self, path: Path) -> None:
        super().sync_dir(path)
        with self._lock:
            self.new_files = {p for p in self.new_files if Path(p).parent != Path(path)}

    def rename(self, src: Path, dst: Path) -> None:
        super().rename(src, dst)
        with self._lock:
            self.synced[str(dst)] = self.synced.pop(str(src), 0)
            if str(src) in self.new_files:
                self.new_files.discard(str(src))
                self.new_files.add(str(dst))

    def remove(self, path: Path) -> None:
        super().remove(path)
        with self._lock:
            self.synced.pop(str(path), None)
            self.new_files.discard(str(path))

    def crash(self) -> None:
        """Close every file, then drop what was never made durable."""
        with self._lock:
            for f in self.open_files:
                f.close()
            self.open_files.clear()
            for path in list(self.new_files):
                if os.path.exists(path):
                    os.remove(path)
                self.synced.pop(path, None)
            for path, size in self.synced.items():
                if os.path.exists(path) and os.path.getsize(path) > size:
                    os.truncate(path, size)
            self.new_files.clear()


def kill(store) -> None:
    """Stop a store's background thread without closing it (what kill -9 leaves behind)."""
    with store._cv:
        store._stop = True
        store._cv.notify_all()
    store._storage_thread.join()
    store._closed = True
