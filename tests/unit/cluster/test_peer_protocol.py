"""The peer port over real sockets on 127.0.0.1: AUTH with a cluster secret, pipelined calls,
garbage closes only the offending connection, a pre-AUTH flood is bounded, timeouts."""

from __future__ import annotations

import asyncio

import pytest

from cluster import messages
from cluster.clock import SystemClock
from cluster.peer_server import PeerServer
from cluster.transport import PeerError, PeerTransport
from cluster.types import PeerUnavailable

SECRET = "s3cret"


async def _server(secret=SECRET) -> PeerServer:
    server = PeerServer("127.0.0.1", 0, secret)
    server.register(b"ECHO", lambda peer, args: [peer.encode(), *args])
    never = asyncio.Event()

    async def slow(peer, args):                 # a peer that never answers: the caller times out
        await never.wait()
        return b"late"
    server.register(b"SLOW", slow)

    def boom(peer, args):
        raise ValueError("bad request")
    server.register(b"BOOM", boom)
    await server.start()
    return server


def _transport(server: PeerServer, node="a", secret=SECRET, timeout_s=0.5) -> PeerTransport:
    return PeerTransport(node, secret, lambda n: ("127.0.0.1", server.port), SystemClock(),
                         timeout_s)


async def _raw_hello(port: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    hello = await reader.readuntil(b"\r\n")       # *2
    assert hello == b"*2\r\n"
    await reader.readuntil(b"\r\n")
    await reader.readuntil(b"\r\n")
    await reader.readuntil(b"\r\n")
    nonce = (await reader.readuntil(b"\r\n"))[:-2]
    return reader, writer, nonce


def test_authenticated_pipelined_calls_answer_in_one_connection() -> None:
    async def scenario():
        server = await _server()
        transport = _transport(server)
        await transport.start()
        answers = await asyncio.gather(*(transport.call("b", b"ECHO", [b"%d" % i, i])
                                         for i in range(100)))
        assert answers[7] == [b"a", b"7", 7]
        assert len(server.connections) == 1
        with pytest.raises(PeerError, match="bad request"):
            await transport.call("b", b"BOOM", [])
        with pytest.raises(PeerError, match="unknown peer verb"):
            await transport.call("b", b"NOPE", [])
        with pytest.raises(TimeoutError):
            await transport.call("b", b"SLOW", [], timeout_s=0.1)
        await transport.stop()
        await server.stop()
    asyncio.run(scenario())


def test_wrong_secret_is_refused() -> None:
    async def scenario():
        server = await _server()
        transport = _transport(server, secret="wrong")
        await transport.start()
        with pytest.raises(PeerUnavailable):
            await transport.call("b", b"ECHO", [b"x"])
        await transport.stop()
        await server.stop()
    asyncio.run(scenario())


def test_garbage_closes_only_that_connection() -> None:
    async def scenario():
        server = await _server()
        transport = _transport(server)
        await transport.start()
        assert await transport.call("b", b"ECHO", [b"before"]) == [b"a", b"before"]
        # Garbage after a valid AUTH, then garbage before AUTH, then a pre-AUTH flood.
        reader, writer, nonce = await _raw_hello(server.port)
        proof = messages.auth_proof(SECRET, nonce, "evil")
        writer.write(messages.encode_value([b"AUTH", b"evil", proof]) + b"\x00garbage\r\n")
        assert await asyncio.wait_for(reader.read(), 2) == b""        # closed by the server
        reader, writer, _ = await _raw_hello(server.port)
        writer.write(b"*1\r\n$4\r\nPING\r\n")                           # not AUTH
        assert await asyncio.wait_for(reader.read(), 2) == b""
        reader, writer, _ = await _raw_hello(server.port)
        writer.write(b"*1\r\n$999999999\r\n" + b"x" * 10_000)           # flood before AUTH
        assert await asyncio.wait_for(reader.read(), 2) == b""
        # The good connection and the server are still fine.
        assert await transport.call("b", b"ECHO", [b"after"]) == [b"a", b"after"]
        await transport.stop()
        await server.stop()
    asyncio.run(scenario())


def test_unreachable_peer_fails_fast_and_backs_off() -> None:
    async def scenario():
        transport = PeerTransport("a", None, lambda n: ("127.0.0.1", 1), SystemClock(), 0.5)
        await transport.start()
        with pytest.raises(PeerUnavailable):
            await transport.call("b", b"ECHO", [])
        with pytest.raises(PeerUnavailable, match="backing off"):
            await transport.call("b", b"ECHO", [])
        await transport.stop()
    asyncio.run(scenario())
