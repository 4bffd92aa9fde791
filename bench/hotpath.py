"""In-process profile of the client command path, without sockets: parser -> Dispatcher.drain ->
commands -> ClusterBackend -> Cluster (single node) -> DurableStore -> LSMStore.

Why: on this shared 2-core machine wall and CPU times swing with other load; this isolates the
Python work per command so a profiler (pyinstrument, or `--profile`) shows where it goes, and
`valgrind --tool=callgrind` can count its instructions repeatably.

    .venv/bin/python bench/hotpath.py [--commands get|set|ping] [--n 200000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import deque
from pathlib import Path

from cluster.service import Cluster
from resp_kv.backend import ClusterBackend
from resp_kv.commands import Dispatcher, command_table
from resp_kv.commands.mutations import MUTATORS
from resp_kv.commands.spec import Session
from resp_kv.config import ClusterConfig, Config, StorageConfig
from resp_kv.durability import DurableStore
from resp_kv.resp import make_request_parser
from resp_kv.server_state import ServerState
from resp_kv.storage.engine import LSMStore


def _frame(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


async def run(command: str, n: int, keys: int, pipeline: int) -> float:
    data_dir = Path(tempfile.mkdtemp(prefix="hotpath-"))
    config = Config(storage=StorageConfig(data_dir=data_dir, memtable_limit_bytes=1 << 31),
                    cluster=ClusterConfig(node_id="bench", anti_entropy_interval_s=0))
    engine = LSMStore.open(data_dir / "lsm", config.storage)
    store = DurableStore(engine, "everysec")
    cluster = Cluster(config.cluster, store, MUTATORS)
    await cluster.start()
    backend = ClusterBackend(cluster, engine.stats)
    session = Session(backend=backend, server=ServerState(config), config=config)
    dispatcher = Dispatcher(session, command_table(config))
    parser = make_request_parser(config.server)
    value = b"x" * 100
    for i in range(keys):                                   # preload: GETs hit
        await backend.put(b"key:%012d" % i, value)
    store.barrier()
    frames = []
    for i in range(n // pipeline):
        batch = []
        for j in range(pipeline):
            key = b"key:%012d" % ((i * pipeline + j) * 7919 % keys)
            if command == "get":
                batch.append(_frame(b"GET", key))
            elif command == "set":
                batch.append(_frame(b"SET", key, value))
            else:
                batch.append(_frame(b"PING"))
        frames.append(b"".join(batch))
    queue: deque = deque()
    start = time.process_time()
    for chunk in frames:                                    # what RespProtocol does per read
        parser.feed(chunk)
        parser.commands_into(queue)
        out: list[bytes] = []
        await dispatcher.drain(queue, out)
        b"".join(out)
        store.barrier()
    elapsed = time.process_time() - start
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
