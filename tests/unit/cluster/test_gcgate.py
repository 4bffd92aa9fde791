"""Laws of cluster/gcgate.py: no GC before every other replica synced after the death."""

from __future__ import annotations

from cluster.gcgate import GcGate
from cluster.merkle import TOKEN_LIMIT
from cluster.types import Sibling

TOMBSTONE = [Sibling(("a@1", 2), {"a@1": 1}, None, 5)]
EXPIRED = [Sibling(("a@1", 1), {}, b"v", 5, expire_at_ms=2_000)]
TOKEN = 7 << 48
NOW = 1 << 40                                   # long after every timestamp above


def test_gcgate_needs_a_clean_exchange_with_every_other_replica_after_arrival() -> None:
    gate = GcGate(started_ms=1_000)
    gate.note_dead_arrival(TOKEN, 1_500)
    assert gate.collectable(TOKEN, TOMBSTONE, [], NOW)                 # single node: at once
    assert not gate.collectable(TOKEN, TOMBSTONE, ["b", "c"], NOW)
    gate.record_clean("b", [(0, TOKEN_LIMIT)], 1_600)
    assert not gate.collectable(TOKEN, TOMBSTONE, ["b", "c"], NOW)     # c never synced
    gate.record_clean("c", [(TOKEN, TOKEN + 1)], 1_500)           # started with the arrival
    assert not gate.collectable(TOKEN, TOMBSTONE, ["b", "c"], NOW)
    gate.record_clean("c", [(TOKEN, TOKEN + 1)], 1_501)
    assert gate.collectable(TOKEN, TOMBSTONE, ["b", "c"], NOW)
    gate.note_dead_arrival(TOKEN + 1, 1_700)                      # same segment: wait again
    assert not gate.collectable(TOKEN, TOMBSTONE, ["b", "c"], NOW)


def test_gcgate_expired_value_waits_for_a_sync_after_its_expiry_and_the_grace() -> None:
    gate = GcGate(started_ms=1_000, grace_ms=100)
    gate.record_clean("b", [(0, TOKEN_LIMIT)], 2_050)
    assert not gate.collectable(TOKEN, EXPIRED, ["b"], NOW)            # 2_000 + 100 grace
    gate.record_clean("b", [(0, TOKEN_LIMIT)], 2_101)
    assert gate.collectable(TOKEN, EXPIRED, ["b"], NOW)


def test_gcgate_nothing_synced_before_this_process_started_counts() -> None:
    gate = GcGate(started_ms=10_000)
    gate.record_clean("b", [(0, TOKEN_LIMIT)], 9_999)
    assert not gate.collectable(TOKEN, TOMBSTONE, ["b"], NOW)


def test_gcgate_keeps_a_dead_record_until_no_hint_it_superseded_can_arrive() -> None:
    """The hint wait runs from the record's newest timestamp (the delete's), not from its
    arrival: a tombstone sent back by a peer waits for a new exchange, not a new hint wait."""
    gate = GcGate(started_ms=0, hint_wait_ms=1_000)
    late = [Sibling(("a@1", 2), {"a@1": 1}, None, 50_000)]        # deleted at 50_000
    gate.record_clean("b", [(0, TOKEN_LIMIT)], 40_000)
    assert not gate.collectable(TOKEN, late, ["b"], 51_000)       # a hint may still come
    assert gate.collectable(TOKEN, late, ["b"], 51_001)
    assert gate.collectable(TOKEN, late, [], 50_000)              # single node: no hints
    gate.note_dead_arrival(TOKEN, 60_000)                         # sent back by a peer
    assert not gate.collectable(TOKEN, late, ["b"], 60_500)       # no exchange since
    gate.record_clean("b", [(0, TOKEN_LIMIT)], 60_001)
    assert gate.collectable(TOKEN, late, ["b"], 60_500)           # not another 1 s wait
    assert gate.collectable(TOKEN, [], ["b"], 60_500)             # no sibling: nothing to wait on
