"""Storage engine benchmarks: hot-path µs per operation, and the put stall during compaction.

    .venv/bin/python bench/storage_stall.py [--keys 200000] [--micro-only]

Micro: µs per put (new key, memtable insert + WAL append), per overwrite, per get on a memtable
hit, an SSTable hit and a bloom miss, with timeit-style loops on the calling thread.
Stall: builds `--keys` keys in 4 overlapping L0 tables, then times single puts on the main
thread (as the event loop would do them) while the background thread merges them, and again
with no background work; prints max / p99 / p50 put latency for both runs.
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from resp_kv.config import StorageConfig
from resp_kv.storage import LSMStore
from resp_kv.storage.compaction import PACE_RECORDS, Pacer
from resp_kv.storage.memtable import Memtable
from sortedcontainers import SortedDict


def _best_us(fn, items, chunk: int = 200) -> float:
    """µs per call of fn(item): the best chunk average (robust to a noisy, shared machine)."""
    best = float("inf")
    for i in range(0, len(items), chunk):
        part = items[i:i + chunk]
        start = time.perf_counter()
        for item in part:
            fn(item)
        best = min(best, (time.perf_counter() - start) / len(part))
    return best * 1e6


def _calibration_ns() -> float:
    """ns per `d[k] = v` on this machine (≈ 25-35 ns on an idle modern x86 core)."""
    d, keys = {}, [b"c%d" % i for i in range(1000)]
    best = float("inf")
    for _ in range(200):
        start = time.perf_counter()
        for k in keys:
            d[k] = k
        best = min(best, (time.perf_counter() - start) / len(keys))
    return best * 1e9


def memtable_choice(n: int = 100_000) -> None:
    """dict + SortedList (what memtable.py uses) against SortedDict, random-order new keys."""
    keys = [random.randbytes(9) + b"key:%d" % i for i in range(n)]
    value = b"x" * 32
    sd = SortedDict()
    sd_us = _best_us(lambda k: sd.__setitem__(k, value), keys)
    mem = Memtable(0)
    mem_us = _best_us(lambda k: mem.put(k, value), keys)
    print(f"memtable new key: SortedDict {sd_us:5.2f} µs, Memtable(dict+SortedList) {mem_us:5.2f} µs")


def micro(directory: Path, n: int = 200_000) -> None:
    print(f"calibration: dict set {_calibration_ns():.0f} ns")
    memtable_choice()
    config = StorageConfig(memtable_limit_bytes=1 << 30)
    store = LSMStore.open(directory / "micro", config)
    keys = [b"d" + random.randbytes(8) + b"key:%d" % i for i in range(n)]   # token-ordered keys
    value = b"x" * 32
    put = store.put
    new_us = _best_us(lambda k: put(k, value), keys)
    over_us = _best_us(lambda k: put(k, value), keys)
    store.wal_flush()
    mem_get_us = _best_us(store.get, keys)
    store.flush()
    cold = keys[::7]
    sst_get_us = _best_us(store.get, cold, chunk=50)
    sst_row_us = _best_us(store.get, [keys[0]] * 50_000)
    miss_us = _best_us(store.get, [b"absent:%d" % i for i in range(100_000)])
    negatives = store.stats()["bloom_negatives"]
    store.close()
    store = LSMStore.open(directory / "micro", replace(config, row_cache_bytes=0))
    store.get(keys[0])
    sst_block_us = _best_us(store.get, [keys[0]] * 50_000)
    store.close()
    print(f"put new key      {new_us:6.2f} µs   ({n} random keys, 32-byte values; WAL + memtable)")
    print(f"put overwrite    {over_us:6.2f} µs")
    print(f"get memtable     {mem_get_us:6.2f} µs")
    print(f"get sstable      {sst_get_us:6.2f} µs   (bloom + pread + crc + block decode + row cache insert)")
    print(f"get sstable hot  {sst_row_us:6.2f} µs   (row cache hit)")
    print(f"  row cache off  {sst_block_us:6.2f} µs   (bloom + cached block)")
    print(f"get bloom miss   {miss_us:6.2f} µs   (bloom_negatives={negatives}; first read: cached after)")


IDLE_S = 0.0002      # the loop sleeps in epoll between requests (GIL released), then wakes


def _latencies(store: LSMStore, count: int, stop_when=None) -> tuple[list[float], list[float]]:
    """Return (put latencies, wake-to-done latencies).

    wake-to-done = time from the end of an idle period to the end of the put: it includes
    re-acquiring the GIL from the background thread, which is the stall an event loop sees.
    """
    puts, wakes, put, clock, sleep = [], [], store.put, time.perf_counter, time.sleep
    value = b"y" * 32
    i = 0
    while (stop_when is None and i < count) or (stop_when is not None and not stop_when()):
        idle_start = clock()
        sleep(IDLE_S)
        start = clock()
        put(b"live:%09d" % (i % 50_000), value)
        end = clock()
        puts.append(end - start)
        wakes.append(end - idle_start - IDLE_S)
        i += 1
        if i % 16 == 0:
            store.wal_flush()
    return puts, wakes


def _report(name: str, samples: list[float]) -> None:
    samples = sorted(samples)
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1e6  # noqa: E731
    print(f"{name:28s} n={len(samples):7d}  p50={p(0.5):7.1f} µs  p99={p(0.99):7.1f} µs  "
          f"p99.9={p(0.999):7.1f} µs  max={samples[-1] * 1e6:8.1f} µs")


def stall(directory: Path, keys: int) -> None:
    config = StorageConfig(memtable_limit_bytes=1 << 30, l0_compaction_trigger=4)
    store = LSMStore.open(directory / "stall", config)
    value = b"v" * 64
    for t in range(4):                           # four overlapping tables of `keys` keys in all
        for i in range(t, keys, 4):
            store.put(b"key:%012d" % i, value)
        store.flush()
    before = store.stats()["compactions"]
    assert store.stats()["sstables"] in (1, 4)   # pick() may already have started
    start = time.perf_counter()
    during, during_wake = _latencies(store, 0, stop_when=lambda: store.stats()["compactions"] > before)
    took = time.perf_counter() - start
    baseline, baseline_wake = _latencies(store, len(during))
    print(f"compaction of {keys} keys (4 L0 tables -> 1) took {took:.2f} s on the background thread"
          f" (PACE_RECORDS={PACE_RECORDS})")
    _report("put during compaction", during)
    _report("put without compaction", baseline)
    _report("wake+put during compaction", during_wake)
    _report("wake+put without compaction", baseline_wake)
    print(f"longest background slice between GIL yields: {Pacer.longest_slice_s * 1e3:.2f} ms (wall)")
    print(f"gc: {gc.get_stats()}")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--micro-only", action="store_true")
    parser.add_argument("--switch-interval-ms", type=float, default=None,
                        help="sys.setswitchinterval for the run (CPython default 5 ms)")
    args = parser.parse_args()
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    print(f"switch interval {sys.getswitchinterval() * 1e3:.1f} ms")
    directory = Path(tempfile.mkdtemp(prefix="resp-kv-bench-"))
    try:
        micro(directory)
        if not args.micro_only:
            stall(directory, args.keys)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
