"""A command's reply that a backend callback delivers later: a replicated GET or SET.

A `now` handler (commands/spec.py) whose backend started the work with callbacks returns a
`StartedReply`; the callback `set`s the ENCODED reply once. Who waits for it decides how it
hears:

- a connection running a lone command (every request at -P 1) registers itself as
  `connection`: `set` calls its `started_done(data)` there and then, from inside the callback
  (no future, no done-callback, no loop pass before the reply is written);
- a pipeline batch (`Dispatcher.drain`) takes `data` if it is there and otherwise awaits
  `wait()`, a future made only then: a batch's answers arrive together, so one future per
  batch instead of one per command.

It replaces an asyncio.Future per started command, whose creation, done-callback and loop pass
to run it were ~3k instructions of a replicated GET on its coordinator (callgrind: the future
alone 1.5k). `set` before anyone waits (a quorum of one answers inside the call that starts
it) just keeps `data`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resp_kv.server import RespProtocol

__all__ = ["StartedReply"]


class StartedReply:
    """The encoded reply of one started command, once it is there. Event-loop thread only."""

    __slots__ = ("data", "connection", "_loop", "_future")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.data: bytes | None = None              # the encoded reply, once set
        self.connection: RespProtocol | None = None  # a lone command's connection
        self._loop = loop
        self._future: asyncio.Future | None = None

    def set(self, data: bytes) -> None:
        """Deliver the encoded reply. The first call counts; a later one is ignored."""
        if self.data is not None:
            return
        self.data = data
        connection = self.connection
        if connection is not None:
            self.connection = None
            connection.started_done(data)
            return
        future = self._future
        if future is not None and not future.done():     # done: its awaiter was cancelled
            future.set_result(data)

    def wait(self) -> asyncio.Future:
        """A future of the encoded reply, for a batch that must await it."""
        future = self._future
        if future is None:
            future = self._future = self._loop.create_future()
            if self.data is not None:
                future.set_result(self.data)
        return future

    def __await__(self) -> Generator[Any, None, bytes]:
        """`await started`: the encoded reply (through `wait()` unless it is here)."""
        data = self.data
        if data is not None:
            return data
        return (yield from self.wait())
