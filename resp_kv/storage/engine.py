"""LSMStore: the storage engine facade (ordered bytes -> bytes), in the shape of leveldb's DBImpl.

Write path: `put`/`delete`/`write_batch` append a WAL record to an in-memory buffer (wal.py) and
insert into the active memtable (memtable.py); the caller writes the buffer out once per
event-loop batch with `wal_flush()` and applies the fsync policy with `wal_sync()`. A memtable
past `memtable_limit_bytes`, or whose WAL segment passed `wal_limit_bytes` (overwrites in place
keep a memtable small while its log grows), is frozen, a new WAL segment starts, and the store's
background thread writes the frozen memtable to a level-0 SSTable (sstable.py), commits a new
manifest (manifest.py), publishes the result and deletes the old WAL segments. The same thread
runs the size-tiered compaction described in compaction.py; a long merge flushes frozen
memtables (and writes a pending checkpoint) in its pauses, so neither waits for a compaction.
At most MAX_IMMUTABLES frozen memtables may wait for the thread; past that, a write blocks
until one is flushed (back-pressure, bounded memory).

Checkpoints: when the WAL bound trips on a memtable at least CHECKPOINT_SHRINK times smaller
than its log (a hot key set rewritten in place), the log is rewritten instead, as Redis rewrites
its AOF: the memtable stays active (no flush, no SSTable to re-read its keys from, no compaction
later), the live segment rotates, and the background thread writes a snapshot of the memtable
(a dict copy taken on the loop: ~4 ms per 100k keys, the only stall) as the segment numbered
just below the new live one, fsyncs and renames it into place, then moves the manifest's log
number up to it and deletes the segments it replaces. Recovery needs nothing new: segments
replay in number order, a checkpoint not yet renamed is a `.tmp` file (deleted), and one renamed
but not yet in the manifest repeats entries the older segments already gave. While one is
pending, the bound waits for it until the live segment reaches twice the bound, then freezes.
(One node under the benchmark's SET load over 100k keys: the WAL bound's flushes became
checkpoints, and the GET rounds after them no longer pay a flush nor read a fresh SSTable.)

Read path: active memtable, frozen memtables newest first, then SSTables newest first; the first
source that knows the key wins (a tombstone reads as None). The key is hashed for the bloom
filters once per lookup, and all tables share one BlockCache of `block_cache_bytes`; a table
retired by compaction has its blocks evicted.

Row cache: what the tables answered for a key (its value, or None) is kept in a FIFO of
`row_cache_bytes`, valid for one set of tables: a flush or compaction publishes a new tables
tuple and the cache starts over. No write invalidates it, because every write lands in the
memtable, which is read first: a cached answer is shadowed until its key is flushed, and that
flush changes the tables. A write's read of the version it replaces (`get(key, fill=False)`)
does not add to it. Its tag is a reference to its tables tuple; `wal_flush` drops a stale one,
so retired tables (and their deleted files) are let go at the next write batch or read.
(storage_stall.py: a hot read of a flushed key, 2.4 us through bloom and cached block, 0.24 us
from the row cache, 0.2 us from the memtable.)

Threads: every public method except `wal_sync` is for one thread (the event loop). The
background thread never touches the active memtable; it publishes flush and compaction results
by assigning `_version`, a (frozen memtables, tables) tuple, under `_cv`. Readers take one
reference to the tuple and never lock. Only the background thread (and `open`) write manifests.

Recovery (`open`): read the manifest, delete files it does not reference, open its tables,
replay the WAL segments it still needs (torn tails truncated, see wal.py) into a memtable, write
that memtable to a table, commit a manifest, delete the replayed segments, start a fresh one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from mypy_extensions import mypyc_attr

from resp_kv.config import StorageConfig

from .compaction import Aborted, CompactionFilter, Pacer, collect_garbage, merge, paced, pick
from .env import Env, OsEnv
from .errors import CorruptionError, StorageClosed
from .block_cache import BlockCache
from . import bloom, sstable
from .format import (SST_SUFFIX, TMP_SUFFIX, WAL_SUFFIX, parse_number, sst_name,
                     wal_name)
from .manifest import ManifestState, TableMeta, load_manifest, store_manifest
from .memtable import Memtable
from .sstable import SSTableReader, write_table
from .wal import Wal, replay_segment, write_segment

# Final: C globals of this compiled module, not module-dict lookups (resp_kv/native.py)
MISSING: Final = sstable.MISSING
key_hash: Final = bloom.key_hash

log = logging.getLogger("resp_kv.storage")

MAX_IMMUTABLES = 4
# The WAL bound rewrites the log from the memtable (a checkpoint) instead of flushing it when
# that shrinks the log at least this many times: mostly overwrites of a hot key set.
CHECKPOINT_SHRINK = 4
ROW_OVERHEAD_BYTES = 150    # per row cache entry beyond key and value: two bytes headers, the slot


def _row_charge(key: bytes, value: bytes | None) -> int:
    """What a row cache entry counts against `row_cache_bytes`."""
    return len(key) + (len(value) if value is not None else 0) + ROW_OVERHEAD_BYTES


class _Table(SSTableReader):
    """An open SSTable plus its manifest entry."""

    def __init__(self, env: Env, path: Path, meta: TableMeta, cache: BlockCache) -> None:
        super().__init__(env, path, cache)
        self.meta = meta


@mypyc_attr(allow_interpreted_subclasses=True)     # a test's counting engine stands in for it
class LSMStore:
    """See the module docstring. Open with `LSMStore.open`; always `close()`."""

    _storage_thread: threading.Thread     # started by `open` (declared: compiled, see native.py)

    def __init__(self, directory: Path, config: StorageConfig, env: Env,
                 compaction_filter: CompactionFilter | None) -> None:
        self._dir, self._config, self._env = directory, config, env
        self._filter = compaction_filter
        self._limit = config.memtable_limit_bytes
        self._wal_limit = config.wal_limit_bytes
        self._cache = BlockCache(config.block_cache_bytes)
        self._closed = False
        self._cv = threading.Condition()
        self._file_lock = threading.Lock()
        self._next_file = 1
        self._log_number = 0
        self._version: tuple[tuple[Memtable, ...], tuple[_Table, ...]] = ((), ())
        self._stop = False
        self._bg_error: BaseException | None = None
        self._full_requested = self._full_done = 0
        self._flushes = self._compactions = self._retired_bloom_negatives = 0
        self._checkpoints = 0
        # A snapshot for the storage thread to write as a WAL segment: (its segment number,
        # the first segment of the memtable it was taken from, the entries); see _start_checkpoint.
        self._checkpoint: tuple[int, int, dict[bytes, bytes | None]] | None = None
        # The row cache (module docstring): key -> the tables' answer, for `_rows_tables`.
        self._rows: OrderedDict[bytes, bytes | None] = OrderedDict()
        self._rows_tables: tuple[_Table, ...] | None = None
        self._rows_bytes = 0
        self._rows_limit = config.row_cache_bytes
        self.row_cache_hits = 0

    # -- opening and recovery ---------------------------------------------------------------
    @classmethod
    def open(cls, directory: Path, config: StorageConfig, env: Env | None = None,
             compaction_filter: CompactionFilter | None = None) -> LSMStore:
        store = cls(Path(directory), config, env or OsEnv(), compaction_filter)
        store._recover()
        store._storage_thread = threading.Thread(target=store._run, name="resp-kv-storage",
                                                 daemon=True)
        store._storage_thread.start()
        return store

    def _recover(self) -> None:
        env, d = self._env, self._dir
        env.makedirs(d)
        state = load_manifest(env, d)
        live = {t.file_no for t in state.tables}
        wal_numbers, max_seen = [], 0
        for name in env.listdir(d):
            sst, wal = parse_number(name, SST_SUFFIX), parse_number(name, WAL_SUFFIX)
            max_seen = max(max_seen, sst or 0, wal or 0)
            if name.endswith(TMP_SUFFIX) or (sst is not None and sst not in live) or \
                    (wal is not None and wal < state.log_number):
                env.remove(d / name)
            elif wal is not None:
                wal_numbers.append(wal)
        tables = [self._open_table(meta) for meta in state.tables]
        mem = Memtable(0)
        for number in sorted(wal_numbers):
            for key, value in replay_segment(env, d / wal_name(number)):
                mem.put(key, value)
        self._next_file = max(state.next_file, max_seen + 1)
        self._log_number = wal_number = self._new_file_number()
        if len(mem):
            tables.insert(0, self._write_memtable(mem, lambda: False))
        self._version = ((), tuple(tables))
        self._store_manifest(self._version[1])
        for number in wal_numbers:
            env.remove(d / wal_name(number))
        self._mem = Memtable(wal_number)
        self._wal = Wal(env, d, wal_number)

    def _open_table(self, meta: TableMeta) -> _Table:
        path = self._dir / sst_name(meta.file_no)
        if not self._env.exists(path):
            raise CorruptionError(path, "listed in the manifest but missing")
        return _Table(self._env, path, meta, self._cache)

    def _new_file_number(self) -> int:
        with self._file_lock:
            number = self._next_file
            self._next_file += 1
            return number

    def _store_manifest(self, tables: tuple[_Table, ...]) -> None:
        with self._file_lock:
            next_file = self._next_file
        store_manifest(self._env, self._dir, ManifestState(
            next_file, self._log_number, tuple(t.meta for t in tables)))

    # -- the hot path (event-loop thread) ------------------------------------------------------
    def get(self, key: bytes, fill: bool = True) -> bytes | None:
        """The key's value, or None. `fill=False` is for the read of a write about to replace
        the value (a SET's old version): it uses the row cache but adds nothing to it, since
        the write makes any entry dead weight (1M new keys would fill it with Nones)."""
        if self._closed:
            raise StorageClosed()
        value = self._mem.data.get(key, MISSING)
        if value is not MISSING:
            return value
        imms, tables = self._version
        for mem in imms:
            value = mem.data.get(key, MISSING)
            if value is not MISSING:
                return value
        if not tables:
            return None
        rows = self._rows
        if self._rows_tables is not tables:       # a flush or compaction: start over
            self._reset_rows(tables)
        value = rows.get(key, MISSING)
        if value is not MISSING:
            self.row_cache_hits += 1
            return value
        h1, h2 = key_hash(key)
        for table in tables:
            value = table.get_hashed(key, h1, h2)
            if value is not MISSING:
                break
        else:
            value = None
        if not fill:
            return value
        charge = _row_charge(key, value)
        if charge <= self._rows_limit:
            rows[key] = value
            self._rows_bytes += charge
            while self._rows_bytes > self._rows_limit:
                self._rows_bytes -= _row_charge(*rows.popitem(last=False))
        return value

    def _reset_rows(self, tables: tuple[_Table, ...] | None) -> None:
        """Empty the row cache and tag it with `tables` (None: no tables referenced)."""
        self._rows.clear()
        self._rows_bytes = 0
        self._rows_tables = tables

    def row_cache_bytes(self) -> int:
        """The row cache's charged bytes (at most `row_cache_bytes`; tests, benchmarks)."""
        return self._rows_bytes

    def put(self, key: bytes, value: bytes) -> None:
        if self._closed:
            raise StorageClosed()
        # Compiled, both are C calls (they were inlined here while interpreted)
        self._wal.append_put(key, value)
        mem = self._mem
        mem.put(key, value)
        if mem.approx_bytes > self._limit:
            self._freeze()

    def delete(self, key: bytes) -> None:
        if self._closed:
            raise StorageClosed()
        self._wal.append_delete(key)
        mem = self._mem
        mem.put(key, None)
        if mem.approx_bytes > self._limit:
            self._freeze()

    def write_batch(self, ops: list[tuple[bytes, bytes | None]]) -> None:
        """Apply puts (value) and deletes (None) atomically with respect to a crash."""
        if self._closed:
            raise StorageClosed()
        if not ops:
            return
        self._wal.append_batch(ops)
        mem = self._mem
        for key, value in ops:
            mem.put(key, value)
        if mem.approx_bytes > self._limit:
            self._freeze()

    def scan(self, start: bytes = b"", end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Live entries with start <= key < end, ascending. A snapshot of the tables, not of
        the active memtable: writes made during the scan may or may not be seen."""
        if self._closed:
            raise StorageClosed()
        imms, tables = self._version
        sources = [self._mem.items(start, end)]
        sources += [m.items(start, end) for m in imms]
        sources += [t.items(start, end) for t in tables]
        merged = sources[0] if len(sources) == 1 else merge(sources)
        return ((k, v) for k, v in merged if v is not None)

    def wal_flush(self) -> int:
        """Write the buffered WAL records to the OS in one write(); return the byte count."""
        if self._closed:
            raise StorageClosed()
        written = self._wal.flush()
        if self._rows_tables is not None and self._rows_tables is not self._version[1]:
            # Tables were replaced since the last read: drop the cache and, with it, the last
            # reference to the retired tables, so their deleted files close now and not at
            # the next read (checked once per loop iteration that wrote).
            self._reset_rows(None)
        if written and self._wal.segment_bytes > self._wal_limit and len(self._mem):
            # A hot key set rewritten in place: the memtable stays under its limit while its
            # segment grows. Checked here, once per loop iteration, not on every put.
            segment = self._wal.segment_bytes
            if self._checkpoint is not None:
                if segment > 2 * self._wal_limit:      # it is late: bound the log anyway
                    self._freeze()
            elif self._mem.approx_bytes * CHECKPOINT_SHRINK <= segment and not self._version[0]:
                self._start_checkpoint()
            else:
                self._freeze()
        return written

    def wal_sync(self) -> None:
        """fdatasync the WAL. Safe from any thread; a no-op once the store is closed."""
        if not self._closed:
            self._wal.sync()

    def _start_checkpoint(self) -> None:
        """Rewrite the log from the memtable instead of flushing it (a hot key set stays in
        memory, as Redis rewrites its AOF): the live segment rotates to a new one, and the
        storage thread writes a snapshot of the memtable as the segment numbered just below
        it (`_write_checkpoint`); the segments before go once that one is durable. The
        snapshot is a dict copy on this thread (~4 ms per 100k entries)."""
        number = self._new_file_number()              # the checkpoint: replays before...
        self._wal.rotate(self._new_file_number())     # ...the segment taking the writes now
        with self._cv:
            self._checkpoint = (number, self._mem.wal_number, self._mem.data.copy())
            self._cv.notify_all()

    def _freeze(self) -> None:
        """Make the active memtable immutable and hand it to the background thread."""
        with self._cv:
            while len(self._version[0]) >= MAX_IMMUTABLES and self._bg_error is None:
                self._cv.wait()
            self._raise_bg_error()
        number = self._new_file_number()
        self._wal.rotate(number)
        with self._cv:                  # one step for the background thread: see _flush_immutable
            imms, tables = self._version
            self._version = ((self._mem, *imms), tables)
            self._mem = Memtable(number)
            self._cv.notify_all()

    # -- blocking maintenance (tests, DEBUG hooks) --------------------------------------------
    def flush(self) -> None:
        """Write the memtable to an SSTable now; return when every frozen memtable is flushed."""
        if self._closed:
            raise StorageClosed()
        if len(self._mem):
            self._freeze()
        with self._cv:
            while self._version[0] and self._bg_error is None:
                self._cv.wait()
            self._raise_bg_error()

    def compact(self) -> None:
        """Flush, then merge every table into one; return when done."""
        self.flush()
        with self._cv:
            self._full_requested += 1
            target = self._full_requested
            self._cv.notify_all()
            while self._full_done < target and self._bg_error is None:
                self._cv.wait()
            self._raise_bg_error()

    def set_compaction_filter(self, fn: CompactionFilter | None) -> None:
        self._filter = fn

    def _raise_bg_error(self) -> None:
        if self._bg_error is not None:
            raise self._bg_error

    def close(self) -> None:
        """Stop the background thread, write and sync the WAL, close every file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._storage_thread.join()
        self._wal.close()
        for table in self._version[1]:
            table.close()

    def stats(self) -> dict[str, int | str]:
        imms, tables = self._version
        mems = (self._mem, *imms)
        return {
            "fsync_policy": self._config.fsync,
            "wal_bytes": self._wal.bytes_written + len(self._wal.buffer),
            "memtable_keys": sum(len(m) for m in mems),
            "memtable_bytes": sum(m.approx_bytes for m in mems),
            "sstables": len(tables),
            "sstable_bytes": sum(t.size for t in tables),
            "flushes": self._flushes,
            "wal_checkpoints": self._checkpoints,
            "compactions": self._compactions,
            "bloom_negatives": self._retired_bloom_negatives + sum(t.bloom_negatives for t in tables),
            "row_cache_bytes": self._rows_bytes,
            "row_cache_hits": self.row_cache_hits,
        }

    # -- background thread --------------------------------------------------------------------
    def _stopping(self) -> bool:
        return self._stop

    def _run(self) -> None:
        while True:
            with self._cv:
                job = self._next_job()
                while job is None and not self._stop:
                    self._cv.wait()
                    job = self._next_job()
                if self._stop:
                    return
            try:
                job()
            except Aborted:
                return
            except BaseException as exc:       # surfaced by flush()/compact()/put back-pressure
                log.exception("storage background thread failed")
                with self._cv:
                    self._bg_error = exc
                    self._cv.notify_all()
                return
            with self._cv:
                self._cv.notify_all()

    def _next_job(self):
        imms, tables = self._version
        if self._checkpoint is not None:                 # before a flush of its memtable
            return self._write_checkpoint
        if imms:
            return lambda: self._flush_immutable(imms[-1])
        if self._full_requested > self._full_done:
            target = self._full_requested
            return lambda: self._compact_range(0, len(tables), None, target)
        choice = pick([t.meta.level for t in tables], self._config.l0_compaction_trigger)
        if choice is not None:
            return lambda: self._compact_range(*choice, None)
        return None

    def _write_memtable(self, mem: Memtable, should_stop) -> _Table:
        number = self._new_file_number()
        path = self._dir / sst_name(number)
        pacer = Pacer(should_stop)
        size, entries = write_table(self._env, path, paced(mem.items(), pacer),
                                    self._config.block_size_bytes, self._config.bloom_bits_per_key,
                                    pacer.tick)
        return _Table(self._env, path, TableMeta(number, 0, size, entries), self._cache)

    def _flush_immutable(self, mem: Memtable) -> None:
        table = self._write_memtable(mem, self._stopping)
        with self._cv:                  # the oldest WAL segment still needed after this flush
            imms, tables = self._version
            self._log_number = min(m.wal_number for m in (*imms[:-1], self._mem))
        self._store_manifest((table, *tables))
        with self._cv:
            imms, tables = self._version
            self._version = (imms[:-1], (table, *tables))
            self._flushes += 1
        self._wal.retire_below(self._log_number)

    def _write_checkpoint(self) -> None:
        """Write the snapshot `_start_checkpoint` took as WAL segment `number`; then the
        memtable it was taken from (active or frozen since) starts at that segment, the
        manifest's log number moves up to it, and the older segments are deleted. A crash
        before the manifest commit replays the old segments, the checkpoint (the same
        entries again, if it was renamed into place) and the live one, in that order."""
        number, first, snapshot = self._checkpoint
        pacer = Pacer(self._stopping)
        size = write_segment(self._env, self._dir, number, paced(snapshot.items(), pacer))
        self._wal.add_sealed(number, size)
        with self._cv:
            imms, tables = self._version
            for mem in (*imms, self._mem):
                if mem.wal_number == first:
                    mem.wal_number = number
            self._log_number = min(m.wal_number for m in (*imms, self._mem))
        self._store_manifest(tables)
        with self._cv:
            self._checkpoint = None
            self._checkpoints += 1
        self._wal.retire_below(self._log_number)

    def _flush_frozen(self) -> None:
        """Write a pending checkpoint and flush every frozen memtable now (called in the pauses
        of a long merge: neither waits for a compaction)."""
        if self._checkpoint is not None and not self._stop:
            self._write_checkpoint()
        while self._version[0] and not self._stop:
            self._flush_immutable(self._version[0][-1])

    def _compact_range(self, start: int, stop: int, out_level: int | None, full: int | None) -> None:
        tables = self._version[1]
        inputs = tables[start:stop]
        if inputs:
            level = out_level if out_level is not None else max(1, *(t.meta.level for t in inputs))
            output = self._merge_tables(inputs, bottom=stop == len(tables), level=level)
            tables = self._version[1]           # flushes during the merge only prepended tables
            start = next(i for i, t in enumerate(tables) if t is inputs[0])
            new_tables = (*tables[:start], *output, *tables[start + len(inputs):])
            self._store_manifest(new_tables)
            with self._cv:
                self._version = (self._version[0], new_tables)
                self._compactions += 1
            for table in inputs:
                self._retired_bloom_negatives += table.bloom_negatives
                table.retire()
                self._env.remove(table.path)     # the fd stays open until the reader is dropped
        if full is not None:
            with self._cv:
                self._full_done = max(self._full_done, full)

    def _merge_tables(self, inputs: tuple[_Table, ...], bottom: bool, level: int) -> tuple[_Table, ...]:
        now_ms = int(time.time() * 1000)
        merged = collect_garbage(merge([t.items() for t in inputs]), bottom, self._filter, now_ms)
        number = self._new_file_number()
        path = self._dir / sst_name(number)
        pacer = Pacer(self._stopping, self._flush_frozen)
        size, entries = write_table(self._env, path, paced(merged, pacer),
                                    self._config.block_size_bytes, self._config.bloom_bits_per_key,
                                    pacer.tick)
        if entries == 0:
            self._env.remove(path)
            return ()
        return (_Table(self._env, path, TableMeta(number, level, size, entries), self._cache),)
