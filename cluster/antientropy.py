"""Merkle anti-entropy: always-current trees, the peer exchange, and the GC gate.

Not the tree arithmetic (merkle.py, pure), its upkeep (merkle_keeper.py), the GC rule
(gcgate.py), the transport (transport.py), or when and with whom to exchange (repair.py:
REPAIR, the background rounds and their counters): this file serves and runs exchanges over the
peer protocol, and wires the write listener and the compaction filter to the keeper and the
gate. The responder and initiator halves of the protocol share its session views and read
best side by side.

Exchange (initiator I, responder R, over S = I's replica ranges ∩ R's, both from the ring)::

    AE.ROOT  session ranges(S)         -> [state, root]      state "ready" | "building"
    AE.NODES session level parents     -> child hashes       only under differing parents
    AE.KEYS  session segments          -> [key, entry, ...]  only differing leaves
    AE.PULL  key*                      -> [encoded | nil, ...]      only differing keys
    AE.PUSH  (key encoded)*            -> applied count      merged with versioning.sync
    AE.PURGE key*                      -> purged count       dead records both may forget
    AE.DONE  session                   -> "OK"               R records a clean sync with I

    session  := 8 random bytes; R keeps its view of S for the session (60 s, LRU 16)
    parents  := u16be*  (node indices at `level`)        segments := u16be*
    entry    := flag:u8 digest[16] dots        dots := "actor:counter" joined by ","
    flag     := 1 = R would purge this dead record were I to lack the key

Both sides compare views restricted to S (merkle.MerkleTree.restricted; the live tree when S is
the whole ring). A differing key whose dots I have all seen is only pushed; otherwise it is
pulled, merged locally, and the merge pushed back only if it differs from R's; a key only one
side has goes one way. So each diverged key crosses at most twice (concurrent siblings), once
when one side is simply newer.
Everything is a DVV sync, so a repeated or interrupted exchange is harmless. An in-sync check
of any size costs the ROOT and DONE round trips (~150 bytes plus the range list).

The tree's lifecycle (saved at shutdown, rebuilt in the background after a crash while INFO
says `merkle_tree:building` and exchanges wait, compaction-dropped segments rescanned, none at
all while a node without seeds is alone: `dormant`) lives in merkle_keeper.py; this file only
turns the listener off and on (`start`, `peers_changed`).

GC gate (`compaction_filter`, rule in gcgate.py): a dead record is dropped only after every
other replica of its token completed a clean exchange with this node since it died here; with no
other replica, at once. An exchange that finds a dead, collectable record on one side only
forgets it there (AE.PURGE) instead of sending it back to a replica that already collected it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from cluster import encoded, merkle, versioning
from cluster.clock import Clock, SystemClock
from cluster.gcgate import GcGate
from cluster.local_store import LocalStore
from cluster.merkle_keeper import CLEAN_KEY, LEAVES_KEY, MerkleKeeper
from cluster.merkle import SEGMENTS, TOKEN_LIMIT, MerkleTree, Range
from cluster.replica import (DATA_PREFIX, Replica, WriteListener, data_key,
                             token_of_data_key)
from cluster.types import NodeId, key_token

log = logging.getLogger("cluster.antientropy")

ROOT, NODES, KEYS = b"AE.ROOT", b"AE.NODES", b"AE.KEYS"
PULL, PUSH, PURGE, DONE = b"AE.PULL", b"AE.PUSH", b"AE.PURGE", b"AE.DONE"
VERBS = (ROOT, NODES, KEYS, PULL, PUSH, PURGE, DONE)

__all__ = ["AntiEntropy", "ByteBudget", "ExchangeStats", "VERBS", "CLEAN_KEY", "LEAVES_KEY",
           "ring_ranges", "wire_size"]
_U16 = struct.Struct(">H")
_SESSION_TTL_S = 60.0
_SESSIONS_MAX = 16                      # a restricted view is ~3 MB; whole-ring views share the tree
_PARENTS_PER_CALL = 256                 # 256 * 16 children * 16 bytes = 64 KiB replies
_SEGMENTS_PER_CALL = 256
_KEYS_PER_CALL = 512
_CALL_TIMEOUT_S = 30.0
# Cost model of the walk: descending below a differing node costs its children's hashes;
# listing its keys instead costs about one KEYS entry per key. Descend only when cheaper.
_NODE_CHILDREN_BYTES = 16 * 16 + 16
_KEY_ENTRY_BYTES = 56
_PEER_BUILDING_WAIT_S = 60.0

Call = Callable[[NodeId, bytes, list, float], Awaitable[object]]
STAT_FIELDS = ("peers", "ranges_compared", "ranges_differing", "keys_sent", "keys_received",
               "bytes_sent", "bytes_received", "duration_ms")


def ring_ranges(pairs: Iterable[tuple[int, int]]) -> list[Range]:
    """Convert Ring.replica_ranges output ((start, end] with wrap-around; (t, t) = the whole
    ring) to normalized half-open [start, end) ranges."""
    out: list[Range] = []
    for start, end in pairs:
        if start == end:
            return [(0, TOKEN_LIMIT)]
        if start < end:
            out.append((start + 1, end + 1))
        else:
            if start + 1 < TOKEN_LIMIT:
                out.append((start + 1, TOKEN_LIMIT))
            out.append((0, end + 1))
    return merkle.normalize_ranges(out)


def wire_size(value: object) -> int:
    """Return the RESP2 size of a payload (what a peer frame carries for it)."""
    if value is None:
        return 5
    if isinstance(value, (bytes, bytearray)):
        return len(value) + len(str(len(value))) + 5
    if isinstance(value, int):
        return len(str(value)) + 3
    if isinstance(value, str):
        return wire_size(value.encode())
    if isinstance(value, (list, tuple)):
        return len(str(len(value))) + 3 + sum(wire_size(v) for v in value)
    return 0


@dataclass
class ExchangeStats:
    """What one exchange (or a REPAIR, a round: `add`) compared and moved (DESIGN.md §3)."""

    peers: int = 0
    ranges_compared: int = 0
    ranges_differing: int = 0
    keys_sent: int = 0
    keys_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    duration_ms: int = 0

    def add(self, other: ExchangeStats) -> None:
        for name in STAT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in STAT_FIELDS}


@dataclass
class _View:
    """One side's picture of the shared ranges S during a session."""

    ranges: list[Range]
    full: set[int] | None                 # None: every segment (S is the whole ring)
    partial: dict[int, list[Range]]
    tree: MerkleTree
    started_ms: int
    touched_s: float = 0.0


@dataclass
class ByteBudget:
    """A bytes/s cap for background exchanges (None = uncapped)."""

    rate: float | None
    clock: Clock
    started_s: float = field(default=0.0)
    spent: int = 0

    async def spend(self, nbytes: int) -> None:
        self.spent += nbytes
        if not self.rate:
            return
        due = self.spent / self.rate - (self.clock.monotonic() - self.started_s)
        if due > 0:
            await self.clock.sleep(due)


class PeerBuilding(Exception):
    """The peer's tree is still being rebuilt; try again later."""


class AntiEntropy(WriteListener):
    """Merkle anti-entropy for one node. Event-loop thread only, except `compaction_filter`
    (compaction thread: it reads, and appends to a list).

    `ring()` returns the current Ring (None or a one-node ring = no peers); `call(node, verb,
    args, timeout_s)` is PeerTransport.call; `alive()` the nodes believed up.
    """

    def __init__(self, node_id: NodeId, store: LocalStore, replica: Replica, *,
                 ring: Callable[[], object | None], replicas: int, call: Call | None = None,
                 clock: Clock | None = None, grace_s: float = 0.0, hint_wait_s: float = 0.0,
                 compactions: Callable[[], int] | None = None,
                 tree_when_alone: bool = True) -> None:
        self.node_id, self.store, self.replica = node_id, store, replica
        self._ring, self.replicas, self._call = ring, replicas, call
        self.clock = clock or SystemClock()
        self.keeper = MerkleKeeper(store, replica, compactions)
        self.gate = GcGate(self.clock.wall_ms(), int(grace_s * 1000), int(hint_wait_s * 1000))
        self._sessions: OrderedDict[tuple[NodeId, bytes], _View] = OrderedDict()
        self.last_exchange_ms: dict[NodeId, int] = {}
        self.tombstones_purged = 0
        self._tasks: set[asyncio.Task] = set()
        self._tree_when_alone = tree_when_alone    # False: dormant while no peer (keeper)
        replica.listeners.append(self)

    # --- lifecycle ------------------------------------------------------------------------

    def register(self, register: Callable[[bytes, Callable], None]) -> None:
        """Register the AE.* verbs with PeerServer.register."""
        handlers = {ROOT: self._on_root, NODES: self._on_nodes, KEYS: self._on_keys,
                    PULL: self._on_pull, PUSH: self._on_push, PURGE: self._on_purge,
                    DONE: self._on_done}
        for verb in VERBS:
            register(verb, handlers[verb])

    async def start(self) -> None:
        """Load the saved leaves if they were saved cleanly, else rebuild in the background.
        (The rounds are scheduled by repair.Repairs.)"""
        self.gate.started_ms = self.clock.wall_ms()
        if not self._tree_when_alone and not self._has_peers():
            self.keeper.make_dormant()
            self.replica.listeners.remove(self)
        elif not self.keeper.load():
            self._spawn(self.keeper.rebuild(), "merkle-rebuild")

    def peers_changed(self) -> None:
        """The ring changed. A dormant tree wakes at the first peer: listen to writes again
        (before the rebuild task starts: the keeper skips what its scan will read) and
        rebuild. It does not go back to sleep if the peers leave again."""
        if self.keeper.state == "dormant" and self._has_peers():
            self.replica.listeners.append(self)
            self._spawn(self.keeper.rebuild(), "merkle-rebuild")

    async def stop(self) -> None:
        """Stop background work and save the leaves (call before the store closes)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self.keeper.save()

    @property
    def tree(self) -> MerkleTree:
        return self.keeper.tree

    @property
    def state(self) -> str:
        return self.keeper.state

    @property
    def _ready(self) -> asyncio.Event:
        return self.keeper.ready

    def _set_ready(self) -> None:
        self.keeper.set_ready()

    def on_write(self, key: bytes, store_key: bytes, old: bytes | None,
                 new: bytes | None) -> None:
        """Replica write listener: the tree update, plus the GC gate's dead-arrival mark."""
        self.keeper.on_write(key, store_key, old, new)
        if new is None or encoded.lives_on_encoded(new):
            return                                # nothing dead arrived
        ring = self._ring()                       # _has_peers(), inlined: every local write
        if ring is not None and len(ring) > 1:
            now = self.clock.wall_ms()
            if encoded.is_dead_encoded(new, now):
                self.gate.note_dead_arrival(token_of_data_key(store_key), now)

    # --- GC gate ---------------------------------------------------------------------------

    def compaction_filter(self, store_key: bytes, value: bytes, now_ms: int) -> bool:
        """Return True if compaction may drop this record (see the module docstring)."""
        if store_key[:1] != DATA_PREFIX:
            return False
        try:
            siblings = versioning.decode_siblings(value)
        except ValueError:
            return False
        return versioning.is_dead(siblings, now_ms) and self.may_collect(store_key, siblings)

    def may_collect(self, store_key: bytes, siblings: list) -> bool:
        """Return True if the dead data record `siblings` may be dropped now (the GC gate)."""
        token = int.from_bytes(store_key[1:9], "big")
        if not self._collectable(token, siblings):
            return False
        self.keeper.note_gc_drop(token)
        return True

    def _collectable(self, token: int, siblings: list, lacking: NodeId | None = None) -> bool:
        """Return True if every other replica of `token` synced with us after the record died.

        `lacking` is a peer just seen to hold nothing for the key (it collected the record, or
        never had any version, or lost its disk): it holds nothing that could come back, so it
        need not have synced."""
        return self.gate.collectable(
            token, siblings, [p for p in self._other_replicas(token) if p != lacking],
            self.clock.wall_ms())

    def _record_clean(self, peer: NodeId, ranges: list[Range], started_ms: int) -> None:
        self.gate.record_clean(peer, ranges, started_ms)
        self.last_exchange_ms[peer] = self.clock.wall_ms()

    def _purge(self, key: bytes, lacking: NodeId) -> bool:
        """Forget a dead, collectable record now that peer `lacking` was seen without it
        (instead of sending it back to a replica that already collected it)."""
        token = key_token(key)
        raw = self.replica.read_encoded(key, token)
        if raw is None:
            return False
        siblings = versioning.decode_siblings(raw)
        if not (versioning.is_dead(siblings, self.clock.wall_ms())
                and self._collectable(token, siblings, lacking)):
            return False
        store_key = data_key(token, key)
        self.store.delete(store_key)
        if any(s.value is not None for s in siblings):     # an expired value still counted
            self.replica.local_keys -= 1
            self.replica.local_expires -= 1
        for listener in self.replica.listeners:
            listener.on_write(key, store_key, raw, None)
        self.tombstones_purged += 1
        return True

    # --- ring helpers ----------------------------------------------------------------------

    def _ring_now(self):
        ring = self._ring()
        return ring if ring is not None and len(ring) > 1 else None

    def _has_peers(self) -> bool:
        return self._ring_now() is not None

    def _n(self, ring) -> int:
        return min(self.replicas, len(ring))

    def owners(self, token: int) -> list[NodeId]:
        """The token's preference list (empty while this node has no peers)."""
        ring = self._ring_now()
        return ring.preference_list(token, self._n(ring)) if ring is not None else []

    def _other_replicas(self, token: int) -> list[NodeId]:
        return [n for n in self.owners(token) if n != self.node_id]

    def peers(self) -> list[NodeId]:
        """The other ring nodes this node shares replica ranges with."""
        ring = self._ring_now()
        if ring is None:
            return []
        return [n for n in ring.nodes if n != self.node_id and self.shared_ranges(n)]

    def shared_ranges(self, peer: NodeId) -> list[Range]:
        """Return the token ranges both this node and `peer` replicate."""
        ring = self._ring_now()
        if ring is None or peer not in ring or self.node_id not in ring:
            return []
        n = self._n(ring)
        return merkle.intersect_ranges(ring_ranges(ring.replica_ranges(self.node_id, n)),
                                       ring_ranges(ring.replica_ranges(peer, n)))

    def _view(self, ranges: list[Range]) -> _View:
        """Build this node's view of `ranges` (the live tree when they cover the whole ring)."""
        if ranges == [(0, TOKEN_LIMIT)]:
            return _View(ranges, None, {}, self.tree, self.clock.wall_ms(), self.clock.monotonic())
        full, partial = merkle.segment_coverage(ranges)
        tree = self.tree.restricted(full, {s: self.keeper.scan_leaf(r) for s, r in partial.items()})
        return _View(ranges, set(full), partial, tree, self.clock.wall_ms(),
                     self.clock.monotonic())

    def _segment_records(self, view: _View, segment: int) -> Iterable[tuple[int, bytes, bytes]]:
        if view.full is None or segment in view.full:
            yield from self.replica.scan_range(*merkle.segment_bounds(segment))
        for start, end in view.partial.get(segment, ()):
            yield from self.replica.scan_range(start, end)

    # --- responder -------------------------------------------------------------------------

    def _session(self, peer: NodeId, session: bytes) -> _View:
        view = self._sessions.get((peer, session))
        if view is None:
            raise ValueError("unknown anti-entropy session")
        view.touched_s = self.clock.monotonic()
        return view

    def _on_root(self, peer: NodeId, args: list) -> list:
        session, blob = args
        if self.state != "ready":
            return [b"building", b""]
        self.keeper.resolve_gc()
        view = self._view(merkle.decode_ranges(blob))
        sessions, now = self._sessions, self.clock.monotonic()
        for stale in [k for k, v in sessions.items() if now - v.touched_s > _SESSION_TTL_S]:
            del sessions[stale]
        sessions[(peer, bytes(session))] = view
        while len(sessions) > _SESSIONS_MAX:
            sessions.popitem(last=False)
        return [b"ready", view.tree.root.to_bytes(16, "big")]

    def _on_nodes(self, peer: NodeId, args: list) -> bytes:
        session, level, blob = args
        view, level = self._session(peer, session), int(level)
        if not 0 <= level < merkle.DEPTH:
            raise ValueError("bad Merkle level")
        parents = [p for (p,) in _U16.iter_unpack(blob)]
        if any(p >= merkle.FANOUT ** level for p in parents):
            raise ValueError("bad Merkle node index")
        return merkle.encode_hashes(h for p in parents for h in view.tree.children(level, p))

    def _on_keys(self, peer: NodeId, args: list) -> list:
        session, blob = args
        view, out = self._session(peer, session), []
        now = self.clock.wall_ms()
        for (segment,) in _U16.iter_unpack(blob):
            for token, key, raw in self._segment_records(view, segment):
                out += (key, self._flag(token, raw, now, peer) + merkle.version_digest(raw)
                        + _encode_dots(raw))
        return out

    def _flag(self, token: int, raw: bytes, now_ms: int, asker: NodeId) -> bytes:
        """1 if we would purge this dead record should `asker` turn out not to hold the key."""
        siblings = versioning.decode_siblings(raw)
        dead = versioning.is_dead(siblings, now_ms) and self._collectable(token, siblings, asker)
        return b"\x01" if dead else b"\x00"

    def _on_pull(self, peer: NodeId, args: list) -> list:
        return [self.replica.read_encoded(key, key_token(key)) for key in args]

    def _on_push(self, peer: NodeId, args: list) -> int:
        if len(args) % 2:
            raise ValueError("AE.PUSH takes key/value pairs")
        for i in range(0, len(args), 2):
            key = bytes(args[i])
            self.replica.apply(key, key_token(key), versioning.decode_siblings(args[i + 1]))
        return len(args) // 2

    def _on_purge(self, peer: NodeId, args: list) -> int:
        return sum(self._purge(bytes(key), peer) for key in args)

    def _on_done(self, peer: NodeId, args: list) -> bytes:
        view = self._sessions.pop((peer, bytes(args[0])), None)
        if view is None:
            raise ValueError("unknown anti-entropy session")
        self._record_clean(peer, view.ranges, view.started_ms)
        return b"OK"

    # --- initiator -------------------------------------------------------------------------

    async def rpc(self, peer: NodeId, verb: bytes, args: list, stats: ExchangeStats,
                  budget: ByteBudget) -> object:
        """One AE.* call, counted into `stats` and paced by `budget`."""
        sent = wire_size([verb, b"0", *args])
        stats.bytes_sent += sent
        reply = await self._call(peer, verb, args, _CALL_TIMEOUT_S)
        received = wire_size(reply)
        stats.bytes_received += received
        await budget.spend(sent + received)
        return reply

    async def exchange(self, peer: NodeId, ranges: list[Range] | None = None,
                       budget: ByteBudget | None = None) -> ExchangeStats:
        """Run one full exchange with `peer` over `ranges` (default: the shared ranges).

        Raises on any failure (PeerUnavailable, TimeoutError, PeerError, PeerBuilding); an
        interrupted exchange changes nothing but what it already merged, which is harmless."""
        stats, started = ExchangeStats(), self.clock.monotonic()
        budget = budget or ByteBudget(None, self.clock)
        budget.started_s = budget.started_s or started
        ranges = self.shared_ranges(peer) if ranges is None else merkle.normalize_ranges(ranges)
        if not ranges:
            return stats
        await self._ready.wait()
        self.keeper.resolve_gc()
        view, session = self._view(ranges), os.urandom(8)
        stats.peers = 1
        stats.ranges_compared = (SEGMENTS if view.full is None
                                 else len(view.full) + len(view.partial))
        remote_root = await self._remote_root(peer, session, ranges, stats, budget)
        differing = await self._walk(peer, session, view, remote_root, stats, budget)
        stats.ranges_differing = len(differing)
        for i in range(0, len(differing), _SEGMENTS_PER_CALL):
            await self._sync_segments(peer, session, view, differing[i:i + _SEGMENTS_PER_CALL],
                                      stats, budget)
        await self.rpc(peer, DONE, [session], stats, budget)
        self._record_clean(peer, ranges, view.started_ms)
        stats.duration_ms = int((self.clock.monotonic() - started) * 1000)
        return stats

    async def _remote_root(self, peer: NodeId, session: bytes, ranges: list[Range],
                           stats: ExchangeStats, budget: ByteBudget) -> int:
        deadline = self.clock.monotonic() + _PEER_BUILDING_WAIT_S
        while True:
            state, root = await self.rpc(peer, ROOT, [session, merkle.encode_ranges(ranges)],
                                          stats, budget)
            if state == b"ready":
                return int.from_bytes(root, "big")
            if self.clock.monotonic() > deadline:
                raise PeerBuilding(f"{peer} is still rebuilding its Merkle tree")
            await self.clock.sleep(0.2)

    async def _walk(self, peer: NodeId, session: bytes, view: _View, remote_root: int,
                    stats: ExchangeStats, budget: ByteBudget) -> list[int]:
        """Descend from the roots through differing nodes only; return differing segments."""
        frontier = [0] if view.tree.root != remote_root else []
        per_segment = self.tree.count / SEGMENTS
        for level in range(merkle.DEPTH):
            keys_under = per_segment * merkle.FANOUT ** (merkle.DEPTH - level)
            if frontier and keys_under * _KEY_ENTRY_BYTES < _NODE_CHILDREN_BYTES:
                span = merkle.FANOUT ** (merkle.DEPTH - level)   # too few keys to be worth it:
                return [s for n in frontier for s in range(n * span, (n + 1) * span)]
            below: list[int] = []
            for i in range(0, len(frontier), _PARENTS_PER_CALL):
                parents = frontier[i:i + _PARENTS_PER_CALL]
                blob = await self.rpc(peer, NODES, [session, str(level).encode(),
                                                     b"".join(_U16.pack(p) for p in parents)],
                                       stats, budget)
                below += view.tree.differing_children(level, parents, merkle.decode_hashes(blob))
            frontier = below
        return frontier

    async def _sync_segments(self, peer: NodeId, session: bytes, view: _View,
                             segments: list[int], stats: ExchangeStats, budget: ByteBudget) -> None:
        """Compare (key, digest) lists of differing leaves; move only differing objects."""
        reply = await self.rpc(peer, KEYS, [session, b"".join(_U16.pack(s) for s in segments)],
                                stats, budget)
        theirs = {bytes(reply[i]): bytes(reply[i + 1]) for i in range(0, len(reply), 2)}
        mine_raw = {key: raw for s in segments for _, key, raw in self._segment_records(view, s)}
        differ, push = merkle.diff_digests(
            {k: merkle.version_digest(raw) for k, raw in mine_raw.items()},
            {k: v[1:17] for k, v in theirs.items()})
        purge_remote, pull = [], []
        for key in differ:
            entry = theirs[key]
            if key not in mine_raw:
                (purge_remote if entry[:1] == b"\x01" else pull).append(key)
            elif _covers(mine_raw[key], entry[17:]):
                push.append(key)                  # ours already includes theirs: send only
            else:
                pull.append(key)
        push = [k for k in push if k in mine_raw and (k in theirs or not self._purge(k, peer))]
        for i in range(0, len(purge_remote), _KEYS_PER_CALL):
            await self.rpc(peer, PURGE, purge_remote[i:i + _KEYS_PER_CALL], stats, budget)
        outgoing: list[bytes] = []
        for i in range(0, len(pull), _KEYS_PER_CALL):
            batch = pull[i:i + _KEYS_PER_CALL]
            values = await self.rpc(peer, PULL, batch, stats, budget)
            for key, raw in zip(batch, values):
                if raw is None:
                    continue
                stats.keys_received += 1
                merged = self.replica.apply(key, key_token(key), versioning.decode_siblings(raw))
                if merkle.version_digest(versioning.encode_siblings(merged)) != theirs[key][1:17]:
                    outgoing.append(key)
        outgoing += push
        for i in range(0, len(outgoing), _KEYS_PER_CALL):
            args: list[bytes] = []
            for key in outgoing[i:i + _KEYS_PER_CALL]:
                raw = self.replica.read_encoded(key, key_token(key))
                if raw is not None:
                    args += (key, raw)
            if args:
                await self.rpc(peer, PUSH, args, stats, budget)
                stats.keys_sent += len(args) // 2

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- introspection ---------------------------------------------------------------------

    def info(self) -> dict[str, object]:
        """The tree's INFO fields (repair.Repairs.info adds the counters): its state and root,
        and the last clean exchange per peer."""
        self.keeper.resolve_gc()
        ring = self._ring_now()
        peers = sorted(set(ring.nodes if ring is not None else ()) - {self.node_id}
                       | set(self.last_exchange_ms))
        last = ",".join(f"{p}={self.last_exchange_ms.get(p, 'never')}" for p in peers)
        return {"merkle_tree": self.state, "merkle_root": f"{self.tree.root:032x}",
                "anti_entropy_last_exchange_ms": last}


def _encode_dots(raw: bytes) -> bytes:
    """Return the dots of an encoded sibling set as "actor:counter,..." (KEYS entries)."""
    return ",".join(f"{a}:{c}" for a, c in (s.dot for s in versioning.decode_siblings(raw))
                    ).encode()


def _covers(raw: bytes, dots: bytes) -> bool:
    """Return True if our sibling set `raw` has seen every one of the peer's `dots`, so a
    merge could not change ours: the key only needs sending, not fetching first."""
    seen = versioning.join_context(versioning.decode_siblings(raw))
    for item in dots.decode().split(",") if dots else ():
        actor, _, counter = item.rpartition(":")
        if seen.get(actor, 0) < int(counter):
            return False
    return True
