"""Quorum bookkeeping: when a replicated write or read may be answered, and how.

The coordinator sends a request to its targets and feeds each result in as it arrives;
these classes only count (the shape of riak_kv `put_core`/`get_core`). No I/O, no clock:
timeouts are the coordinator's, which records a timed-out target as a failure.

`n` is the number of targets actually asked. If fewer targets than the quorum exist
(`w > n`), the quorum is `done` at once and never `succeeded`, so the coordinator can
report "reached k of needed" without a special case.
"""

from __future__ import annotations

from collections.abc import Iterable

from cluster import versioning
from cluster.types import NodeId, Sibling

__all__ = ["WriteQuorum", "ReadQuorum"]


class _Quorum:
    """Counts successes and failures per node; a node's first result is the one that counts."""

    def __init__(self, n: int, needed: int) -> None:
        if n < 0 or needed < 1:
            raise ValueError(f"need n >= 0 and a quorum >= 1, got n={n}, quorum={needed}")
        self.n, self.needed = n, needed
        self.failures: dict[NodeId, object] = {}

    def _answered(self, node: NodeId) -> bool:
        raise NotImplementedError

    def _successes(self) -> int:
        raise NotImplementedError

    def record_failure(self, node: NodeId, error: object) -> None:
        """Record that `node` failed (error reply, timeout, unreachable)."""
        if not self._answered(node):
            self.failures[node] = error

    @property
    def succeeded(self) -> bool:
        """True once the quorum of successes is reached."""
        return self._successes() >= self.needed

    @property
    def done(self) -> bool:
        """True once the outcome is known: the quorum is met, or too many failed to meet it."""
        return self.succeeded or len(self.failures) > self.n - self.needed

    @property
    def outstanding(self) -> int:
        """Targets that have not answered yet."""
        return max(0, self.n - self._successes() - len(self.failures))


class WriteQuorum(_Quorum):
    """Decides when a write may be answered: W acks out of N targets."""

    def __init__(self, n: int, w: int) -> None:
        super().__init__(n, w)
        self.w = w
        self.acks: set[NodeId] = set()

    def _answered(self, node: NodeId) -> bool:
        return node in self.acks or node in self.failures

    def _successes(self) -> int:
        return len(self.acks)

    def record(self, node: NodeId, error: object | None = None) -> None:
        """Record `node`'s result: None is an ack, anything else the failure's description."""
        if error is not None:
            self.record_failure(node, error)
        elif node not in self.acks and node not in self.failures:
            self.acks.add(node)

    @property
    def done(self) -> bool:
        # The base class's rule, inlined: asked after every reply on the write path.
        return (len(self.acks) >= self.needed
                or len(self.failures) > self.n - self.needed)


class ReadQuorum(_Quorum):
    """Decides when a read may be answered (R replies out of N), and keeps each reply so the
    coordinator can merge them and repair the replicas that were behind."""

    def __init__(self, n: int, r: int) -> None:
        super().__init__(n, r)
        self.r = r
        self.replies: dict[NodeId, list[Sibling]] = {}

    def _answered(self, node: NodeId) -> bool:
        return node in self.replies or node in self.failures

    def _successes(self) -> int:
        return len(self.replies)

    @property
    def acks(self) -> set[NodeId]:
        """Nodes that replied."""
        return set(self.replies)

    def record(self, node: NodeId, result: Iterable[Sibling] | BaseException | str) -> None:
        """Record `node`'s result: its sibling list (empty = not found), or an error."""
        if isinstance(result, (BaseException, str)):
            self.record_failure(node, result)
        elif node not in self.replies and node not in self.failures:
            self.replies[node] = list(result)

    @property
    def done(self) -> bool:
        # The base class's rule, inlined: asked after every reply on the read path.
        return (len(self.replies) >= self.needed
                or len(self.failures) > self.n - self.needed)

    def merged(self) -> list[Sibling]:
        """Return the sync of every reply so far (what the read answers with)."""
        merged: list[Sibling] = []
        for reply in self.replies.values():
            merged = versioning.sync(merged, reply)
        return merged

    def stale_nodes(self, merged: Iterable[Sibling]) -> list[NodeId]:
        """Return the nodes whose reply differs from `merged` (compared by dots), in reply
        order: they get a read repair with the merged set."""
        want = {s.dot for s in merged}
        return [node for node, reply in self.replies.items()
                if len(reply) != len(want) or {s.dot for s in reply} != want]
