"""resp_kv/started.py: a started command's reply, delivered once, to whoever waits for it.

The connection side (`StartedReply.connection`, a lone command at -P 1) is driven through a
real server in test_server.py (the lone started command tests)."""

from __future__ import annotations

import asyncio

from resp_kv.started import StartedReply


def test_a_reply_set_before_anyone_waits_is_kept_and_handed_to_a_later_wait() -> None:
    async def scenario() -> None:
        started = StartedReply(asyncio.get_running_loop())
        started.set(b"+OK\r\n")
        assert started.data == b"+OK\r\n"
        assert await started.wait() == b"+OK\r\n"
        assert await started == b"+OK\r\n"
    asyncio.run(scenario())


def test_a_waiting_batch_gets_the_reply_once_it_is_set_and_only_the_first_one() -> None:
    async def scenario() -> None:
        started = StartedReply(asyncio.get_running_loop())
        future = started.wait()
        assert started.wait() is future and not future.done()      # one future, made once
        asyncio.get_running_loop().call_soon(started.set, b"$1\r\na\r\n")
        assert await started == b"$1\r\na\r\n"              # awaitable itself, via the future
        started.set(b"$1\r\nb\r\n")                                  # a second set: ignored
        assert started.data == b"$1\r\na\r\n" and future.result() == b"$1\r\na\r\n"
    asyncio.run(scenario())


def test_a_reply_whose_waiter_was_cancelled_is_dropped_quietly() -> None:
    async def scenario() -> None:
        started = StartedReply(asyncio.get_running_loop())
        # the client went away mid-batch: cancelling the batch's task cancels the future it
        # awaits, which is what happens here
        started.wait().cancel()
        assert started.wait().cancelled()
        started.set(b"+OK\r\n")                       # no InvalidStateError
        assert started.data == b"+OK\r\n"
    asyncio.run(scenario())
