"""Time as the cluster's async shells see it: monotonic seconds, wall-clock ms, sleep.

Not a scheduler. Gossip, failure detection, hint retry and read timeouts read time through a
`Clock` so unit tests can step it (`tests/helpers/fake_network.py:FakeClock`), as mini-redis does
with `time::pause()`. `SystemClock` is the real one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from mypy_extensions import mypyc_attr

# Final: a C global of this compiled module; `time.time_ns` was a module getattr per call
# (every SET reads the wall clock for its sibling timestamp)
_time_ns: Final = time.time_ns
_monotonic: Final = time.monotonic


@mypyc_attr(allow_interpreted_subclasses=True)
class Clock:
    """Where async shells read time. Event-loop thread only. Every method must be overridden.

    A native base class, not a protocol: compiled callers call `wall_ms` (every SET) through
    the vtable, a C call, where a protocol made it a generic Python call. Tests subclass it
    with a clock they step (their overrides are called as Python methods).
    """

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        raise NotImplementedError

    def wall_ms(self) -> int:
        """Unix time in milliseconds (sibling timestamps, expiry, hint age)."""
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError


class SystemClock(Clock):
    """The real clock."""

    def monotonic(self) -> float:
        return _monotonic()

    def wall_ms(self) -> int:
        return _time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
