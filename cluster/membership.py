"""Cluster membership: who is in the cluster, as spread by gossip.

Every node keeps one `NodeState` per known node and merges what peers gossip, with the
precedence of Cassandra's gossiper and SWIM (Das et al. 2002):

1. a higher `incarnation` wins, whatever the status (a node restarted, or re-added);
2. at the same incarnation, "removed" wins: removal is sticky for that incarnation, so a
   removed node can only come back with a NEW incarnation (a restart);
3. otherwise the higher `heartbeat` wins.

Ties on all three (only possible for identical states) break on the remaining fields, so the
merge is a join over a total order: commutative, associative and idempotent, whatever order
gossip arrives in. The `incarnation` here is the node's *generation*: an integer that must
grow every time the node process starts (e.g. wall-clock ms at start, or a stored counter + 1),
because the heartbeat counter restarts from 0 with the process. It is not the data-dir
incarnation inside actors (types.py), which changes only when the disk is lost.

"down" is a local opinion (the failure detector's), never gossiped as fact: a node we think
is down stays in the ring (DESIGN.md §5); only an operator's `remove` takes it out.

Pure: no sockets, no clock. The gossiper (an I/O shell) calls `tick`, sends `digest()`,
feeds received digests to `merge`, and tells the failure detector about changed nodes.

Wire form of a digest entry (a RESP array; bytes and ints only)::

    [node_id, host, client_port, peer_port, incarnation, heartbeat, status]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from cluster.failure import PhiAccrualDetector
from cluster.types import NodeId

__all__ = ["NodeState", "Membership", "UP", "DOWN", "REMOVED", "STATUSES"]

UP, DOWN, REMOVED = "up", "down", "removed"
STATUSES = (UP, DOWN, REMOVED)


@dataclass(frozen=True, slots=True)
class NodeState:
    """What the cluster knows of one node. `status` is "up", "down" (local view only) or
    "removed" (by an operator; sticky for this incarnation)."""

    node_id: NodeId
    host: str
    client_port: int
    peer_port: int
    incarnation: int
    heartbeat: int = 0
    status: str = UP

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown node status {self.status!r}")

    @property
    def removed(self) -> bool:
        return self.status == REMOVED

    def precedence(self) -> tuple:
        """The merge order: a higher value replaces a lower one."""
        return (self.incarnation, self.removed, self.heartbeat,
                self.host, self.client_port, self.peer_port)

    def to_wire(self) -> list:
        """Return the digest entry (bytes and ints); "down" is sent as "up"."""
        status = REMOVED if self.removed else UP
        return [self.node_id.encode(), self.host.encode(), self.client_port, self.peer_port,
                self.incarnation, self.heartbeat, status.encode()]

    @classmethod
    def from_wire(cls, entry: Sequence) -> NodeState:
        """Parse a digest entry. Raises ValueError if malformed."""
        try:
            node_id, host, client_port, peer_port, incarnation, heartbeat, status = entry
            state = cls(_text(node_id), _text(host), _int(client_port), _int(peer_port),
                        _int(incarnation), _int(heartbeat), _text(status))
        except (TypeError, ValueError) as error:
            raise ValueError(f"malformed membership entry {entry!r}: {error}") from None
        if state.status == DOWN or not state.node_id:
            raise ValueError(f"malformed membership entry {entry!r}")
        return state


def _text(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")
    if isinstance(value, str):
        return value
    raise ValueError(f"expected bytes, got {type(value).__name__}")


def _int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, (bytes, bytearray, str)):
        number = int(value)
    else:
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    if number < 0:
        raise ValueError("expected a non-negative integer")
    return number


def _as_gossip(state: NodeState) -> NodeState:
    """Drop the local "down" opinion: what we merge and compare is the gossiped fact."""
    return replace(state, status=UP) if state.status == DOWN else state


class Membership:
    """This node's view of the cluster. Event-loop thread only.

    Invariant: `_states[self_id]` is this node's own state; only this node advances its
    heartbeat, and gossip can change it only by removing it at its current incarnation.
    """

    def __init__(self, self_state: NodeState) -> None:
        self.self_id = self_state.node_id
        self._states: dict[NodeId, NodeState] = {self.self_id: _as_gossip(self_state)}

    @property
    def self_state(self) -> NodeState:
        return self._states[self.self_id]

    def get(self, node_id: NodeId) -> NodeState | None:
        return self._states.get(node_id)

    def states(self) -> list[NodeState]:
        """Return every known state, sorted by node id."""
        return [self._states[n] for n in sorted(self._states)]

    def tick(self) -> int:
        """Advance this node's heartbeat (once per gossip round); return it."""
        me = self.self_state
        self._states[self.self_id] = replace(me, heartbeat=me.heartbeat + 1)
        return me.heartbeat + 1

    def digest(self) -> list[list]:
        """Return every known state in wire form, for a gossip message."""
        return [state.to_wire() for state in self.states()]

    def merge(self, remote_states: Iterable[NodeState | Sequence]) -> list[NodeId]:
        """Merge gossiped states (NodeState or wire entries); return the ids whose state
        changed (new node, heartbeat advanced, new incarnation, removed), sorted.
        Raises ValueError for a malformed wire entry (nothing is merged then)."""
        incoming = [s if isinstance(s, NodeState) else NodeState.from_wire(s)
                    for s in remote_states]
        changed: set[NodeId] = set()
        for remote in incoming:
            remote = _as_gossip(remote)
            node = remote.node_id
            if node == self.self_id:
                if self._merge_self(remote):
                    changed.add(node)
                continue
            local = self._states.get(node)
            if local is None or remote.precedence() > _as_gossip(local).precedence():
                if local is not None and local.status == DOWN and not remote.removed \
                        and remote.incarnation == local.incarnation:
                    remote = replace(remote, status=DOWN)   # keep our opinion until refresh
                self._states[node] = remote
                changed.add(node)
        return sorted(changed)

    def _merge_self(self, remote: NodeState) -> bool:
        """Gossip about us: accept our own removal; keep our heartbeat ahead of any echo."""
        me = self.self_state
        if remote.incarnation != me.incarnation:
            return False
        if remote.removed and not me.removed:
            self._states[self.self_id] = replace(me, status=REMOVED,
                                                 heartbeat=max(me.heartbeat, remote.heartbeat))
            return True
        if remote.heartbeat > me.heartbeat:                 # an echo from before a crash
            self._states[self.self_id] = replace(me, heartbeat=remote.heartbeat + 1)
            return True
        return False

    def remove(self, node_id: NodeId) -> bool:
        """Mark `node_id` removed at its current incarnation (operator action); return True
        if that changed anything. Gossip spreads it; the node leaves the ring everywhere."""
        state = self._states.get(node_id)
        if state is None or state.removed:
            return False
        self._states[node_id] = replace(state, status=REMOVED)
        return True

    def refresh(self, detector: PhiAccrualDetector, now_s: float) -> list[NodeId]:
        """Update the local up/down opinion from `detector`; return the ids that flipped."""
        flipped = []
        for node, state in self._states.items():
            if node == self.self_id or state.removed:
                continue
            status = UP if detector.is_available(node, now_s) else DOWN
            if status != state.status:
                self._states[node] = replace(state, status=status)
                flipped.append(node)
        return sorted(flipped)

    def live_nodes(self, detector: PhiAccrualDetector, now_s: float) -> set[NodeId]:
        """Return the non-removed nodes the detector considers available (and this node)."""
        return {node for node, state in self._states.items() if not state.removed and (
            node == self.self_id or detector.is_available(node, now_s))}

    def ring_nodes(self) -> list[NodeId]:
        """Return every non-removed node, sorted: a down node keeps its ranges."""
        return sorted(node for node, state in self._states.items() if not state.removed)
