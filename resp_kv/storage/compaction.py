"""Compaction: which tables to merge (`pick`, pure) and how to merge them (`merge`, `compact`).

Strategy: size-tiered by level (the shape of Cassandra's STCS / leveldb's L0 rule). A flush
writes a level-0 table. When some level L holds `l0_compaction_trigger` tables or more, all of
level L is merged into one table at level L+1. Tables stay ordered newest first with levels
never decreasing, so the tables of one level are contiguous and a merge's output takes their
place. Why tiered and not leveled: every byte is rewritten about log_T(total / memtable) times
instead of ~10x per level, which matters most here because the merge runs in Python on the
serving process; point reads stay cheap thanks to the bloom filters, and the number of tables is
still logarithmic in the data size. `compact()` merges every table into one (a full compaction).

The merge is a k-way heap merge where, for equal keys, the newest source wins.

Garbage rule (what may disappear during a merge):
  * A tombstone is dropped only when the merge includes the oldest table of the store (it is a
    "bottom" merge): nothing older remains below that it could uncover. Otherwise it is kept.
  * The compaction filter `fn(key, value, now_ms) -> True` is consulted for live records only,
    never for tombstones. A record it rejects is dropped in a bottom merge; in any other merge
    it is rewritten as a tombstone, so an older version of the key below cannot resurrect.
  * Memtable flushes never drop anything and never call the filter.
  * A filter that raises keeps the record (logged): a bug there must not stop the storage thread.

Pacing: the merge runs on the store's background thread. `paced` checks the clock every
PACE_RECORDS records and, once it has held the CPU for PACE_SLICE_S, sleeps PACE_SLEEP_S so the
event loop takes the GIL. A real sleep, not `sleep(0)`: with sleep(0) the running thread takes
the GIL straight back, and since that counts as a switch, the waiting loop thread never even
gets to request one (CPython's take_gil), so it starved for tens of ms (bench/storage_stall.py).
Measured there (200k-key merge, loop waking every 0.2 ms, shared 2-core VM): median wake-to-put
latency 73 µs with no merge running, 375 µs during a merge with 0.5 ms slices, 108 µs with
0.2 ms slices (at the cost of a slower merge: each pause is ~60-80 µs with timer slack).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterable, Iterator

log = logging.getLogger("resp_kv.storage")

CompactionFilter = Callable[[bytes, bytes, int], bool]
Entry = tuple[bytes, bytes | None]

PACE_RECORDS = 32            # records between two clock checks        (bench/storage_stall.py)
PACE_SLICE_S = 0.00025       # slice of the background thread before it yields the GIL
PACE_SLEEP_S = 0.00002       # then it sleeps (≈ 60 µs with the kernel's timer slack)


class Aborted(Exception):
    """The store is closing; a merge in progress gives up (its output file is deleted)."""


def pick(levels: list[int], trigger: int) -> tuple[int, int, int] | None:
    """Choose a merge. `levels`: table levels, newest first.

    Return (start, stop, out_level): merge tables[start:stop] into one table at out_level; or
    None when no level holds `trigger` tables.
    """
    for level in sorted(set(levels)):
        idx = [i for i, lv in enumerate(levels) if lv == level]
        if len(idx) >= max(2, trigger):
            return idx[0], idx[-1] + 1, level + 1
    return None


def _tagged(rank: int, source: Iterable[Entry]) -> Iterator[tuple[bytes, int, bytes | None]]:
    for key, value in source:
        yield key, rank, value


def merge(sources: list[Iterable[Entry]]) -> Iterator[Entry]:
    """Merge sorted sources (newest first) into one sorted stream; newest wins per key."""
    last = None
    for key, _, value in heapq.merge(*(_tagged(r, s) for r, s in enumerate(sources))):
        if key != last:
            last = key
            yield key, value


def collect_garbage(entries: Iterable[Entry], bottom: bool, fn: CompactionFilter | None,
                    now_ms: int) -> Iterator[Entry]:
    """Apply the garbage rule of the module docstring to a merged stream."""
    for key, value in entries:
        if value is None:
            if not bottom:
                yield key, None
        elif fn is not None and _rejects(fn, key, value, now_ms):
            if not bottom:
                yield key, None
        else:
            yield key, value


def _rejects(fn: CompactionFilter, key: bytes, value: bytes, now_ms: int) -> bool:
    """Ask the filter; a filter that raises keeps the record (a bug there must not stop flushes)."""
    try:
        return bool(fn(key, value, now_ms))
    except Exception:                                   # noqa: BLE001 - logged, record kept
        log.exception("compaction filter raised on key %r; keeping the record", key[:64])
        return False


class Pacer:
    """Call `tick()` often from a long CPU-bound job on the background thread (see above)."""

    __slots__ = ("_should_stop", "_on_yield", "_n", "_slice_start")
    longest_slice_s = 0.0       # longest run between two yields, process-wide (for the bench)

    def __init__(self, should_stop: Callable[[], bool],
                 on_yield: Callable[[], None] | None = None) -> None:
        self._should_stop = should_stop
        self._on_yield = on_yield     # e.g. flush frozen memtables in the middle of a long merge
        self._n = 0
        self._slice_start = time.perf_counter()

    def tick(self) -> None:
        self._n += 1
        if self._n < PACE_RECORDS:
            return
        self._n = 0
        held = time.perf_counter() - self._slice_start
        if held >= PACE_SLICE_S:
            if held > Pacer.longest_slice_s:
                Pacer.longest_slice_s = held
            time.sleep(PACE_SLEEP_S)
            if self._on_yield is not None:
                self._on_yield()
            self._slice_start = time.perf_counter()
        if self._should_stop():
            raise Aborted


def paced(entries: Iterable[Entry], pacer: Pacer) -> Iterator[Entry]:
    """Pass `entries` through, ticking `pacer` per record (Aborted when the store closes)."""
    tick = pacer.tick
    for entry in entries:
        yield entry
        tick()
