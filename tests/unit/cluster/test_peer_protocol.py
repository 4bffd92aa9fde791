"""The peer port over real sockets on 127.0.0.1: AUTH with a cluster secret, pipelined calls,
garbage closes only the offending connection, a pre-AUTH flood is bounded, timeouts."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster import messages
from cluster.clock import SystemClock
from cluster.peer_server import PeerServer
from cluster.transport import ItemCallback, PeerError, PeerTransport
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


@given(st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=1100),
                          st.binary(max_size=8)), min_size=1, max_size=6),
       st.integers(1, 4), st.integers(0, 2**40))
@settings(max_examples=200, deadline=None)
def test_a_batch_of_encoded_items_is_the_request_of_their_fields(items, width, rid) -> None:
    # fields past the length-header table (1024 entries) and widths other than 2 and 3 take
    # the general encoding: every shape frames as the same request sent field by field
    items = [(a + b + c,) * width if width not in (2, 3) else (a, b, c)[:width]
             for a, b, c in items]
    fields = [field for item in items for field in item]
    frame = messages.encode_batch(messages.MPUT, b"%d" % rid,
                                  [messages.encode_item(item) for item in items], len(fields))
    assert frame == messages.encode_request(messages.MPUT, rid, fields)


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


def test_a_huge_push_header_before_auth_allocates_nothing() -> None:
    """hiredis pre-allocates a `>` push's declared count (`>300000000`: 2.3 GB, 1.6 s);
    before AUTH the bytes go to the reference parser, which refuses it as a first frame.
    AUTH and the first requests in one write still work."""
    import resource
    async def scenario():
        server = await _server()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for payload in (b">300000000\r\n", b"*1\r\n>300000000\r\n"):
            reader, writer, _ = await _raw_hello(server.port)
            writer.write(payload)
            assert await asyncio.wait_for(reader.read(), 2) == b""
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000
        reader, writer, nonce = await _raw_hello(server.port)
        proof = messages.auth_proof(SECRET, nonce, "c")
        writer.write(messages.encode_value([b"AUTH", b"c", proof])
                     + messages.encode_request(b"ECHO", 7, [b"x"]))
        answer = await asyncio.wait_for(reader.readuntil(b"x\r\n"), 2)
        assert answer.startswith(b"*3\r\n$1\r\n7\r\n")
        assert answer.endswith(b"$1\r\nc\r\n$1\r\nx\r\n")
        writer.close()
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


def _batch_server_handler(seen: list):
    """A batched handler: records each request's triples and answers each with its key upper-
    cased; a value b"bad" fails its item."""
    def handler(peer, args):
        triples = [tuple(args[i:i + 3]) for i in range(0, len(args), 3)]
        seen.append(triples)
        values = [key.upper() for key, _, _ in triples]
        if all(value != b"bad" for _, value, _ in triples):
            return [messages.OK, values]
        return [[b"ValueError: bad value" if value == b"bad" else b"" for _, value, _ in triples],
                values]
    return handler


async def _item_results(transport, node, items, verb=messages.MPUT) -> list:
    """send_item every item in one iteration; return [(value, error) per item], after checking
    that each item's callback ran exactly once."""
    loop = asyncio.get_running_loop()
    futures, calls = [], [0] * len(items)

    def callback(i, payload, error) -> None:
        calls[i] += 1
        if not futures[i].done():
            futures[i].set_result((payload, error))
    for i, item in enumerate(items):
        futures.append(loop.create_future())
        transport.send_item(node, verb, item,
                            ItemCallback(lambda payload, error, i=i: callback(i, payload, error)))
    results = await asyncio.gather(*futures)
    # a second settle of an item would come from the same synchronous pass over the answer
    # (or the failed link) that settled it first, so it has run by the time gather resumes us
    assert calls == [1] * len(items)
    return results


def test_items_of_one_iteration_travel_as_one_request_and_settle_one_by_one() -> None:
    async def scenario():
        server = await _server()
        seen: list = []
        server.register(messages.MPUT, _batch_server_handler(seen))
        transport = _transport(server)
        await transport.start()
        items = [(b"k%d" % i, b"v%d" % i, b"") for i in range(10)]
        answers = [(b"K%d" % i, None) for i in range(10)]
        assert await _item_results(transport, "b", items) == answers
        # the link connects first: while it does, items go out one request each; once it
        # is up, a whole iteration's items are one request
        seen.clear()
        assert await _item_results(transport, "b", items) == answers
        assert seen == [items]
        # a failing item fails alone, with the peer's message
        seen.clear()
        mixed = [(b"a", b"ok", b""), (b"b", b"bad", b""), (b"c", b"ok", b"")]
        results = await _item_results(transport, "b", mixed)
        assert results[0] == (b"A", None) and results[2] == (b"C", None)
        assert results[1][0] is None and isinstance(results[1][1], PeerError)
        assert "bad value" in str(results[1][1])
        assert seen == [mixed]
        await transport.stop()
        await server.stop()
    asyncio.run(scenario())


def test_a_partitioned_peer_fails_items_and_calls_soon_and_once() -> None:
    async def scenario():
        server = await _server()
        server.register(messages.MPUT, _batch_server_handler([]))
        transport = _transport(server)
        await transport.start()
        transport.block({"b"})
        loop = asyncio.get_running_loop()
        ran_inside: list = []
        futures = [loop.create_future(), loop.create_future()]

        def settler(i: int):
            def settle(payload, error) -> None:
                ran_inside.append(not sent)         # a failure never runs inside the call
                futures[i].set_result((payload, error))
            return settle
        sent = False
        transport.send("b", b"ECHO", [b"x"], settler(0))
        transport.send_item("b", messages.MPUT, (b"k", b"v", b""), ItemCallback(settler(1)))
        sent = True
        for payload, error in await asyncio.gather(*futures):
            assert payload is None
            assert isinstance(error, PeerUnavailable) and "partitioned away" in str(error)
        assert ran_inside == [False, False]
        results = await _item_results(transport, "b", [(b"k", b"v", b"")])   # once each
        assert results[0][0] is None and isinstance(results[0][1], PeerUnavailable)
        transport.unblock_all()                       # healed: the same item goes through
        assert await _item_results(transport, "b", [(b"k", b"v", b"")]) == [(b"K", None)]
        await transport.stop()
        await server.stop()
    asyncio.run(scenario())


def test_a_batch_is_split_at_max_items_and_a_failed_request_fails_every_item() -> None:
    from cluster.transport import MAX_BATCH_BYTES, MAX_BATCH_ITEMS

    async def scenario():
        server = await _server()
        seen: list = []
        server.register(messages.MPUT, _batch_server_handler(seen))
        transport = _transport(server)
        await transport.start()
        await transport.call("b", b"ECHO", [])                  # connected
        items = [(b"k%d" % i, b"v", b"") for i in range(MAX_BATCH_ITEMS + 5)]
        results = await _item_results(transport, "b", items)
        assert results == [(key.upper(), None) for key, _, _ in items]
        assert [len(request) for request in seen] == [MAX_BATCH_ITEMS, 5]
        # and at MAX_BATCH_BYTES: a frame stays small whatever the values weigh
        seen.clear()
        big = [(b"b%d" % i, b"x" * (MAX_BATCH_BYTES // 2), b"") for i in range(5)]
        results = await _item_results(transport, "b", big)
        assert results == [(key.upper(), None) for key, _, _ in big]
        assert [len(request) for request in seen] == [2, 2, 1]
        # a verb the peer does not serve: the request fails, so every item does
        results = await _item_results(transport, "b", items[:3], verb=b"NOPE")
        assert all(value is None and isinstance(e, PeerError) and "unknown peer verb" in str(e)
                   for value, e in results)
        # an answer that is not [statuses, values] of the right length fails every item
        server.register(b"ODD", lambda peer, args: [messages.OK, [b"one value"]])
        server.register(b"ODDER", lambda peer, args: [b"abc", [b"x", b"y", b"z"]])
        server.register(b"ODDEST", lambda peer, args: [[b"", 7, b""], None])
        for odd in (b"ODD", b"ODDER", b"ODDEST"):
            results = await _item_results(transport, "b", items[:3], verb=odd)
            assert all(value is None and isinstance(e, PeerError) and "malformed" in str(e)
                       for value, e in results)
        await transport.stop()
        # a stopped peer: queued items fail with PeerUnavailable, each exactly once
        await server.stop()
        fresh = _transport(server)
        await fresh.start()
        results = await _item_results(fresh, "b", items[:3])
        assert all(value is None and isinstance(e, PeerUnavailable) for value, e in results)
        await fresh.stop()
    asyncio.run(scenario())
