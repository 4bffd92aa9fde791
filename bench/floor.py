#!/usr/bin/env python3
"""The floor: the least CPU a replicated Python path can cost, with resp-kv's real storage layers
added on top one rung at a time, each measured beside redis-server in the same run.

Why: the issue's 3-node target (N=3 W=2 R=2; redis-server AOF everysec CPU per request over the
cluster's, summed over its processes: >= 0.3 at redis-benchmark -P 16, >= 0.4 at -P 1) rests on
a reference: "a node forwarding each SET to two peers, answering after one ack costs about 3.7 µs
per SET and 4.0 µs per R=2 GET at -P 16, summed over the nodes" (2.7x that with one message per
operation instead of one per peer per loop iteration). Our cluster costs ~20 µs per SET. This
rebuilds that path without resp_kv's networking code. Not a server: no timeouts, reconnects, hints.

The node (this file, re-executed as `floor.py node ...`; asyncio + uvloop + hiredis.Reader):

    clients    SET GET PING, CONFIG GET (-> *0), DBSIZE (--check), else an error; the replies to
               one data_received in one write, in order per connection
    node 0     SET: apply, send to both peers, reply after the first peer's ack (W=2); GET: read,
               ask both peers, reply with the local value after the first answer (R=2, no merge)
    peer link  every operation of one loop iteration in ONE message per peer (the first queues a
               call_soon'd flush); a per-peer FIFO of sent messages matches the answers, and a
               message's first answer releases every client batch in it (the operations of one
               data_received always travel in one message)
    peers      apply every item; answer all the messages of one data_received in one write

    message := "*" K CRLF item{K}            item := "*3" CRLF "$1" CRLF "S" CRLF key payload
    answers := "*" K CRLF answer{K}                 | "*2" CRLF "$1" CRLF "G" CRLF key
    answer  := "+OK" CRLF | stored | "$-1" CRLF     (key, payload, stored: RESP bulk strings)

The rungs (`--layer`), each on every node's writes (and reads through the same store):

    dict     a Python dict
    engine   the LSM engine (WAL, memtable, SSTables) behind DurableStore, fsync everysec, as
             resp_kv/node.py opens it: the WAL written once per loop iteration (node 0 in its
             peer flush, peers before they answer), fdatasync once a second in a thread
    dvv      engine + dotted version vectors as Cluster.blind_write makes them: the old set read
             at data_key_of(key), encoded.overwrite_encoded minting the new one; peers store it
             after encoded.replaces_encoded against their copy (Replica.apply_encoded_at); GET
             answers encoded.value_of_encoded
    merkle   dvv + a MerkleTree updated by every write on every node, as the replica's write
             listener (MerkleKeeper.on_write) does it since 426781e: update_segment with the
             segment read from the store key (== update(key_token(key), ...), one hash fewer)

Still above the top rung in the real cluster: the replica's key counts, expiry tracking and
listener dispatch, the command dispatcher, request ids, timeouts, hints, the merge of R answers.

Method: redis-server (AOF everysec; bench/run.py's start_redis) and one 3-process cluster per
layer on loopback, each preloaded with SETs (-P 16) so GETs hit; then --rounds rounds of: per
mode, every server in turn (the order rotated per round), `redis-benchmark -t TEST -c 50 -d 100
-r 100000 -P DEPTH -n N` (run.py's redis_benchmark), CPU from /proc/PID/stat (all threads)
around it; N defaults to 300k at -P 16 and 80k at -P 1 (about 3-4 minutes in all). Reported:
medians over the rounds of µs per request (a cluster's three processes summed), the ratio
redis-aof / layer, and each layer's split by process. Numbers from it belong in
bench/README.md, with the date and the load average it prints.

Usage: .venv/bin/python bench/floor.py [--layers dict,engine,dvv,merkle] [--rounds 3]
           [--modes set:16:N,get:16:N,set:1:N,get:1:N] [-n N] [--preload 300000] [--check]
           [--cluster]
       --cluster: also the real 3-node cluster (bench/run.py's resp-kv-3), as the last column.
       --check: a redis-py SET/GET round trip through each layer's node 0, values and key count
       then verified on both peers (with --rounds 0, nothing else runs).
       (started by the above, one per node: floor.py node --port P --layer L --data-dir D
        [--peer-port Q (nodes 1, 2) | --peer-ports A,B (node 0)])
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
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import hiredis
import redis
import uvloop

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

import run as bench  # noqa: E402

from cluster.clock import SystemClock  # noqa: E402
from cluster.encoded import overwrite_encoded, replaces_encoded, value_of_encoded  # noqa: E402
from cluster.merkle import MerkleTree  # noqa: E402
from cluster.replica import data_key_of, segment_of_data_key  # noqa: E402
from resp_kv.config import StorageConfig  # noqa: E402
from resp_kv.durability import DurableStore  # noqa: E402
from resp_kv.node import GC_THRESHOLDS  # noqa: E402
from resp_kv.storage.engine import LSMStore  # noqa: E402
from tests.helpers.ports import free_ports  # noqa: E402
from tests.helpers.wait import wait_until  # noqa: E402

HOST = "127.0.0.1"
LAYERS = ("dict", "engine", "dvv", "merkle")
DEFAULT_MODES = "set:16:300000,get:16:300000,set:1:80000,get:1:80000"
TARGETS = {16: 0.3, 1: 0.4}     # the ratios, per pipeline depth
OK, PONG, NIL, EMPTY = b"+OK\r\n", b"+PONG\r\n", b"$-1\r\n", b"*0\r\n"
UNKNOWN = b"-ERR unknown command\r\n"


# -- storage rungs (node processes) --------------------------------------------------------------
class DictLayer:
    """The floor's store. `put`/`get` are node 0's (`put` returns what the peers get, `get` the
    client's value); `apply`/`read` a peer's (the payload as shipped; the bytes as stored).
    Event-loop thread only, like every layer."""

    _put: Callable[[bytes, bytes], None]
    _get: Callable[[bytes], bytes | None]

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data: dict[bytes, bytes] = {}
        self._put, self._get = self.data.__setitem__, self.data.get

    def put(self, key: bytes, value: bytes) -> bytes:
        self._put(key, value)
        return value

    def get(self, key: bytes) -> bytes | None:
        return self._get(key)

    apply, read = put, get

    def barrier(self) -> None:
        """Make this iteration's writes as durable as the layer promises (before any reply)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Background work until `stop` (none here)."""

    def count(self) -> int:
        return len(self.data)

    def close(self) -> None:
        pass


class EngineLayer(DictLayer):
    """LSMStore + DurableStore("everysec"), opened as resp_kv/node.py opens them (without the
    cluster's compaction filter, which only matters to compactions)."""

    def __init__(self, data_dir: Path, port: int) -> None:
        config = StorageConfig(data_dir=data_dir, fsync="everysec")
        self.store = DurableStore(LSMStore.open(data_dir / "lsm", config), "everysec")
        self._put, self._get = self.store.put, self.store.get

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

    tree: MerkleTree | None = None          # MerkleLayer's

    def __init__(self, data_dir: Path, port: int) -> None:
        super().__init__(data_dir, port)
        self.actor = f"{HOST}-{port}@{os.urandom(4).hex()}"    # as Cluster.actor: node@incarnation
        self.wall_ms = SystemClock().wall_ms

    def put(self, key: bytes, value: bytes) -> bytes:
        store_key = data_key_of(key)
        old = self.store.get(store_key, False)      # no row cache fill: replaced below
        done = overwrite_encoded(old, self.actor, value, self.wall_ms())
        if done is None:
            raise RuntimeError("siblings: the floor has one writer and makes none")
        new = done[0]
        self.store.put(store_key, new)
        if self.tree is not None:
            self.tree.update_segment(segment_of_data_key(store_key), key, old, new)
        return new

    def apply(self, key: bytes, payload: bytes) -> bytes:
        store_key = data_key_of(key)
        old = self.store.get(store_key, False)
        if old == payload:
            return payload
        if replaces_encoded(old, payload) is None:  # Replica would decode and merge: never
            raise RuntimeError("a concurrent write: the floor has one writer and makes none")
        self.store.put(store_key, payload)
        if self.tree is not None:
            self.tree.update_segment(segment_of_data_key(store_key), key, old, payload)
        return payload

    def get(self, key: bytes) -> bytes | None:
        raw = self.store.get(data_key_of(key))
        return value_of_encoded(raw, self.wall_ms) if raw is not None else None

    def read(self, key: bytes) -> bytes | None:
        return self.store.get(data_key_of(key))

    def count(self) -> int:
        return sum(1 for _ in self.store.scan(b"d", b"e"))


class MerkleLayer(DvvLayer):
    """DvvLayer plus an anti-entropy tree updated by every write."""

    def __init__(self, data_dir: Path, port: int) -> None:
        super().__init__(data_dir, port)
        self.tree = MerkleTree()


LAYER_CLASSES = {"dict": DictLayer, "engine": EngineLayer, "dvv": DvvLayer, "merkle": MerkleLayer}


# -- the node ------------------------------------------------------------------------------------
class Batch:
    """The replies to one client data_received, written once `acked` (and every batch before it
    on the connection is). Every replicated op of a data_received goes out in the same peer
    message, so one ack per batch is one ack per op."""

    __slots__ = ("conn", "replies", "acked")

    def __init__(self, conn: ClientProtocol, replies: list[bytes]) -> None:
        self.conn, self.replies, self.acked = conn, replies, True


class Message:
    """One flush's items as sent to every peer; the first peer to answer acks all its batches."""

    __slots__ = ("batches", "answered")

    def __init__(self, batches: list[Batch]) -> None:
        self.batches, self.answered = batches, False


class Fanout:
    """Node 0's side of the peer links: this iteration's items, sent as one message per peer."""

    def __init__(self, layer: DictLayer) -> None:
        self.layer = layer
        self.links: list[PeerLink] = []
        self.items: list[bytes] = []
        self.batches: list[Batch] = []      # waiting for this iteration's message

    def flush(self) -> None:
        """Once per loop iteration that queued items (call_soon'd by the first batch)."""
        message = Message(self.batches)
        data = b"*%d\r\n%s" % (len(self.items), b"".join(self.items))
        self.items, self.batches = [], []
        self.layer.barrier()                # the WAL write before the writes leave the node
        for link in self.links:
            link.pending.append(message)
            link.transport.write(data)


class _Protocol(asyncio.Protocol):
    """A connection with its own hiredis parser."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()

    def connection_made(self, transport) -> None:
        self.transport = transport


class ClientProtocol(_Protocol):
    """One client connection; replicates through `fanout` (node 0), else serves locally."""

    def __init__(self, layer: DictLayer, fanout: Fanout | None) -> None:
        super().__init__()
        self.layer, self.fanout = layer, fanout
        self.outstanding: deque[Batch] = deque()    # batches not yet written, in order

    def data_received(self, data: bytes) -> None:
        layer, fanout, reader = self.layer, self.fanout, self.reader
        items = fanout.items if fanout is not None else None
        reader.feed(data)
        replies: list[bytes] = []
        shipped, broken = 0, False
        try:
            while (command := reader.gets()) is not False:
                name = command[0].upper()
                if name == b"SET" and len(command) == 3:
                    key = command[1]
                    payload = layer.put(key, command[2])
                    if items is not None:
                        items.append(b"*3\r\n$1\r\nS\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
                            len(key), key, len(payload), payload))
                        shipped += 1
                    replies.append(OK)
                elif name == b"GET" and len(command) == 2:
                    key = command[1]
                    value = layer.get(key)
                    if items is not None:
                        items.append(b"*2\r\n$1\r\nG\r\n$%d\r\n%s\r\n" % (len(key), key))
                        shipped += 1
                    replies.append(NIL if value is None else b"$%d\r\n%s\r\n" % (len(value), value))
                elif name == b"PING":
                    replies.append(PONG)
                elif name == b"CONFIG" and len(command) > 1 and command[1].upper() == b"GET":
                    replies.append(EMPTY)
                elif name == b"DBSIZE":
                    replies.append(b":%d\r\n" % layer.count())
                else:
                    replies.append(UNKNOWN)
        except hiredis.ProtocolError:
            replies.append(b"-ERR Protocol error\r\n")
            broken = True                   # nothing after a framing error can be trusted
        if not replies:
            return
        batch = Batch(self, replies)
        self.outstanding.append(batch)
        if fanout is not None and shipped:
            if not fanout.batches:          # the first of this iteration: one flush for all
                asyncio.get_running_loop().call_soon(fanout.flush)
            fanout.batches.append(batch)
            batch.acked = False
        else:
            layer.barrier()
            self.release()
        if broken:
            self.transport.close()

    def release(self) -> None:
        """Write every acked batch at the head of the queue (replies stay in order)."""
        outstanding = self.outstanding
        while outstanding and outstanding[0].acked:
            replies = outstanding.popleft().replies
            if not self.transport.is_closing():
                self.transport.write(b"".join(replies))


class PeerLink(_Protocol):
    """Node 0's connection to one peer: one answer array per message, in the order sent."""

    def __init__(self, lost: asyncio.Event) -> None:
        super().__init__()
        self.lost = lost
        self.pending: deque[Message] = deque()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()                     # no reconnects: the node stops

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        pending = self.pending
        while self.reader.gets() is not False:      # the answers (no merge: node 0's value)
            message = pending.popleft()
            if not message.answered:                # the first peer: W=2 / R=2 reached
                message.answered = True
                for batch in message.batches:
                    batch.acked = True
                    batch.conn.release()


class PeerServer(_Protocol):
    """A peer's end of node 0's link: applies every message, answers them in one write."""

    def __init__(self, layer: DictLayer) -> None:
        super().__init__()
        self.layer = layer

    def data_received(self, data: bytes) -> None:
        layer, out = self.layer, []
        self.reader.feed(data)
        while (message := self.reader.gets()) is not False:
            out.append(b"*%d\r\n" % len(message))
            for item in message:
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
    uvloop.run(serve(parser.parse_args(argv)))
    return 0


# -- the measurement (parent process) ------------------------------------------------------------
def client(port: int, timeout_s: float = 10) -> redis.Redis:
    return redis.Redis(host=HOST, port=port, socket_timeout=timeout_s, protocol=2)  # no HELLO


def start_floor(layer: str, workdir: Path) -> tuple[bench.Server, list[int]]:
    """Start peers 1 and 2, then node 0 (which connects to them), each ready once it PONGs.
    Return run.py's Server (node 0's port; the pids of node 0, 1, 2) and every client port."""
    client_ports, peer_ports = free_ports(3), free_ports(2)
    procs: dict[int, tuple[subprocess.Popen, BinaryIO]] = {}     # node index -> (process, log)

    def stop() -> None:
        for proc, log in procs.values():
            bench.stop_process(proc)
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
                log_text = (data_dir / "node.log").read_text()
                raise RuntimeError(f"floor-{layer} node {i} exited: {log_text}")
            with client(client_ports[i], 2) as c:
                return c.ping()
        wait_until(pong, 30, f"floor-{layer} node {i} PONG")

    try:
        start(1, ["--peer-port", str(peer_ports[0])])
        start(2, ["--peer-port", str(peer_ports[1])])
        start(0, ["--peer-ports", ",".join(map(str, peer_ports))])
    except BaseException:
        stop()
        raise
    pids = [procs[i][0].pid for i in range(3)]
    return bench.Server(f"floor-{layer}", client_ports[0], pids, stop), client_ports


def check_round_trip(name: str, ports: list[int]) -> None:
    """SET/GET through node 0; then each peer holds the same values and as many keys."""
    with client(ports[0]) as c:
        pipe = c.pipeline(transaction=False)
        for i in range(100):
            pipe.set(b"check:%d" % i, b"v%d" % i)
        replies = pipe.get(b"check:7").get(b"check:missing").execute()
        assert replies == [True] * 100 + [b"v7", None], replies
        assert c.set(b"check:7", b"w7") and c.get(b"check:7") == b"w7"     # a second version
        size = c.dbsize()
    for i in (1, 2):
        with client(ports[i]) as peer:
            wait_until(lambda: peer.get(b"check:7") == b"w7" and peer.get(b"check:42") == b"v42"
                       and peer.dbsize() == size, 10, f"{name} node {i} applied the writes")
    print(f"  check {name}: ok (node 0 and both peers hold {size} keys)", flush=True)


def measure(servers: list[bench.Server], modes: list[tuple[str, int, int]], rounds: int) -> dict:
    """Return {(server, test, pipeline): per round {"nodes": [µs/req per process], "sum", "rps"}}."""
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
    """Markdown: µs/req and ratio per mode and layer, then each layer's split by process.
    A layer named "cluster" is the real 3-node cluster (server "resp-kv-3")."""
    def median(name: str, test: str, pipeline: int, field: str, node: int = 0) -> float:
        rows = runs[(name, test, pipeline)]
        return statistics.median(r["nodes"][node] if field == "nodes" else r[field] for r in rows)

    def server_of(layer: str) -> str:
        return "resp-kv-3" if layer == "cluster" else f"floor-{layer}"

    lines = ["| mode | redis-aof us/req |" + "".join(f" {x} us/req | ratio |" for x in layers),
             "|---|---:|" + "---:|---:|" * len(layers)]
    for test, pipeline, _ in modes:
        ref = median("redis-aof", test, pipeline, "sum")
        cells = [(ours := median(server_of(x), test, pipeline, "sum"), ref / ours if ours else 0.0)
                 for x in layers]
        lines.append(f"| {test.upper()} -P {pipeline} | {ref:.2f} |"
                     + "".join(f" {ours:.2f} | {ratio:.2f} |" for ours, ratio in cells))
    lines += ["", "| layer | mode | node 0 us/req | node 1 | node 2 | sum | rps |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for layer in layers:
        name = server_of(layer)
        for test, pipeline, _ in modes:
            parts = [median(name, test, pipeline, "nodes", i) for i in range(3)]
            lines.append(f"| {layer} | {test.upper()} -P {pipeline} | "
                         + " | ".join(f"{part:.2f}" for part in parts)
                         + f" | {median(name, test, pipeline, 'sum'):.2f}"
                         f" | {median(name, test, pipeline, 'rps'):,.0f} |")
    targets = ", ".join(f">= {t} at -P {p}" for p, t in TARGETS.items())
    return "\n".join(lines) + (f"\n\nratio = redis-aof CPU/req / the layer's (summed over its 3 "
                               f"processes); the issue's cluster target: {targets}")


def bench_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default=",".join(LAYERS), help="comma-separated rungs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default=DEFAULT_MODES, help="test:pipeline[:requests],... "
                        "(requests: -n, else these, else 100000)")
    parser.add_argument("-n", type=int, help="requests per run, every mode (overrides --modes counts)")
    parser.add_argument("--preload", type=int, default=300_000, help="SETs (-P 16) before the rounds")
    parser.add_argument("--check", action="store_true", help="verify replication (module docstring)")
    parser.add_argument("--cluster", action="store_true",
                        help="also measure the real 3-node cluster (bench/run.py's resp-kv-3)")
    args = parser.parse_args(argv)
    layers = args.layers.split(",")
    if unknown := set(layers) - set(LAYERS):
        parser.error(f"unknown layers: {', '.join(sorted(unknown))}")
    modes = [(test, int(pipeline), args.n or int(count[0]) if count else args.n or 100_000)
             for test, pipeline, *count in (mode.split(":") for mode in args.modes.split(","))]
    load_before, started = os.getloadavg(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="resp-kv-floor-") as tmp:
        servers, ports = [], {}             # ports: floor name -> its nodes' client ports
        try:
            servers.append(bench.start_redis("redis-aof", Path(tmp), aof=True))
            for layer in layers:
                server, ports[f"floor-{layer}"] = start_floor(layer, Path(tmp))
                servers.append(server)
            if args.cluster:
                servers.append(bench.start_resp_kv("resp-kv-3", Path(tmp), 3))
            for name in ports if args.check else ():
                check_round_trip(name, ports[name])
            if args.rounds > 0:
                for server in servers:
                    bench.redis_benchmark(server, "set", 16, args.preload)
                runs = measure(servers, modes, args.rounds)
        finally:
            bench.stop_servers(servers)
    if args.rounds > 0:
        print("\n" + report(runs, layers + ["cluster"] * args.cluster, modes))
    print(f"\n{time.monotonic() - started:.0f}s; load average {load_before[0]:.2f} -> "
          f"{os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["node"]:
        sys.exit(node_main(sys.argv[2:]))
    sys.exit(bench_main(sys.argv[1:]))
