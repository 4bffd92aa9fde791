"""Dispatcher: lookup, arity, the auth gate, error mapping, the synchronous fast path."""

from __future__ import annotations

import asyncio
import logging

import pytest

from resp_kv.commands import COMMANDS, Dispatcher, PendingReply, command_table
from resp_kv.commands.spec import CommandSpec, Session
from resp_kv.config import Config, ServerConfig
from resp_kv.server_state import ServerState
from tests.helpers.fake_backend import FakeBackend


def make(config: Config | None = None, backend: FakeBackend | None = None,
         table: dict | None = None) -> Dispatcher:
    config = config or Config()
    session = Session(backend=backend or FakeBackend(), server=ServerState(config), config=config)
    session.authenticated = config.server.requirepass is None
    return Dispatcher(session, table)


def run(dispatcher: Dispatcher, *words: bytes | str) -> bytes:
    args = [w.encode() if isinstance(w, str) else w for w in words]
    return asyncio.run(dispatcher.execute(args))


def test_dispatcher_table_has_the_contract_commands():
    for name in (b"PING", b"ECHO", b"QUIT", b"HELLO", b"AUTH", b"SELECT", b"CLIENT", b"COMMAND",
                 b"INFO", b"CONFIG", b"DBSIZE", b"TIME", b"FLUSHALL", b"FLUSHDB", b"RESET",
                 b"GET", b"SET", b"DEL", b"VCLOCK", b"REPAIR", b"SCAN", b"KEYS"):
        assert name in COMMANDS, name
    assert b"DEBUG" not in COMMANDS


def test_dispatcher_debug_only_with_debug_commands():
    table = command_table(Config(server=ServerConfig(debug_commands=True)))
    assert b"DEBUG" in table and len(table) == len(COMMANDS) + 1


def test_dispatcher_case_insensitive_lookup():
    d = make()
    assert run(d, "PING") == b"+PONG\r\n"
    assert run(d, "ping") == b"+PONG\r\n"
    assert run(d, "PiNg") == b"+PONG\r\n"


def test_dispatcher_unknown_command_exact_wording():
    d = make()
    assert run(d, "FOO", "a", "b") == (
        b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n")


def test_dispatcher_wrong_arity():
    d = make()
    assert run(d, "GET") == b"-ERR wrong number of arguments for 'get' command\r\n"
    assert run(d, "get", "a", "b") == b"-ERR wrong number of arguments for 'get' command\r\n"
    assert run(d, "SET", "k") == b"-ERR wrong number of arguments for 'set' command\r\n"


def test_dispatcher_set_get_round_trip():
    d = make()
    assert run(d, "SET", "k", "v") == b"+OK\r\n"
    assert run(d, "GET", "k") == b"$1\r\nv\r\n"
    assert run(d, "GET", "missing") == b"$-1\r\n"


def test_dispatcher_auth_gate():
    d = make(Config(server=ServerConfig(requirepass="secret")))
    assert run(d, "GET", "k") == b"-NOAUTH Authentication required.\r\n"
    assert run(d, "PING") == b"-NOAUTH Authentication required.\r\n"
    # unknown commands and arity are checked first, as Redis does
    assert run(d, "NOPE").startswith(b"-ERR unknown command 'NOPE'")
    assert run(d, "GET") == b"-ERR wrong number of arguments for 'get' command\r\n"
    assert run(d, "AUTH", "wrong") == (
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
    assert run(d, "AUTH", "secret") == b"+OK\r\n"
    assert run(d, "GET", "k") == b"$-1\r\n"
    assert run(d, "RESET") == b"+RESET\r\n"
    assert run(d, "GET", "k") == b"-NOAUTH Authentication required.\r\n"


def test_dispatcher_auth_gate_lets_hello_and_quit_through():
    d = make(Config(server=ServerConfig(requirepass="secret")))
    assert run(d, "QUIT") == b"+OK\r\n"
    assert run(d, "HELLO", "3", "AUTH", "default", "secret").startswith(b"%7\r\n")


async def _boom(session, args):
    raise RuntimeError("bug")


async def _slow(session, args):
    await asyncio.sleep(0)
    return args[0]


async def _slow_error(session, args):
    await asyncio.sleep(0)
    raise RuntimeError("late bug")


def test_dispatcher_internal_error_is_logged_and_answered(caplog):
    table = {b"BOOM": CommandSpec(b"BOOM", 1, _boom)}
    d = make(table=table)
    with caplog.at_level(logging.ERROR, logger="resp_kv.commands"):
        assert run(d, "BOOM") == b"-ERR internal error\r\n"
    assert "RuntimeError: bug" in caplog.text
    assert d.session.server.unexpected_errors == 1


def test_dispatcher_run_completes_synchronously_when_handler_does():
    d = make()
    assert d.run([b"PING"]) == b"+PONG\r\n"
    assert d.run([b"SET", b"k", b"v"]) == b"+OK\r\n"


def test_dispatcher_run_returns_pending_reply_for_suspending_handlers():
    table = {b"SLOW": CommandSpec(b"SLOW", 2, _slow), b"SLOWBUG": CommandSpec(b"SLOWBUG", 1, _slow_error)}
    d = make(table=table)

    async def go():
        pending = d.run([b"SLOW", b"x"])
        assert isinstance(pending, PendingReply)
        assert await pending == b"$1\r\nx\r\n"
        assert await d.execute([b"SLOWBUG"]) == b"-ERR internal error\r\n"

    asyncio.run(go())


def test_dispatcher_suspending_backend_gives_same_bytes():
    d = make(backend=FakeBackend(suspend=True))
    assert run(d, "SET", "k", "v") == b"+OK\r\n"
    assert run(d, "GET", "k") == b"$1\r\nv\r\n"
    assert run(d, "INCR", "n") == b":1\r\n"


def test_dispatcher_counts_commands_and_errors():
    d = make()
    run(d, "PING")
    run(d, "SET", "k")
    run(d, "INCR", "k2")
    run(d, "APPEND", "k2", "x")
    run(d, "INCR", "k2")
    state = d.session.server
    assert state.total_commands_processed == 4
    assert state.total_error_replies == 2


def test_dispatcher_resp3_nulls_after_hello():
    d = make()
    run(d, "HELLO", "3")
    assert run(d, "GET", "missing") == b"_\r\n"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_dispatcher_every_command_survives_no_arguments(name):
    reply = run(make(), name)
    assert reply[:1] in b"+-:$*%_~", reply
