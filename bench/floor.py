#!/usr/bin/env python3
"""The floor: the least CPU a replicated Python path can cost, rebuilt here, with resp-kv's real
storage layers added on top one at a time, each measured beside redis-server in the same run.

Why: the issue's 3-node target (N=3 W=2 R=2; redis-server AOF everysec CPU per request over the
cluster's, summed over its three processes: >= 0.3 at redis-benchmark -P 16, >= 0.4 at -P 1)
was set against a reference path: "a node forwarding each SET to two peers, answering after one
ack costs about 3.7 µs per SET and 4.0 µs per R=2 GET at -P 16, summed over the nodes;
forwarding each operation as its own message instead of coalescing all operations of one
event-loop iteration into one message per peer costs 2.7x the CPU". Our cluster costs ~20 µs
per SET. This file rebuilds that path (no resp_kv networking code) so each rung shows what one
layer costs above the floor. Not a server to use: no timeouts, reconnects, handoff or repair.

The node (this file, re-executed as `floor.py node ...`; asyncio + uvloop + hiredis.Reader):

    client port   SET key value | GET key | PING | CONFIG GET * (-> *0) | DBSIZE (for --check)
                  replies of one data_received joined into one write, in order
    node 0        SET: apply locally, ship to both peers, answer after the first peer's ack (W=2)
                  GET: read locally, ask both peers, answer the local value after the first
                  peer's answer (R=2; no merge)
    peer link     all operations of one loop iteration in ONE message per peer (one
                  call_soon'd flush); answers matched to waiting clients by a per-peer FIFO
    peers 1, 2    apply every item of a batch, answer with one write per received batch

    batch   := "*" K CRLF item{K}                       (node 0 -> peer; RESP arrays)
    item    := "*3" CRLF "$1" CRLF "S" CRLF bulk(key) bulk(payload) | "*2" CRLF "$1" CRLF "G" CRLF bulk(key)
    answers := "*" K CRLF ("+OK" CRLF | bulk(stored) | "$-1" CRLF){K}   (one per batch, in order)

The rungs (`--layer`), each on every node's apply path, reads through the same store:

    dict     a Python dict
    engine   resp-kv's LSM engine (WAL, memtable, SSTables) behind DurableStore with fsync
             everysec, as resp_kv/node.py opens it: the WAL written once per loop iteration
             (node 0: in the peer flush, before the batch leaves; peers: before their answer),
             fdatasync once a second in a thread (run_everysec); raw key -> value
    dvv      engine + dotted version vectors as the coordinator's SET does them
             (Cluster.blind_write): data_key_of(key), the old set read, encoded.overwrite_encoded
             minting the new one-sibling set; peers store it after encoded.replaces_encoded
             against their copy (Replica.apply_encoded_at; a merge through versioning if it
             cannot tell, which one writer never needs); GET decodes with value_of_encoded
    merkle   dvv + MerkleTree().update(key_token(key), key, old, new) per write on every node

Not included, so above the floor in the real cluster even on the dvv/merkle rungs: Replica's
key counts and expiry tracking and its listener dispatch (MerkleKeeper, GC gate), the engine's
compaction filter, the command dispatcher, request ids, timeouts, hints and read repair.

Method (parent process): a redis-server (AOF everysec, bench/run.py's start_redis) and one
3-process floor cluster per layer, all on loopback; every server is preloaded with SETs (-P 16)
so GETs hit; then for --rounds rounds, for each mode, every server in turn (the order rotated
each round, so drifting machine load hits all alike) runs `redis-benchmark -t TEST -c 50 -d 100
-r 100000 -P DEPTH -n N` (run.py's redis_benchmark). CPU per request = utime+stime delta from
/proc/PID/stat (all threads) over N, summed over the three processes. Reported: medians over the
rounds, as µs per request and as the ratio redis-aof / layer, and the split node 0 vs peers.
Numbers from it belong in bench/README.md, with the date and the load average it prints.

Usage: .venv/bin/python bench/floor.py [--layers dict,engine,dvv,merkle] [--rounds 3]
           [--modes set:16,get:16,set:1,get:1[:N each]] [-n N] [--preload 300000] [--check]
       --check: a redis-py SET/GET round trip per layer, each peer's copy and key count verified
       (before the rounds, and key counts again after them); with --rounds 0 it only checks.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import hiredis

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

HOST = "127.0.0.1"
LAYERS = ("dict", "engine", "dvv", "merkle")
DEFAULT_MODES = "set:16:300000,get:16:300000,set:1:80000,get:1:80000"
TARGETS = {16: 0.3, 1: 0.4}     # the ratios, per pipeline depth
OK, PONG, NIL, EMPTY = b"+OK\r\n", b"+PONG\r\n", b"$-1\r\n", b"*0\r\n"
UNKNOWN = b"-ERR unknown command\r\n"


# -- storage rungs (node processes) --------------------------------------------------------------
class DictLayer:
    """The floor's store. `put`/`get` are node 0's (client-visible value); `apply`/`read` a
    peer's (payload as shipped, bytes as stored). Event-loop thread only, like every layer."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data: dict[bytes, bytes] = {}

    def put(self, key: bytes, value: bytes) -> bytes:
        """Write locally; return the payload the peers get."""
        self.data[key] = value
        return value

    def apply(self, key: bytes, payload: bytes) -> None:
        self.data[key] = payload

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def read(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def barrier(self) -> None:
        """Make this iteration's writes as durable as the layer promises (before any reply)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Background work until `stop` (none here)."""

    def count(self) -> int:
        return len(self.data)

    def close(self) -> None:
        pass


class EngineLayer(DictLayer):
    """LSMStore + DurableStore("everysec"), opened as resp_kv/node.py opens them."""

    def __init__(self, data_dir: Path, port: int) -> None:
        from resp_kv.config import StorageConfig
        from resp_kv.durability import DurableStore
        from resp_kv.storage.engine import LSMStore
        config = StorageConfig(data_dir=data_dir, fsync="everysec")
        self.store = DurableStore(LSMStore.open(data_dir / "lsm", config), "everysec")

    def put(self, key: bytes, value: bytes) -> bytes:
        self.store.put(key, value)
        return value

    def apply(self, key: bytes, payload: bytes) -> None:
        self.store.put(key, payload)

    def get(self, key: bytes) -> bytes | None:
        return self.store.get(key)

    def read(self, key: bytes) -> bytes | None:
        return self.store.get(key)

    def barrier(self) -> None:
        self.store.barrier()                # everysec: the WAL write; returns None

    async def run(self, stop: asyncio.Event) -> None:
        await self.store.run_everysec(stop)

    def count(self) -> int:
        return sum(1 for _ in self.store.scan())

    def close(self) -> None:
        self.store.close()


class DvvLayer(EngineLayer):
    """EngineLayer storing encoded sibling sets under data keys (see the module docstring)."""

    def __init__(self, data_dir: Path, port: int) -> None:
        super().__init__(data_dir, port)
        from cluster import encoded, versioning
        from cluster.clock import SystemClock
        from cluster.replica import data_key_of
        self.actor = f"{HOST}-{port}@{os.urandom(4).hex()}"    # as Cluster.actor: node@incarnation
        self.wall_ms = SystemClock().wall_ms
        self.data_key_of, self.versioning = data_key_of, versioning
        self.overwrite, self.replaces = encoded.overwrite_encoded, encoded.replaces_encoded
        self.value_of = encoded.value_of_encoded
        self.tree = None                    # MerkleLayer's

    def put(self, key: bytes, value: bytes) -> bytes:
        store_key = self.data_key_of(key)
        old = self.store.get(store_key, False)      # no row cache fill: replaced below
        done = self.overwrite(old, self.actor, value, self.wall_ms())
        if done is None:
            raise RuntimeError("siblings: the floor has one writer and never makes any")
        new = done[0]
        self.store.put(store_key, new)
        if self.tree is not None:
            self.tree.update(self.key_token(key), key, old, new)
        return new

    def apply(self, key: bytes, payload: bytes) -> None:
        store_key = self.data_key_of(key)
        old = self.store.get(store_key, False)
        if old == payload:
            return
        if self.replaces(old, payload) is None:     # cannot tell at once: Replica's merge path
            v = self.versioning
            local = v.decode_siblings(old) if old is not None else []
            payload = v.encode_siblings(v.sync(local, v.decode_siblings(payload)))
        self.store.put(store_key, payload)
        if self.tree is not None:
            self.tree.update(self.key_token(key), key, old, payload)

    def get(self, key: bytes) -> bytes | None:
        raw = self.store.get(self.data_key_of(key))
        return self.value_of(raw, self.wall_ms) if raw is not None else None

    def read(self, key: bytes) -> bytes | None:
        return self.store.get(self.data_key_of(key))

    def count(self) -> int:
        return sum(1 for _ in self.store.scan(b"d", b"e"))


class MerkleLayer(DvvLayer):
    """DvvLayer plus an anti-entropy tree updated by every write."""

    def __init__(self, data_dir: Path, port: int) -> None:
        super().__init__(data_dir, port)
        from cluster.keytoken import key_token
        from cluster.merkle import MerkleTree
        self.tree, self.key_token = MerkleTree(), key_token


LAYER_CLASSES = {"dict": DictLayer, "engine": EngineLayer, "dvv": DvvLayer, "merkle": MerkleLayer}


# -- the node ------------------------------------------------------------------------------------
class Batch:
    """The replies to one client data_received; written when none is missing."""

    __slots__ = ("conn", "replies", "missing")

    def __init__(self, conn: ClientProtocol, replies: list) -> None:
        self.conn, self.replies, self.missing = conn, replies, 0


class Fanout:
    """Node 0's side of the peer links: this iteration's items, sent as one message per peer."""

    def __init__(self, layer: DictLayer) -> None:
        self.layer = layer
        self.links: list[PeerLink] = []
        self.items: list[bytes] = []
        self.entries: list[tuple] = []      # (batch, index, reply) per item, in item order

    def flush(self) -> None:
        """Once per loop iteration that queued items (call_soon'd by the first of them)."""
        items, entries = self.items, self.entries
        self.items, self.entries = [], []
        self.layer.barrier()                # the WAL write before the writes leave the node
        message = b"*%d\r\n%s" % (len(items), b"".join(items))
        for link in self.links:
            link.pending.extend(entries)
            link.transport.write(message)


class ClientProtocol(asyncio.Protocol):
    """One client connection; replicates through `fanout` (node 0), else serves locally."""

    def __init__(self, layer: DictLayer, fanout: Fanout | None) -> None:
        self.layer, self.fanout = layer, fanout
        self.reader = hiredis.Reader()
        self.outstanding: deque[Batch] = deque()    # batches not yet written, in order

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        layer, fanout, reader = self.layer, self.fanout, self.reader
        reader.feed(data)
        replies: list = []
        batch, broken = Batch(self, replies), False
        try:
            while (command := reader.gets()) is not False:
                name = command[0].upper()
                if name == b"SET" and len(command) == 3:
                    payload = layer.put(command[1], command[2])
                    if fanout is None:
                        reply = OK
                    else:
                        self._ship(fanout, batch, b"*3\r\n$1\r\nS\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
                            len(command[1]), command[1], len(payload), payload), OK)
                        reply = None
                elif name == b"GET" and len(command) == 2:
                    value = layer.get(command[1])
                    reply = NIL if value is None else b"$%d\r\n%s\r\n" % (len(value), value)
                    if fanout is not None:
                        self._ship(fanout, batch, b"*2\r\n$1\r\nG\r\n$%d\r\n%s\r\n" % (
                            len(command[1]), command[1]), reply)
                        reply = None
                elif name == b"PING":
                    reply = PONG
                elif name == b"CONFIG" and len(command) > 1 and command[1].upper() == b"GET":
                    reply = EMPTY
                elif name == b"DBSIZE":
                    reply = b":%d\r\n" % layer.count()
                else:
                    reply = UNKNOWN
                replies.append(reply)
        except hiredis.ProtocolError:
            replies.append(b"-ERR Protocol error\r\n")
            broken = True                   # nothing after a framing error can be trusted
        if not replies:
            return
        if fanout is None:
            layer.barrier()
        self.outstanding.append(batch)
        if not batch.missing:
            self.release()
        if broken:
            self.transport.close()

    def _ship(self, fanout: Fanout, batch: Batch, item: bytes, reply: bytes) -> None:
        if not fanout.items:
            asyncio.get_running_loop().call_soon(fanout.flush)
        fanout.items.append(item)
        fanout.entries.append((batch, len(batch.replies), reply))
        batch.missing += 1

    def release(self) -> None:
        """Write every complete batch at the head of the queue (replies stay in order)."""
        outstanding = self.outstanding
        while outstanding and not outstanding[0].missing:
            replies = outstanding.popleft().replies
            if not self.transport.is_closing():
                self.transport.write(b"".join(replies))


class PeerLink(asyncio.Protocol):
    """Node 0's connection to one peer: answers arrive per batch, in the order items were sent."""

    def __init__(self, lost: asyncio.Event) -> None:
        self.lost = lost
        self.reader = hiredis.Reader()
        self.pending: deque[tuple] = deque()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()                     # no reconnects: the node stops

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        pending = self.pending
        while (answers := self.reader.gets()) is not False:
            for _ in range(len(answers)):
                batch, index, reply = pending.popleft()
                replies = batch.replies
                if replies[index] is None:          # the first peer's answer: quorum reached
                    replies[index] = reply
                    batch.missing -= 1
                    if not batch.missing:
                        batch.conn.release()


class PeerServer(asyncio.Protocol):
    """A peer's end of node 0's link: applies each batch, answers it with one write."""

    def __init__(self, layer: DictLayer) -> None:
        self.layer = layer
        self.reader = hiredis.Reader()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        layer, out = self.layer, []
        self.reader.feed(data)
        while (batch := self.reader.gets()) is not False:
            out.append(b"*%d\r\n" % len(batch))
            for item in batch:
                if item[0] == b"S":
                    layer.apply(item[1], item[2])
                    out.append(OK)
                else:
                    value = layer.read(item[1])
                    out.append(NIL if value is None else b"$%d\r\n%s\r\n" % (len(value), value))
        if out:
            layer.barrier()
            self.transport.write(b"".join(out))


async def serve(args: argparse.Namespace) -> None:
    """Run one node until SIGTERM/SIGINT (or, on node 0, a lost peer link)."""
    from resp_kv.node import GC_THRESHOLDS
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    layer = LAYER_CLASSES[args.layer](args.data_dir, args.port)
    servers, fanout = [], None
    background = asyncio.create_task(layer.run(stop))
    try:
        if args.peer_ports:
            fanout = Fanout(layer)
            for port in args.peer_ports.split(","):
                _, link = await loop.create_connection(lambda: PeerLink(stop), HOST, int(port))
                fanout.links.append(link)
        if args.peer_port:
            servers.append(await loop.create_server(lambda: PeerServer(layer), HOST, args.peer_port))
        servers.append(await loop.create_server(lambda: ClientProtocol(layer, fanout), HOST, args.port))
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)    # the real node's GC policy (resp_kv/node.py)
        await stop.wait()
    finally:
        stop.set()
        for server in servers:
            server.close()
        await background
        layer.close()


def node_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="floor.py node")
    parser.add_argument("--port", type=int, required=True, help="client port")
    parser.add_argument("--peer-port", type=int, help="listen for node 0 here (nodes 1, 2)")
    parser.add_argument("--peer-ports", default="", help="A,B: replicate to these (node 0)")
    parser.add_argument("--layer", choices=LAYERS, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    import uvloop
    uvloop.run(serve(args))
    return 0


# -- the measurement (parent process) ------------------------------------------------------------
@dataclass
class Floor:
    """A running 3-node floor cluster: `server` for run.py's helpers, every node's client port."""

    server: object                          # bench/run.py Server (node 0's port, three pids)
    ports: list[int]


def start_floor(bench, layer: str, workdir: Path) -> Floor:
    """Start peers 1 and 2, then node 0 (which connects to them); each ready once it PONGs."""
    import redis
    from tests.helpers.ports import free_ports
    from tests.helpers.wait import wait_until
    client_ports, peer_ports = free_ports(3), free_ports(2)
    procs: dict[int, tuple[subprocess.Popen, object]] = {}     # node index -> (process, log)

    def stop() -> None:
        for proc, log in procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()

    def start(i: int, peer_args: list[str]) -> None:
        data_dir = workdir / f"floor-{layer}" / f"node{i}"
        data_dir.mkdir(parents=True)
        log = open(data_dir / "node.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "node", "--port", str(client_ports[i]),
             "--layer", layer, "--data-dir", str(data_dir), *peer_args],
            cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        procs[i] = (proc, log)

        def pong() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"floor {layer} node {i} exited: {(data_dir / 'node.log').read_text()}")
            with redis.Redis(host=HOST, port=client_ports[i], socket_timeout=2, protocol=2) as client:
                return client.ping()
        wait_until(pong, 30, f"floor {layer} node {i} PONG")

    try:
        start(1, ["--peer-port", str(peer_ports[0])])
        start(2, ["--peer-port", str(peer_ports[1])])
        start(0, ["--peer-ports", ",".join(map(str, peer_ports))])
    except BaseException:
        stop()
        raise
    pids = [procs[i][0].pid for i in range(3)]
    return Floor(bench.Server(f"floor-{layer}", client_ports[0], pids, stop), client_ports)


def check_floor(floor: Floor) -> None:
    """SET/GET through node 0, then the same values and key count read from each peer."""
    import redis
    from tests.helpers.wait import wait_until
    clients = [redis.Redis(host=HOST, port=port, socket_timeout=10, protocol=2) for port in floor.ports]
    try:
        pipe = clients[0].pipeline(transaction=False)
        for i in range(100):
            pipe.set(b"check:%d" % i, b"v%d" % i)
        pipe.get(b"check:7")
        pipe.get(b"check:missing")
        replies = pipe.execute()
        assert replies == [True] * 100 + [b"v7", None], replies
        assert clients[0].set(b"check:7", b"w7") and clients[0].get(b"check:7") == b"w7"
        size = clients[0].dbsize()
        for i, peer in enumerate(clients[1:], 1):
            wait_until(lambda: peer.get(b"check:7") == b"w7" and peer.get(b"check:42") == b"v42"
                       and peer.dbsize() == size, 10, f"{floor.server.name} node {i} applied the writes")
        print(f"  check {floor.server.name}: ok (node 0 and both peers hold {size} keys)", flush=True)
    finally:
        for client in clients:
            client.close()


def check_counts(floor: Floor) -> None:
    """Every node holds as many keys as node 0 (after the rounds; a W=2 straggler may lag)."""
    import redis
    from tests.helpers.wait import wait_until

    def sizes() -> list[int]:
        out = []
        for port in floor.ports:
            with redis.Redis(host=HOST, port=port, socket_timeout=60, protocol=2) as client:
                out.append(client.dbsize())
        return out
    counts = wait_until(lambda: (s := sizes()) and len(set(s)) == 1 and s, 30,
                        f"{floor.server.name}: equal key counts on all nodes")
    print(f"  check {floor.server.name}: all three nodes hold {counts[0]} keys", flush=True)


def measure(bench, servers: list, modes: list[tuple[str, int, int]], rounds: int) -> dict:
    """Return {(server, test, pipeline): one {"nodes": [µs/req per process], "rps"} per round}."""
    runs: dict[tuple, list[dict]] = {}
    for round_no in range(rounds):
        shift = round_no % len(servers)
        for test, pipeline, n in modes:
            for server in servers[shift:] + servers[:shift]:
                before = [bench.cpu_ticks([pid]) for pid in server.pids]
                run = bench.redis_benchmark(server, test, pipeline, n)
                after = [bench.cpu_ticks([pid]) for pid in server.pids]
                nodes = [(a - b) * 1e6 / bench.CLK_TCK / n for b, a in zip(before, after)]
                runs.setdefault((server.name, test, pipeline), []).append(
                    {"nodes": nodes, "sum": sum(nodes), "rps": run["rps"]})
                print(f"  round {round_no + 1} {server.name:13} {test.upper():3} -P{pipeline:<3}"
                      f"{run['rps']:>10.0f} rps {sum(nodes):7.2f} us/req", flush=True)
    return runs


def report(runs: dict, layers: list[str], modes: list[tuple[str, int, int]]) -> str:
    """Markdown: µs/req and ratio per mode and layer, then each layer's split by process."""
    def median(name: str, test: str, pipeline: int, field: str, node: int = 0) -> float:
        rows = runs[(name, test, pipeline)]
        return statistics.median(r["nodes"][node] if field == "nodes" else r[field] for r in rows)

    lines = ["| mode | redis-aof us/req |" + "".join(f" {x} us/req | ratio |" for x in layers),
             "|---|---:|" + "---:|---:|" * len(layers)]
    for test, pipeline, _ in modes:
        ref = median("redis-aof", test, pipeline, "sum")
        cells = [(ours := median(f"floor-{x}", test, pipeline, "sum"), ref / ours if ours else 0.0)
                 for x in layers]
        lines.append(f"| {test.upper()} -P {pipeline} | {ref:.2f} |"
                     + "".join(f" {ours:.2f} | {ratio:.2f} |" for ours, ratio in cells))
    lines += ["", "| layer | mode | node 0 us/req | node 1 | node 2 | sum | rps |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for layer in layers:
        name = f"floor-{layer}"
        for test, pipeline, _ in modes:
            parts = [median(name, test, pipeline, "nodes", i) for i in range(3)]
            lines.append(f"| {layer} | {test.upper()} -P {pipeline} | "
                         + " | ".join(f"{part:.2f}" for part in parts)
                         + f" | {median(name, test, pipeline, 'sum'):.2f}"
                         f" | {median(name, test, pipeline, 'rps'):,.0f} |")
    targets = ", ".join(f">= {t} at -P {p}" for p, t in TARGETS.items())
    return "\n".join(lines) + (f"\n\nratio = redis-aof CPU/req / the layer's (summed over its 3 "
                               f"processes); the issue's cluster target: {targets}")


def parse_modes(text: str, n: int | None) -> list[tuple[str, int, int]]:
    defaults = {tuple(m.split(":")[:2]): int(m.split(":")[2]) for m in DEFAULT_MODES.split(",")}
    modes = []
    for mode in text.split(","):
        test, pipeline, *count = mode.split(":")
        requests = n or (int(count[0]) if count else defaults.get((test, pipeline), 100_000))
        modes.append((test, int(pipeline), requests))
    return modes


def bench_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default=",".join(LAYERS), help="comma-separated, of " + ",".join(LAYERS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default=DEFAULT_MODES, help="test:pipeline[:requests],...")
    parser.add_argument("-n", type=int, help="requests per run, every mode (overrides --modes counts)")
    parser.add_argument("--preload", type=int, default=300_000, help="SETs (-P 16) before the rounds")
    parser.add_argument("--check", action="store_true", help="verify replication (module docstring)")
    args = parser.parse_args(argv)
    layers = args.layers.split(",")
    if unknown := set(layers) - set(LAYERS):
        parser.error(f"unknown layers: {', '.join(sorted(unknown))}")
    modes = parse_modes(args.modes, args.n)
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    import run as bench                     # here, not at the top: node processes stay lean
    load_before, started = os.getloadavg(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="resp-kv-floor-") as tmp:
        servers, floors = [], []
        try:
            servers.append(bench.start_redis("redis-aof", Path(tmp), aof=True))
            for layer in layers:
                floors.append(start_floor(bench, layer, Path(tmp)))
                servers.append(floors[-1].server)
            if args.check:
                for floor in floors:
                    check_floor(floor)
            if args.rounds > 0:
                for server in servers:
                    bench.redis_benchmark(server, "set", 16, args.preload)
                runs = measure(bench, servers, modes, args.rounds)
            if args.check:
                for floor in floors:
                    check_counts(floor)
        finally:
            bench.stop_servers(servers)
    if args.rounds > 0:
        print()
        print(report(runs, layers, modes))
    print(f"\n{time.monotonic() - started:.0f}s; load average {load_before[0]:.2f} -> "
          f"{os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["node"]:
        sys.exit(node_main(sys.argv[2:]))
    sys.exit(bench_main(sys.argv[1:]))
