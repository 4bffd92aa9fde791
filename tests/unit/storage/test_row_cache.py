"""The engine's row cache: what the SSTables answered for a key, valid for one set of tables."""

from __future__ import annotations

import gc
import os

import pytest

from resp_kv.config import StorageConfig
from resp_kv.storage import LSMStore
from resp_kv.storage.engine import ROW_OVERHEAD_BYTES


@pytest.fixture
def open_store(tmp_path):
    """`open_store(**StorageConfig overrides)` -> an LSMStore, closed after the test."""
    opened: list[LSMStore] = []

    def open_(**overrides) -> LSMStore:
        opened.append(LSMStore.open(tmp_path / "db", StorageConfig(**overrides)))
        return opened[-1]
    yield open_
    for store in opened:
        store.close()


def test_a_repeated_read_from_a_table_is_answered_by_the_row_cache(open_store):
    store = open_store()
    store.put(b"k", b"v")
    store.put(b"gone", b"x")
    store.delete(b"gone")
    store.flush()
    assert store.get(b"k") == b"v" and store.row_cache_hits == 0
    assert store.get(b"k") == b"v" and store.row_cache_hits == 1
    # a tombstone and a key no table has are answers too (None)
    assert store.get(b"gone") is None and store.get(b"never") is None
    assert store.get(b"gone") is None and store.get(b"never") is None
    assert store.row_cache_hits == 3


def test_a_cached_answer_never_outlives_a_write(open_store):
    store = open_store()
    store.put(b"k", b"v1")
    store.flush()
    assert store.get(b"k") == b"v1"              # cached from the table
    store.put(b"k", b"v2")
    assert store.get(b"k") == b"v2"              # the memtable shadows the cached answer
    store.flush()                                # new tables: the cache starts over
    assert store.get(b"k") == b"v2"
    store.delete(b"k")
    assert store.get(b"k") is None
    store.flush()
    assert store.get(b"k") is None
    store.compact()
    assert store.get(b"k") is None
    store.put(b"k", b"v3")
    store.flush()
    store.compact()
    assert store.get(b"k") == b"v3"
    assert store.get(b"k") == b"v3"


def test_the_row_cache_stays_within_its_bytes(open_store):
    limit = 20 * (ROW_OVERHEAD_BYTES + 40)
    store = open_store(row_cache_bytes=limit)
    keys = [b"key:%05d" % i for i in range(500)]
    for key in keys:
        store.put(key, b"v" * 30)
    store.flush()
    for key in keys:
        assert store.get(key) == b"v" * 30
        assert store.row_cache_bytes() <= limit
    assert store.row_cache_bytes() > limit // 2      # it does keep entries
    hits = store.row_cache_hits
    assert store.get(keys[-1]) == b"v" * 30 and store.row_cache_hits == hits + 1
    assert store.get(keys[0]) == b"v" * 30 and store.row_cache_hits == hits + 1   # evicted


def test_a_zero_row_cache_keeps_nothing(open_store):
    store = open_store(row_cache_bytes=0)
    store.put(b"k", b"v")
    store.flush()
    assert store.get(b"k") == b"v" and store.get(b"k") == b"v"
    assert store.row_cache_hits == 0 and store.row_cache_bytes() == 0


def test_a_writes_read_of_the_old_version_adds_nothing(open_store):
    store = open_store()
    store.put(b"k", b"v")
    store.flush()
    assert store.get(b"k", False) == b"v" and store.get(b"new", False) is None
    assert store.row_cache_bytes() == 0
    assert store.get(b"k") == b"v"                          # a read fills it
    assert store.get(b"k", False) == b"v" and store.row_cache_hits == 1   # and may use it


def _deleted_files_open() -> list[str]:
    """Files this process holds open that were deleted (a retired table still pinned)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith(" (deleted)") and ".sst" in target:
            held.append(target)
    return held


def test_the_row_cache_does_not_pin_retired_tables_past_the_next_write(open_store):
    store = open_store()
    for round_ in range(3):
        store.put(b"k%d" % round_, b"v")
        store.flush()
        assert store.get(b"k%d" % round_) == b"v"       # the cache now refers to these tables
    store.compact()                                    # retires them, deletes their files
    gc.collect()
    store.put(b"after", b"v")
    store.wal_flush()                                  # the next write batch lets them go
    gc.collect()
    assert _deleted_files_open() == []
    assert store.get(b"k0") == b"v"
