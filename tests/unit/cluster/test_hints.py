"""HintStore and HandoffDeliverer: durable in the store, merged per key, capped, delivered."""

from __future__ import annotations

import asyncio

from cluster import versioning
from cluster.hints import HandoffDeliverer, HintStore
from cluster.types import Sibling
from tests.helpers.fake_network import FakeClock, MemoryStore


WRITTEN_MS = FakeClock().wall_ms()            # the writes are made when a test starts


def _sib(actor: str, counter: int, value: bytes | None = b"v", context=None,
         timestamp_ms: int = WRITTEN_MS) -> Sibling:
    return Sibling((actor, counter), context or {}, value, timestamp_ms)


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
        hints.add("b", 1, b"k", [_sib("a@1", 1, timestamp_ms=clock.wall_ms())])
        hints.add("down", 1, b"k", [_sib("a@1", 1, timestamp_ms=clock.wall_ms())])
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


def test_a_hint_is_as_old_as_the_oldest_write_it_carries() -> None:
    """A write that reaches its hint holder late (a paused fallback) is not made younger:
    the GC gate counts on a hint expiring hint_max_age after the write it carries."""
    clock = FakeClock()
    hints = HintStore(MemoryStore(), clock, max_bytes=1 << 20, max_age_s=10)
    hints.add("b", 1, b"late", [_sib("a@1", 1, timestamp_ms=clock.wall_ms() - 9_000)])
    hints.add("b", 2, b"mixed", [_sib("a@1", 1, timestamp_ms=clock.wall_ms() - 9_000),
                                 _sib("c@1", 1, timestamp_ms=clock.wall_ms())])
    hints.add("b", 3, b"fresh", [_sib("a@1", 1)])
    hints.add("b", 4, b"ahead", [_sib("a@1", 1, timestamp_ms=clock.wall_ms() + 60_000)])
    clock.now_s += 2
    expired = {key for _, _, key, encoded in hints.for_owner("b") if encoded is None}
    assert expired == {b"late", b"mixed"}


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
