"""Polling instead of sleeping: wait for an observable condition, or fail saying what never happened.

Not a retry framework: the predicate is called until it returns a truthy value or the deadline
passes. Exceptions raised by the predicate count as "not yet" (a node that is still starting
refuses connections), except GiveUp, which stops the wait at once; the last one is chained to
the timeout error so a failure explains itself.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, TypeVar

T = TypeVar("T")


class GiveUp(AssertionError):
    """Raise from a predicate to stop waiting at once (the awaited thing can no longer happen)."""


class WaitTimeout(AssertionError):
    """The condition did not hold before the deadline (an AssertionError, so pytest shows it as a failure)."""


def wait_until(predicate: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.02) -> T:
    """Call `predicate` until it returns a truthy value and return that value.

    Raises WaitTimeout naming `what` (and the last exception the predicate raised, if any)
    when `timeout_s` seconds pass first. The predicate is always tried at least once.
    """
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    last_value: object = None
    while True:
        try:
            last_value = predicate()
            if last_value:
                return last_value
            last_error = None
        except GiveUp:
            raise
        except Exception as error:  # noqa: BLE001 - "not yet"; reported on timeout
            last_error = error
        if time.monotonic() >= deadline:
            detail = f"last error: {last_error!r}" if last_error else f"last value: {last_value!r}"
            raise WaitTimeout(f"timed out after {timeout_s}s waiting for {what} ({detail})") from last_error
        time.sleep(interval_s)


async def until(predicate: Callable[[], object], timeout_s: float = 5.0,
                interval_s: float = 0.005) -> None:
    """`wait_until` for code on an event loop (in-process tests): poll `predicate`, yielding to
    the loop between tries, and fail with an AssertionError when `timeout_s` passes first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() >= deadline:
            raise WaitTimeout(f"condition not reached in {timeout_s}s")
        await asyncio.sleep(interval_s)
