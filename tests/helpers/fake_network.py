"""In-process cluster for coordinator tests: a memory LocalStore, a stepped clock, a network.

    MemoryStore   LocalStore over a SortedDict (durable() counts calls, never waits)
    FakeClock     monotonic/wall_ms you advance; sleep() waits until advanced past the deadline
    FakeNetwork   routes peer calls between in-process nodes; partition()/heal()/drop()

No sockets: FakeNetwork plugs into `cluster.network.Network` in place of `PeerTransport`
(the same `call(node, verb, args, timeout_s)` shape), so coordinator logic runs unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from sortedcontainers import SortedDict


class MemoryStore:
    """`cluster.types.LocalStore` in memory."""

    def __init__(self) -> None:
        self.data: SortedDict = SortedDict()
        self.durable_calls = 0

    def get(self, key: bytes) -> bytes | None:
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


class FakeClock:
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
