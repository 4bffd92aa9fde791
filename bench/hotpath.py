"""In-process profile of the client command path, without sockets: RespProtocol.data_received ->
parser -> Dispatcher.drain -> commands -> ClusterBackend -> Cluster (single node) ->
DurableStore -> LSMStore, replies into a transport that only counts bytes.

Why: on this shared 2-core machine wall and CPU times swing with other load; this isolates the
Python work per command so a profiler (pyinstrument, or `--profile`) shows where it goes, and
`valgrind --tool=callgrind` can count its instructions repeatably.

    .venv/bin/python bench/hotpath.py [--commands get|set|ping] [--pipeline 16] [--profile]

`--pipeline 1` is what redis-benchmark -P 1 costs per request minus the kernel: each request is
its own `data_received` call, so the per-batch costs of the shell show.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import tempfile
import time
from pathlib import Path

from cluster.service import Cluster
from resp_kv.backend import ClusterBackend
from resp_kv.commands.mutations import MUTATORS
from resp_kv.config import ClusterConfig, Config, StorageConfig
from resp_kv.durability import DurableStore
from resp_kv.node import GC_THRESHOLDS
from resp_kv.server import RespProtocol, RespServer
from resp_kv.server_state import ServerState
from resp_kv.storage.engine import LSMStore


def _frame(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class _CountingTransport:
    """The part of asyncio.Transport RespProtocol uses; counts replies instead of sending."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


async def run(command: str, n: int, keys: int, pipeline: int) -> float:
    data_dir = Path(tempfile.mkdtemp(prefix="hotpath-"))
    config = Config(storage=StorageConfig(data_dir=data_dir, memtable_limit_bytes=1 << 31),
                    cluster=ClusterConfig(node_id="bench", anti_entropy_interval_s=0))
    engine = LSMStore.open(data_dir / "lsm", config.storage)
    store = DurableStore(engine, "everysec")
    cluster = Cluster(config.cluster, store, MUTATORS)
    await cluster.start()
    backend = ClusterBackend(cluster, engine.stats)
    server = RespServer(config, backend, ServerState(config), durable=store)
    protocol = RespProtocol(server)
    transport = _CountingTransport()
    protocol.connection_made(transport)
    # redis-benchmark's -d 100 value: random bytes from `0` to `z` (so `=`, `>`, `<`...), which
    # the request parser screens (a run of b"x" does not show that work).
    rng = random.Random(100)
    value = bytes(rng.randrange(0x30, 0x7B) for _ in range(100))
    for i in range(keys):                                   # preload: GETs hit
        await backend.put(b"key:%012d" % i, value)
    store.barrier()
    # One frame per key, built once: the setup that grows with n is then an index and a join,
    # so the difference of two callgrind runs at different n is the server's work alone.
    if command == "get":
        per_key = [_frame(b"GET", b"key:%012d" % i) for i in range(keys)]
    elif command == "set":
        per_key = [_frame(b"SET", b"key:%012d" % i, value) for i in range(keys)]
    else:
        per_key = [_frame(b"PING")]
    frames = [b"".join([per_key[(i * pipeline + j) * 7919 % keys % len(per_key)]
                        for j in range(pipeline)])
              for i in range(n // pipeline)]
    gc.freeze()                                             # the node's GC policy (node.py)
    gc.set_threshold(*GC_THRESHOLDS)
    data_received = protocol.data_received
    start = time.process_time()
    for chunk in frames:                                    # one socket read each
        data_received(chunk)
    elapsed = time.process_time() - start
    await asyncio.sleep(0)                                  # let end-of-iteration work run
    reply_size = {"get": len(b"$100\r\n") + len(value) + 2, "set": len(b"+OK\r\n"),
                  "ping": len(b"+PONG\r\n")}[command]
    if transport.written != n * reply_size:                 # every GET hit, every reply sent
        raise SystemExit(f"wrote {transport.written} bytes, expected {n * reply_size}")
    protocol.connection_lost(None)
    await cluster.stop()
    store.close()
    return elapsed * 1e6 / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", default="get", choices=("get", "set", "ping"))
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.profile:
        from pyinstrument import Profiler
        profiler = Profiler(interval=0.0002)
        profiler.start()
    us = asyncio.run(run(args.commands, args.n, args.keys, args.pipeline))
    if args.profile:
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    print(f"{args.commands}: {us:.2f} us CPU per command (in-process, pipeline {args.pipeline})")


if __name__ == "__main__":
    main()
