"""The multi-node wiring of one Cluster: peer server + handlers, transport, ring view, gossip,
hint delivery, and the range stream a joining node pulls.

Not quorum logic (coordinator.py), not membership rules (membership.py, gossip.py). This is the
one place that knows which peer verb (messages.py) maps to which local operation. The ring view
(`ring`, `alive`) is replaced, never mutated, by `set_view`, which also switches the Cluster
between its single-node fast path and the coordinator.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from cluster import messages, versioning
from cluster.coordinator import Coordinator, encode_scan_page
from cluster.hints import HandoffDeliverer, hint_key
from cluster.peer_server import PeerServer
from cluster.replica import TOKEN_LIMIT, data_key_of
from cluster.ring import Ring
from cluster.transport import PeerTransport
from cluster.types import NodeId, PeerUnavailable, key_token

if TYPE_CHECKING:
    from cluster.gossip import Gossiper
    from cluster.service import Cluster

log = logging.getLogger("cluster.network")

RANGE_PAGE = 512


class Network:
    """Everything a Cluster needs once it has (or may get) peers. Event-loop thread only."""

    def __init__(self, cluster: Cluster, transport=None, server=None, gossip: bool = True
                 ) -> None:
        # transport and server: PeerTransport and PeerServer, or a test's in-process stand-ins
        # (tests/helpers/fake_network.py): the transport's is a subclass (typed: the coordinator
        # calls it natively), the server's is not (its calls are not per request).
        self.cluster = cluster
        config = cluster.config
        self.me: NodeId = cluster.node_id
        self.ring = Ring([self.me], config.vnodes)
        self.alive: frozenset[NodeId] = frozenset({self.me})
        self.transport: PeerTransport = transport or PeerTransport(
            self.me, config.cluster_secret, self.resolve, cluster.clock, config.request_timeout_s)
        store = cluster.store
        barrier = getattr(store, "barrier", None)
        self.server = server or PeerServer(
            config.bind, config.peer_port,
            config.cluster_secret, barrier=barrier or (lambda: store.durable()),
            is_blocked=lambda node: node in self.transport.blocked)
        self.coordinator = Coordinator(cluster, self)
        self.deliverer = HandoffDeliverer(cluster.hints, cluster.clock, self.is_alive,
                                          self._deliver_hint,
                                          interval_s=max(0.05, config.gossip_interval_ms / 1000))
        self.gossiper: Gossiper | None = None
        if gossip:
            from cluster.gossip import Gossiper
            self.gossiper = Gossiper(self)
        self.addresses: dict[NodeId, tuple[str, int]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._streamed = False
        self._register_handlers()

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await self.server.start()
        await self.transport.start()
        self._spawn(self.deliverer.run())
        if self.gossiper is not None:
            await self.gossiper.start()

    async def stop(self) -> None:
        if self.gossiper is not None:
            await self.gossiper.stop()
        for task in list(self._tasks):
            task.cancel()
        await self.coordinator.stop()
        await self.server.stop()
        await self.transport.stop()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster background task failed: %r", task.exception())

    # --- view ------------------------------------------------------------------------------

    def resolve(self, node: NodeId) -> tuple[str, int] | None:
        if self.gossiper is not None:
            return self.gossiper.resolve(node)
        return self.addresses.get(node)

    def is_alive(self, node: NodeId) -> bool:
        return node in self.alive

    def set_view(self, ring_nodes, alive) -> None:
        """Install a new ring (if its node set changed) and alive set."""
        ring_nodes = set(ring_nodes) | {self.me}
        old_nodes = set(self.ring.nodes)
        if old_nodes != ring_nodes:
            self.ring = Ring(sorted(ring_nodes), self.cluster.config.vnodes)
            for gone in old_nodes - ring_nodes:          # removed for good: drop its hints
                self.cluster.hints.remove_owner(gone)
            if len(old_nodes) == 1 and len(ring_nodes) > 1:
                # This node just joined (new, or restarted): pull its ranges from the peers.
                # Nodes already in the cluster do not re-pull when another one joins.
                self._streamed = False
        alive = frozenset(alive) | {self.me}
        if alive != self.alive:         # kept when equal: plans are cached per alive set
            self.alive = alive
        self.cluster.set_solo(len(self.ring) == 1, self.coordinator)
        if not self._streamed and len(self.alive) > 1:
            self._streamed = True
            self._spawn(self.stream_ranges())

    def node_counts(self) -> tuple[int, int]:
        nodes = set(self.ring.nodes)
        return len(nodes), len(nodes & self.alive)

    def partition(self, nodes: set[NodeId]) -> None:
        """DEBUG PARTITION: drop all traffic to and from `nodes` on this node."""
        self.transport.block(nodes)
        self.server.drop(nodes)

    def heal(self) -> None:
        self.transport.unblock_all()

    async def remove_node(self, node: NodeId) -> None:
        """Remove `node` from the ring for good; its hints here are dropped."""
        if node == self.me:
            raise ValueError("a node cannot remove itself")
        if node not in self.ring:
            raise ValueError(f"unknown node {node!r}")
        if self.gossiper is not None:
            self.gossiper.remove(node)
        else:
            self.set_view(set(self.ring.nodes) - {node}, self.alive - {node})
        self.cluster.hints.remove_owner(node)
        self.transport.disconnect(node)

    # --- hints and range streaming ----------------------------------------------------------

    async def _deliver_hint(self, owner: NodeId, key: bytes, token: int, encoded: bytes) -> bool:
        try:
            await self.transport.call(owner, messages.PUT, [key, encoded, b""])
            return True
        except Exception as error:   # any failure: keep the hint, retry next round
            log.debug("hint for %s not delivered: %r", owner, error)
            return False

    async def stream_ranges(self) -> int:
        """Pull every record in this node's replica ranges from the live peers and merge it
        in (a joining node gets its ranges' data; a restarted one catches up). Return count."""
        n = max(1, min(self.cluster.config.replicas, len(self.ring)))
        received = 0
        for start, end in _scan_spans(self.ring.replica_ranges(self.me, n)):
            for peer in sorted(self.alive - {self.me}):
                received += await self._pull(peer, start, end)
        if received:
            log.info("range stream: merged %d records from peers", received)
        return received

    async def _pull(self, peer: NodeId, start: int, end: int) -> int:
        received = 0
        replica = self.cluster.replica
        while start < end:
            try:
                answer = await self.transport.call(peer, messages.RANGE, [start, end, RANGE_PAGE])
            except Exception as error:
                log.info("range stream from %s stopped: %r", peer, error)
                return received
            nxt, flat = messages.to_int(answer[0]), answer[1]
            for i in range(0, len(flat), 3):        # a replica PUT's path: bytes when it can
                replica.apply_encoded(flat[i + 1], messages.to_int(flat[i]), flat[i + 2])
                received += 1
            start = nxt
        return received

    # --- peer handlers ----------------------------------------------------------------------

    def _register_handlers(self) -> None:
        register = self.server.register
        register(messages.PUT, self._on_put)
        register(messages.MPUT, self._on_mput)
        register(messages.GET, self._on_get)
        register(messages.MGET, self._on_mget)
        register(messages.FGET, self._on_fget)
        register(messages.FPUT, self._on_fput)
        register(messages.FMUT, self._on_fmut)
        register(messages.SCAN, self._on_scan)
        register(messages.COUNT, self._on_count)
        register(messages.FLUSH, self._on_flush)
        register(messages.RANGE, self._on_range)

    def _on_put(self, peer: NodeId, args: list) -> bytes:
        key, encoded, hint_for = args
        self._put_one(key, encoded, hint_for)
        return messages.OK

    def _on_mput(self, peer: NodeId, args: list) -> list:
        """Every (key, siblings, hint_for) triple as `_on_put`; a failing one fails alone.
        One loop over the flat arguments (no per-item tuple, star-call or token int: a replica
        runs this for every replicated write)."""
        n = _item_count(args, 3)
        statuses = None
        for i in range(n):
            try:
                key: bytes = args[3 * i]
                raw: bytes = args[3 * i + 1]
                hint_for: bytes = args[3 * i + 2]
                self._put_one(key, raw, hint_for)
            except Exception as error:
                statuses = _failed(statuses, n, i, error)
        return [messages.OK if statuses is None else statuses, None]

    def _on_mget(self, peer: NodeId, args: list) -> list:
        """Every (key, hint_for) pair as `_on_get`; a failing one fails alone, and a value
        past the answer's byte budget is refused with AnswerAlone (messages.py, MGET)."""
        n = _item_count(args, 2)
        statuses = None
        budget = messages.MGET_ANSWER_MAX_BYTES
        values: list[bytes | None] = []
        for i in range(n):
            raw: bytes | None = None
            try:
                key: bytes = args[2 * i]
                hint_for: bytes = args[2 * i + 1]
                raw = self._get_one(key, hint_for)
                if raw is not None:
                    if len(raw) > budget:
                        raise AnswerAlone(messages.ANSWER_ALONE)
                    budget -= len(raw)
            except Exception as error:
                statuses = _failed(statuses, n, i, error)
                raw = None
            values.append(raw)
        return [messages.OK if statuses is None else statuses, values]

    def _put_one(self, key: bytes, encoded: bytes, hint_for: bytes) -> None:
        """Store one replica write (PUT, MPUT): in the replica, or as a hint for `hint_for`.
        The replica's by `data_key_of` (no token int made: every replicated write)."""
        owner = hint_for.decode() if hint_for else ""
        if owner and owner != self.me:
            siblings = versioning.decode_siblings(encoded)
            if not self.cluster.hints.add(owner, key_token(key), key, siblings):
                raise PeerUnavailable("hint store full")
        else:
            self.cluster.replica.apply_encoded_at(key, data_key_of(key), encoded)

    def _on_get(self, peer: NodeId, args: list) -> bytes | None:
        return self._get_one(args[0], args[1] if len(args) > 1 else b"")

    def _get_one(self, key: bytes, hint_for: bytes) -> bytes | None:
        """This replica's encoded siblings of `key` (GET, MGET), merged with its hint for
        `hint_for` when that names another node. Without a hint, by `data_key_of` (no token
        int made: every replicated read)."""
        owner = hint_for.decode() if hint_for else ""
        if not owner or owner == self.me:
            return self.cluster.replica.read_encoded_of(key)
        token = key_token(key)
        raw = self.cluster.replica.read_encoded(key, token)
        hint = self.cluster.store.get(hint_key(owner, token, key))
        if hint is not None:
            merged = versioning.decode_siblings(hint[8:])
            if raw is not None:
                merged = versioning.sync(merged, versioning.decode_siblings(raw))
            raw = versioning.encode_siblings(merged)
        return raw

    async def _on_fget(self, peer: NodeId, args: list) -> bytes | None:
        siblings = await self.coordinator.get(args[0], forwarded=True)
        return versioning.encode_siblings(siblings) if siblings else None

    async def _on_fput(self, peer: NodeId, args: list) -> bytes:
        key, value, expire, context = args
        parsed = None if context is None else versioning.parse_context(context)
        await self.coordinator.put(key, value, messages.to_int(expire), parsed, forwarded=True)
        return messages.OK

    async def _on_fmut(self, peer: NodeId, args: list) -> bytes:
        from resp_kv.reply import encode
        key, name, rest = args[0], args[1].decode(), list(args[2:])
        try:
            reply = await self.coordinator.mutate(key, name, rest, forwarded=True)
        except Exception as error:
            if hasattr(error, "prefix"):        # a CommandError: the client's error reply
                return encode(error)
            raise
        return encode(reply)

    def _on_scan(self, peer: NodeId, args: list) -> list:
        cursor, count = messages.to_int(args[0]), messages.to_int(args[1])
        found, upto = self.cluster.replica.scan_live(cursor, max(1, count),
                                                     self.cluster.clock.wall_ms())
        return encode_scan_page(found, upto)

    def _on_count(self, peer: NodeId, args: list) -> int:
        alive = set(args[0].decode().split(",")) if args[0] else set()
        return self.coordinator.count_owned(alive)

    def _on_flush(self, peer: NodeId, args: list) -> bytes:
        self.cluster.flush_local()
        return messages.OK

    def _on_range(self, peer: NodeId, args: list) -> list:
        start, end, limit = (messages.to_int(a) for a in args)
        flat: list = []
        nxt = end
        for count, (token, key, raw) in enumerate(self.cluster.replica.scan_range(start, end)):
            if count >= limit:
                nxt = token        # may split one token's keys: harmless, merges are idempotent
                break
            flat += (b"%d" % token, key, raw)
        return [b"%d" % nxt, flat]


class AnswerAlone(Exception):
    """An MGET item whose value does not fit the answer's budget: the coordinator asks again
    with GET."""


def _item_count(args: list, width: int) -> int:
    """The number of items of a batched request (`width` consecutive arguments each)."""
    if not args or len(args) % width:
        raise ValueError(f"a batched request takes items of {width} arguments")
    return len(args) // width


def _failed(statuses: list | None, n: int, i: int, error: Exception) -> list:
    """Note item `i`'s failure in a batched answer's status list (messages.py: OK, or a status
    per item, b"" for the ones that succeeded); return the list."""
    if statuses is None:
        statuses = [b""] * n
    statuses[i] = f"{type(error).__name__}: {error}".encode()
    return statuses


def _scan_spans(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Turn ring ranges (start exclusive, end inclusive], possibly wrapping, into [start, end)
    store-scan spans."""
    spans = []
    for start, end in ranges:
        lo, hi = start + 1, end + 1
        if start == end:
            spans.append((0, TOKEN_LIMIT))
        elif start < end:
            spans.append((lo, hi))
        else:
            spans.append((lo, TOKEN_LIMIT))
            spans.append((0, hi))
    return [(lo, hi) for lo, hi in spans if lo < hi]
