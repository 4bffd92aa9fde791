"""The node-wide block cache: LRU by bytes, retired tables, checksums on a miss."""

from __future__ import annotations

from pathlib import Path

import pytest

from resp_kv.config import StorageConfig
from resp_kv.storage import CorruptionError, LSMStore, OsEnv
from resp_kv.storage.block_cache import BlockCache
from resp_kv.storage.sstable import SSTableReader, write_table

ENV = OsEnv()
ENTRIES = [(b"key%05d" % i, b"value-%d" % i * 8) for i in range(3000)]


class _Blk:
    def __init__(self, charge: int) -> None:
        self.charge = charge


def test_lru_evicts_by_bytes_least_recently_used_first() -> None:
    cache = BlockCache(1000)
    for i in range(4):
        cache.insert((1, i), _Blk(250))
    assert cache.bytes == 1000 and len(cache) == 4
    assert cache.lookup((1, 0)) is not None           # 0 becomes most recent; 1 is now LRU
    cache.insert((2, 0), _Blk(400))                   # needs 400 bytes: evicts 1 and 2
    assert cache.lookup((1, 1)) is None and cache.lookup((1, 2)) is None
    assert all(cache.lookup(k) is not None for k in [(1, 0), (1, 3), (2, 0)])
    assert cache.bytes == 900 <= cache.capacity_bytes
    cache.insert((3, 0), _Blk(1001))                  # larger than the cache: not kept
    assert cache.lookup((3, 0)) is None and cache.bytes == 900
    cache.evict_table(1)
    assert cache.table_ids() == {2} and cache.bytes == 400
    cache.insert((1, 5), _Blk(10))                    # a retired table is never cached again
    assert cache.lookup((1, 5)) is None


def test_tables_share_the_cache_within_its_byte_budget(tmp_path: Path) -> None:
    cache = BlockCache(20_000)
    readers = []
    for n in range(3):
        path = tmp_path / f"{n:08d}.sst"
        write_table(ENV, path, ENTRIES, 1024, 10)
        readers.append(SSTableReader(ENV, path, cache))
    for key, value in ENTRIES[::5]:
        for reader in readers:
            assert reader.get(key) == value
            assert cache.bytes <= cache.capacity_bytes
    assert cache.table_ids() <= {r.cache_id for r in readers} and len(cache) > 3
    for reader in readers:
        reader.close()


def test_compaction_evicts_retired_tables_and_reads_stay_right(tmp_path: Path) -> None:
    store = LSMStore.open(tmp_path, StorageConfig(memtable_limit_bytes=1 << 20, block_size_bytes=256,
                                                  l0_compaction_trigger=100))
    for round_ in range(3):
        for i in range(0, 2000, round_ + 1):
            store.put(b"k%05d" % i, b"r%d-%d" % (round_, i))
        store.flush()
    expected = {b"k%05d" % i: b"r%d-%d" % (max(r for r in range(3) if i % (r + 1) == 0), i)
                for i in range(2000)}
    assert all(store.get(k) == v for k, v in expected.items())
    old_ids = {t.cache_id for t in store._version[1]}
    assert store._cache.table_ids() and store._cache.table_ids() <= old_ids
    store.compact()
    assert not store._cache.table_ids() & old_ids    # retired tables' blocks are gone
    assert all(store.get(k) == v for k, v in expected.items())
    assert store._cache.table_ids() == {store._version[1][0].cache_id}
    store.close()


def test_corruption_is_detected_on_a_cache_miss(tmp_path: Path) -> None:
    path = tmp_path / "00000001.sst"
    write_table(ENV, path, ENTRIES, 512, 10)
    data = bytearray(path.read_bytes())
    data[40] ^= 0x10                                  # inside the first data block
    path.write_bytes(bytes(data))
    cache = BlockCache(1 << 20)
    reader = SSTableReader(ENV, path, cache)
    assert reader.get(ENTRIES[-1][0]) == ENTRIES[-1][1]    # an intact block is cached
    for _ in range(2):                                # the bad block is never cached: raises every time
        with pytest.raises(CorruptionError, match=path.name):
            reader.get(ENTRIES[1][0])
    assert len(cache) == 1
    reader.close()
