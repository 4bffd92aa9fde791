"""The coordinator role (riak put_fsm/get_fsm): fan a request out to a key's replicas, wait for
the quorum, merge, repair. Used only when the ring has more than one node (service.py has the
single-node fast path).

Not placement (ring.py), not the sibling laws (versioning.py), not storage (replica.py), not
the per-request answer state (inflight.py: Waiter, Read, QuickRead, QuickWrite).

- Effective quorums (DESIGN.md §2): N_eff = min(N, ring size), R_eff = min(R, N_eff),
  W_eff = min(W, N_eff).
- Forwarding: a node outside the key's preference list forwards get/put/mutate to the first
  live primary (the next one if that fails), which coordinates; a forwarded request is always
  coordinated by its receiver, even if its ring view differs (no forwarding loops).
- put: the coordinator applies the write to its own replica first (minting the dot with its
  actor over the join of its local siblings, or the client's context), then sends the stored
  sibling set to the other `plan_writes` targets and answers after W_eff acks. A send that fails
  or times out records a hint here for that owner (best effort) and, while W is not met yet,
  is retried on the next live node outside the preference list as a fallback holding a hint.
- get: asks the live primaries (plus a fallback per down primary, which answers from its hint),
  answers after R_eff, merges with `versioning.sync`. Once every asked replica answered or timed
  out, stale primaries get the merged set (read repair, `read_repairs` counts replicas repaired;
  `conflicts_detected` counts reads whose merged set has more than one live sibling).
- mutate: at the key's first live primary (every other node forwards it there, primaries
  included, so one lock serializes the key), under a per-key asyncio.Lock: quorum read -> winner -> mutator ->
  quorum write over the read's joined context. A forwarded mutation's reply travels RESP2-encoded
  (resp_kv.reply.encode) and is decoded with hiredis; a top-level simple string comes back as
  resp_kv.reply.SimpleString, nested ones as bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import hiredis

from cluster import messages, versioning
from cluster.encoded import is_one_sibling_encoded
from cluster.inflight import QuickRead, QuickWrite, Read, Waiter
from cluster.quorum import ReadQuorum, WriteQuorum
from cluster.replica import TOKEN_LIMIT
from cluster.ring import Plan, Target, WritePlans
from cluster.transport import ItemCallback, PeerError
from cluster.types import Context, NodeId, PeerUnavailable, QuorumNotReached, Sibling, key_token

if TYPE_CHECKING:
    from cluster.network import Network
    from cluster.service import Cluster

log = logging.getLogger("cluster.coordinator")

_CALL_ERRORS = (PeerUnavailable, PeerError, TimeoutError, ConnectionError, OSError)
_UNREAD = object()          # _start_get: the caller has not read the local copy


class Coordinator:
    """Quorum reads and writes over the peer transport. Event-loop thread only."""

    def __init__(self, cluster: Cluster, network: Network) -> None:
        # Typed: compiled, these are native attribute reads and calls (resp_kv/native.py).
        self.cluster = cluster
        self.network = network            # .ring, .alive, .transport
        self.me = cluster.node_id
        self._locks: dict[bytes, list] = {}   # key -> [lock, users]
        self._background: set[asyncio.Task] = set()
        self._sized: tuple = (None, (1, 1, 1))     # (ring, sizes): see _sizes
        self._plans: WritePlans | None = None      # for the current view: see _plan

    # --- quorum sizes -----------------------------------------------------------------------

    def _sizes(self) -> tuple[int, int, int]:
        # Cached per ring: the view is replaced, never mutated, and the config is immutable.
        ring = self.network.ring
        if self._sized[0] is not ring:
            config = self.cluster.config
            n = max(1, min(config.replicas, len(ring)))
            self._sized = (ring, (n, min(config.read_quorum, n), min(config.write_quorum, n)))
        return self._sized[1]

    def _call(self, node: NodeId, verb: bytes, args: list) -> asyncio.Future:
        return self.network.transport.call(node, verb, args)

    def _send(self, node: NodeId, verb: bytes, args: list, callback) -> None:
        """Send a request whose answer goes to `callback(payload, error)` (error None on
        success): no future per peer call."""
        self.network.transport.send(node, verb, args, callback)

    # --- forwarding -------------------------------------------------------------------------

    async def _forward(self, token: int, verb: bytes, args: list):
        """Send a request to the first live primary that answers; PeerUnavailable if none."""
        n, _, _ = self._sizes()
        alive = self.network.alive
        primaries = [p for p in self.network.ring.preference_list(token, n) if p in alive]
        last_error: Exception | None = None
        for node in primaries:
            try:
                return await self._call(node, verb, args)
            except (PeerUnavailable, TimeoutError, ConnectionError, OSError) as error:
                last_error = error
        raise PeerUnavailable(f"no live replica of the key answered ({last_error})")

    def _is_primary(self, token: int) -> bool:
        n, _, _ = self._sizes()
        return self.me in self.network.ring.preference_list(token, n)

    def _is_first_live_primary(self, token: int) -> bool:
        n, _, _ = self._sizes()
        alive = self.network.alive
        for node in self.network.ring.preference_list(token, n):
            if node in alive:
                return node == self.me
        return False

    # --- get --------------------------------------------------------------------------------

    def get(self, key: bytes, repair_all: bool = False, forwarded: bool = False
            ) -> Awaitable[list[Sibling]]:
        """Return an awaitable of the key's merged siblings. A plain method returning the
        coroutine that does the work, so a request runs one coroutine frame less; the plan
        is computed once and also answers "is this node a primary"."""
        token = key_token(key)
        plan = self._plan(token)
        if not forwarded and not plan.primary:
            return self._forward_get(key, token)
        return self._coordinate_get(key, token, plan)

    async def _forward_get(self, key: bytes, token: int) -> list[Sibling]:
        raw = await self._forward(token, messages.FGET, [key])
        return versioning.decode_siblings(raw) if raw else []

    def _plan(self, token: int) -> Plan:
        """The token's plan for the current view (ring.WritePlans, cached per view)."""
        network = self.network
        plans = self._plans
        if plans is None or plans.ring is not network.ring or plans.alive is not network.alive:
            n, _, _ = self._sizes()
            plans = self._plans = WritePlans(network.ring, n, network.alive, self.me)
        return plans.plan(token)

    def _targets(self, token: int, plan: Plan | None) -> tuple[Target, ...]:
        """The plan's targets if the view is still the one it was made from, else a fresh
        plan (a coroutine may start an iteration after `get`/`put` planned it)."""
        network = self.network
        if plan is None or plan.ring is not network.ring or plan.alive is not network.alive:
            plan = self._plan(token)
        return plan.targets

    def get_started(self, key: bytes, on_done: Callable) -> bool:
        """A GET's read as callbacks, for the client hot path (no task, no coroutine): start it
        and return True, then call `on_done(value, None)` once R answered (value: the merged
        set's winner's, None when there is no live one), or `on_done(None, QuorumNotReached)`,
        once. Return False, having done nothing, when this node is not a primary of the key:
        forwarding goes through `get()`.

        A read whose local copy is one sibling (or none) and whose plan has no fallbacks starts
        as a `QuickRead`: while the answers are byte-identical to the local copy (replicas in
        sync: nearly every read) it needs no decoding, quorum objects or merge; the first
        answer that differs or fails turns it into the general `Read` (`QuickRead.escalate`).
        """
        token = key_token(key)
        plan = self._plan(token)
        if not plan.primary:
            return False
        raw = self.cluster.replica.read_encoded(key, token)
        peers = plan.peers
        if peers is not None and (raw is None or is_one_sibling_encoded(raw)):
            _, r, _ = self._sizes()
            quick = QuickRead(self, key, token, plan, raw, r, on_done)
            transport, item = self.network.transport, (key, b"")
            for node in peers:                                   # batched per iteration
                transport.send_item(node, messages.MGET, item, quick)
            if r <= 1:
                quick.answer_local()
            return True
        read = self._start_get(key, token, plan, raw)
        self._on_get_finish(read, on_done)
        return True

    def _on_get_finish(self, read: "Read", on_done: Callable) -> None:
        """Call `on_done(value, None)` or `on_done(None, error)` once `read`'s quorum is done."""
        def finished() -> None:
            try:
                current = versioning.winner(self._finish_get(read), self.cluster.clock.wall_ms())
            except Exception as error:      # any failure answers the client (never a hang)
                on_done(None, error)
                return
            on_done(current.value if current is not None else None, None)

        read.waiter.then(finished)

    async def _coordinate_get(self, key: bytes, token: int, plan: Plan | None = None
                              ) -> list[Sibling]:
        read = self._start_get(key, token, plan)
        await read.waiter.wait()
        return self._finish_get(read)

    def _start_get(self, key: bytes, token: int, plan: Plan | None,
                   local_raw: "bytes | None | object" = _UNREAD) -> "Read":
        """Read the local replica (unless the caller passes what it read) and ask the other
        targets; return the read their answers feed (the local copy counts as the first)."""
        _, r, _ = self._sizes()
        targets = self._targets(token, plan)
        read = Read(self, key, token, targets, ReadQuorum(len(targets), r))
        transport = self.network.transport
        for target in targets:
            if target.node == self.me:
                if local_raw is _UNREAD or plan is None or targets is not plan.targets:
                    local_raw = self.cluster.replica.read_encoded(key, token)
                read.record_local(local_raw)
                continue
            hint_for = target.hint_for.encode() if target.hint_for else b""
            transport.send_item(target.node, messages.MGET, (key, hint_for),  # batched per
                                ItemCallback(read.answer_from(target.node, hint_for)))  # iteration
        return read

    def _finish_get(self, read: "Read") -> list[Sibling]:
        """Once the read's quorum is done: the merged siblings (QuorumNotReached if too few
        answered); starts the read repair if every asked replica has answered."""
        quorum = read.waiter.quorum
        if not quorum.succeeded:
            raise QuorumNotReached("read", len(quorum.replies), quorum.r)
        local = read.local
        if local is not None and not read.differs:
            # Every reply so far is the local copy byte for byte: sync is idempotent, so
            # syncing the local set alone gives what merging all of them would.
            merged = versioning.sync([], local[1])
        else:
            merged = quorum.merged()
        if sum(1 for s in merged if s.value is not None) > 1:
            self.cluster.stats["conflicts_detected"] += 1
        # No task per read: the repair runs once every asked replica answered or failed (now,
        # or from the last straggler's callback).
        read.merged_ready = True
        if read.answered == len(read.targets):
            self._read_repair(read.key, read.token, read.targets, quorum, read.raws)
        return merged

    def _read_repair(self, key: bytes, token: int, targets: tuple[Target, ...], quorum: ReadQuorum,
                     raws: dict) -> None:
        """Once every asked replica answered or failed: send the merged set to stale ones."""
        if len(set(raws.values())) <= 1 and len(raws) == len(targets):
            return                                  # all agree: the common case
        merged = quorum.merged()
        if not merged:
            return
        hinted = {t.node for t in targets if t.hint_for}
        encoded = None
        for node in quorum.stale_nodes(merged):
            if node in hinted:
                continue
            self.cluster.stats["read_repairs"] += 1
            if node == self.me:
                self.cluster.replica.apply(key, token, merged)
            else:
                encoded = encoded or versioning.encode_siblings(merged)
                self._call(node, messages.PUT, [key, encoded, b""]).add_done_callback(_ignore)

    # --- put --------------------------------------------------------------------------------

    def put(self, key: bytes, value: bytes | None, expire_at_ms: int = 0,
            context: Context | None = None, forwarded: bool = False) -> Awaitable[None]:
        """Return an awaitable of the replicated write (a plain method, as `get`)."""
        token = key_token(key)
        plan = self._plan(token)
        if not forwarded and not plan.primary:
            ctx = None if context is None else versioning.format_context(context).encode()
            return self._forward(token, messages.FPUT, [key, value, expire_at_ms, ctx])
        return self._coordinate_put(key, token, value, expire_at_ms, context, plan=plan)

    def put_started(self, key: bytes, value: bytes, on_done: Callable) -> bool:
        """A plain SET's `put` as callbacks, for the client hot path (no task, no coroutine):
        start it and return True, then call `on_done(None)` after W acks or
        `on_done(QuorumNotReached)`, once. Return False, having done nothing, when this node
        is not a primary of the key: forwarding goes through `put()`.

        With every primary up (nearly every write) it is a `QuickWrite`, which counts acks;
        the first failed send escalates it to the general waiter (hints, fallbacks)."""
        token = key_token(key)
        plan = self._plan(token)
        if not plan.primary:
            return False
        peers = plan.peers
        if peers is not None:
            encoded = self.cluster.blind_write(key, value, 0, token)
            _, _, w = self._sizes()
            quick = QuickWrite(self, key, token, plan, encoded, w, on_done)
            transport, item = self.network.transport, (key, encoded, b"")
            for node in peers:                                   # batched per iteration
                transport.send_item(node, messages.MPUT, item, quick)
            if w <= 1:
                quick.answer()
            return True
        self._on_put_finish(self._start_put(key, token, value, 0, None, None, None, plan), on_done)
        return True

    @staticmethod
    def _on_put_finish(waiter: Waiter, on_done: Callable) -> None:
        """Call `on_done(None)` or `on_done(QuorumNotReached)` once `waiter`'s quorum is done."""
        def finished() -> None:
            quorum = waiter.quorum
            on_done(None if quorum.succeeded
                    else QuorumNotReached("write", len(quorum.acks), quorum.w))

        waiter.then(finished)

    async def _coordinate_put(self, key: bytes, token: int, value: bytes | None,
                              expire_at_ms: int, context: Context | None,
                              local: list[Sibling] | None = None,
                              old_raw: bytes | None = None,
                              plan: Plan | None = None) -> None:
        waiter = self._start_put(key, token, value, expire_at_ms, context, local, old_raw, plan)
        await waiter.wait()
        quorum = waiter.quorum
        if not quorum.succeeded:
            raise QuorumNotReached("write", len(quorum.acks), quorum.w)

    def _start_put(self, key: bytes, token: int, value: bytes | None, expire_at_ms: int,
                   context: Context | None, local: list[Sibling] | None,
                   old_raw: bytes | None, plan: Plan | None) -> Waiter:
        """Write locally, send the stored set to the other targets; return the waiter their
        acks feed (the local write counts as the first)."""
        n, _, w = self._sizes()
        network = self.network
        cluster = self.cluster
        if context is None and local is None:     # a plain SET: bytes to bytes, no Siblings
            encoded = cluster.blind_write(key, value, expire_at_ms, token)
            survivors = None                      # decoded only for a hint (below, done())
        else:
            _, survivors, encoded = cluster.local_write_full(key, token, value, expire_at_ms,
                                                             context, local, old_raw)
        targets = self._targets(token, plan)
        if len(targets) < n:
            # Down primaries without a live fallback: this node holds their hints.
            covered = {t.hint_for or t.node for t in targets}
            for owner in network.ring.preference_list(token, n):
                if owner not in covered:
                    survivors = survivors or versioning.decode_siblings(encoded)
                    cluster.hints.add(owner, token, key, survivors)
        waiter = Waiter(WriteQuorum(len(targets), w))
        waiter.record(self.me, None)
        for target in targets:
            if target.node != self.me:
                self._send_put(key, token, encoded, survivors, target, waiter, targets)
        return waiter

    def _send_put(self, key: bytes, token: int, encoded: bytes, survivors: list[Sibling] | None,
                  target: Target, waiter: Waiter, targets: tuple[Target, ...]) -> None:
        def done(_payload, error: Exception | None) -> None:
            if error is None:
                waiter.record(target.node, None)
            else:
                self._put_failed(key, token, encoded, survivors, target, waiter, targets, error)

        hint_for = target.hint_for.encode() if target.hint_for else b""
        self.network.transport.send_item(target.node, messages.MPUT,   # batched per iteration
                                         (key, encoded, hint_for), ItemCallback(done))

    def _put_failed(self, key: bytes, token: int, encoded: bytes,
                    survivors: list[Sibling] | None, target: Target, waiter: Waiter,
                    targets: tuple[Target, ...], error: Exception) -> None:
        """A replica write to `target` failed: hint it here for its owner and, while W is not
        met, send it to the next live node outside the preference list as a fallback."""
        owner = target.hint_for or target.node
        self.cluster.hints.add(owner, token, key,                  # best effort
                               survivors or versioning.decode_siblings(encoded))
        # While W is not met, a fallback takes the failed target's place (its result is
        # recorded instead of the failure).
        if waiter.quorum.succeeded:
            spare = None
        else:
            if waiter.used is None:               # built on the first failure only
                waiter.used = {t.node for t in targets} | {self.me}
            spare = self._spare(token, waiter.used)
        if spare is None:
            waiter.record(target.node, error)
            return
        waiter.used.add(spare)
        self._send_put(key, token, encoded, survivors, Target(spare, hint_for=owner),
                       waiter, targets)

    def _spare(self, token: int, used: set[NodeId]) -> NodeId | None:
        alive = self.network.alive
        for node in self.network.ring.walk(token):
            if node not in used and node in alive:
                return node
        return None

    # --- mutate -----------------------------------------------------------------------------

    async def mutate(self, key: bytes, name: str, args: list[bytes], forwarded: bool = False):
        token = key_token(key)
        if not forwarded and not self._is_first_live_primary(token):
            raw = await self._forward(token, messages.FMUT, [key, name.encode(), *args])
            return decode_reply(raw)
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                siblings = await self._coordinate_get(key, token)
                now_ms = self.cluster.clock.wall_ms()
                outcome = self.cluster.mutators[name](versioning.winner(siblings, now_ms),
                                                      args, now_ms)
                write = outcome.write
                if write is not None:
                    await self._coordinate_put(key, token, write.value, write.expire_at_ms,
                                               versioning.join_context(siblings))
                return outcome.reply
        finally:
            entry[1] -= 1
            if not entry[1]:
                del self._locks[key]

    # --- whole keyspace ---------------------------------------------------------------------

    async def _ask_all(self, verb: bytes, args: list, local: Callable[[], object],
                       nodes: list[NodeId] | None = None) -> dict[NodeId, object]:
        """Ask every live ring node (this one locally); return node -> answer or exception."""
        alive = self.network.alive
        nodes = nodes if nodes is not None else [
            node for node in self.network.ring.nodes if node in alive]
        results: dict[NodeId, object] = {}
        calls = {node: self._call(node, verb, args) for node in nodes if node != self.me}
        if self.me in nodes:
            results[self.me] = local()
        if calls:
            await asyncio.wait(list(calls.values()))
        for node, future in calls.items():
            results[node] = future.exception() or future.result()
        return results

    async def scan(self, cursor: int, count: int) -> tuple[int, list[bytes]]:
        """Union of every live node's page; complete up to the smallest `upto` reported."""
        count = max(count, 1)
        now_ms = self.cluster.clock.wall_ms()
        results = await self._ask_all(
            messages.SCAN, [cursor, count],
            lambda: encode_scan_page(*self.cluster.replica.scan_live(cursor, count, now_ms)))
        bound, found = TOKEN_LIMIT, {}
        for answer in results.values():
            if isinstance(answer, Exception):
                continue
            upto, flat = messages.to_int(answer[0]), answer[1]
            bound = min(bound, upto)
            for i in range(0, len(flat), 2):
                found[flat[i + 1]] = messages.to_int(flat[i])
        keys = sorted((token, key) for key, token in found.items() if token < bound)
        return (0 if bound >= TOKEN_LIMIT else bound), [key for _, key in keys]

    async def dbsize(self) -> int:
        """Sum over live nodes of their live keys whose first live primary they are.

        Approximate: a key missing from its first live primary (a replica not yet repaired)
        is not counted, and one present only there is. Exact once replicas converge."""
        alive = set(self.network.alive)
        for _ in range(3):
            alive_csv = ",".join(sorted(alive)).encode()
            asked = sorted(alive)
            results = await self._ask_all(messages.COUNT, [alive_csv],
                                          lambda: self.count_owned(set(asked)), asked)
            failed = {node for node, answer in results.items() if not isinstance(answer, int)}
            if not failed:
                break
            alive -= failed           # a node that did not answer owns nothing: recount
        return sum(answer for answer in results.values() if isinstance(answer, int))

    def count_owned(self, alive: set[NodeId]) -> int:
        """Count live local keys whose first live primary is this node."""
        n, _, _ = self._sizes()
        ring, now_ms, me = self.network.ring, self.cluster.clock.wall_ms(), self.me
        total = 0
        decode = versioning.decode_siblings
        for token, _, raw in self.cluster.replica.scan_range(0):
            first = next((p for p in ring.preference_list(token, n) if p in alive), None)
            if first == me and not versioning.is_dead(decode(raw), now_ms):
                total += 1
        return total

    async def flushall(self) -> None:
        """Every ring node deletes its data and hints; QuorumNotReached if any is down."""
        nodes = list(self.network.ring.nodes)
        results = await self._ask_all(messages.FLUSH, [], self.cluster.flush_local, nodes)
        done = sum(1 for node in nodes
                   if node in results and not isinstance(results[node], Exception))
        if done < len(nodes):
            raise QuorumNotReached("flushall", done, len(nodes))

    # --- helpers ----------------------------------------------------------------------------

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background repair failed: %r", task.exception())

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()


def _ignore(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def encode_scan_page(found: list[tuple[int, bytes]], upto: int) -> list:
    """Encode a SCAN page as [upto, [token, key, ...]] (tokens as decimal bulks: u64)."""
    flat: list = []
    for token, key in found:
        flat += (b"%d" % token, key)
    return [b"%d" % upto, flat]


def decode_reply(raw: bytes):
    """Decode a forwarded mutation's RESP2 reply (see module docstring)."""
    if raw[:1] == b"+" and raw.count(b"\r\n") == 1:
        from resp_kv.reply import SimpleString
        return SimpleString(raw[1:-2].decode())
    reader = hiredis.Reader()
    reader.feed(raw)
    return reader.gets()
