"""Storage read path: µs per LSMStore.get by where the answer comes from.

    .venv/bin/python bench/storage_reads.py [--keys 200000] [--tables 4]

Builds `--tables` SSTables of interleaved keys (table t holds keys i with i % tables == t, so
every table spans the whole key range and a lookup may probe all of them), plus a memtable.
Times, best chunk average on the calling thread:
  (CPU time of the calling thread, time.thread_time: robust to a loaded machine)
  memtable hit; newest-table / oldest-table hit with the block cached (a small working set,
  read twice) and uncached (cache off, random keys); absent keys that fall inside blocks, with
  blocks cached and with the cache off (bloom filters answer). Values are 100 bytes, keys are
  20 bytes, like redis-benchmark -d 100 through the replica's encoding.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shutil
import tempfile
import time
from pathlib import Path

from resp_kv.config import StorageConfig
from resp_kv.storage import LSMStore


def _best_us(fn, items, chunk: int = 200) -> float:
    best = float("inf")
    for i in range(0, len(items), chunk):
        part = items[i:i + chunk]
        start = time.thread_time()
        for item in part:
            fn(item)
        best = min(best, (time.thread_time() - start) / len(part))
    return best * 1e6


def _config(cache_bytes: int | None) -> StorageConfig:
    config = StorageConfig(memtable_limit_bytes=1 << 30, l0_compaction_trigger=1000)
    if cache_bytes is not None and "block_cache_bytes" in {f.name for f in dataclasses.fields(config)}:
        config = dataclasses.replace(config, block_cache_bytes=cache_bytes)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--tables", type=int, default=4)
    args = parser.parse_args()
    n, t = args.keys, args.tables
    directory = Path(tempfile.mkdtemp(prefix="resp-kv-reads-"))
    key = lambda i: b"key:%016d" % i          # noqa: E731
    value = b"v" * 100
    try:
        store = LSMStore.open(directory, _config(None))
        for table in range(t):                  # the last one written is the newest
            for i in range(table, n, t):
                store.put(key(i), value)
            store.wal_flush()
            store.flush()
        store.close()
        rng = random.Random(7)
        newest = [key(i) for i in range(t - 1, n, t)]
        oldest = [key(i) for i in range(0, n, t)]
        absent = [b"key:%016d-" % rng.randrange(n) for _ in range(20_000)]
        mem = [key(i) for i in range(n, n + 20_000)]

        store = LSMStore.open(directory, _config(None))       # default cache
        for k in mem:
            store.put(k, value)
        store.wal_flush()
        print(f"{t} tables, {n} keys; {store.stats()}")
        for _ in range(2):
            store.get(key(n))                   # warm
        results = {"get memtable hit": _best_us(store.get, mem)}
        for name, keys in (("newest", newest), ("oldest", oldest)):
            hot = rng.sample(keys, 2000)
            for k in hot:
                store.get(k)
            results[f"get {name} table, block cached"] = _best_us(store.get, hot)
        hot_absent = absent[:2000]
        for k in hot_absent:
            store.get(k)
        results["get absent, blocks cached"] = _best_us(store.get, hot_absent)
        store.close()

        store = LSMStore.open(directory, _config(0))          # cache off (before: 64-block FIFO)
        for name, keys in (("newest", newest), ("oldest", oldest)):
            cold = rng.sample(keys, 10_000)
            results[f"get {name} table, uncached"] = _best_us(store.get, cold, chunk=50)
        results["get absent, bloom miss"] = _best_us(store.get, absent)
        store.close()
        for name, us in results.items():
            print(f"{name:34s} {us:6.2f} µs")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
