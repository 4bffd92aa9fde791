"""Repair cost: what one Merkle anti-entropy exchange moves and how long it takes.

Two nodes in one process, each with its own LSM engine (resp_kv.storage) in a temp dir, its
own Replica and AntiEntropy, talking through the real peer protocol (PeerServer + PeerTransport
over loopback). Both hold the same `keys` records (loaded straight into the stores, with the
tree updated by the write listener, as a replica write would); then, for each divergence d, d
keys get a newer version on node b only and node a runs one exchange with b. After it the two
trees are equal again (checked), so the next divergence starts in sync.

Columns: bytes exchanged (both directions, RESP frame sizes) and wall time of the exchange,
against shipping the whole range: the RESP size of every (key, encoded siblings) record, and
the time to scan and frame them locally (a lower bound: no network, no receiver).

    .venv/bin/python bench/repair_cost.py [--sizes 10000,100000,1000000] [--divergence 0,10,1000]
                                          [--json bench/results/repair_cost.json]

Not a throughput benchmark (bench/run.py is); numbers are per exchange.

Measured 2026-11-22 on a 2-core VM shared with other jobs (load average ~6, so times are
pessimistic; the scan column shows how slow a Python LSM scan was there):

    | keys      | diverged | moved | exchanged | exchange time | whole range | whole-range scan | ratio |
    |---|---|---|---|---|---|---|---|
    |    10,000 |     0 |     0 |     145 B |      7.5 ms |    1.0 MB |      46.3 ms |  0.00013 |
    |    10,000 |    10 |    10 |    8.7 KB |      8.8 ms |    1.0 MB |      46.3 ms |  0.00814 |
    |    10,000 |  1000 |  1000 |  382.8 KB |    461.3 ms |    1.0 MB |      46.3 ms |  0.35961 |
    |   100,000 |     0 |     0 |     145 B |      6.9 ms |   10.4 MB |     652.9 ms |  0.00001 |
    |   100,000 |    10 |    10 |   10.5 KB |      8.6 ms |   10.4 MB |     652.9 ms |  0.00099 |
    |   100,000 |  1000 |  1000 |  549.0 KB |    341.6 ms |   10.4 MB |     652.9 ms |  0.05158 |
    | 1,000,000 |     0 |     0 |     145 B |     26.6 ms |  104.0 MB |   29264.3 ms |  0.00000 |
    | 1,000,000 |    10 |    10 |   16.1 KB |     35.5 ms |  104.0 MB |   29264.3 ms |  0.00015 |
    | 1,000,000 |  1000 |  1000 |    1.2 MB |   3946.2 ms |  104.0 MB |   29264.3 ms |  0.01180 |
    
    in-sync check of 1,000,000 keys: 145 bytes, 26.6 ms (goal: < 100 KB, < 1 s)

An in-sync check costs one AE.ROOT and one AE.DONE round trip whatever the size (the goal was
< 100 KB and < 1 s for 1M keys). With d diverged keys the cost is the walk to the differing
leaves (up to 16 x 16 bytes per differing node per level, or the leaves' key lists where keys
are sparser than that), the (key, digest, dots) lists of those leaves, and the d objects once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster import merkle, versioning  # noqa: E402
from cluster.antientropy import AntiEntropy, wire_size  # noqa: E402
from cluster.clock import SystemClock  # noqa: E402
from cluster.peer_server import PeerServer  # noqa: E402
from cluster.replica import DATA_END, DATA_PREFIX, Replica, data_key  # noqa: E402
from cluster.ring import Ring  # noqa: E402
from cluster.transport import PeerTransport  # noqa: E402
from cluster.types import Sibling, key_token  # noqa: E402
from resp_kv.config import StorageConfig  # noqa: E402
from resp_kv.durability import DurableStore  # noqa: E402
from resp_kv.storage.engine import LSMStore  # noqa: E402

VALUE_BYTES = 32


class BenchNode:
    """One node: LSM store, replica, Merkle anti-entropy, peer server and transport."""

    def __init__(self, name: str, directory: Path, ring: Ring, ports: dict[str, int]) -> None:
        self.name = name
        engine = LSMStore.open(directory, StorageConfig(data_dir=directory, fsync="no"))
        self.engine, self.store = engine, DurableStore(engine, "no")
        self.replica = Replica(self.store)
        clock = SystemClock()
        self.transport = PeerTransport(name, None, lambda n: ("127.0.0.1", ports[n]), clock, 30.0)
        self.server = PeerServer("127.0.0.1", 0, None)
        self.ae = AntiEntropy(name, self.store, self.replica, ring=lambda: ring, replicas=2,
                              call=self.transport.call, clock=clock)
        self.ae.register(self.server.register)

    async def start(self) -> int:
        await self.server.start()
        await self.transport.start()
        await self.ae.start()
        await asyncio.wait_for(self.ae._ready.wait(), 600)
        return self.server.port

    async def stop(self) -> None:
        await self.ae.stop()
        await self.transport.stop()
        await self.server.stop()
        self.engine.close()

    def load(self, keys: list[bytes]) -> None:
        """Store one identical version of every key, as a replica write would (listener incl.)."""
        put, on_write = self.store.put, self.ae.on_write
        for key in keys:
            token = key_token(key)
            raw = versioning.encode_siblings(
                [Sibling(("loader@1", 1), {}, key.ljust(VALUE_BYTES, b"v"), 1_000)])
            store_key = data_key(token, key)
            put(store_key, raw)
            on_write(key, store_key, None, raw)
        self.store.engine.wal_flush()

    def diverge(self, keys: list[bytes], round_no: int) -> int:
        """Give `keys` a newer version here only; return the payload bytes of those records."""
        total = 0
        for key in keys:
            newer = Sibling((f"bench@{round_no}", 1), {"loader@1": 1},
                            b"newer-" + key.ljust(VALUE_BYTES, b"n"), 2_000)
            self.replica.apply(key, key_token(key), [newer])
            total += wire_size([key, self.replica.read_encoded(key, key_token(key))])
        return total

    def whole_range(self) -> tuple[int, float]:
        """Bytes and local time to frame every record of the range (shipping it all)."""
        started, total = time.perf_counter(), 0
        for store_key, raw in self.store.scan(DATA_PREFIX, DATA_END):
            total += wire_size([store_key[9:], raw])
        return total, time.perf_counter() - started


async def measure(size: int, divergences: list[int], workdir: Path) -> list[dict]:
    ring = Ring(["a", "b"], 64)
    ports: dict[str, int] = {}
    a = BenchNode("a", workdir / f"a{size}", ring, ports)
    b = BenchNode("b", workdir / f"b{size}", ring, ports)
    ports["a"], ports["b"] = await a.start(), await b.start()
    rows = []
    try:
        keys = [b"key:%09d" % i for i in range(size)]
        started = time.perf_counter()
        a.load(keys)
        b.load(keys)
        load_s = time.perf_counter() - started
        full_bytes, full_s = a.whole_range()
        rng = random.Random(size)
        for round_no, d in enumerate(divergences, 1):
            payload = b.diverge(rng.sample(keys, d), round_no) if d else 0
            started = time.perf_counter()
            stats = await a.ae.exchange("b")
            elapsed = time.perf_counter() - started
            assert a.ae.tree.root == b.ae.tree.root, "exchange left the trees different"
            rows.append({
                "keys": size, "divergent": d, "bytes": stats.bytes_sent + stats.bytes_received,
                "bytes_sent": stats.bytes_sent, "bytes_received": stats.bytes_received,
                "keys_moved": stats.keys_sent + stats.keys_received,
                "segments_differing": stats.ranges_differing, "divergent_payload": payload,
                "time_ms": round(elapsed * 1000, 1), "whole_range_bytes": full_bytes,
                "whole_range_local_ms": round(full_s * 1000, 1), "load_s": round(load_s, 1),
            })
            print(_line(rows[-1]), flush=True)
    finally:
        await a.stop()
        await b.stop()
    return rows


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _line(row: dict) -> str:
    ratio = row["bytes"] / row["whole_range_bytes"] if row["whole_range_bytes"] else 0
    return (f"| {row['keys']:>9,} | {row['divergent']:>5} | {row['keys_moved']:>5} "
            f"| {_human(row['bytes']):>9} | {row['time_ms']:>8.1f} ms "
            f"| {_human(row['whole_range_bytes']):>9} | {row['whole_range_local_ms']:>9.1f} ms "
            f"| {ratio:8.5f} |")


HEADER = ("| keys      | diverged | moved | exchanged | exchange time | whole range | "
          "whole-range scan | ratio |\n|---|---|---|---|---|---|---|---|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--divergence", default="0,10,1000")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    divergences = [int(d) for d in args.divergence.split(",")]
    print(HEADER)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="repair-cost-") as tmp:
        for size in sizes:
            rows += asyncio.run(measure(size, divergences, Path(tmp)))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2))
    in_sync = [r for r in rows if r["divergent"] == 0]
    if in_sync:
        worst = max(in_sync, key=lambda r: r["keys"])
        print(f"\nin-sync check of {worst['keys']:,} keys: {worst['bytes']} bytes, "
              f"{worst['time_ms']} ms (goal: < 100 KB, < 1 s)")
    _ = merkle.SEGMENTS


if __name__ == "__main__":
    main()
