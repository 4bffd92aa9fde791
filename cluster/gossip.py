"""The gossip task: spread membership, feed the failure detector, keep the ring view current.

Not the merge rules (membership.py) or the suspicion maths (failure.py): this is their I/O shell.
Every `gossip_interval_ms` the Gossiper advances this node's heartbeat and does one push-pull
exchange (GOSSIP digest -> the peer's digest) with a random live peer; until it knows any peer
it asks every seed (`--seeds host:peerport`, this node's own address skipped), and now and then
it also tries a node it thinks is down, so a node that comes back is noticed. Every state that
changed in a merge counts as a heartbeat for the failure detector. After each exchange the ring
view is rebuilt: ring = every non-removed node (a down node keeps its ranges, DESIGN.md §5),
alive = those the detector trusts.

Seeds have no node id until they answer: they are addressed as the pseudo node "seed:host:port".
The generation (membership incarnation) is the wall-clock ms at start, so it grows per restart.
"""

from __future__ import annotations

import asyncio
import logging
import random

from cluster import messages
from cluster.failure import PhiAccrualDetector
from cluster.membership import Membership, NodeState
from cluster.types import NodeId

log = logging.getLogger("cluster.gossip")

SEED_PREFIX = "seed:"


def parse_seed(seed: str) -> tuple[str, int] | None:
    host, sep, port = seed.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host, int(port)


class Gossiper:
    """Membership gossip for one node (a long-running actor: start()/stop())."""

    def __init__(self, network) -> None:
        self.network = network
        cluster = network.cluster
        config = cluster.config
        self.clock = cluster.clock
        self.interval_s = max(0.01, config.gossip_interval_ms / 1000)
        interval_ms = self.interval_s * 1000
        self.detector = PhiAccrualDetector(
            threshold=config.phi_threshold, expected_interval_ms=interval_ms,
            min_std_ms=max(20.0, interval_ms / 5), acceptable_pause_ms=2 * interval_ms)
        me = NodeState(network.me, config.advertise, config.client_port, config.peer_port,
                       incarnation=cluster.clock.wall_ms())
        self.membership = Membership(me)
        own = {(config.advertise, config.peer_port), ("127.0.0.1", config.peer_port),
               ("localhost", config.peer_port)}
        self.seeds = [s for s in (parse_seed(x) for x in config.seeds) if s and s not in own]
        self._task: asyncio.Task | None = None
        self._random = random.Random()
        network.server.register(messages.GOSSIP, self._on_gossip)

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def resolve(self, node: NodeId) -> tuple[str, int] | None:
        if node.startswith(SEED_PREFIX):
            return parse_seed(node[len(SEED_PREFIX):])
        state = self.membership.get(node)
        return None if state is None else (state.host, state.peer_port)

    def remove(self, node: NodeId) -> None:
        """Operator removal: out of the ring here at once, and everywhere through gossip."""
        self.membership.remove(node)
        self.detector.remove(node)
        self._update_view()

    # --- rounds -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("gossip round failed; continuing")
            await self.clock.sleep(self.interval_s)

    async def round(self) -> None:
        """One gossip round: tick, exchange with a live peer (or the seeds), refresh the view."""
        self.membership.tick()
        now = self.clock.monotonic()
        me = self.network.me
        live = sorted(self.membership.live_nodes(self.detector, now) - {me})
        ring = self.membership.ring_nodes()
        down = sorted(set(ring) - set(live) - {me})
        targets: list[NodeId] = []
        if live:
            targets.append(self._random.choice(live))
        if down and self._random.random() < len(down) / (len(live) + 1):
            targets.append(self._random.choice(down))
        if not live:
            targets += [f"{SEED_PREFIX}{host}:{port}" for host, port in self.seeds]
        if targets:
            await asyncio.gather(*(self._exchange(target) for target in targets))
        self._update_view()

    async def _exchange(self, target: NodeId) -> None:
        try:
            answer = await self.network.transport.call(
                target, messages.GOSSIP, [self.membership.digest()])
        except Exception as error:     # unreachable peers are the detector's business
            log.debug("gossip with %s failed: %r", target, error)
            return
        self._merge(answer)

    def _merge(self, digest) -> None:
        if not isinstance(digest, list):
            raise ValueError("gossip digest is not an array")
        changed = self.membership.merge(digest)
        now = self.clock.monotonic()
        for node in changed:
            state = self.membership.get(node)
            if node == self.network.me or state is None:
                continue
            if state.removed:
                self.detector.remove(node)
                self.network.transport.disconnect(node)
            else:
                self.detector.heartbeat(node, now)

    def _on_gossip(self, peer: NodeId, args: list) -> list:
        self._merge(args[0])
        self._update_view()
        return self.membership.digest()

    def _update_view(self) -> None:
        now = self.clock.monotonic()
        self.membership.refresh(self.detector, now)
        self.network.set_view(self.membership.ring_nodes(),
                              self.membership.live_nodes(self.detector, now))
