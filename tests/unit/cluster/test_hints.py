"""HintStore and HandoffDeliverer: durable in the store, merged per key, capped, delivered."""

from __future__ import annotations

import asyncio

from cluster import versioning
from cluster.hints import HandoffDeliverer, HintStore
from cluster.types import Sibling
from tests.helpers.fake_network import FakeClock, MemoryStore


def _sib(actor: str, counter: int, value: bytes | None = b"v", context=None) -> Sibling:
    return Sibling((actor, counter), context or {}, value, 1)


def test_hints_survive_a_restart_and_merge_per_key() -> None:
    store, clock = MemoryStore(), FakeClock()
    hints = HintStore(store, clock, max_bytes=1 << 20, max_age_s=60)
    assert hints.add("b", 5, b"k", [_sib("a@1", 1)])
    assert hints.add("b", 5, b"k", [_sib("a@1", 2, context={"a@1": 1})])
    assert hints.add("c", 6, b"j", [_sib("a@1", 1)])
    reopened = HintStore(store, clock, max_bytes=1 << 20, max_age_s=60)
    reopened.recount()
    assert reopened.pending == 2 and reopened.owners() == {"b", "c"}
    [(_, token, key, encoded)] = list(reopened.for_owner("b"))
    assert (token, key) == (5, b"k")
    assert [s.dot for s in versioning.decode_siblings(encoded)] == [("a@1", 2)]


def test_byte_cap_refuses_and_counts_dropped() -> None:
    hints = HintStore(MemoryStore(), FakeClock(), max_bytes=200, max_age_s=60)
    assert hints.add("b", 1, b"k1", [_sib("a@1", 1, b"x" * 50)])
    assert not hints.add("b", 2, b"k2", [_sib("a@1", 1, b"x" * 200)])
    assert hints.pending == 1 and hints.dropped == 1


def test_deliverer_sends_to_live_owners_deletes_and_drops_old_hints() -> None:
    async def scenario():
        clock = FakeClock()
        hints = HintStore(MemoryStore(), clock, max_bytes=1 << 20, max_age_s=10)
        hints.add("old", 1, b"k", [_sib("a@1", 1)])
        await clock.advance(11)
        hints.add("b", 1, b"k", [_sib("a@1", 1)])
        hints.add("down", 1, b"k", [_sib("a@1", 1)])
        sent = []

        async def send(owner, key, token, encoded):
            sent.append((owner, key))
            return True
        deliverer = HandoffDeliverer(hints, clock, lambda n: n != "down", send)
        assert await deliverer.deliver_once() == 1
        assert sent == [("b", b"k")]
        assert (hints.pending, hints.delivered, hints.dropped) == (1, 1, 1)
        assert hints.owners() == {"down"}
    asyncio.run(scenario())


def test_failed_delivery_keeps_the_hint() -> None:
    async def scenario():
        clock = FakeClock()
        hints = HintStore(MemoryStore(), clock, max_bytes=1 << 20, max_age_s=10)
        hints.add("b", 1, b"k", [_sib("a@1", 1)])

        async def send(owner, key, token, encoded):
            return False
        assert await HandoffDeliverer(hints, clock, lambda n: True, send).deliver_once() == 0
        assert hints.pending == 1
    asyncio.run(scenario())
