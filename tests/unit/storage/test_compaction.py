"""Compaction: the pick rule, the newest-wins merge, and the garbage rule for tombstones/filter."""

from __future__ import annotations

from pathlib import Path

from resp_kv.config import StorageConfig
from resp_kv.storage import LSMStore
from resp_kv.storage.compaction import collect_garbage, merge, pick
from tests.helpers.wait import wait_until


def test_compaction_pick_merges_smallest_full_level() -> None:
    assert pick([0, 0, 1], 4) is None
    assert pick([0, 0, 0, 0, 1, 2], 4) == (0, 4, 1)
    assert pick([0, 1, 1, 1, 1, 2], 4) == (1, 5, 2)
    assert pick([0, 0], 1) == (0, 2, 1)                    # a level of one table never merges
    assert pick([], 4) is None


def test_compaction_merge_newest_source_wins() -> None:
    newer = [(b"a", b"new"), (b"c", None)]
    older = [(b"a", b"old"), (b"b", b"b"), (b"c", b"c"), (b"d", b"d")]
    assert list(merge([newer, older])) == [(b"a", b"new"), (b"b", b"b"), (b"c", None), (b"d", b"d")]


def test_compaction_garbage_rule_keeps_tombstones_above_bottom() -> None:
    entries = [(b"a", None), (b"b", b"expired"), (b"c", b"live")]
    seen = []

    def fn(key: bytes, value: bytes, now_ms: int) -> bool:
        seen.append(key)
        return value == b"expired"

    assert list(collect_garbage(entries, False, fn, 0)) == [(b"a", None), (b"b", None), (b"c", b"live")]
    assert seen == [b"b", b"c"]                             # never consulted for a tombstone
    assert list(collect_garbage(entries, True, fn, 0)) == [(b"c", b"live")]
    assert list(collect_garbage(entries, True, None, 0)) == [(b"b", b"expired"), (b"c", b"live")]


def _config(trigger: int) -> StorageConfig:
    return StorageConfig(memtable_limit_bytes=1 << 20, l0_compaction_trigger=trigger)


def _flush_dummy(store: LSMStore, key: bytes) -> None:
    store.put(key, key)
    store.flush()


def _tables(store: LSMStore) -> list[list]:
    return [list(t.items()) for t in store._version[1]]


def test_compaction_keeps_tombstone_when_older_table_remains(tmp_path: Path) -> None:
    store = LSMStore.open(tmp_path, _config(3))
    store.put(b"k", b"v1")
    store.flush()
    _flush_dummy(store, b"x")
    _flush_dummy(store, b"x")                               # 3 L0 tables -> one L1 table (bottom)
    wait_until(lambda: store.stats()["compactions"] == 1, 5, "first compaction")
    store.delete(b"k")
    store.flush()
    _flush_dummy(store, b"y")
    _flush_dummy(store, b"y")                               # 3 L0 tables -> L1, above the old L1
    wait_until(lambda: store.stats()["compactions"] == 2, 5, "second compaction")
    assert store.stats()["sstables"] == 2
    assert (b"k", None) in _tables(store)[0]                # tombstone kept: old v1 lies below
    assert store.get(b"k") is None
    store.compact()                                         # full: bottom merge drops it
    assert _tables(store) == [[(b"x", b"x"), (b"y", b"y")]]
    store.close()


def test_compaction_filter_drops_at_bottom_and_masks_above(tmp_path: Path) -> None:
    store = LSMStore.open(tmp_path, _config(3))
    store.put(b"k", b"old")
    store.put(b"keep", b"live")
    store.flush()
    _flush_dummy(store, b"z")
    _flush_dummy(store, b"z")
    wait_until(lambda: store.stats()["compactions"] == 1, 5, "first compaction")
    calls = []

    def drop_expired(key: bytes, value: bytes, now_ms: int) -> bool:
        calls.append(key)
        assert now_ms > 1_600_000_000_000
        return value == b"expired"

    store.set_compaction_filter(drop_expired)
    store.put(b"k", b"expired")
    store.flush()
    store.delete(b"z")
    store.flush()
    _flush_dummy(store, b"zz")
    wait_until(lambda: store.stats()["compactions"] == 2, 5, "second compaction")
    assert _tables(store)[0] == [(b"k", None), (b"z", None), (b"zz", b"zz")]    # masked, not dropped
    assert b"z" not in calls                                    # tombstones never reach the filter
    assert store.get(b"k") is None                              # "old" does not resurrect
    store.compact()
    assert _tables(store) == [[(b"keep", b"live"), (b"zz", b"zz")]]
    store.close()


def test_compaction_full_without_filter_drops_only_tombstones(tmp_path: Path) -> None:
    store = LSMStore.open(tmp_path, _config(100))
    for i in range(100):
        store.put(b"k%03d" % i, b"v")
    store.flush()
    for i in range(0, 100, 2):
        store.delete(b"k%03d" % i)
    store.compact()
    assert _tables(store) == [[(b"k%03d" % i, b"v") for i in range(1, 100, 2)]]
    assert store.stats()["sstables"] == 1
    store.close()


def test_compaction_everything_deleted_leaves_no_table(tmp_path: Path) -> None:
    store = LSMStore.open(tmp_path, _config(100))
    store.put(b"a", b"1")
    store.flush()
    store.delete(b"a")
    store.compact()
    assert store.stats()["sstables"] == 0 and list(store.scan()) == []
    store.close()


def test_compaction_flushes_frozen_memtables_in_its_pauses(tmp_path: Path, monkeypatch) -> None:
    import resp_kv.storage.compaction as compaction
    import resp_kv.storage.engine as engine

    monkeypatch.setattr(compaction, "PACE_SLICE_S", 0.0)      # pause every PACE_RECORDS records
    monkeypatch.setattr(compaction, "PACE_SLEEP_S", 0.0)
    pauses = []
    config = StorageConfig(memtable_limit_bytes=1 << 20, l0_compaction_trigger=100)
    store = LSMStore.open(tmp_path, config)

    class WritingPacer(compaction.Pacer):
        """The merge's Pacer, whose first pause first writes and freezes a memtable (the
        engine's own pause hook, `_flush_frozen`, then runs as usual)."""

        def __init__(self, should_stop, on_yield=None) -> None:
            def write_then_yield() -> None:
                # The loop thread is parked in compact(), so writing from here stands in for it.
                if not pauses:
                    store.put(b"k00000", b"written mid-merge")
                    store.put(b"new", b"n")
                    store._freeze()
                pauses.append(len(store._version[0]))         # frozen memtables
                on_yield()
            super().__init__(should_stop, write_then_yield if on_yield is not None else None)

    expected = {}
    for table in range(3):
        for i in range(table, 3000, 3):
            store.put(b"k%05d" % i, b"v%d" % table)
            expected[b"k%05d" % i] = b"v%d" % table
        store.flush()
    monkeypatch.setattr(engine, "Pacer", WritingPacer)
    store.compact()
    expected.update({b"k00000": b"written mid-merge", b"new": b"n"})
    assert pauses[0] == 1                                   # one frozen memtable, flushed mid-merge
    assert pauses[1] == 0
    assert store.stats()["sstables"] == 2                   # the flushed table stays on top
    assert dict(store.scan()) == expected
    store.close()
    store = LSMStore.open(tmp_path, config)
    assert dict(store.scan()) == expected
    store.close()


def test_compaction_filter_that_raises_keeps_the_record() -> None:
    def broken(key: bytes, value: bytes, now_ms: int) -> bool:
        raise RuntimeError("bug")

    assert list(collect_garbage([(b"a", b"1")], True, broken, 0)) == [(b"a", b"1")]
