"""In-process cluster for coordinator tests: a memory LocalStore, a stepped clock, a network.

    MemoryStore   LocalStore over a SortedDict (durable() counts calls, never waits)
    FakeClock     monotonic/wall_ms you advance; sleep() waits until advanced past the deadline
    FakeNetwork   routes peer calls between in-process nodes; partition()/heal()/drop()

No sockets: FakeNetwork plugs into `cluster.network.Network` in place of `PeerTransport`
(the same `call(node, verb, args, timeout_s)` and `send_item` shapes), so coordinator logic
runs unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from sortedcontainers import SortedDict

from cluster.clock import Clock
from cluster.transport import PeerTransport
from cluster.types import LocalStore


class MemoryStore(LocalStore):
    """`cluster.types.LocalStore` in memory."""

    def __init__(self) -> None:
        self.data: SortedDict = SortedDict()
        self.durable_calls = 0

    def get(self, key: bytes, fill: bool = True) -> bytes | None:
        return self.data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)

    def scan(self, start: bytes = b"", end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        for key in list(self.data.irange(start, end, inclusive=(True, False))):
            value = self.data.get(key)
            if value is not None:
                yield key, value

    async def durable(self) -> None:
        self.durable_calls += 1


class FakeClock(Clock):
    """A clock that moves only when told to."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.now_s = 1000.0
        self.wall_origin_ms = start_ms
        self._sleepers: list[tuple[float, asyncio.Future]] = []

    def monotonic(self) -> float:
        return self.now_s

    def wall_ms(self) -> int:
        return self.wall_origin_ms + int((self.now_s - 1000.0) * 1000)

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now_s + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward and let every sleeper that is due run."""
        self.now_s += seconds
        due = [f for t, f in self._sleepers if t <= self.now_s]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self.now_s]
        for future in due:
            if not future.done():
                future.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)


class _FakeServer:
    """Stands in for PeerServer: a handler registry only."""

    def __init__(self) -> None:
        self.handlers: dict = {}

    def register(self, verb: bytes, handler) -> None:
        self.handlers[verb] = handler

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    def drop(self, nodes) -> None: ...


class _FakeTransport(PeerTransport):
    """Stands in for PeerTransport: routes calls through the FakeNetwork."""

    def __init__(self, net: "FakeNetwork", node: str) -> None:   # none of PeerTransport's state
        self.net, self.node = net, node
        self.blocked: set[str] = set()

    def call(self, node: str, verb: bytes, args: list, timeout_s: float | None = None):
        return self.net.deliver(self.node, node, verb, args)

    def send(self, node: str, verb: bytes, args: list, callback,
             timeout_s: float | None = None) -> None:
        """`call`, answered through `callback(payload, error)` as PeerTransport does."""
        def settle(future: asyncio.Future) -> None:
            error = future.exception()
            if error is not None:
                callback(None, error)
            else:
                callback(future.result(), None)
        self.call(node, verb, args).add_done_callback(settle)

    def send_item(self, node: str, verb: bytes, item: tuple, waiter,
                  timeout_s: float | None = None) -> None:
        """A batched verb's item as a request of its own (no coalescing here): the real
        handler's batched answer is unpacked for the item's waiter as PeerTransport does."""
        from cluster.transport import PeerError

        def settle(future: asyncio.Future) -> None:
            error = future.exception()
            if error is not None:
                waiter.item_answered(node, None, error)
                return
            statuses, values = future.result()
            if statuses != b"OK" and statuses[0]:
                waiter.item_answered(node, None, PeerError(statuses[0].decode()))
            else:
                waiter.item_answered(node, values[0] if values is not None else None, None)
        self.call(node, verb, list(item)).add_done_callback(settle)

    def block(self, nodes) -> None:
        self.blocked |= set(nodes)

    def unblock_all(self) -> None:
        self.blocked.clear()

    def disconnect(self, node) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class FakeNetwork:
    """In-process nodes wired by a routing table. Frames are round-tripped through the real RESP
    encoding and hiredis, so what a handler sees is what it would see over a socket.

    partition(a, b): calls between a and b fail at once (PeerUnavailable), both ways.
    drop(node): calls to `node` never arrive; the caller's future times out (TimeoutError)
    after `timeout_s`. heal(): undo both. `calls` records (src, dst, verb) for assertions.
    """

    def __init__(self, timeout_s: float = 0.05) -> None:
        self.timeout_s = timeout_s
        self.nodes: dict = {}               # node id -> Network
        self.cut: set[frozenset] = set()
        self.dropped: set[str] = set()
        self.calls: list[tuple[str, str, bytes]] = []

    def transport_for(self, node: str) -> _FakeTransport:
        return _FakeTransport(self, node)

    @staticmethod
    def server() -> _FakeServer:
        return _FakeServer()

    def add(self, node: str, network) -> None:
        self.nodes[node] = network

    def partition(self, a: str, b: str) -> None:
        self.cut.add(frozenset((a, b)))

    def drop(self, node: str) -> None:
        self.dropped.add(node)

    def heal(self) -> None:
        self.cut.clear()
        self.dropped.clear()

    def deliver(self, src: str, dst: str, verb: bytes, args: list) -> asyncio.Future:
        import hiredis

        from cluster import messages
        from cluster.transport import PeerError
        from cluster.types import PeerUnavailable

        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.calls.append((src, dst, verb))
        target = self.nodes.get(dst)
        if target is None or frozenset((src, dst)) in self.cut or \
                dst in self.nodes[src].transport.blocked:
            future.set_exception(PeerUnavailable(f"{dst} unreachable"))
            return future
        if dst in self.dropped or src in self.dropped:
            loop.call_later(self.timeout_s, lambda: future.done() or future.set_exception(
                TimeoutError(f"{dst} did not answer")))
            return future
        reader = hiredis.Reader()
        reader.feed(messages.encode_request(verb, 1, args))
        frame = reader.gets()

        def answer(ok: bool, payload) -> None:
            if future.done():
                return
            if not ok:
                future.set_exception(PeerError(str(payload)))
                return
            out = hiredis.Reader()
            out.feed(messages.encode_value(payload))
            future.set_result(out.gets())

        async def run() -> None:
            try:
                result = target.server.handlers[frame[0]](src, frame[2:])
                if asyncio.iscoroutine(result):
                    result = await result
            except Exception as error:   # the real server answers errors too
                answer(False, f"{type(error).__name__}: {error}")
                return
            answer(True, result)

        loop.call_soon(lambda: asyncio.ensure_future(run()))
        return future
