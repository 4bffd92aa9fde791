"""A node-wide cache of decoded SSTable blocks, shared by every table of one LSMStore.

LRU by bytes: entries are keyed (table cache id, block index) and charged `_Block.charge`
(raw block size plus the decoded key objects); inserting past `capacity_bytes` evicts least
recently used blocks first. Cache ids come from one process-wide counter, so two readers never
share a key even if a file number were reused.

Threads: `lookup` runs on the event-loop thread without the lock (an OrderedDict get plus
move_to_end, each atomic under the GIL; a block evicted between the two is simply not
refreshed). `insert` and `evict_table` (the background thread, when compaction retires a table)
take the lock. A table whose blocks were evicted is remembered as dead, so a get that was in
flight on it during the retirement cannot re-insert its blocks.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict

DEFAULT_CAPACITY_BYTES = 64 * 1024 * 1024

_ids = itertools.count(1)


def new_cache_id() -> int:
    return next(_ids)


class BlockCache:
    """Decoded blocks by (table id, block index); see the module docstring."""

    def __init__(self, capacity_bytes: int = DEFAULT_CAPACITY_BYTES) -> None:
        self.capacity_bytes = capacity_bytes
        self.bytes = 0
        self._blocks: OrderedDict[tuple[int, int], object] = OrderedDict()
        self._by_table: dict[int, set[int]] = {}
        self._dead: set[int] = set()
        self._lock = threading.Lock()
        self._get = self._blocks.get
        self._touch = self._blocks.move_to_end

    def __len__(self) -> int:
        return len(self._blocks)

    def lookup(self, key: tuple[int, int]):
        """The cached block for `key`, or None."""
        block = self._get(key)
        if block is not None:
            try:
                self._touch(key)
            except KeyError:            # evicted by another thread after the get: still valid
                pass
        return block

    def lookup_parts(self):
        """(get, move_to_end) of the underlying OrderedDict, for a caller that inlines
        `lookup` on its hot path. move_to_end may raise KeyError (see `lookup`)."""
        return self._get, self._touch

    def insert(self, key: tuple[int, int], block) -> None:
        """Cache `block`, evicting LRU blocks to stay within capacity. A block larger than the
        whole cache, or one of a retired table, is not kept."""
        table, index = key
        charge = block.charge
        with self._lock:
            if charge > self.capacity_bytes or table in self._dead or key in self._blocks:
                return
            blocks = self._blocks
            self.bytes += charge
            while self.bytes > self.capacity_bytes:
                (old_table, old_index), old = blocks.popitem(last=False)
                self.bytes -= old.charge
                indices = self._by_table[old_table]
                indices.discard(old_index)
                if not indices:
                    del self._by_table[old_table]
            blocks[key] = block
            self._by_table.setdefault(table, set()).add(index)

    def evict_table(self, table: int) -> None:
        """Drop every block of a retired table and never cache it again."""
        with self._lock:
            self._dead.add(table)
            for index in self._by_table.pop(table, ()):
                block = self._blocks.pop((table, index))
                self.bytes -= block.charge

    def table_ids(self) -> set[int]:
        """Tables that have blocks cached (tests, stats)."""
        with self._lock:
            return set(self._by_table)
