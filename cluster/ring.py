"""The consistent-hash ring: which nodes hold a token, and which token ranges a node holds.

Each node owns `vnodes` points on an unsigned 64-bit ring; the token of vnode i of node x is
`mmh3.hash64(f"{x}#{i}".encode(), signed=False)[0]` (# on-wire between nodes: never change),
and a key's token is `cluster.types.key_token(key)`. A vnode at token t owns the range
(previous vnode's token, t]; the preference list of a token is the first N distinct nodes
clockwise from it (Dynamo, DeCandia et al. 2007, §4.2-4.3; riak_core `chash`, apl).

Ranges are pairs (start_exclusive, end_inclusive). A range with start >= end wraps through
2**64 - 1 to 0 (with one vnode on the ring, (t, t) is the whole ring).

Pure and immutable: a `Ring` never changes; membership changes build a new one
(`with_node`/`without_node`). Not here: who is alive (failure.py), membership (membership.py).
`plan_writes`/`plan_reads` turn (ring, token, N, alive) into the nodes a request goes to.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Set
from dataclasses import dataclass
from typing import Final, NamedTuple

import mmh3

from cluster.types import NodeId

__all__ = ["Ring", "Target", "vnode_token", "plan_writes", "plan_reads", "Plan", "WritePlans",
           "RING_SIZE"]

RING_SIZE = 1 << 64


def vnode_token(node: NodeId, index: int) -> int:
    """Return the ring token of vnode `index` of `node`."""
    return mmh3.hash64(f"{node}#{index}".encode(), signed=False)[0]


class Ring:
    """An immutable ring of `nodes`, each with `vnodes` points.

    Invariant: `_tokens` is sorted; `_owners[i]` owns the range ending at `_tokens[i]`.
    Preference lists are cached per vnode index: there are only len(nodes) * vnodes answers.
    """

    def __init__(self, nodes: Iterable[NodeId], vnodes: int) -> None:
        if vnodes < 1:
            raise ValueError(f"vnodes must be >= 1, got {vnodes}")
        self.vnodes = vnodes
        self._nodes = tuple(sorted(set(nodes)))
        # Equal tokens (astronomically rare): the lowest node id keeps the point, on every node
        # alike; the others' duplicate vnode is dropped (an empty range would read as "all").
        points = sorted((vnode_token(node, i), node) for node in self._nodes for i in range(vnodes))
        self._tokens: list[int] = []
        self._owners: list[NodeId] = []
        for token, node in points:
            if not self._tokens or self._tokens[-1] != token:
                self._tokens.append(token)
                self._owners.append(node)
        self._walks: dict[int, tuple[NodeId, ...]] = {}   # vnode index -> distinct nodes clockwise
        self._primaries: dict[tuple[int, int], list[Target]] = {}   # (vnode index, n) -> targets

    @property
    def nodes(self) -> tuple[NodeId, ...]:
        """The ring's nodes, sorted."""
        return self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        return node in self._nodes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ring) and \
            (self._nodes, self.vnodes) == (other._nodes, other.vnodes)

    def __hash__(self) -> int:
        return hash((self._nodes, self.vnodes))

    def __repr__(self) -> str:
        return f"Ring({list(self._nodes)!r}, vnodes={self.vnodes})"

    def with_node(self, node: NodeId) -> Ring:
        """Return a ring that also has `node`."""
        return Ring((*self._nodes, node), self.vnodes)

    def without_node(self, node: NodeId) -> Ring:
        """Return a ring without `node`."""
        return Ring((n for n in self._nodes if n != node), self.vnodes)

    def _index(self, token: int) -> int:
        """Index of the vnode owning `token`: the first vnode token >= token, wrapping."""
        i = bisect_left(self._tokens, token)
        return 0 if i == len(self._tokens) else i

    def _walk(self, index: int) -> tuple[NodeId, ...]:
        walk = self._walks.get(index)
        if walk is None:
            seen: dict[NodeId, None] = {}
            owners, size, want = self._owners, len(self._owners), len(self._nodes)
            for step in range(size):
                seen.setdefault(owners[(index + step) % size])
                if len(seen) == want:
                    break
            walk = self._walks[index] = tuple(seen)
        return walk

    def preference_list(self, token: int, n: int) -> list[NodeId]:
        """Return the first `n` distinct nodes clockwise from `token` (fewer if the ring is
        smaller). Takes the token, not the key, so callers hash once."""
        if not self._tokens:
            return []
        return list(self._walk(self._index(token))[:n])

    def walk(self, token: int) -> Iterator[NodeId]:
        """Yield every node once, clockwise from `token` (primaries first, then fallbacks)."""
        if not self._tokens:
            return iter(())
        return iter(self._walk(self._index(token)))

    def ranges(self) -> list[tuple[int, int, NodeId]]:
        """Return every vnode range as (start_exclusive, end_inclusive, owner), in token order."""
        tokens, owners = self._tokens, self._owners
        return [(tokens[i - 1], tokens[i], owners[i]) for i in range(len(tokens))]

    def replica_ranges(self, node: NodeId, n: int) -> list[tuple[int, int]]:
        """Return the token ranges whose preference list (of length n) includes `node`.

        Adjacent ranges are merged; in token order (a wrapping range may come first).
        Use: which data a joining node must receive, which ranges anti-entropy compares.
        """
        tokens, out = self._tokens, []
        for i in range(len(tokens)):
            if node not in self._walk(i)[:n]:
                continue
            start, end = tokens[i - 1], tokens[i]
            if out and out[-1][1] == start:
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
        if len(out) > 1 and out[-1][1] == out[0][0]:      # merge across the wrap point
            out[0] = (out[-1][0], out[0][1])
            out.pop()
        return out

    def owners_of_range(self, start: int, end: int, n: int) -> list[NodeId]:
        """Return the nodes replicating any token in (start, end], in clockwise order of first
        appearance. For a range inside one vnode range this is exactly its preference list."""
        tokens = self._tokens
        size = len(tokens)
        if not size:
            return []
        if start == end:
            first, count = 0, size                          # the whole ring
        else:
            first, last = self._index((start + 1) % RING_SIZE), self._index(end)
            count = (last - first) % size + 1
            prev = tokens[first - 1]
            if count == 1 and (end - prev) % RING_SIZE <= (start - prev) % RING_SIZE:
                count = size                                # wraps all the way round
        seen: dict[NodeId, None] = {}
        for step in range(count):
            for node in self._walk((first + step) % size)[:n]:
                seen.setdefault(node)
        return list(seen)


@dataclass(frozen=True, slots=True)
class Target:
    """Where one copy of a write goes; `hint_for` names the down primary a fallback stands in
    for (the fallback stores the write as a hint and hands it off later)."""

    node: NodeId
    hint_for: NodeId | None = None


def plan_writes(ring: Ring, token: int, n: int, alive: Set[NodeId]) -> list[Target]:
    """Return live primaries, plus one live fallback per down primary (sloppy quorum)."""
    if not ring._tokens:
        return []
    index = ring._index(token)
    walk = ring._walk(index)
    primaries = walk[:n]
    down = [p for p in primaries if p not in alive]
    if not down:                                   # the common case: cached Target objects
        targets = ring._primaries.get((index, n))
        if targets is None:
            targets = ring._primaries[(index, n)] = [Target(p) for p in primaries]
        return list(targets)
    targets = [Target(p) for p in primaries if p in alive]
    spares = (node for node in walk[n:] if node in alive)
    targets += [Target(spare, hint_for=owner) for owner, spare in zip(down, spares)]
    return targets


class Plan(NamedTuple):
    """Where one request goes (`targets`, shared: do not mutate), the view it was made from
    (`ring`, `alive`), and whether the planning node is a primary of the token (`primary`: it
    is in the plan as itself; a node always counts itself alive). `peers`: the other targets'
    nodes when the targets are all N primaries and the planning node is one of them (no
    fallback holds a hint, so a read may compare raw answers with its own copy, and R - 1
    peers can always answer), else None."""

    targets: tuple[Target, ...]
    ring: Ring
    alive: Set[NodeId]
    primary: bool
    peers: tuple[NodeId, ...] | None = None


_BUCKET_SHIFT: Final = 52                # WritePlans: 64 - 52 = 12 bits, 4096 buckets
_BUCKETS: Final = 1 << (64 - _BUCKET_SHIFT)


class WritePlans:
    """`plan_writes` for one view (ring, n, alive) as seen by node `me`, cached per vnode as a
    Plan: every token of one vnode range gets the same plan, and a view is replaced, never
    mutated, so an entry never goes stale (at most one per vnode). Hot: every replicated
    request plans."""

    __slots__ = ("ring", "n", "alive", "me", "_by_vnode", "_tokens", "_first")

    def __init__(self, ring: Ring, n: int, alive: Set[NodeId], me: NodeId) -> None:
        self.ring, self.n, self.alive, self.me = ring, n, alive, me
        # bisect index (len(tokens) wraps to 0) -> plan, or None until made; a list, not a
        # dict: an int-keyed dict lookup was ~300 instructions of every plan (callgrind)
        tokens = self._tokens = ring._tokens
        self._by_vnode: list[Plan | None] = [None] * (len(tokens) + 1)
        # The bisect index of every bucket's first token (a bucket: 2**52 tokens; 4096 of
        # them, each crossed by a vnode boundary or two at most ring sizes): a plan scans a
        # bucket's few vnode tokens instead of bisecting them all (bisect_left was 1.3k
        # instructions of every replicated request, callgrind).
        self._first = [bisect_left(tokens, b << _BUCKET_SHIFT) for b in range(_BUCKETS + 1)]

    def plan(self, token: int) -> Plan:
        bucket = token >> _BUCKET_SHIFT
        i, end, tokens = self._first[bucket], self._first[bucket + 1], self._tokens
        while i < end and tokens[i] < token:          # == bisect_left(tokens, token)
            i += 1
        plan = self._by_vnode[i]
        return plan if plan is not None else self._make(token)

    def _make(self, token: int) -> Plan:
        ring = self.ring
        if not ring._tokens:
            return Plan((), ring, self.alive, False)
        targets = tuple(plan_writes(ring, token, self.n, self.alive))
        primary = any(t.node == self.me and t.hint_for is None for t in targets)
        peers = None
        if primary and len(targets) == self.n and all(t.hint_for is None for t in targets):
            peers = tuple(t.node for t in targets if t.node != self.me)
        plan = Plan(targets, ring, self.alive, primary, peers)
        index = ring._index(token)
        self._by_vnode[index] = plan
        if index == 0:                           # tokens past the last vnode's wrap to it
            self._by_vnode[len(ring._tokens)] = plan
        return plan


def plan_reads(ring: Ring, token: int, n: int, alive: Set[NodeId]) -> list[NodeId]:
    """Return the nodes a read asks: live primaries, then one live fallback per down primary
    (a fallback may hold a hinted write its primary has not received yet)."""
    return [target.node for target in plan_writes(ring, token, n, alive)]
