"""The client-facing RESP server: asyncio Protocol shell around the sans-IO codec and Dispatcher.

Not the codec (`resp.py`), not the commands (`commands/`): this module owns sockets, ordering,
flow control and shutdown (the shape of uvicorn's `H11Protocol` + `flow_control.py`).

One connection is one ordered pipeline. `data_received` parses every complete command into a
queue and then runs the queue *inline*: one coroutine per batch (`Dispatcher.drain`) is started
with `send(None)`; when no handler suspends (PING, a GET served from memory...) the whole batch
finishes right there, with no task, no loop round trip and one StopIteration. When a command does
suspend, the half-run batch goes to the connection's one worker task, which finishes it (and
whatever arrives meanwhile) in order. Replies of a batch leave in ONE `transport.write`.

Flow control, both ways: reading pauses when the queue reaches `pipeline_high_water` commands,
while the transport's write buffer is above its high-water mark (`pause_writing`), after a
protocol error, and during shutdown; the worker awaits `resume_writing` before taking more.

Protocol error: earlier commands are answered, then `-ERR Protocol error: ...`, then close.
Query buffer over `client_query_buffer_limit`: closed at once, like Redis.

Durability lives at the reply boundary (Redis AOF style): before a batch's replies are written,
`durable.reply_barrier()` (the node's `DurableStore`) returns None when no WAL bytes are
buffered, else the FlushTick of this loop iteration's WAL write (one write for every client of
the iteration; under `--fsync always`, the group commit). The tick holds the replies and hands
them back through `tick_released` right after; later replies of the connection join it, so
order holds. A failed WAL write or fsync closes the connection without acknowledging anything.

Measured (issue 2, 2-core VM under load, FakeBackend, redis-benchmark -c 50 SET+GET): server
CPU 5.5 us/command at -P 16 and 21 us at -P 1, against 1.65 / 8.7 us for a minimal
uvloop+hiredis+dict server on the same box. On the real node (py-spy, GET -P 16) parsing,
dispatch and this shell are ~10% of the CPU; the kernel send inside `transport.write` ~28%.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from resp_kv.commands import BATCH_FULL, command_table
from resp_kv.commands.dispatch import Dispatcher
from resp_kv.commands.spec import Session
from resp_kv.durability import DurableStore, FlushTick, ReplyHolder
from resp_kv.resp import ProtocolError, QueryBufferExceeded, make_request_parser
from resp_kv.resume import resume
from resp_kv.started import StartedReply

if TYPE_CHECKING:
    from resp_kv.backend import Backend
    from resp_kv.config import Config
    from resp_kv.server_state import ServerState

__all__ = ["RespProtocol", "RespServer"]

log = logging.getLogger("resp_kv.server")


class _Resume:
    """Await a coroutine that was started by hand with `send(None)` and yielded `first`."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro, first: Any) -> None:
        self._coro, self._first = coro, first

    def __await__(self):
        return (yield from resume(self._coro, self._first))


class RespProtocol(ReplyHolder, asyncio.Protocol):
    """One client connection. Concurrency comes from many connections, never from reordering
    one pipeline. Event-loop thread only.
    """

    _dispatcher: Dispatcher                   # set by connection_made (typed: C calls per command)

    def __init__(self, server: "RespServer") -> None:
        self._server = server
        self._config = server.config.server
        self._state = server.state
        self._parser = make_request_parser(self._config)
        self._durable = server.durable
        self._high_water = self._config.pipeline_high_water
        self._pending: deque = deque()        # list[bytes] commands, then maybe a ProtocolError
        self._transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self._busy = False                    # the worker owns the queue (a command suspended)
        self._suspended: Awaitable[Any] | None = None  # a batch for the worker to finish
        self._carry: list[bytes] = []         # replies done before the suspension, unwritten
        self._worker: asyncio.Task | None = None
        self._wake: asyncio.Future | None = None
        self._write_paused = False
        self._drain: asyncio.Future | None = None
        self._reading_paused = False
        self._stop_reading = False            # protocol error, QUIT or shutdown: never resume
        self._closed = False
        self._tick: FlushTick | None = None   # the FlushTick holding replies of ours
        self._tick_entry: list | None = None  # our [self, replies] entry in it
        self._close_when_released = False

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        server = self._server
        session = Session(backend=server.backend, server=self._state, config=server.config)
        session.authenticated = self._config.requirepass is None
        session.loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            session.address = f"{peer[0]}:{peer[1]}"
        self.session = session
        dispatcher = Dispatcher(session, server.table)
        self._dispatcher = dispatcher
        self._state.client_connected(session)
        server._connection_made(self)
        if server.stopping:
            self._stop_reading = True
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        # A command already running is allowed to finish (as in Redis); queued ones are dropped.
        self._closed = True
        self._stop_reading = True
        self._state.client_disconnected(self.session)
        self._pending.clear()
        if self._wake is not None and not self._wake.done():
            self._worker.cancel()                 # idle worker: nothing to finish
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._server._connection_lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        self._state.total_net_input_bytes += len(data)
        if self._stop_reading:
            return                                # nothing after an error or QUIT counts
        pending, parser = self._pending, self._parser
        try:
            parser.feed_into(data, pending)
        except QueryBufferExceeded:
            log.warning("closing client %s: query buffer over client_query_buffer_limit",
                        self.session.address)
            self._stop_reading = True
            self._transport.abort()
            return
        except ProtocolError as error:
            pending.append(error)
            self._stop_reading = True
        if self._busy:
            self._update_reading()
        elif len(pending) == 1 and type(pending[0]) is list:
            # One command (every request at -P 1): a plain call, no batch coroutine.
            reply = self._dispatcher.run(pending.popleft())
            if type(reply) is StartedReply and reply.data is not None:
                reply = reply.data                # answered inside the call (a quorum of one)
            if type(reply) is bytes and not self.session.closing:
                self._write_reply(reply)
                if self._reading_paused:
                    self._update_reading()
            else:
                self._one_done(reply)
        else:
            self._run_inline()

    # ------------------------------------------------------------------------- execution
    def _one_done(self, reply) -> None:
        """The other ends of a lone command: started by callbacks (a StartedReply: a
        replicated GET or SET, every request of a cluster at -P 1), suspended, or the session
        is closing."""
        if type(reply) is StartedReply and not self.session.closing:
            # No worker task and no future: the reply's `set` calls `started_done` (the
            # worker's batch machinery was a tenth of a 3-node coordinator's CPU at -P 1, a
            # future and its done-callback's loop pass another ~3k instructions of a GET).
            self._busy = True
            reply.connection = self
            return
        if type(reply) is not bytes:
            out: list[bytes] = []
            self._hand_over(self._finish_one(reply, out), out)
        else:
            self._finish([reply])

    def started_done(self, data: bytes) -> None:
        """A lone started command's reply is here (StartedReply.set, inside the backend's
        callback): write it, then run what arrived meanwhile (as the worker would: not while
        the client is not reading its replies)."""
        self._busy = False
        if self._closed:
            return
        try:
            self._write_reply(data)
            if self._pending and self._write_paused:  # the worker waits for the client first
                rest: list[bytes] = []
                self._hand_over(self._dispatcher.drain(self._pending, rest, self._high_water),
                                rest)
            else:
                self._go_on()
        except Exception:                         # a bug here must not reach the backend's callback
            log.exception("started command's reply failed; closing %s", self.session.address)
            self._stop_reading = True
            self._transport.abort()

    def _go_on(self) -> None:
        """After a batch's replies: run what arrived meanwhile, else read again; tell the
        server once the connection is idle (graceful shutdown waits for that)."""
        if self._pending:
            self._run_inline()
        else:
            self._update_reading()
        if not self._busy and self._server.stopping:    # only a shutdown waits for idle
            self._server._connection_idle(self)

    def _run_inline(self) -> None:
        """Run the queue in this callback; hand it to the worker if a command suspends."""
        pending, limit = self._pending, self._high_water
        while True:
            out: list[bytes] = []
            batch = self._dispatcher.drain(pending, out, limit)
            try:
                yielded = batch.send(None)
            except StopIteration as stop:
                if stop.value is not BATCH_FULL:
                    self._batch_done(out, stop.value)
                    return
                self._write(out)                  # a long pipeline: reply in slices
                if self._write_paused:            # the client is not reading: wait for it
                    rest: list[bytes] = []
                    self._hand_over(self._dispatcher.drain(pending, rest, limit), rest)
                    return
            else:
                self._hand_over(_Resume(batch, yielded), out)
                return

    async def _finish_one(self, reply: Awaitable[bytes], out: list[bytes]) -> object:
        """The worker's batch after a lone command suspended: its reply, then what came since."""
        out.append(await reply)
        if self.session.closing:
            return None
        return await self._dispatcher.drain(self._pending, out, self._high_water)

    def _hand_over(self, batch: Awaitable[Any], out: list[bytes]) -> None:
        self._busy = True
        self._suspended = batch
        self._carry = out
        self._wake_worker()
        self._update_reading()

    def _batch_done(self, out: list[bytes], stopped_at: object) -> None:
        if stopped_at is not None:                # the ProtocolError marker
            out.append(stopped_at.reply())
            self._finish(out)
        elif self.session.closing:
            self._finish(out)
        else:
            if out:
                self._write(out)
            self._update_reading()

    def _wake_worker(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        elif self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _wait_writable(self) -> None:
        if self._write_paused and not self._closed:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain
            self._drain = None

    async def _work(self) -> None:
        """The connection's worker: finishes a handed-over batch, then goes back to sleep."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                if self._suspended is None:
                    self._wake = loop.create_future()
                    await self._wake
                    self._wake = None
                await self._wait_writable()
                out = self._carry
                stopped_at = await self._suspended     # keeps draining what arrives meanwhile
                self._suspended, self._carry = None, []
                if self._closed:
                    self._busy = False
                    return
                if stopped_at is BATCH_FULL:
                    self._write(out)
                    self._suspended = self._dispatcher.drain(self._pending, self._carry,
                                                        self._high_water)
                    continue
                if stopped_at is not None or self.session.closing:
                    self._batch_done(out, stopped_at)
                    return
                if out:
                    self._write(out)
                await self._wait_writable()
                self._busy = False
                if self._closed:
                    return
                self._go_on()                     # what arrived while we awaited the drain
        except asyncio.CancelledError:
            raise
        except Exception:                         # a bug here must not kill the node
            log.exception("connection worker failed; closing %s", self.session.address)
            self._stop_reading = True
            if self._transport is not None:
                self._transport.abort()

    def _write(self, out: list[bytes]) -> None:
        self._write_reply(b"".join(out) if len(out) > 1 else out[0])

    def _write_reply(self, data: bytes) -> None:
        self._state.total_net_output_bytes += len(data)
        durable = self._durable
        tick = durable.reply_barrier() if durable is not None else None
        if tick is None:
            tick = self._tick                     # behind a reply a tick still holds: in order
            if tick is None:
                self._transport.write(data)       # the hot path: nothing waits for the WAL
                return
        # This loop iteration's WAL write (or group commit) holds the reply; the tick hands it
        # back right after, without a callback or queue of ours (a SET at -P 1). At most one
        # tick is pending, so a connection's replies all join the one it is already in.
        if self._tick is tick:
            # Ours again in this tick: one entry, one write for all (a list, joined once:
            # appending bytes to bytes would copy quadratically for a long pipeline).
            entry = self._tick_entry
            held = entry[1]
            if type(held) is list:
                held.append(data)
            else:
                entry[1] = [held, data]
        else:
            self._tick, self._tick_entry = tick, [self, data]
            tick.replies.append(self._tick_entry)

    def tick_released(self, tick: FlushTick, data: bytes | list[bytes],
                      error: BaseException | None) -> None:
        """`tick` wrote the WAL (or failed to): write our replies it held, or close."""
        self._tick = self._tick_entry = None
        if error is not None:
            log.error("closing %s: WAL write or fsync failed, replies withheld",
                      self.session.address)
            self._stop_reading = True
            if not self._closed:
                self._transport.abort()
            return
        if not self._closed:
            self._transport.write(data if type(data) is bytes else b"".join(data))
            if self._close_when_released:
                self._transport.close()
        if self._server.stopping:
            self._server._connection_idle(self)

    def _finish(self, out: list[bytes]) -> None:
        """Write the last replies and close (after QUIT or a protocol error)."""
        self._stop_reading = True
        self._pending.clear()
        self._busy = False
        if out and not self._closed:
            self._write(out)
        if self._tick is not None:
            self._close_when_released = True      # after the pending WAL write, like any reply
        elif not self._closed:
            self._transport.close()

    def _update_reading(self) -> None:
        if self._closed:
            return
        pause = (self._stop_reading or self._write_paused
                 or len(self._pending) >= self._high_water)
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()

    # ---------------------------------------------------------------------- for the server
    @property
    def idle(self) -> bool:
        """No command queued or running: safe to close during shutdown."""
        return not self._busy and not self._pending and self._tick is None

    def stop_reading(self) -> None:
        """Shutdown: accept no further commands; queued ones still run."""
        self._stop_reading = True
        self._update_reading()

    def close(self) -> None:
        if not self._closed and self._transport is not None:
            self._transport.close()


class RespServer:
    """Listens on the configured address (loopback by default) and runs one RespProtocol per
    client. `durable` holds replies behind the WAL writes (see the module docstring); None
    (no storage behind the backend) never waits. Typed, so its barrier is a C call per reply.
    """

    def __init__(self, config: "Config", backend: "Backend", state: "ServerState",
                 durable: DurableStore | None = None) -> None:
        self.config = config
        self.durable = durable
        self.backend = backend
        self.state = state
        self.table = command_table(config)
        self.stopping = False
        # Any: typeshed says `sockets` is a tuple, uvloop returns a list (mypyc checks types)
        self._server: Any = None
        self._connections: set[RespProtocol] = set()
        self._idle: asyncio.Event | None = None
        self.port: int = config.server.port       # the bound port (differs when port=0)

    async def start(self) -> None:
        """Bind and start accepting clients."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: RespProtocol(self), host=self.config.server.bind,
            port=self.config.server.port, reuse_address=True, backlog=511)
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("serving clients on %s:%d", self.config.server.bind, self.port)

    async def stop(self) -> None:
        """Stop accepting, let in-flight commands finish (bounded), then close connections."""
        if self.stopping:
            return
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.stop_reading()
        if any(not c.idle for c in self._connections):
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), self.config.server.shutdown_drain_timeout_s)
            except TimeoutError:
                busy = sum(not c.idle for c in self._connections)
                log.warning("shutdown: %d connection(s) still busy after %.1fs; closing",
                            busy, self.config.server.shutdown_drain_timeout_s)
        for connection in list(self._connections):
            connection.close()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            except TimeoutError:
                pass

    def _connection_made(self, connection: RespProtocol) -> None:
        self._connections.add(connection)

    def _connection_lost(self, connection: RespProtocol) -> None:
        self._connections.discard(connection)
        self._connection_idle(connection)

    def _connection_idle(self, connection: RespProtocol) -> None:
        if self._idle is not None and all(c.idle for c in self._connections):
            self._idle.set()

    @property
    def connections(self) -> int:
        return len(self._connections)
