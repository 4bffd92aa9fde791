"""Crash recovery with FaultyEnv: what was synced survives a power cut; nothing wrong is served."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from resp_kv.config import StorageConfig
from resp_kv.storage import CorruptionError, LSMStore, StorageClosed
from resp_kv.storage.engine import MAX_IMMUTABLES
from tests.helpers.wait import wait_until
from tests.unit.storage.faulty_env import FaultyEnv, kill

CONFIG = StorageConfig(memtable_limit_bytes=4096, l0_compaction_trigger=3)


def _reopen_after_crash(store: LSMStore, env: FaultyEnv, tmp_path: Path) -> LSMStore:
    kill(store)
    env.crash()
    return LSMStore.open(tmp_path, CONFIG, env=env)


def test_recovery_synced_writes_survive_power_cut(tmp_path: Path) -> None:
    env = FaultyEnv()
    store = LSMStore.open(tmp_path, CONFIG, env=env)
    expected = {}
    for i in range(2000):                      # many memtables: flushes and compactions run
        key, value = b"k%04d" % (i % 700), b"v%d" % i
        store.put(key, value)
        expected[key] = value
        if i % 3 == 0:
            store.delete(b"k%04d" % (i % 500))
            expected.pop(b"k%04d" % (i % 500), None)
        if i % 50 == 0:
            store.wal_flush()
            store.wal_sync()
    store.wal_flush()
    store.wal_sync()
    store = _reopen_after_crash(store, env, tmp_path)
    assert dict(store.scan()) == expected
    assert all(store.get(k) == v for k, v in expected.items())
    store.close()


def test_recovery_unsynced_writes_lose_only_a_suffix(tmp_path: Path) -> None:
    env = FaultyEnv()
    store = LSMStore.open(tmp_path, StorageConfig(memtable_limit_bytes=1 << 20), env=env)
    for i in range(100):
        store.put(b"k%03d" % i, b"v")
        store.wal_flush()
        if i == 59:
            store.wal_sync()
    store = _reopen_after_crash(store, env, tmp_path)
    keys = [k for k, _ in store.scan()]
    assert keys == [b"k%03d" % i for i in range(len(keys))]   # a prefix of what was written
    assert len(keys) >= 60
    store.close()


def test_recovery_flushed_tables_survive_without_wal_sync(tmp_path: Path) -> None:
    env = FaultyEnv()
    store = LSMStore.open(tmp_path, CONFIG, env=env)
    for i in range(300):
        store.put(b"k%03d" % i, b"value%d" % i)
    store.flush()                              # SSTable + manifest are synced by the engine
    store.compact()
    store = _reopen_after_crash(store, env, tmp_path)
    assert len(list(store.scan())) == 300
    store.close()


def test_recovery_close_then_reopen_yields_everything(tmp_path: Path) -> None:
    store = LSMStore.open(tmp_path, CONFIG)
    for i in range(1000):
        store.put(b"k%04d" % i, b"x" * (i % 30))
    store.write_batch([(b"k0001", None), (b"new", b"n")])
    store.close()
    with pytest.raises(StorageClosed):
        store.get(b"k0000")
    store = LSMStore.open(tmp_path, CONFIG)
    assert store.get(b"k0001") is None and store.get(b"new") == b"n"
    assert store.get(b"k0999") == b"x" * (999 % 30)
    assert len(list(store.scan())) == 1000
    store.close()


def test_recovery_corrupt_manifest_names_the_file(tmp_path: Path) -> None:
    store = LSMStore.open(tmp_path, CONFIG)
    store.put(b"a", b"b")
    store.close()
    manifest = tmp_path / "MANIFEST"
    data = bytearray(manifest.read_bytes())
    data[-1] ^= 0x01
    manifest.write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match="MANIFEST"):
        LSMStore.open(tmp_path, CONFIG)


def test_recovery_missing_table_names_the_file(tmp_path: Path) -> None:
    store = LSMStore.open(tmp_path, CONFIG)
    store.put(b"a", b"b")
    store.flush()
    store.close()
    table = next(tmp_path.glob("*.sst"))
    table.unlink()
    with pytest.raises(CorruptionError, match=table.name):
        LSMStore.open(tmp_path, CONFIG)


def test_recovery_corrupt_table_block_is_never_served(tmp_path: Path) -> None:
    store = LSMStore.open(tmp_path, CONFIG)
    store.put(b"a", b"precious")
    store.flush()
    store.close()
    table = next(tmp_path.glob("*.sst"))
    data = bytearray(table.read_bytes())
    data[data.index(b"precious")] ^= 0x20
    table.write_bytes(bytes(data))
    store = LSMStore.open(tmp_path, CONFIG)
    with pytest.raises(CorruptionError, match=table.name):
        store.get(b"a")
    store.close()


def test_recovery_removes_orphan_files(tmp_path: Path) -> None:
    store = LSMStore.open(tmp_path, CONFIG)
    store.put(b"a", b"b")
    store.close()
    (tmp_path / "99999999.sst").write_bytes(b"half-written")
    (tmp_path / "MANIFEST.tmp").write_bytes(b"junk")
    store = LSMStore.open(tmp_path, CONFIG)
    assert not (tmp_path / "99999999.sst").exists() and not (tmp_path / "MANIFEST.tmp").exists()
    assert store.get(b"a") == b"b"
    store.close()


def test_recovery_wal_sync_from_another_thread_while_rotating(tmp_path: Path) -> None:
    env = FaultyEnv()
    store = LSMStore.open(tmp_path, StorageConfig(memtable_limit_bytes=2048), env=env)
    stop = threading.Event()
    errors: list[BaseException] = []

    def syncer() -> None:
        try:
            while not stop.wait(0.0005):            # an everysec syncer, much faster
                store.wal_sync()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=syncer)
    thread.start()
    for i in range(3000):
        store.put(b"k%05d" % i, b"v" * 20)
        if i % 10 == 9:
            store.wal_flush()
    stop.set()
    thread.join()
    assert errors == []
    store.wal_flush()
    store.wal_sync()
    stats = store.stats()
    assert set(stats) == {"fsync_policy", "wal_bytes", "memtable_keys", "memtable_bytes", "sstables",
                          "sstable_bytes", "flushes", "wal_checkpoints", "compactions", "bloom_negatives",
                          "row_cache_bytes", "row_cache_hits"}
    assert stats["flushes"] >= 1 and stats["fsync_policy"] == "everysec"
    store = _reopen_after_crash(store, env, tmp_path)
    assert len(list(store.scan())) == 3000
    store.close()


def test_overwrites_in_place_still_bound_the_wal(tmp_path: Path) -> None:
    """A hot key set rewritten forever keeps the memtable small; its WAL segment must not grow
    without bound (nor the replay after a crash): past wal_limit_bytes the memtable is frozen
    and flushed, and the old segment is deleted."""
    config = StorageConfig(memtable_limit_bytes=1 << 20, wal_limit_bytes=64 * 1024)
    store = LSMStore.open(tmp_path, config)
    value = b"v" * 100
    peak = 0
    for round_ in range(200):                     # 20,000 overwrites (~2.3 MB of log)
        for i in range(100):
            store.put(b"hot:%03d" % i, value + b"%d" % round_)
        store.wal_flush()                         # once per loop iteration, as the node does
        peak = max(peak, store.stats()["wal_bytes"])          # live segments
    assert store.stats()["flushes"] >= 1
    # the current segment, plus the frozen ones (at most MAX_IMMUTABLES) not yet flushed;
    # each passes the limit by at most one loop iteration's writes (~12 KB here)
    assert peak <= (MAX_IMMUTABLES + 1) * (64 * 1024 + 12_000) < 2_000_000
    store.close()
    reopened = LSMStore.open(tmp_path, config)
    assert all(reopened.get(b"hot:%03d" % i) == value + b"199" for i in range(100))
    reopened.close()


def test_recovery_after_wal_limit_freezes_keeps_every_synced_overwrite(tmp_path: Path) -> None:
    """Freezes made by the WAL bound (not the memtable's size) replay like any other: a power
    cut after them loses none of the synced overwrites."""
    config = StorageConfig(memtable_limit_bytes=1 << 20, wal_limit_bytes=16 * 1024)
    env = FaultyEnv()
    store = LSMStore.open(tmp_path, config, env=env)
    expected = {}
    for round_ in range(60):                       # the same 50 keys, over and over
        for i in range(50):
            expected[b"hot:%02d" % i] = b"v%d-%d" % (round_, i) + b"x" * 60
            store.put(b"hot:%02d" % i, expected[b"hot:%02d" % i])
        store.wal_flush()
        store.wal_sync()
    # the memtable (50 keys) never nears its 1 MiB limit: only the WAL bound flushes it
    wait_until(lambda: store.stats()["flushes"] >= 2, 10, "flushes forced by the WAL bound")
    kill(store)
    env.crash()
    store = LSMStore.open(tmp_path, config, env=env)
    assert dict(store.scan()) == expected
    store.close()


def _overwrite_rounds(store: LSMStore, rounds: range, latest: dict[bytes, bytes],
                      keys: int = 50) -> None:
    """Rewrite the same `keys` keys once per round (and delete one), each round one loop
    iteration (wal_flush) made durable (wal_sync); keep `latest` what the store should hold.
    Round 0 also writes keys never written again: only the oldest segments (and then the
    checkpoints) hold them."""
    for round_ in rounds:
        if round_ == 0:
            for i in range(20):
                latest[b"cold:%02d" % i] = b"c%d" % i
                store.put(b"cold:%02d" % i, latest[b"cold:%02d" % i])
        for i in range(keys):
            key = b"hot:%02d" % i
            latest[key] = b"v%d-%d" % (round_, i) + b"x" * 200
            store.put(key, latest[key])
        store.delete(b"hot:%02d" % (round_ % keys))
        latest.pop(b"hot:%02d" % (round_ % keys))
        store.wal_flush()
        store.wal_sync()


# 50 keys of ~200 bytes: a memtable of ~17 KB (with ENTRY_OVERHEAD_BYTES), a quarter of the bound
CHECKPOINTING = StorageConfig(memtable_limit_bytes=1 << 20, wal_limit_bytes=128 * 1024)


def test_a_hot_key_set_is_checkpointed_not_flushed(tmp_path: Path) -> None:
    """Past wal_limit_bytes a memtable far smaller than its log is rewritten as a new segment
    (a checkpoint): the keys stay in memory, no SSTable is made, the old segments go."""
    store = LSMStore.open(tmp_path, CHECKPOINTING)
    peak = 0
    expected: dict[bytes, bytes] = {}
    for block in range(0, 300, 10):
        _overwrite_rounds(store, range(block, block + 10), expected)
        peak = max(peak, store.stats()["wal_bytes"])
        # The storage thread writes a checkpoint while the loop goes on; a real loop takes
        # seconds to write the next 128 MiB, this one a few ms to write the next 128 KB, so
        # past twice the bound it would freeze and flush instead (tested by the model).
        wait_until(lambda: store._checkpoint is None, 10, "the pending checkpoint written")
    wait_until(lambda: store.stats()["wal_checkpoints"] >= 3, 10, "checkpoints by the WAL bound")
    stats = store.stats()
    assert stats["flushes"] == 0 and stats["sstables"] == 0, stats
    # Until a checkpoint is durable, the segments it replaces stay (the last checkpoint,
    # ~12 KB, and a segment past the bound by at most a round, ~12 KB) beside it and the live
    # segment, which takes writes meanwhile: three segments' worth at most, of 3.4 MB written.
    assert peak <= 3 * (128 * 1024 + 12_000), peak
    wait_until(lambda: len([p for p in tmp_path.iterdir() if p.suffix == ".log"]) <= 2, 10,
               "only the last checkpoint and the live segment left")
    assert dict(store.scan()) == expected
    store.close()
    reopened = LSMStore.open(tmp_path, CHECKPOINTING)
    assert dict(reopened.scan()) == expected
    reopened.close()


class RenameFailsEnv(FaultyEnv):
    """A power cut just before a checkpoint is renamed into place (the storage thread stops
    there: the rename raises)."""

    def rename(self, src: Path, dst: Path) -> None:
        if src.name.endswith(".log.tmp"):
            raise OSError(5, "power cut (test)")
        super().rename(src, dst)


def test_power_cut_after_checkpoints_keeps_every_synced_write(tmp_path: Path) -> None:
    env = FaultyEnv()
    store = LSMStore.open(tmp_path, CHECKPOINTING, env=env)
    expected: dict[bytes, bytes] = {}
    _overwrite_rounds(store, range(0, 60), expected)
    wait_until(lambda: store.stats()["wal_checkpoints"] >= 2, 10, "checkpoints")
    _overwrite_rounds(store, range(60, 70), expected)         # over the last checkpoint
    kill(store)
    env.crash()
    store = LSMStore.open(tmp_path, CHECKPOINTING, env=FaultyEnv())
    assert dict(store.scan()) == expected
    store.close()


def test_power_cut_before_a_checkpoint_is_in_place_replays_the_old_segments(tmp_path: Path) -> None:
    env = RenameFailsEnv()
    store = LSMStore.open(tmp_path, CHECKPOINTING, env=env)
    expected: dict[bytes, bytes] = {}
    for round_ in range(60):                                   # until the checkpoint "crashes"
        if store._bg_error is not None:
            break
        _overwrite_rounds(store, range(round_, round_ + 1), expected)
    assert isinstance(store._bg_error, OSError), "no checkpoint was attempted"
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".log.tmp")]
    kill(store)
    env.crash()
    store = LSMStore.open(tmp_path, CHECKPOINTING, env=FaultyEnv())
    assert dict(store.scan()) == expected
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    store.close()
