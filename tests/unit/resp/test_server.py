"""RespServer over real loopback sockets with the FakeBackend: ordering, batching, errors,
back-pressure, graceful stop. No sleeps: every wait is for bytes or a polled condition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from resp_kv.config import Config, ServerConfig
from resp_kv.durability import DurableStore, FlushTick
from resp_kv.server import RespServer
from resp_kv.server_state import ServerState
from tests.helpers.fake_backend import FakeBackend
from tests.helpers.wait import until as _until


def frame(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def serve(test: Callable[..., Awaitable[None]], suspend: bool = False, durable=None,
          **server_options):
    """Run `test(server, backend, connect)` against a RespServer on an ephemeral port."""
    async def main() -> None:
        config = Config(server=ServerConfig(port=0, **server_options))
        backend = FakeBackend(suspend=suspend)
        server = RespServer(config, backend, ServerState(config), durable=durable)
        await server.start()
        writers = []

        async def connect():
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writers.append(writer)
            return reader, writer

        try:
            await asyncio.wait_for(test(server, backend, connect), 20)
        finally:
            for writer in writers:
                writer.close()
            await server.stop()

    asyncio.run(main())


async def read_exactly(reader: asyncio.StreamReader, expected: bytes) -> None:
    assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected


@pytest.mark.parametrize("suspend", [False, True], ids=["inline", "worker"])
def test_server_pipeline_replies_in_order(suspend):
    async def test(server, backend, connect):
        reader, writer = await connect()
        batch = b"".join(frame(b"INCR", b"n") for _ in range(200)) + frame(b"GET", b"n")
        writer.write(batch + frame(b"PING"))
        expected = b"".join(b":%d\r\n" % i for i in range(1, 201)) + b"$3\r\n200\r\n+PONG\r\n"
        await read_exactly(reader, expected)
    serve(test, suspend=suspend)


@pytest.mark.parametrize("suspend", [False, True], ids=["inline", "worker"])
def test_server_protocol_error_answers_earlier_commands_then_closes(suspend):
    async def test(server, backend, connect):
        reader, writer = await connect()
        writer.write(frame(b"SET", b"k", b"v") + frame(b"GET", b"k") + b"*1\r\n$-5\r\n"
                     + frame(b"SET", b"after", b"x"))
        data = await asyncio.wait_for(reader.read(), 5)     # EOF: the server closed
        assert data == (b"+OK\r\n$1\r\nv\r\n"
                        b"-ERR Protocol error: invalid bulk length\r\n")
        assert b"after" not in backend.data
    serve(test, suspend=suspend)


def test_server_quit_replies_then_closes():
    async def test(server, backend, connect):
        reader, writer = await connect()
        writer.write(frame(b"PING") + frame(b"QUIT") + frame(b"SET", b"k", b"v"))
        assert await asyncio.wait_for(reader.read(), 5) == b"+PONG\r\n+OK\r\n"
        assert b"k" not in backend.data
    serve(test)


def test_server_inline_commands_over_telnet():
    async def test(server, backend, connect):
        reader, writer = await connect()
        writer.write(b"SET greeting \"hello world\"\r\n")
        await read_exactly(reader, b"+OK\r\n")
        writer.write(b"GET greeting\n")
        await read_exactly(reader, b"$11\r\nhello world\r\n")
    serve(test)


def test_server_big_value_round_trip():
    async def test(server, backend, connect):
        reader, writer = await connect()
        value = bytes(range(256)) * 4096
        writer.write(frame(b"SET", b"big", value) + frame(b"GET", b"big"))
        await read_exactly(reader, b"+OK\r\n" + b"$%d\r\n" % len(value) + value + b"\r\n")
    serve(test)


def test_server_huge_declared_bulk_is_rejected_at_once():
    async def test(server, backend, connect):
        reader, writer = await connect()
        writer.write(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4294967296\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == (
            b"-ERR Protocol error: invalid bulk length\r\n")
    serve(test)


def test_server_query_buffer_limit_closes_without_reply():
    async def test(server, backend, connect):
        reader, writer = await connect()
        writer.write(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000\r\n" + b"x" * 3000)
        assert await asyncio.wait_for(reader.read(), 5) == b""
    serve(test, client_query_buffer_limit=2048)


def test_server_unknown_command_keeps_connection_open():
    async def test(server, backend, connect):
        reader, writer = await connect()
        writer.write(frame(b"NOPE", b"x") + frame(b"PING"))
        await read_exactly(reader, b"-ERR unknown command 'NOPE', with args beginning with: "
                                   b"'x' \r\n+PONG\r\n")
    serve(test)


def test_server_connections_are_independent_and_counted():
    async def test(server, backend, connect):
        (r1, w1), (r2, w2) = await connect(), await connect()
        w1.write(frame(b"CLIENT", b"SETNAME", b"one"))
        await read_exactly(r1, b"+OK\r\n")
        w2.write(frame(b"CLIENT", b"GETNAME"))
        await read_exactly(r2, b"$-1\r\n")
        assert server.state.connected_clients == 2
        assert server.state.total_connections_received == 2
        w1.close()
        await _until(lambda: server.state.connected_clients == 1)
    serve(test)


class RecordingTransport:
    """A connection's transport, recording what each `write` call sent."""

    def __init__(self, transport) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


async def recorded(server: RespServer) -> RecordingTransport:
    """Record the writes of the server's one connection (the client has just connected)."""
    await _until(lambda: server._connections)
    connection = next(iter(server._connections))
    connection._transport = recording = RecordingTransport(connection._transport)
    return recording


def test_server_one_write_per_batch():
    async def test(server, backend, connect):
        reader, writer = await connect()
        transport = await recorded(server)
        writer.write(b"".join(frame(b"PING") for _ in range(16)))
        await read_exactly(reader, b"+PONG\r\n" * 16)
        assert transport.writes == [b"+PONG\r\n" * 16]
    serve(test)


class HeldFlush(DurableStore):
    """A durability barrier that holds every reply behind one FlushTick the test completes;
    or, given `ticks`, behind each of them in turn (popped from the end), then behind none."""

    def __init__(self, ticks: list[FlushTick | None] | None = None) -> None:
        # none of DurableStore's state: the server calls reply_barrier only
        self.tick: FlushTick | None = FlushTick()
        self.ticks = ticks                      # given: one tick each, then none

    def reply_barrier(self) -> FlushTick | None:
        if self.ticks is not None:
            return self.ticks.pop() if self.ticks else None
        return self.tick


@pytest.mark.parametrize("pipeline", [1, 5])
def test_server_replies_wait_for_the_wal_flush_in_order(pipeline):
    held = HeldFlush()

    async def test(server, backend, connect):
        reader, writer = await connect()
        for i in range(3):                                  # three batches, one flush
            writer.write(b"".join(frame(b"SET", b"k%d" % i, b"v") for _ in range(pipeline)))
            await _until(lambda i=i: b"k%d" % i in backend.data)
        writer.write(frame(b"GET", b"k0"))
        await _until(lambda: server.state.total_commands_processed == 3 * pipeline + 1)
        # one connection parked on it, all its replies in one piece
        assert [c for c, _ in held.tick.replies] == [server._connections.copy().pop()]
        with pytest.raises(TimeoutError):                   # and nothing sent meanwhile
            await asyncio.wait_for(reader.readexactly(1), 0.2)
        held.tick._complete(None)
        await read_exactly(reader, b"+OK\r\n" * 3 * pipeline + b"$1\r\nv\r\n")
        await _until(lambda: server._connections.copy().pop().idle)
    serve(test, durable=held)


def test_server_reply_behind_a_held_one_waits_even_with_nothing_to_flush():
    """A reply that needs no WAL write still leaves after one a tick holds (order), and QUIT
    closes only after both."""
    tick = FlushTick()
    barriers = [tick]                                       # the first reply waits, then none

    async def test(server, backend, connect):
        reader, writer = await connect()
        writer.write(frame(b"SET", b"k", b"v"))
        await _until(lambda: b"k" in backend.data)
        writer.write(frame(b"PING") + frame(b"QUIT"))
        await _until(lambda: server.state.total_commands_processed == 3)
        with pytest.raises(TimeoutError):                   # nothing sent meanwhile
            await asyncio.wait_for(reader.readexactly(1), 0.2)
        connection = server._connections.copy().pop()
        assert not connection.idle
        tick._complete(None)
        assert await asyncio.wait_for(reader.read(), 5) == b"+OK\r\n+PONG\r\n+OK\r\n"
    serve(test, durable=HeldFlush(barriers))


def test_server_failed_wal_flush_closes_without_acknowledging():
    held = HeldFlush()

    async def test(server, backend, connect):
        reader, writer = await connect()
        writer.write(frame(b"SET", b"k", b"v"))
        await _until(lambda: b"k" in backend.data)
        held.tick._complete(OSError(28, "No space left on device"))
        assert await asyncio.wait_for(reader.read(), 5) == b""      # closed, no +OK
        held.tick = None                                            # the disk is back
        reader2, writer2 = await connect()
        writer2.write(frame(b"PING"))
        await read_exactly(reader2, b"+PONG\r\n")
    serve(test, durable=held)


def test_server_pause_reading_above_high_water():
    async def test(server, backend, connect):
        reader, writer = await connect()
        backend.suspend = True
        gate = asyncio.Event()

        def blocked_get(key, on_done) -> bool:      # GET's replicated path: answers later
            async def answer() -> None:
                await gate.wait()
                on_done(None, None)
            pending.add(asyncio.ensure_future(answer()))
            return True

        pending: set = set()
        backend.get_started = blocked_get
        writer.write(b"".join(frame(b"GET", b"k") for _ in range(50)))
        connection = next(iter(server._connections))
        await _until(lambda: connection._reading_paused)
        gate.set()
        await read_exactly(reader, b"$-1\r\n" * 50)
        await _until(lambda: not connection._reading_paused)
    serve(test, pipeline_high_water=8)


@pytest.mark.parametrize("path", ["coroutine", "started"])
def test_server_stop_drains_in_flight_then_closes(path):
    """Shutdown waits for a running SET (a handler coroutine, or a command the backend started
    by callbacks), answers it, and is told the connection went idle: it returns long before
    its drain timeout (an hour here), which it would otherwise wait out."""
    async def test(server, backend, connect):
        reader, writer = await connect()
        gate = asyncio.Event()
        backend.put_now = lambda key, value: False          # take the slow path
        if path == "coroutine":
            async def slow_put(key, value, expire_at_ms=0, context=None):
                await gate.wait()
                backend.data[key] = __import__("cluster.types").types.Current(value, 0)
            backend.put = slow_put
        else:
            def gated_put_started(key, value, on_done) -> bool:
                async def later() -> None:
                    await gate.wait()
                    backend.data[key] = __import__("cluster.types").types.Current(value, 0)
                    on_done(None)
                started.add(asyncio.ensure_future(later()))
                return True
            started: set = set()
            backend.put_started = gated_put_started
        writer.write(frame(b"SET", b"k", b"v"))
        connection = next(iter(server._connections))
        await _until(lambda: not connection.idle)
        stopping = asyncio.create_task(server.stop())
        await _until(lambda: server.stopping)
        gate.set()
        await asyncio.wait_for(stopping, 30)
        assert await asyncio.wait_for(reader.read(), 5) == b"+OK\r\n"
        assert b"k" in backend.data
    serve(test, shutdown_drain_timeout_s=3600)


def test_server_stop_refuses_new_connections():
    async def test(server, backend, connect):
        await server.stop()
        with pytest.raises(OSError):
            await connect()
    serve(test)


@pytest.mark.parametrize("suspend", [False, True], ids=["inline", "worker"])
def test_server_long_pipeline_is_answered_in_slices(suspend):
    async def test(server, backend, connect):
        reader, writer = await connect()
        transport = await recorded(server)
        writer.write(b"".join(frame(b"INCR", b"n") for _ in range(1000)))
        await read_exactly(reader, b"".join(b":%d\r\n" % i for i in range(1, 1001)))
        # no write carries more than a slice of 64 replies (`:1000\r\n` is the longest)
        assert max(len(w) for w in transport.writes) <= 64 * len(b":1000\r\n")
        assert len(transport.writes) >= 1000 // 64
    serve(test, suspend=suspend, pipeline_high_water=64)


def test_server_slow_reader_gets_every_reply():
    async def test(server, backend, connect):
        reader, writer = await connect()
        value = b"x" * 100_000
        writer.write(frame(b"SET", b"k", value))
        await read_exactly(reader, b"+OK\r\n")
        writer.write(b"".join(frame(b"GET", b"k") for _ in range(200)))   # ~20 MB of replies
        connection = next(iter(server._connections))
        await _until(lambda: connection._write_paused)
        reply = b"$100000\r\n" + value + b"\r\n"
        for _ in range(200):
            await read_exactly(reader, reply)
        writer.write(frame(b"PING"))
        await read_exactly(reader, b"+PONG\r\n")
    serve(test, pipeline_high_water=16)


def test_server_requirepass_gate_in_a_pipeline():
    async def test(server, backend, connect):
        reader, writer = await connect()
        writer.write(frame(b"GET", b"k") + frame(b"AUTH", b"pw") + frame(b"GET", b"k")
                     + frame(b"RESET") + frame(b"GET", b"k"))
        await read_exactly(reader, b"-NOAUTH Authentication required.\r\n+OK\r\n$-1\r\n"
                                   b"+RESET\r\n-NOAUTH Authentication required.\r\n")
    serve(test, requirepass="pw")


def test_server_lone_started_command_answers_then_runs_what_arrived_meanwhile():
    """A lone GET/SET the backend starts by callbacks (a cluster at -P 1) is answered from its
    StartedReply (a direct call); commands that arrive before it is done wait their turn, in order."""
    async def test(server, backend, connect):
        reader, writer = await connect()
        gate = asyncio.Event()
        original = backend.put_started

        def gated_put_started(key, value, on_done) -> bool:
            async def later() -> None:
                await gate.wait()
                original(key, value, on_done)
            started.add(asyncio.ensure_future(later()))
            return True

        started: set = set()
        backend.put_started = gated_put_started
        writer.write(frame(b"SET", b"k", b"v1"))           # lone: started, not answered yet
        await _until(lambda: started)
        writer.write(frame(b"GET", b"k") + frame(b"SET", b"k", b"v2") + frame(b"GET", b"k"))
        connection = next(iter(server._connections))
        await _until(lambda: len(connection._pending) == 3)   # queued behind the SET
        assert not connection.idle and connection._worker is None   # no task for the lone SET
        gate.set()
        await read_exactly(reader, b"+OK\r\n$2\r\nv1\r\n+OK\r\n$2\r\nv2\r\n")
        await _until(lambda: connection.idle)
        # a client that goes away before its started command answers: the node goes on
        gate.clear()
        writer.write(frame(b"SET", b"gone", b"x"))
        await _until(lambda: len(started) == 3)
        writer.close()
        await _until(lambda: not server._connections)
        gate.set()
        await _until(lambda: backend.data.get(b"gone") is not None)
        reader, writer = await connect()
        writer.write(frame(b"GET", b"gone"))
        await read_exactly(reader, b"$1\r\nx\r\n")
    serve(test, suspend=True)
