"""DurableStore's reply barrier: one WAL write per loop iteration for every client that wrote in
it, replies released only after it, a failed write failing the replies. Over a counting engine
(the real LSM engine's WAL is tested in tests/unit/storage; the whole path by the kill -9 tests
in tests/faults/test_durability.py)."""

from __future__ import annotations

import asyncio

import pytest

from resp_kv.durability import DurableStore, FlushTick, ReplyHolder
from resp_kv.storage.engine import LSMStore
from tests.helpers.wait import until


class CountingEngine(LSMStore):
    """The engine surface DurableStore uses; records the order of WAL writes and syncs."""

    def __init__(self) -> None:          # none of LSMStore's state: every method used is ours
        self.data: dict[bytes, bytes] = {}
        self.events: list[str] = []
        self.fail_next_flush = False

    def get(self, key: bytes, fill: bool = True) -> bytes | None:
        return self.data.get(key)

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


class HeldReplies(ReplyHolder):
    """The connection side of a FlushTick: records each release with the engine's events then."""

    def __init__(self, name: str, engine: CountingEngine) -> None:
        self.name, self.engine = name, engine
        self.released: list[tuple[str, object, BaseException | None, list[str]]] = []

    def hold(self, tick: FlushTick, data: bytes) -> None:
        tick.replies.append([self, data])

    def tick_released(self, tick: FlushTick, data, error: BaseException | None) -> None:
        self.released.append((self.name, data, error, list(self.engine.events)))


def test_reply_barrier_is_none_until_something_is_written() -> None:
    async def main() -> None:
        store = DurableStore(CountingEngine(), "everysec")
        assert store.reply_barrier() is None
        store.put(b"k", b"v")
        assert isinstance(store.reply_barrier(), FlushTick)
    asyncio.run(main())


@pytest.mark.parametrize("policy", ["everysec", "no", "always"])
def test_reply_barrier_one_wal_write_per_iteration_then_the_replies(policy: str) -> None:
    async def main() -> None:
        engine = CountingEngine()
        store = DurableStore(engine, policy)
        clients = [HeldReplies(name, engine) for name in ("a", "b", "c")]
        ticks = []
        for client in clients:                              # three clients, one iteration
            store.put(client.name.encode(), b"v")
            tick = store.reply_barrier()
            ticks.append(tick)
            client.hold(tick, b"+OK\r\n")
        assert ticks[0] is ticks[1] is ticks[2] and ticks[0].replies is not None
        assert "flush" not in engine.events
        # The contract is "the next loop pass" (Redis's beforeSleep): a callback queued now
        # runs in that pass, after the tick's, and records what had happened by then.
        loop = asyncio.get_running_loop()
        next_pass = loop.create_future()
        loop.call_soon(lambda: next_pass.set_result(list(engine.events)))
        assert (await next_pass).count("flush") == 1
        written = ["flush", "sync"] if policy == "always" else ["flush"]
        assert engine.events == ["put"] * 3 + written           # one write (one fsync) for all
        assert ticks[0].replies is None                          # done: takes no more
        for client in clients:                                   # released after the write
            assert client.released == [(client.name, b"+OK\r\n", None, engine.events)]
        store.put(b"d", b"v")                               # a later write: a new tick
        later = store.reply_barrier()
        assert later is not ticks[0]
        clients[0].hold(later, b"+OK\r\n")
        await until(lambda: later.replies is None)
        assert engine.events.count("flush") == 2 and len(clients[0].released) == 2
    asyncio.run(main())


@pytest.mark.parametrize("policy", ["everysec", "always"])
def test_reply_barrier_failed_wal_write_fails_the_waiting_replies(policy: str) -> None:
    async def main() -> None:
        engine = CountingEngine()
        store = DurableStore(engine, policy)
        store.put(b"k", b"v")
        engine.fail_next_flush = True
        tick = store.reply_barrier()
        client = HeldReplies("a", engine)
        client.hold(tick, b"+OK\r\n")
        await until(lambda: client.released)
        [(_, _, error, _)] = client.released
        assert isinstance(error, OSError)
    asyncio.run(main())


def test_reply_barrier_always_joins_the_peers_group_fsync() -> None:
    """Client replies and a peer's barrier() in one iteration share one fdatasync."""
    async def main() -> None:
        engine = CountingEngine()
        store = DurableStore(engine, "always")
        store.put(b"k", b"v")
        peer_ack = store.barrier()
        store.put(b"k2", b"v")
        tick = store.reply_barrier()
        client = HeldReplies("a", engine)
        client.hold(tick, b"+OK\r\n")
        assert isinstance(peer_ack, asyncio.Future) and not peer_ack.done()
        await peer_ack
        assert engine.events == ["put", "put", "flush", "sync"]        # one group commit
        assert client.released == [("a", b"+OK\r\n", None, engine.events)]
    asyncio.run(main())
