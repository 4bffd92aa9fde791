"""REPAIR and the background anti-entropy rounds: which peers this node exchanges with, when,
under what byte rate, and the INFO counters of all of it.

Not the exchange protocol, the trees or the GC gate (antientropy.py): this module only decides
to run exchanges (`AntiEntropy.exchange`) and adds up what they moved. One more mechanism lives
here because it is a REPAIR of its own, not an exchange: `REPAIR key` pulls the key from each of
its replicas (AE.PULL), merges, and pushes the merge (AE.PUSH) to whoever differs; no tree.

Schedule: every second the keeper rescans segments that compaction dropped records from; every
`interval_s` (+-20 % jitter, the first round at a random point of the first interval; 0 = only
on REPAIR) one round exchanges with every live peer sharing ranges, under `max_bytes_per_s`.
REPAIR is uncapped. Unreachable peers are skipped and counted (`peers_failed`, or
`anti_entropy_errors` for rounds); REPAIR first waits out a link that is only backing off after
a lost connection (a peer that just restarted), for up to BACKOFF_RETRY_S.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable

from cluster import versioning
from cluster.antientropy import PULL, PUSH, AntiEntropy, ByteBudget, ExchangeStats
from cluster.types import NodeId, PeerBackingOff, key_token

log = logging.getLogger("cluster.repair")

__all__ = ["Repairs"]

# A link backs off up to transport.BACKOFF_MAX_S (2 s) after a failure; REPAIR waits that out
# once, plus a second for the connect, before it counts a peer failed.
BACKOFF_RETRY_S = 3.0


class Repairs:
    """REPAIR, the background rounds and their counters for one node's AntiEntropy.
    Event-loop thread only. `alive()` returns the nodes believed up (None: all)."""

    def __init__(self, antientropy: AntiEntropy, *,
                 alive: Callable[[], Iterable[NodeId]] | None = None,
                 interval_s: float = 600.0,
                 max_bytes_per_s: float | None = 8 * 1024 * 1024) -> None:
        self.ae = antientropy
        self.clock = antientropy.clock
        self._alive = alive
        self.interval_s = interval_s
        self.max_bytes_per_s = max_bytes_per_s
        self.counters = dict.fromkeys(
            ("repair_runs", "repair_keys_sent", "repair_keys_received", "repair_bytes_sent",
             "repair_bytes_received", "anti_entropy_rounds", "anti_entropy_errors"), 0)
        self._rng = random.Random()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())
        self._task.set_name("anti-entropy")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    # --- REPAIR ----------------------------------------------------------------------------

    async def repair(self, key: bytes | None = None) -> dict[str, int]:
        """REPAIR (every peer sharing ranges) or REPAIR key (its replicas); DESIGN.md §3 stats.

        Unreachable peers are skipped and counted in `peers_failed`."""
        started = self.clock.monotonic()
        if key is not None:
            total, failed = await self._repair_key(key)
        else:
            total, failed = await self._repair_all()
        total.duration_ms = int((self.clock.monotonic() - started) * 1000)
        self.counters["repair_runs"] += 1
        self._count(total)
        return {**total.as_dict(), "peers_failed": failed}

    async def _repair_all(self) -> tuple[ExchangeStats, int]:
        """Exchange with every peer; then once more with the peers synced before the last one
        that sent us keys, so what it sent reaches them too (they are in sync otherwise, which
        costs one root round trip)."""
        total, failed, peers, last_giver = ExchangeStats(), 0, self.ae.peers(), -1
        for index, peer in enumerate(peers):
            try:
                stats = await self._exchange(peer)
            except Exception as error:               # noqa: BLE001 - report, go on with the rest
                log.warning("REPAIR with %s failed: %r", peer, error)
                failed += 1
                continue
            total.add(stats)
            if stats.keys_received:
                last_giver = index
        for peer in peers[:max(0, last_giver)]:
            try:
                stats = await self._exchange(peer)
            except Exception as error:               # noqa: BLE001
                log.warning("REPAIR (second pass) with %s failed: %r", peer, error)
                continue
            stats.peers = 0                          # already counted
            total.add(stats)
        return total, failed

    async def _exchange(self, peer: NodeId) -> ExchangeStats:
        """`ae.exchange(peer)`, tried again while the link to `peer` is backing off after a
        lost connection, for up to BACKOFF_RETRY_S: REPAIR right after a peer restarted (what
        an operator does) would otherwise report it failed, though it is back."""
        deadline = self.clock.monotonic() + BACKOFF_RETRY_S
        while True:
            try:
                return await self.ae.exchange(peer)
            except PeerBackingOff:
                if self.clock.monotonic() >= deadline:
                    raise
                await self.clock.sleep(0.1)

    async def _repair_key(self, key: bytes) -> tuple[ExchangeStats, int]:
        """Fetch the key from each replica, merge, push the merge to whoever differs."""
        ae = self.ae
        stats, failed, token = ExchangeStats(), 0, key_token(key)
        owners = ae.owners(token)
        local = ae.replica.read_encoded(key, token)
        merged = versioning.decode_siblings(local) if local is not None else []
        remote: dict[NodeId, bytes | None] = {}
        budget = ByteBudget(None, self.clock)
        for peer in (n for n in owners if n != ae.node_id):
            try:
                (raw,) = await ae.rpc(peer, PULL, [key], stats, budget)
            except Exception as error:               # noqa: BLE001
                log.warning("REPAIR %r: %s unreachable: %r", key, peer, error)
                failed += 1
                continue
            stats.peers += 1
            remote[peer] = raw
            if raw is not None and raw != local:
                stats.keys_received += 1
                merged = versioning.sync(merged, versioning.decode_siblings(raw))
        stats.ranges_compared = 1
        merged_raw = versioning.encode_siblings(merged) if merged else None
        if ae.node_id in owners and merged_raw is not None and merged_raw != local:
            ae.replica.apply(key, token, merged)
        for peer, raw in remote.items():
            if merged_raw is not None and raw != merged_raw:
                await ae.rpc(peer, PUSH, [key, merged_raw], stats, budget)
                stats.keys_sent += 1
        stats.ranges_differing = int(stats.keys_sent + stats.keys_received > 0)
        return stats, failed

    def _count(self, stats: ExchangeStats) -> None:
        c = self.counters
        c["repair_keys_sent"] += stats.keys_sent
        c["repair_keys_received"] += stats.keys_received
        c["repair_bytes_sent"] += stats.bytes_sent
        c["repair_bytes_received"] += stats.bytes_received

    # --- scheduler -------------------------------------------------------------------------

    async def _run(self) -> None:
        """Resolve compaction-dropped segments every second; every interval (with +-20%
        jitter; the first round at a random point of the first interval) run one capped round."""
        interval = self.interval_s
        next_round = (self.clock.monotonic() + interval * self._rng.uniform(0.2, 1.0)
                      if interval > 0 else None)
        while True:
            await self.clock.sleep(1.0 if next_round is None
                                   else max(0.05, min(1.0, next_round - self.clock.monotonic())))
            try:
                self.ae.keeper.resolve_gc()
                if next_round is not None and self.clock.monotonic() >= next_round:
                    await self.round()
                    next_round = self.clock.monotonic() + interval * self._rng.uniform(0.8, 1.2)
            except asyncio.CancelledError:
                raise
            except Exception:                       # noqa: BLE001 - log with context, go on
                log.exception("anti-entropy round failed")
                self.counters["anti_entropy_errors"] += 1

    async def round(self) -> ExchangeStats:
        """One background round: every live peer sharing ranges, under the bytes/s cap."""
        total = ExchangeStats()
        await self.ae.keeper.ready.wait()
        alive = set(self._alive()) if self._alive is not None else None
        budget = ByteBudget(self.max_bytes_per_s, self.clock, self.clock.monotonic())
        for peer in self.ae.peers():
            if alive is not None and peer not in alive:
                continue
            try:
                total.add(await self.ae.exchange(peer, budget=budget))
            except asyncio.CancelledError:
                raise
            except Exception as error:              # noqa: BLE001
                log.info("anti-entropy with %s failed: %r", peer, error)
                self.counters["anti_entropy_errors"] += 1
        self.counters["anti_entropy_rounds"] += 1
        self._count(total)
        return total

    # --- introspection ---------------------------------------------------------------------

    def info(self) -> dict[str, object]:
        """Fields for INFO "# Cluster": the cumulative repair counters (they replace the
        Cluster's own), then the tree's state and exchanges (AntiEntropy.info)."""
        tree = self.ae.info()
        return {**self.counters, "tombstones_purged": self.ae.tombstones_purged,
                "merkle_tree": tree["merkle_tree"], "merkle_root": tree["merkle_root"],
                "anti_entropy_interval_s": self.interval_s,
                "anti_entropy_last_exchange_ms": tree["anti_entropy_last_exchange_ms"]}
