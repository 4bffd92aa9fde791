"""Model test: LSMStore behaves like a dict through puts, deletes, flushes, compactions and reopens."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resp_kv.config import StorageConfig
from resp_kv.storage import LSMStore, OsEnv
from tests.helpers.wait import wait_until
from tests.unit.storage.faulty_env import kill

CONFIG = StorageConfig(memtable_limit_bytes=600, block_size_bytes=64, l0_compaction_trigger=2)


class NoSyncEnv(OsEnv):
    """Durability is test_recovery.py's job; here fsyncs would only slow the model down."""

    def fsync(self, file) -> None:
        pass

    def sync_dir(self, path) -> None:
        pass


ENV = NoSyncEnv()
KEYS = st.binary(min_size=0, max_size=3).map(lambda b: b"k" + b)
HOT_KEYS = st.sampled_from([b"hot-a", b"hot-b", b"hot-c"])
VALUES = st.binary(min_size=0, max_size=40)


class _StoreMachine(RuleBasedStateMachine):
    """A store in a fresh directory and the dict it must equal; the rules every model has."""
    config = CONFIG

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="lsm-model-"))
        self.store = LSMStore.open(self.dir, self.config, env=ENV)
        self.model: dict[bytes, bytes] = {}

    @rule()
    def wal_flush(self) -> None:
        self.store.wal_flush()

    @rule()
    def flush(self) -> None:
        self.store.flush()

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class StoreModel(_StoreMachine):
    @rule(key=KEYS, value=VALUES)
    def put(self, key: bytes, value: bytes) -> None:
        self.store.put(key, value)
        self.model[key] = value

    @rule(key=KEYS)
    def delete(self, key: bytes) -> None:
        self.store.delete(key)
        self.model.pop(key, None)

    @rule(ops=st.lists(st.tuples(KEYS, st.none() | VALUES), max_size=8))
    def write_batch(self, ops: list) -> None:
        self.store.write_batch(ops)
        for key, value in ops:
            if value is None:
                self.model.pop(key, None)
            else:
                self.model[key] = value

    @rule(count=st.integers(1, 30), value=VALUES)
    def put_many(self, count: int, value: bytes) -> None:
        for i in range(count):
            self.put(b"m%03d" % i, value)

    @rule(key=KEYS)
    def get(self, key: bytes) -> None:
        assert self.store.get(key) == self.model.get(key)

    @rule(start=KEYS, end=st.none() | KEYS)
    def scan(self, start: bytes, end: bytes | None) -> None:
        expected = sorted((k, v) for k, v in self.model.items() if k >= start and (end is None or k < end))
        assert list(self.store.scan(start, end)) == expected

    @rule()
    def compact(self) -> None:
        self.store.compact()

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = LSMStore.open(self.dir, self.config, env=ENV)

    @precondition(lambda self: len(self.model) < 200)
    @invariant()
    def full_scan_matches(self) -> None:
        assert list(self.store.scan()) == sorted(self.model.items())


class TinyRowCacheModel(StoreModel):
    """The same model with a row cache of a few entries, so reads also evict."""
    config = StorageConfig(memtable_limit_bytes=600, block_size_bytes=64, l0_compaction_trigger=2,
                           row_cache_bytes=600)


class CheckpointModel(_StoreMachine):
    """A few hot keys under a WAL bound far below the memtable limit: the bound rewrites the log
    from the memtable (checkpoints) instead of flushing it; the process may die at any point
    (the storage thread stopped mid-job, what kill -9 leaves) and must come back as the dict."""
    config = StorageConfig(memtable_limit_bytes=1 << 20, wal_limit_bytes=2048,
                           block_size_bytes=64, l0_compaction_trigger=2)

    @rule(key=HOT_KEYS, value=VALUES, times=st.integers(1, 120))
    def overwrite(self, key: bytes, value: bytes, times: int) -> None:
        for i in range(times):
            self.store.put(key, value + b"%d" % i)
        self.model[key] = value + b"%d" % (times - 1)

    @rule(key=HOT_KEYS)
    def delete(self, key: bytes) -> None:
        self.store.delete(key)
        self.model.pop(key, None)

    @rule()
    def checkpoint_written(self) -> None:
        """Let the storage thread catch up (steps are faster than its turns on the GIL)."""
        wait_until(lambda: self.store._checkpoint is None, 10, "the pending checkpoint written")

    @rule()
    def kill_and_reopen(self) -> None:
        self.store.wal_flush()                  # what was acknowledged is in the OS
        kill(self.store)
        self.store = LSMStore.open(self.dir, self.config, env=ENV)

    @invariant()
    def matches(self) -> None:
        assert list(self.store.scan()) == sorted(self.model.items())
        assert all(self.store.get(k) == v for k, v in self.model.items())


MODEL_SETTINGS = settings(max_examples=30, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
StoreModel.TestCase.settings = MODEL_SETTINGS
TinyRowCacheModel.TestCase.settings = MODEL_SETTINGS
test_engine_model = StoreModel.TestCase
test_engine_model_tiny_row_cache = TinyRowCacheModel.TestCase
CheckpointModel.TestCase.settings = MODEL_SETTINGS
test_engine_model_checkpoints = CheckpointModel.TestCase
