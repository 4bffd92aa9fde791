"""DurableStore's reply barrier: one WAL write per loop iteration for every client that wrote in
it, replies released only after it, a failed write failing the replies. Over a counting engine
(the real LSM engine's WAL is tested in tests/unit/storage; the whole path by the kill -9 tests
in tests/faults/test_durability.py)."""

from __future__ import annotations

import asyncio

import pytest

from resp_kv.durability import DurableStore, FlushTick
from tests.helpers.wait import until


class CountingEngine:
    """The engine surface DurableStore uses; records the order of WAL writes and syncs."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.events: list[str] = []
        self.fail_next_flush = False
        self.get = self.data.get
        self.scan = None

    def put(self, key: bytes, value: bytes) -> None:
        self.data[key] = value
        self.events.append("put")

    def wal_flush(self) -> bool:
        if self.fail_next_flush:
            self.fail_next_flush = False
            raise OSError(28, "No space left on device")
        self.events.append("flush")
        return True

    def wal_sync(self) -> None:
        self.events.append("sync")

    def close(self) -> None:
        self.events.append("close")


def test_reply_barrier_is_none_until_something_is_written() -> None:
    async def main() -> None:
        store = DurableStore(CountingEngine(), "everysec")
        assert store.reply_barrier() is None
        store.put(b"k", b"v")
        assert isinstance(store.reply_barrier(), FlushTick)
    asyncio.run(main())


@pytest.mark.parametrize("policy", ["everysec", "no"])
def test_reply_barrier_one_wal_write_per_iteration_then_the_replies(policy: str) -> None:
    async def main() -> None:
        engine = CountingEngine()
        store = DurableStore(engine, policy)
        released: list[tuple[str, list[str]]] = []
        ticks = []
        for client in ("a", "b", "c"):                      # three clients, one iteration
            store.put(client.encode(), b"v")
            tick = store.reply_barrier()
            ticks.append(tick)
            tick.add_done_callback(lambda t, c=client: released.append((c, list(engine.events))))
        assert ticks[0] is ticks[1] is ticks[2] and not ticks[0].done()
        assert released == [] and "flush" not in engine.events
        # The contract is "the next loop pass" (Redis's beforeSleep): a callback queued now
        # runs in that pass, after the tick's, and records what had happened by then.
        loop = asyncio.get_running_loop()
        next_pass = loop.create_future()
        loop.call_soon(lambda: next_pass.set_result(list(engine.events)))
        assert (await next_pass).count("flush") == 1
        assert engine.events.count("flush") == 1 and "sync" not in engine.events
        assert [c for c, _ in released] == ["a", "b", "c"]
        assert all(events[-1] == "flush" for _, events in released)   # after the write
        assert ticks[0].exception() is None
        store.put(b"d", b"v")                               # a later write: a new tick
        later = store.reply_barrier()
        assert later is not ticks[0]
        await until(later.done)
        assert engine.events.count("flush") == 2
        done_now = []
        later.add_done_callback(done_now.append)            # already done: runs at once
        assert done_now == [later]
    asyncio.run(main())


def test_reply_barrier_failed_wal_write_fails_the_waiting_replies() -> None:
    async def main() -> None:
        engine = CountingEngine()
        store = DurableStore(engine, "everysec")
        store.put(b"k", b"v")
        engine.fail_next_flush = True
        tick = store.reply_barrier()
        seen = []
        tick.add_done_callback(lambda t: seen.append(t.exception()))
        await until(tick.done)
        assert isinstance(tick.exception(), OSError) and seen == [tick.exception()]
    asyncio.run(main())


def test_reply_barrier_always_waits_for_the_group_fsync() -> None:
    async def main() -> None:
        engine = CountingEngine()
        store = DurableStore(engine, "always")
        store.put(b"k", b"v")
        first = store.reply_barrier()
        store.put(b"k2", b"v")
        second = store.reply_barrier()
        assert isinstance(first, asyncio.Future) and not first.done()
        await asyncio.gather(first, second)
        assert engine.events == ["put", "put", "flush", "sync"]        # one group commit
    asyncio.run(main())
