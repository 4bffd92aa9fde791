"""The sorted in-memory table that takes every write before it reaches an SSTable.

A dict (point lookups, overwrites) plus a sortedcontainers SortedList of its keys (order for
scans and flushes). Measured against SortedDict by bench/storage_stall.py (`memtable_choice`,
100k random-order new keys, best chunk, shared 2-core VM): SortedDict 1.6-1.9 µs per new key,
dict + SortedList 0.9-1.6 µs; an overwrite is a dict store only, and `get` a plain dict lookup. A deletion is stored as the value None (a tombstone) so that it
shadows older SSTables. Not thread-safe for writers: only the event-loop thread mutates the
active memtable; once frozen it is read-only and shared with the storage thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Final

from sortedcontainers import SortedList

# Per-entry memory beyond the key and value bytes: dict slot + SortedList slot (~61 bytes,
# tracemalloc over 100k entries) + two bytes-object headers (2 x 33). Measured, not guessed.
ENTRY_OVERHEAD_BYTES: Final = 128
_SCAN_CHUNK = 256


class Memtable:
    """Keys -> value (None = tombstone). `wal_number` is the WAL segment that backs it.

    `approx_bytes` = sum over live entries of len(key) + len(value) + ENTRY_OVERHEAD_BYTES.
    """

    __slots__ = ("data", "keys", "approx_bytes", "wal_number")

    def __init__(self, wal_number: int) -> None:
        self.data: dict[bytes, bytes | None] = {}
        self.keys = SortedList()
        self.approx_bytes = 0
        self.wal_number = wal_number

    def __len__(self) -> int:
        return len(self.data)

    def put(self, key: bytes, value: bytes | None) -> None:
        """Insert or overwrite. `approx_bytes` tracks live bytes: an overwrite swaps the old
        value's size for the new one's (it used to add both, so a hot key set flushed early)."""
        data = self.data
        size = len(value) if value is not None else 0
        old = data.get(key)             # typed bytes | None (no sentinel): compiled, len is native
        if old is not None:             # over a value: every SET of a hot key set
            self.approx_bytes += size - len(old)
        elif key in data:               # over a tombstone
            self.approx_bytes += size
        else:                           # a new key
            self.keys.add(key)
            self.approx_bytes += len(key) + ENTRY_OVERHEAD_BYTES + size
        data[key] = value

    def items(self, start: bytes = b"", end: bytes | None = None) -> Iterator[tuple[bytes, bytes | None]]:
        """Yield (key, value-or-None) in key order for start <= key < end.

        Reads in chunks and re-seeks after each, so writes between two `next()` calls (an
        async caller awaiting mid-scan) are safe: the scan sees a consistent key order.
        """
        keys, data = self.keys, self.data
        lo, inclusive = start, True
        while True:
            chunk = list(islice(keys.irange(lo, end, inclusive=(inclusive, False)), _SCAN_CHUNK))
            if not chunk:
                return
            for key in chunk:
                yield key, data[key]
            lo, inclusive = chunk[-1], False
