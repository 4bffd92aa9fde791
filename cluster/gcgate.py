"""The repair gate on garbage collection: when may a dead record be forgotten?

Pure: no I/O and no clock of its own (callers pass this node's wall-clock ms); no ring either
(callers pass the other replicas of the record's token). `antientropy.py` feeds it and asks it.

Rule. A dead record (every sibling a tombstone or expired) may be dropped only if every other
replica of its token has completed a clean exchange with this node that *started* after the
record became dead here:

    dead_since := max(process start, last arrival of a dead-on-arrival record in its segment,
                      the latest expiry among its values) + tombstone_grace
    newest     := the latest timestamp among its siblings (when its last write or delete was made)
    droppable  := for every other replica r: clean[r][segment] > dead_since
                  and now > newest + hint_wait
    hint_wait  := hint_max_age + request_timeout                   (service.hint_wait_s)

All times are this node's clock, so skew between nodes does not matter: a record that arrived
dead is timed by its local arrival (kept per segment, bounded memory, reset to "now" by a
restart), and one that was live on arrival and expired in place arrived before its expiry as this
node measured it. An exchange is clean when every phase finished, pushes included, so the
replica then holds the record, a successor, or had already collected it; nothing older can come
back. `hint_wait` covers what an exchange cannot: a hint, held by a node outside the record's
replicas, of a value the delete superseded. Such a hint is no younger than that value, which is
older than the delete, and it is dropped undelivered once older than hint_max_age (hints.py).
It is timed from the record's own timestamps, not from its arrival here: an exchange that sends
a tombstone back to a replica that collected it first must not restart that wait (with a wait
longer than the exchange period, two replicas would pass one tombstone back and forth forever).
It compares a time minted on another node with this node's clock: the request timeout in it is
also the allowance for clocks a little apart. With no other replica (a single node) a dead
record may go at once.

A replica that stays away blocks GC of the segments it shares, however long: tombstones pile up
on the others, and no delete can come back. That ends when it returns and completes an exchange,
or when an operator removes it from the ring (then it must rejoin with an empty data dir, as a
node that kept its old data could bring back what was collected meanwhile).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

from cluster import merkle
from cluster.merkle import SEGMENTS, Range
from cluster.types import NodeId, Sibling

__all__ = ["GcGate"]


class GcGate:
    """Per-peer clean-exchange marks and per-segment dead arrivals. `collectable` may be called
    from the compaction thread (it only reads; array and dict reads are atomic)."""

    def __init__(self, started_ms: int, grace_ms: int = 0, hint_wait_ms: int = 0) -> None:
        self.started_ms, self.grace_ms, self.hint_wait_ms = started_ms, grace_ms, hint_wait_ms
        self._clean: dict[NodeId, array] = {}            # peer -> start ms per segment
        self._dead_arrival = array("q", bytes(8 * SEGMENTS))

    def note_dead_arrival(self, token: int, now_ms: int) -> None:
        """A record that is already dead was just stored here."""
        self._dead_arrival[merkle.segment_of(token)] = now_ms

    def record_clean(self, peer: NodeId, ranges: Iterable[Range], started_ms: int) -> None:
        """Note a clean exchange with `peer` over `ranges` that started at `started_ms`.

        Plain assignment, not max: should two exchanges with one peer finish out of order, the
        older start wins, which only delays GC (safe)."""
        clean = self._clean.get(peer)
        if clean is None:
            clean = self._clean[peer] = array("q", bytes(8 * SEGMENTS))
        for start, end in ranges:
            first, last = merkle.segment_of(start), merkle.segment_of(end - 1)
            clean[first:last + 1] = array("q", [started_ms]) * (last - first + 1)

    def collectable(self, token: int, siblings: list[Sibling], replicas: Iterable[NodeId],
                    now_ms: int) -> bool:
        """Return True if each of `replicas` (the others that must have synced) had a clean
        exchange with us after this dead record died here, and no hint of a value it
        superseded can still be delivered. Requires: the record is dead."""
        replicas = list(replicas)
        if not replicas:
            return True
        if now_ms <= max((s.timestamp_ms for s in siblings), default=0) + self.hint_wait_ms:
            return False
        segment = merkle.segment_of(token)
        expired = max((s.expire_at_ms for s in siblings if s.value is not None), default=0)
        dead_since = max(self.started_ms, self._dead_arrival[segment], expired) + self.grace_ms
        for peer in replicas:
            clean = self._clean.get(peer)
            if clean is None or clean[segment] <= dead_since:
                return False
        return True
