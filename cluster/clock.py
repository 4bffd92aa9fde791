"""Time as the cluster's async shells see it: monotonic seconds, wall-clock ms, sleep.

Not a scheduler. Gossip, failure detection, hint retry and read timeouts read time through a
`Clock` so unit tests can step it (`tests/helpers/fake_network.py:FakeClock`), as mini-redis does
with `time::pause()`. `SystemClock` is the real one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final, Protocol

# Final: a C global of this compiled module; `time.time_ns` was a module getattr per call
# (every SET reads the wall clock for its sibling timestamp)
_time_ns: Final = time.time_ns


class Clock(Protocol):
    """Where async shells read time. Event-loop thread only."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""

    def wall_ms(self) -> int:
        """Unix time in milliseconds (sibling timestamps, expiry, hint age)."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    monotonic = staticmethod(time.monotonic)

    @staticmethod
    def wall_ms() -> int:
        return _time_ns() // 1_000_000

    @staticmethod
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)
