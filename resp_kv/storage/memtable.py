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

from sortedcontainers import SortedList

ENTRY_OVERHEAD_BYTES = 64     # rough per-entry cost of dict slot + list slot + object headers
_SCAN_CHUNK = 256


class Memtable:
    """Keys -> value (None = tombstone). `wal_number` is the WAL segment that backs it."""

    __slots__ = ("data", "keys", "approx_bytes", "wal_number")

    def __init__(self, wal_number: int) -> None:
        self.data: dict[bytes, bytes | None] = {}
        self.keys = SortedList()
        self.approx_bytes = 0
        self.wal_number = wal_number

    def __len__(self) -> int:
        return len(self.data)

    def put(self, key: bytes, value: bytes | None) -> None:
        data = self.data
        if key not in data:
            self.keys.add(key)
        data[key] = value
        self.approx_bytes += len(key) + (len(value) if value is not None else 0) + ENTRY_OVERHEAD_BYTES

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
