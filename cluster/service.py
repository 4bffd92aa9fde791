"""The `Cluster` facade: everything resp_kv may ask of the replicated store (docs/contracts.md).

Not quorum logic (coordinator.py), storage of siblings (replica.py), hints (hints.py), the peer
protocol (transport.py, peer_server.py) or membership (gossip.py): this file wires them and owns
the single-node fast path.

Single-node fast path. When the ring holds only this node (N_eff = R_eff = W_eff = 1), a request
never touches the network code: get/put/mutate read and write the local replica synchronously,
without creating a task or a future (the budget is ~1.5 µs of cluster work per SET). Durability
is not awaited here: both servers call `DurableStore.barrier()` before writing replies, which is
the fsync policy's one batching point (resp_kv/durability.py); the peer server does the same for
peer acks.

Key space in the LocalStore (docs/contracts.md): b"d" data (replica.py), b"h" hints (hints.py),
b"m" metadata, b"t" Merkle (merkle.py, not ours):

    meta_key := b"m" name          b"mincarnation" -> ascii hex incarnation (kv679)

Tombstone GC (`compaction_filter`): a data record whose siblings are all dead (tombstones or
expired) is dropped by compaction only once every other replica of its token has completed a
clean anti-entropy exchange with this node since it died here (cluster/gcgate.py); in a
single-node cluster at once. Before that it is kept, because a replica that missed the delete
could otherwise resurrect the key through read repair, hints or anti-entropy.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from cluster import encoded, versioning
from cluster.clock import Clock, SystemClock
from cluster.hints import HintStore
from cluster.local_store import LocalStore
from cluster.replica import (
    TOKEN_LIMIT, Replica, WriteListener, data_key, data_key_of, token_of_data_key,
)
from cluster.types import Context, Current, Mutator, Sibling, key_token
from resp_kv import reply as reply_module

if TYPE_CHECKING:
    from cluster.antientropy import AntiEntropy
    from cluster.coordinator import Coordinator
    from cluster.network import Network
    from cluster.repair import Repairs

log = logging.getLogger("cluster.service")

# Final: a compiled module keeps these in C globals, not its module dict (resp_kv/native.py).
# Not for functions of compiled modules (encoded.*): through an alias the call is generic,
# named directly it is a C call.
_decode: Final = versioning.decode_siblings
NOT_NOW: Final = reply_module.NOT_NOW
_join: Final = versioning.join_context

INCARNATION_KEY = b"mincarnation"   # on-disk: never change

# Order of the "# Cluster" INFO fields (DESIGN.md §4).
_INFO_COUNTERS = ("read_repairs", "conflicts_detected", "repair_runs", "repair_keys_sent",
                  "repair_keys_received", "repair_bytes_sent", "repair_bytes_received")


class Cluster:
    """The replicated store as one object. Event-loop thread only, except `compaction_filter`,
    which the storage engine calls from its compaction thread (it only reads)."""

    def __init__(self, config, store: LocalStore, mutators: Mapping[str, Mutator],
                 clock: Clock | None = None) -> None:
        self.config = config
        self.store = store
        self.mutators = mutators
        self.clock: Clock = clock or SystemClock()
        self.node_id = config.node_id
        self.replica = Replica(store)
        self.hints = HintStore(store, self.clock, config.hint_max_bytes, config.hint_max_age_s)
        self.stats = dict.fromkeys(_INFO_COUNTERS, 0)
        self.antientropy: AntiEntropy | None = None
        self.repairs: Repairs | None = None   # REPAIR and the background rounds
        self.incarnation = self._load_incarnation()
        self.actor = f"{self.node_id}@{self.incarnation}"
        # Multi-node machinery (built in start()); None while this is a cluster of one.
        self.coordinator: Coordinator | None = None
        self.network: Network | None = None
        # The single-node fast path is taken while this is True (ring == {self}).
        self.solo = True
        # (live, expiring) records dropped by compaction, drained by info(); appended from the
        # compaction thread (deque.append is atomic).
        self._gc_dropped: deque[tuple[int, int]] = deque()
        self._started = False
        # The store and the clock are native base classes (local_store.py, clock.py): called
        # by name, compiled, each is a C call. Bound once: a GET hands the clock to
        # value_of_encoded, which reads it only for a value that expires.
        self._wall_ms = self.clock.wall_ms

    # --- lifecycle ---------------------------------------------------------------------------

    def _load_incarnation(self) -> str:
        """Return this data dir's incarnation, minting and storing a fresh one if absent (kv679)."""
        raw = self.store.get(INCARNATION_KEY)
        if raw is not None:
            return raw.decode()
        incarnation = os.urandom(4).hex()
        self.store.put(INCARNATION_KEY, incarnation.encode())
        return incarnation

    async def start(self) -> None:
        """Count local keys and hints, make the incarnation durable, join the cluster."""
        await self.store.durable()       # the incarnation must be on disk before any dot
        self.replica.recount()
        self.hints.recount()
        if self.network is None:
            self.network = _build_network(self)
        if self.antientropy is None:
            self.attach_antientropy(*_build_antientropy(self))
        await self.antientropy.start()     # before peers can write: the tree must see it all
        await self.repairs.start()
        await self.network.start()
        self._started = True

    async def stop(self) -> None:
        """Stop background work and close peer connections (the store is closed by node.py)."""
        if self.network is not None:
            await self.network.stop()
        if self.antientropy is not None:
            await self.repairs.stop()
            await self.antientropy.stop()  # saves the Merkle leaves; the store is still open
        self._started = False

    def set_solo(self, solo: bool, coordinator=None) -> None:
        """Switch between the single-node fast path and the coordinator (membership changes)."""
        self.solo = solo
        if coordinator is not None:
            self.coordinator = coordinator
        if not solo and self.antientropy is not None:
            self.antientropy.peers_changed()

    # --- reads and writes ---------------------------------------------------------------------

    async def get(self, key: bytes) -> list[Sibling]:
        """Return the key's merged siblings after R replicas answered."""
        if self.solo:
            return self.replica.read(key, key_token(key))
        return await self.coordinator.get(key)

    async def get_current(self, key: bytes, now_ms: int) -> Current | None:
        """Return the key's live winner (what GET answers) after R replicas answered."""
        if self.solo:
            raw = self.replica.read_encoded(key, key_token(key))
            return encoded.winner_of_encoded(raw, now_ms) if raw is not None else None
        return versioning.winner(await self.coordinator.get(key), now_ms)

    def read_current(self, key: bytes, now_ms: int) -> Current | None:
        """`get_current` while `solo`, synchronous: the local replica is the whole cluster.
        Hot: every single-node GET (the caller skips a coroutine layer)."""
        raw = self.store.get(data_key(key_token(key), key))
        return encoded.winner_of_encoded(raw, now_ms) if raw is not None else None

    def value_now(self, key: bytes) -> bytes | None | object:
        """GET's answer while `solo`, synchronous: the live value or None; NOT_NOW (a reply
        marker of resp_kv.reply) in a cluster, where reads wait for R replicas. Hot: every
        single-node GET, so the client backend binds it directly (no wrapper frame)."""
        if not self.solo:
            return NOT_NOW
        raw = self.store.get(data_key_of(key))
        return encoded.value_of_encoded(raw, self._wall_ms) if raw is not None else None

    async def get_many_current(self, keys: list[bytes], now_ms: int) -> list[Current | None]:
        if self.solo:
            read, peek = self.replica.read_encoded, encoded.winner_of_encoded
            return [None if (raw := read(key, key_token(key))) is None else peek(raw, now_ms)
                    for key in keys]
        return [versioning.winner(siblings, now_ms) for siblings in await self.get_many(keys)]

    async def get_many(self, keys: list[bytes]) -> list[list[Sibling]]:
        if self.solo:
            read = self.replica.read
            return [read(key, key_token(key)) for key in keys]
        return list(await asyncio.gather(*(self.coordinator.get(key) for key in keys)))

    async def put(self, key: bytes, value: bytes | None, expire_at_ms: int = 0,
                  context: Context | None = None) -> None:
        """Store `value` (None = delete) over `context` (None = the coordinator's local
        versions); return after W acks, else raise QuorumNotReached."""
        if self.solo:
            if context is None:
                self.blind_write(key, value, expire_at_ms)
            else:
                self.local_write(key, key_token(key), value, expire_at_ms, context)
            return
        await self.coordinator.put(key, value, expire_at_ms, context)

    def get_started(self, key: bytes, on_done) -> bool:
        """Start a GET's replicated read without a coroutine: `on_done(value, None)` once R
        answered (the merged winner's value, None if none is live), or `on_done(None, error)`;
        False if it cannot start that way (a cluster of one: `value_now`; a key this node does
        not coordinate: `get`)."""
        if self.solo:
            return False
        return self.coordinator.get_started(key, on_done)

    def put_started(self, key: bytes, value: bytes, on_done) -> bool:
        """Start a plain SET's replicated `put` without a coroutine (the coordinator calls
        `on_done(error or None)` once W acked or cannot); False if it cannot start that way
        (a cluster of one: use `blind_write`; a key this node does not coordinate: `put`)."""
        if self.solo:
            return False
        return self.coordinator.put_started(key, value, on_done)

    def put_now(self, key: bytes, value: bytes) -> bool:
        """A plain SET done at once while `solo` (`blind_write`): True; False in a cluster,
        where it waits for W replicas. Hot: every single-node SET, bound by the client
        backend directly (no wrapper frame)."""
        if not self.solo:
            return False
        self.blind_write(key, value)
        return True

    def blind_write(self, key: bytes, value: bytes | None, expire_at_ms: int = 0,
                    token: int | None = None) -> bytes:
        """A plain SET's write to the local replica, over the local versions, synchronous;
        return the stored encoding. While `solo` that is the whole `put`; a coordinator ships
        the encoding to the other replicas. Same result as `local_write(..., context=None)`,
        but a key without conflicts goes bytes to bytes (encoded.overwrite_encoded,
        Replica.store_overwrite): no Sibling objects, no re-encoding of the old set. Hot: every
        SET of the benchmark."""
        # One hash and no int (data_key_of): the token only where it is needed
        store_key = data_key_of(key) if token is None else data_key(token, key)
        old_raw = self.store.get(store_key, False)     # no row cache fill: replaced below
        done = encoded.overwrite_encoded(old_raw, self.actor, value, self.clock.wall_ms(),
                                         expire_at_ms)
        if done is None:                          # several siblings: the general path
            if token is None:
                token = token_of_data_key(store_key)
            return self.local_write(key, token, value, expire_at_ms, None, _decode(old_raw),
                                    old_raw)
        new_raw, old_flags, old_expire_ms = done
        self.replica.store_overwrite(key, store_key, old_raw, new_raw, old_flags, old_expire_ms,
                                     value is not None, expire_at_ms)
        return new_raw

    async def put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        if self.solo:
            for key, value in items:
                self.blind_write(key, value)
            return
        await asyncio.gather(*(self.coordinator.put(key, value, 0, None) for key, value in items))

    def local_write(self, key: bytes, token: int, value: bytes | None, expire_at_ms: int,
                    context: Context | None, local: list[Sibling] | None = None,
                    old_raw: bytes | None = None) -> bytes:
        """Mint a write with this node's actor and apply it to the local replica; return the
        stored encoding. `local`/`old_raw` may be passed by a caller that has just read them."""
        store_key = data_key(token, key)
        if local is None:
            old_raw = self.store.get(store_key, False)
            local = _decode(old_raw) if old_raw is not None else []
        if context is None:
            # Hot path (bench: SET -P 16): the join of the local siblings covers all of them,
            # so the new sibling replaces them all; same result as versioning.write.
            actor = self.actor
            if local:
                joined = _join(local)
                counter = joined.get(actor, 0) + 1
            else:
                joined, counter = {}, 1
            survivors = [Sibling((actor, counter), joined, value, self.clock.wall_ms(),
                                 expire_at_ms)]
        else:
            _, survivors = versioning.write(local, context, self.actor, value,
                                            self.clock.wall_ms(), expire_at_ms)
        return self.replica.store_merged(key, token, local, old_raw, survivors, store_key)

    def local_write_full(self, key: bytes, token: int, value: bytes | None, expire_at_ms: int,
                         context: Context | None, local: list[Sibling] | None = None,
                         old_raw: bytes | None = None) -> tuple[Sibling, list[Sibling], bytes]:
        """`local_write` for the coordinator: return (new sibling, stored set, its encoding)."""
        store_key = data_key(token, key)
        if local is None:
            old_raw = self.store.get(store_key, False)
            local = versioning.decode_siblings(old_raw) if old_raw is not None else []
        if context is None:
            context = versioning.join_context(local)
        new, survivors = versioning.write(local, context, self.actor, value,
                                          self.clock.wall_ms(), expire_at_ms)
        new_raw = self.replica.store_merged(key, token, local, old_raw, survivors, store_key)
        return new, survivors, new_raw

    async def mutate(self, key: bytes, name: str, args: list[bytes]) -> object:
        """Run the mutator `name` at the key's coordinator, serialized per key; return its reply."""
        if self.solo:
            return self.local_mutate(key, name, args)
        return await self.coordinator.mutate(key, name, args)

    def local_mutate(self, key: bytes, name: str, args: list[bytes]) -> object:
        """Single-node read-modify-write: no await between read and write, so no lock needed."""
        token = key_token(key)
        old_raw = self.store.get(data_key(token, key))
        local = versioning.decode_siblings(old_raw) if old_raw is not None else []
        now_ms = self.clock.wall_ms()
        outcome = self.mutators[name](versioning.winner(local, now_ms), args, now_ms)
        write = outcome.write
        if write is not None:
            self.local_write(key, token, write.value, write.expire_at_ms,
                             versioning.join_context(local), local, old_raw)
        return outcome.reply

    # --- whole-keyspace operations ------------------------------------------------------------

    async def scan(self, cursor: int, count: int) -> tuple[int, list[bytes]]:
        """Return (next cursor, live keys). The cursor is a ring token: keys come in token order,
        a token's keys are never split between pages, 0 starts and ends a scan."""
        if not self.solo:
            return await self.coordinator.scan(cursor, count)
        found, upto = self.replica.scan_live(cursor, max(count, 1), self.clock.wall_ms())
        return (0 if upto >= TOKEN_LIMIT else upto), [key for _, key in found]

    async def dbsize(self) -> int:
        """Live keys cluster-wide. One node: its key count minus the expired ones (no scan).
        Several: see Coordinator.dbsize."""
        if self.solo:
            self._drain_gc()
            return self.replica.local_keys - self.replica.expired_count(self.clock.wall_ms())
        return await self.coordinator.dbsize()

    async def flushall(self) -> None:
        """Delete every key on every node; QuorumNotReached if a node is down."""
        if self.solo:
            self.flush_local()
            await self.store.durable()
            return
        await self.coordinator.flushall()

    def flush_local(self) -> None:
        """Delete every data key and hint on this node."""
        self.replica.delete_all()
        self.hints.clear()

    async def repair(self, key: bytes | None) -> dict[str, int]:
        """Anti-entropy now (all ranges, or one key). Delegates to the attached AntiEntropy;
        without one, a key is repaired by a quorum read (read repair) and stats are zero."""
        if self.antientropy is not None:
            return await self.repairs.repair(key)
        started = self.clock.monotonic()
        if key is not None and not self.solo:
            await self.coordinator.get(key, repair_all=True)
        stats = {"peers": 0, "ranges_compared": 0, "ranges_differing": 0, "keys_sent": 0,
                 "keys_received": 0, "bytes_sent": 0, "bytes_received": 0}
        stats["duration_ms"] = int((self.clock.monotonic() - started) * 1000)
        self.stats["repair_runs"] += 1
        return stats

    def attach_antientropy(self, antientropy, repairs) -> None:
        """Install the Merkle anti-entropy service and its REPAIR/rounds driver (repair.py);
        `repair()` delegates to the driver from now on."""
        self.antientropy, self.repairs = antientropy, repairs

    # --- seams --------------------------------------------------------------------------------

    def add_write_listener(self, listener: WriteListener) -> None:
        """Call `listener.on_write(key, store_key, old_encoded | None, new_encoded | None)` on every
        local change to a data key (Merkle trees hang here)."""
        self.replica.listeners.append(listener)

    def compaction_filter(self, key: bytes, value: bytes, now_ms: int) -> bool:
        """Return True to drop `key` during compaction (see the module docstring: only dead data
        records, repair-gated). Runs on the compaction thread."""
        if key[:1] != b"d":
            return False
        try:
            siblings = versioning.decode_siblings(value)
        except ValueError:
            return False
        if not versioning.is_dead(siblings, now_ms):
            return False
        if self.antientropy is not None:             # repair-gated GC (cluster/antientropy.py)
            if not self.antientropy.may_collect(key, siblings):
                return False
        elif not self.solo:
            return False
        live = expiring = 0
        for sibling in siblings:
            if sibling.value is not None:
                live = 1
                expiring |= bool(sibling.expire_at_ms)
        if live:
            self._gc_dropped.append((live, expiring))
        return True

    def _drain_gc(self) -> None:
        dropped = self._gc_dropped
        while dropped:
            live, expiring = dropped.popleft()
            self.replica.local_keys -= live
            self.replica.local_expires -= expiring

    # --- introspection ------------------------------------------------------------------------

    def info(self) -> dict[str, object]:
        """DESIGN.md §4 "# Cluster" fields in order, then local_keys and local_expires."""
        self._drain_gc()
        config = self.config
        if self.network is not None:
            nodes, up = self.network.node_counts()
        else:
            nodes, up = 1, 1
        n_eff = min(config.replicas, nodes)
        fields: dict[str, object] = {
            "node_id": self.node_id,
            "cluster_nodes": nodes,
            "cluster_nodes_up": up,
            "replicas": n_eff,
            "read_quorum": min(config.read_quorum, n_eff),
            "write_quorum": min(config.write_quorum, n_eff),
            "vnodes": config.vnodes,
            "hints_pending": self.hints.pending,
            "hints_delivered": self.hints.delivered,
            "hints_dropped": self.hints.dropped,
        }
        fields.update(self.stats)
        if self.antientropy is not None:
            fields.update(self.repairs.info())
        expired = self.replica.expired_count(self.clock.wall_ms())
        fields["local_keys"] = self.replica.local_keys - expired
        fields["local_expires"] = max(0, self.replica.local_expires - expired)
        return fields

    async def debug(self, args: list[bytes]) -> object:
        """DEBUG hooks (the front end gates them behind --debug-commands):
        LOCALGET key, LOCALVCLOCK key, PARTITION node..., HEAL, REMOVENODE node."""
        from cluster.debug import run_debug
        return await run_debug(self, args)

    async def remove_node(self, node_id: str) -> None:
        """Remove a dead node from the ring for good (operator command)."""
        if self.network is None:
            raise ValueError("this node has no peers")
        await self.network.remove_node(node_id)


def _build_antientropy(cluster: Cluster):
    """Build the Merkle anti-entropy service over the cluster's network (ring, peers) and its
    REPAIR/rounds driver; return both."""
    from cluster.antientropy import AntiEntropy
    from cluster.repair import Repairs
    network, config = cluster.network, cluster.config
    antientropy = AntiEntropy(
        cluster.node_id, cluster.store, cluster.replica,
        ring=(lambda: network.ring) if network is not None else (lambda: None),
        replicas=config.replicas,
        call=network.transport.call if network is not None else None,
        clock=cluster.clock, grace_s=config.tombstone_grace_s, hint_wait_s=hint_wait_s(config),
        tree_when_alone=bool(config.seeds))
    if network is not None:
        antientropy.register(network.server.register)
    repairs = Repairs(antientropy,
                      alive=(lambda: network.alive) if network is not None else None,
                      interval_s=config.anti_entropy_interval_s)
    return antientropy, repairs


def hint_wait_s(config) -> float:
    """How long past its newest timestamp a dead record is kept, at least: the GC gate's
    `hint_wait` for `config` (a resp_kv.config.ClusterConfig).

    A hint older than `hint_max_age_s` is never delivered, and a hint is never younger than
    the writes it carries (hints.py). A delete that supersedes a write was made after it, so
    a tombstone kept `hint_max_age_s` past its own timestamp outlives every hint of what it
    deleted; collected sooner, a late hint would bring the value back on its owner (Cassandra:
    max_hint_window < gc_grace_seconds). The request timeout is the margin for a hint checked
    just before it expired and still on the wire, and for clocks a little apart."""
    return config.hint_max_age_s + config.request_timeout_s


def _build_network(cluster: Cluster):
    """Build the multi-node machinery (peer server, transport, gossip, coordinator). Every
    node listens on its peer port, so a node started without seeds can be joined later."""
    from cluster.network import Network
    return Network(cluster)
