"""Laws of cluster/gcgate.py: no GC before every other replica synced after the death."""

from __future__ import annotations

from cluster.gcgate import GcGate
from cluster.merkle import TOKEN_LIMIT
from cluster.types import Sibling

TOMBSTONE = [Sibling(("a@1", 2), {"a@1": 1}, None, 5)]
EXPIRED = [Sibling(("a@1", 1), {}, b"v", 5, expire_at_ms=2_000)]
TOKEN = 7 << 48


def test_gcgate_needs_a_clean_exchange_with_every_other_replica_after_arrival() -> None:
    gate = GcGate(started_ms=1_000)
    gate.note_dead_arrival(TOKEN, 1_500)
    assert gate.collectable(TOKEN, TOMBSTONE, [])                 # single node: at once
    assert not gate.collectable(TOKEN, TOMBSTONE, ["b", "c"])
    gate.record_clean("b", [(0, TOKEN_LIMIT)], 1_600)
    assert not gate.collectable(TOKEN, TOMBSTONE, ["b", "c"])     # c never synced
    gate.record_clean("c", [(TOKEN, TOKEN + 1)], 1_500)           # started with the arrival
    assert not gate.collectable(TOKEN, TOMBSTONE, ["b", "c"])
    gate.record_clean("c", [(TOKEN, TOKEN + 1)], 1_501)
    assert gate.collectable(TOKEN, TOMBSTONE, ["b", "c"])
    gate.note_dead_arrival(TOKEN + 1, 1_700)                      # same segment: wait again
    assert not gate.collectable(TOKEN, TOMBSTONE, ["b", "c"])


def test_gcgate_expired_value_waits_for_a_sync_after_its_expiry_and_the_grace() -> None:
    gate = GcGate(started_ms=1_000, grace_ms=100)
    gate.record_clean("b", [(0, TOKEN_LIMIT)], 2_050)
    assert not gate.collectable(TOKEN, EXPIRED, ["b"])            # 2_000 + 100 grace
    gate.record_clean("b", [(0, TOKEN_LIMIT)], 2_101)
    assert gate.collectable(TOKEN, EXPIRED, ["b"])


def test_gcgate_nothing_synced_before_this_process_started_counts() -> None:
    gate = GcGate(started_ms=10_000)
    gate.record_clean("b", [(0, TOKEN_LIMIT)], 9_999)
    assert not gate.collectable(TOKEN, TOMBSTONE, ["b"])
