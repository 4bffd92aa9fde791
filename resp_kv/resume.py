"""Finish a coroutine that was started by hand with `send(None)` as if a task had awaited it.

The server and the dispatcher run handlers inline (`coro.send(None)`) so that a command which
never suspends costs no task and no loop round trip. When one does suspend, what remains of
`await coro` is `yield from resume(coro, first)`: every value the event loop sends, and every
exception it throws (cancellation included), goes to the coroutine, whose return value comes
back as the generator's.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any


def resume(coro: Coroutine, first: Any) -> Generator[Any, Any, Any]:
    """Yield `first` (what the coroutine yielded when started), then drive it to completion."""
    yielded = first
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as error:  # noqa: BLE001 - forwarded into the coroutine
            try:
                yielded = coro.throw(error)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value
