"""String, key, custom and debug handlers against the shared FakeBackend (real mutators over a dict).

Replies are asserted as the exact RESP2 bytes a client would read.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from resp_kv.commands import custom, debug, keys, strings
from resp_kv.commands.spec import Session
from resp_kv.errors import CommandError
from resp_kv.reply import encode
from tests.helpers.fake_backend import FakeBackend

SPECS = {spec.name: spec for spec in strings.SPECS + keys.SPECS + custom.SPECS + debug.SPECS}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class DictBackend(FakeBackend):
    """The shared FakeBackend (real mutators over a dict), recording what handlers asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[tuple[bytes, bytes, int, bytes | None]] = []
        self.mutations: list[tuple[bytes, str, list[bytes]]] = []
        self.debug_calls: list[list[bytes]] = []

    async def put(self, key, value, expire_at_ms=0, context=None):
        self.puts.append((key, value, expire_at_ms, context))
        await super().put(key, value, expire_at_ms, context)

    async def mutate(self, key, mutator, args):
        self.mutations.append((key, mutator, list(args)))
        return await super().mutate(key, mutator, args)

    async def vclock(self, key):
        if key not in self.data:
            return b"", []
        return b"n1:2", [(self.data[key].value, b"n1:2", 1234), (None, b"n1:1", 1000)]

    async def repair(self, key):
        return {"peers": 2, "keys_sent": 0 if key is None else 1}

    async def debug(self, args):
        self.debug_calls.append(args)
        return b"passed"


@pytest.fixture
def backend():
    return DictBackend()


def call(backend: DictBackend, *words: bytes | str) -> bytes:
    """Run one command's handler; return its RESP2 reply bytes (an error as `-LINE`)."""
    args = [w.encode() if isinstance(w, str) else w for w in words]
    spec = SPECS[args[0].upper()]
    session = Session(backend=backend, server=None, config=None)
    try:
        reply = asyncio.run(spec.handler(session, args[1:]))
    except CommandError as error:
        return b"-" + error.line.encode()
    if isinstance(reply, CommandError):     # a mutator's error is returned, not raised
        return b"-" + reply.line.encode()
    return encode(reply)


def err(text: str) -> bytes:
    return b"-" + text.encode()


# -- GET / SET ----------------------------------------------------------------------------------

def test_strings_get_set_roundtrip(backend):
    assert call(backend, "GET", "k") == b"$-1\r\n"
    assert call(backend, "SET", "k", "v") == b"+OK\r\n"
    assert call(backend, "GET", "k") == b"$1\r\nv\r\n"
    assert backend.mutations == []          # plain SET is a blind put, no read
    assert call(backend, "STRLEN", "k") == b":1\r\n"
    assert call(backend, "STRLEN", "nope") == b":0\r\n"


def test_strings_set_options(backend):
    assert call(backend, "SET", "k", "v", "NX") == b"+OK\r\n"
    assert call(backend, "SET", "k", "w", "nx") == b"$-1\r\n"
    assert call(backend, "SET", "k", "w", "XX", "GET") == b"$1\r\nv\r\n"
    assert call(backend, "SET", "other", "w", "XX") == b"$-1\r\n"
    assert call(backend, "SET", "k", "x", "NX", "GET") == b"$1\r\nw\r\n"
    assert call(backend, "GET", "k") == b"$1\r\nw\r\n"


def test_strings_set_expiry_and_keepttl(backend):
    assert call(backend, "SET", "k", "v", "EX", "100") == b"+OK\r\n"
    assert call(backend, "TTL", "k") == b":100\r\n"
    assert call(backend, "SET", "k", "w", "KEEPTTL") == b"+OK\r\n"
    assert call(backend, "TTL", "k") == b":100\r\n"
    assert call(backend, "SET", "k", "x") == b"+OK\r\n"
    assert call(backend, "TTL", "k") == b":-1\r\n"
    assert call(backend, "SET", "k", "x", "PX", "100000") == b"+OK\r\n"
    pttl = int(call(backend, "PTTL", "k")[1:-2])
    assert 99_000 < pttl <= 100_000
    at = now_ms() // 1000 + 200
    assert call(backend, "SET", "k", "x", "EXAT", str(at)) == b"+OK\r\n"
    assert backend.data[b"k"].expire_at_ms == at * 1000
    assert call(backend, "SET", "k", "x", "PXAT", str(at * 1000 + 5)) == b"+OK\r\n"
    assert backend.data[b"k"].expire_at_ms == at * 1000 + 5


def test_strings_set_exat_in_the_past_expires_the_key(backend):
    assert call(backend, "SET", "k", "v", "EXAT", "1") == b"+OK\r\n"
    assert call(backend, "GET", "k") == b"$-1\r\n"


@pytest.mark.parametrize("options", [
    ["NX", "XX"], ["XX", "NX"], ["EX", "10", "PX", "10"], ["EX", "10", "KEEPTTL"],
    ["KEEPTTL", "PXAT", "10"], ["EX"], ["FOO"], ["EX", "10", "EXAT", "10"],
    ["VCLOCK", "n1:1", "NX"], ["GET", "VCLOCK", "n1:1"], ["VCLOCK"],
])
def test_strings_set_syntax_errors(backend, options):
    assert call(backend, "SET", "k", "v", *options) == err("ERR syntax error")


def test_strings_set_repeated_options_are_accepted_as_redis_does(backend):
    assert call(backend, "SET", "k", "v", "NX", "NX", "EX", "5", "EX", "100") == b"+OK\r\n"
    assert call(backend, "TTL", "k") == b":100\r\n"


@pytest.mark.parametrize("option, value, expected", [
    ("EX", "0", "ERR invalid expire time in 'set' command"),
    ("PX", "-5", "ERR invalid expire time in 'set' command"),
    ("EX", "9223372036854775", "ERR invalid expire time in 'set' command"),
    ("EX", "9223372036854776", "ERR invalid expire time in 'set' command"),
    ("PXAT", "9223372036854775807", None),
    ("PX", "9223372036854775807", "ERR invalid expire time in 'set' command"),
    ("EX", "abc", "ERR value is not an integer or out of range"),
    ("EX", "1.5", "ERR value is not an integer or out of range"),
])
def test_strings_set_expire_errors(backend, option, value, expected):
    reply = call(backend, "SET", "k", "v", option, value)
    assert reply == (b"+OK\r\n" if expected is None else err(expected))


def test_strings_set_vclock_is_a_put_with_context(backend):
    assert call(backend, "SET", "k", "v", "EX", "10", "VCLOCK", "n1:3") == b"+OK\r\n"
    key, value, expire_at_ms, context = backend.puts[-1]
    assert (key, value, context) == (b"k", b"v", b"n1:3")
    assert expire_at_ms > now_ms()


def test_strings_setnx_setex_psetex(backend):
    assert call(backend, "SETNX", "k", "v") == b":1\r\n"
    assert call(backend, "SETNX", "k", "w") == b":0\r\n"
    assert call(backend, "SETEX", "k", "100", "x") == b"+OK\r\n"
    assert call(backend, "TTL", "k") == b":100\r\n"
    assert call(backend, "PSETEX", "k", "100000", "y") == b"+OK\r\n"
    assert call(backend, "GET", "k") == b"$1\r\ny\r\n"
    assert call(backend, "SETEX", "k", "0", "x") == err("ERR invalid expire time in 'setex' command")
    assert call(backend, "PSETEX", "k", "-1", "x") == \
        err("ERR invalid expire time in 'psetex' command")
    assert call(backend, "SETEX", "k", "x", "x") == err("ERR value is not an integer or out of range")


def test_strings_getset_getdel(backend):
    assert call(backend, "GETSET", "k", "a") == b"$-1\r\n"
    assert call(backend, "GETSET", "k", "b") == b"$1\r\na\r\n"
    assert call(backend, "GETDEL", "k") == b"$1\r\nb\r\n"
    assert call(backend, "GETDEL", "k") == b"$-1\r\n"
    assert call(backend, "EXISTS", "k") == b":0\r\n"


def test_strings_mget_mset(backend):
    assert call(backend, "MSET", "a", "1", "b", "2") == b"+OK\r\n"
    assert call(backend, "MGET", "a", "x", "b") == b"*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"
    assert call(backend, "MSET", "a", "1", "b") == \
        err("ERR wrong number of arguments for 'mset' command")


def test_strings_counters(backend):
    assert call(backend, "INCR", "n") == b":1\r\n"
    assert call(backend, "INCRBY", "n", "10") == b":11\r\n"
    assert call(backend, "DECR", "n") == b":10\r\n"
    assert call(backend, "DECRBY", "n", "-5") == b":15\r\n"
    assert call(backend, "INCRBY", "n", "x") == err("ERR value is not an integer or out of range")
    assert call(backend, "DECRBY", "n", "-9223372036854775808") == err("ERR decrement would overflow")
    assert call(backend, "SET", "n", "9223372036854775807") == b"+OK\r\n"
    assert call(backend, "INCR", "n") == err("ERR increment or decrement would overflow")
    assert call(backend, "SET", "s", "abc") == b"+OK\r\n"
    assert call(backend, "INCR", "s") == err("ERR value is not an integer or out of range")


def test_strings_incr_keeps_ttl(backend):
    assert call(backend, "SET", "n", "1", "EX", "100") == b"+OK\r\n"
    assert call(backend, "INCR", "n") == b":2\r\n"
    assert call(backend, "TTL", "n") == b":100\r\n"


def test_strings_incrbyfloat(backend):
    assert call(backend, "SET", "f", "10.50") == b"+OK\r\n"
    assert call(backend, "INCRBYFLOAT", "f", "0.1") == b"$4\r\n10.6\r\n"
    assert call(backend, "INCRBYFLOAT", "f", "-5") == b"$3\r\n5.6\r\n"
    assert call(backend, "SET", "f", "5.0e3") == b"+OK\r\n"
    assert call(backend, "INCRBYFLOAT", "f", "2.0e2") == b"$4\r\n5200\r\n"
    assert call(backend, "INCRBYFLOAT", "f", "x") == err("ERR value is not a valid float")
    assert call(backend, "INCRBYFLOAT", "f", "+inf") == \
        err("ERR increment would produce NaN or Infinity")
    assert call(backend, "GET", "f") == b"$4\r\n5200\r\n"


def test_strings_append(backend):
    assert call(backend, "APPEND", "a", "hello") == b":5\r\n"
    assert call(backend, "APPEND", "a", " world") == b":11\r\n"
    assert call(backend, "GET", "a") == b"$11\r\nhello world\r\n"


# -- keys ---------------------------------------------------------------------------------------

def test_keys_del_exists_unlink(backend):
    call(backend, "MSET", "a", "1", "b", "2", "c", "3")
    assert call(backend, "EXISTS", "a", "a", "x") == b":2\r\n"
    assert call(backend, "DEL", "a", "x", "a") == b":1\r\n"
    assert call(backend, "DEL", "b") == b":1\r\n"
    assert call(backend, "UNLINK", "c", "b") == b":1\r\n"
    assert call(backend, "EXISTS", "a", "b", "c") == b":0\r\n"


def test_keys_expire_family(backend):
    call(backend, "SET", "k", "v")
    assert call(backend, "EXPIRE", "nope", "10") == b":0\r\n"
    assert call(backend, "TTL", "nope") == b":-2\r\n"
    assert call(backend, "PTTL", "k") == b":-1\r\n"
    assert call(backend, "EXPIRE", "k", "100", "XX") == b":0\r\n"
    assert call(backend, "EXPIRE", "k", "100", "nx") == b":1\r\n"
    assert call(backend, "TTL", "k") == b":100\r\n"
    assert call(backend, "EXPIRE", "k", "50", "GT") == b":0\r\n"
    assert call(backend, "EXPIRE", "k", "50", "LT") == b":1\r\n"
    assert call(backend, "TTL", "k") == b":50\r\n"
    assert call(backend, "PEXPIRE", "k", "200000") == b":1\r\n"
    assert call(backend, "TTL", "k") == b":200\r\n"
    at = now_ms() // 1000 + 300
    assert call(backend, "EXPIREAT", "k", str(at)) == b":1\r\n"
    assert backend.data[b"k"].expire_at_ms == at * 1000
    assert call(backend, "PEXPIREAT", "k", str(at * 1000 + 7)) == b":1\r\n"
    assert backend.data[b"k"].expire_at_ms == at * 1000 + 7
    assert call(backend, "PERSIST", "k") == b":1\r\n"
    assert call(backend, "PERSIST", "k") == b":0\r\n"
    assert call(backend, "TTL", "k") == b":-1\r\n"


@pytest.mark.parametrize("ttl", ["0", "-1"])
def test_keys_expire_non_positive_deletes(backend, ttl):
    call(backend, "SET", "k", "v")
    assert call(backend, "EXPIRE", "k", ttl) == b":1\r\n"
    assert call(backend, "EXISTS", "k") == b":0\r\n"
    call(backend, "SET", "k", "v")
    assert call(backend, "EXPIREAT", "k", "1") == b":1\r\n"
    assert call(backend, "GET", "k") == b"$-1\r\n"


@pytest.mark.parametrize("words, expected", [
    (["EXPIRE", "k", "10", "NX", "XX"], "ERR NX and XX, GT or LT options at the same time are not compatible"),
    (["EXPIRE", "k", "10", "NX", "GT"], "ERR NX and XX, GT or LT options at the same time are not compatible"),
    (["PEXPIRE", "k", "10", "GT", "LT"], "ERR GT and LT options at the same time are not compatible"),
    (["EXPIRE", "k", "10", "FOO"], "ERR Unsupported option FOO"),
    (["EXPIRE", "k", "ten"], "ERR value is not an integer or out of range"),
    (["EXPIRE", "k", "ten", "FOO"], "ERR Unsupported option FOO"),
    (["EXPIRE", "k", "9223372036854776"], "ERR invalid expire time in 'expire' command"),
    (["EXPIREAT", "k", "-9223372036854776"], "ERR invalid expire time in 'expireat' command"),
    (["PEXPIRE", "k", "9223372036854775807"], "ERR invalid expire time in 'pexpire' command"),
])
def test_keys_expire_errors(backend, words, expected):
    call(backend, "SET", "k", "v")
    assert call(backend, *words) == err(expected)


def test_keys_expire_gt_lt_without_ttl(backend):
    call(backend, "SET", "k", "v")
    assert call(backend, "EXPIRE", "k", "100", "GT") == b":0\r\n"
    assert call(backend, "EXPIRE", "k", "100", "LT") == b":1\r\n"


def test_keys_type(backend):
    call(backend, "SET", "k", "v")
    assert call(backend, "TYPE", "k") == b"+string\r\n"
    assert call(backend, "TYPE", "nope") == b"+none\r\n"


def test_keys_scan_and_keys(backend):
    call(backend, "MSET", "user:1", "a", "user:2", "b", "item:1", "c", "h?llo", "d")
    seen, cursor = [], b"0"
    while True:
        reply = asyncio.run(SPECS[b"SCAN"].handler(
            Session(backend=backend, server=None, config=None), [cursor, b"COUNT", b"1"]))
        cursor, page = reply
        seen.extend(page)
        if cursor == b"0":
            break
    assert sorted(seen) == [b"h?llo", b"item:1", b"user:1", b"user:2"]
    assert call(backend, "SCAN", "0", "MATCH", "user:*", "COUNT", "100") == \
        b"*2\r\n$1\r\n0\r\n*2\r\n$6\r\nuser:1\r\n$6\r\nuser:2\r\n"
    assert call(backend, "SCAN", "0", "TYPE", "hash", "COUNT", "100") == b"*2\r\n$1\r\n0\r\n*0\r\n"
    assert call(backend, "SCAN", "0", "type", "STRING", "COUNT", "100").count(b"$") == 5
    assert call(backend, "KEYS", "h\\?llo") == b"*1\r\n$5\r\nh?llo\r\n"
    assert call(backend, "KEYS", "*:[12]") == b"*3\r\n$6\r\nitem:1\r\n$6\r\nuser:1\r\n$6\r\nuser:2\r\n"
    assert call(backend, "RANDOMKEY") != b"$-1\r\n"


def test_keys_scan_errors(backend):
    assert call(backend, "SCAN", "x") == err("ERR invalid cursor")
    assert call(backend, "SCAN", " 1") == err("ERR invalid cursor")
    assert call(backend, "SCAN", "1x") == err("ERR invalid cursor")
    assert call(backend, "SCAN", "18446744073709551616") == err("ERR invalid cursor")
    assert call(backend, "SCAN", "0", "COUNT") == err("ERR syntax error")
    assert call(backend, "SCAN", "0", "COUNT", "0") == err("ERR syntax error")
    assert call(backend, "SCAN", "0", "COUNT", "x") == err("ERR value is not an integer or out of range")
    assert call(backend, "SCAN", "0", "FOO", "bar") == err("ERR syntax error")


@pytest.mark.parametrize("cursor", ["", "+0", "-0", "0\x00junk"])
def test_keys_scan_cursor_parses_like_strtoul(backend, cursor):
    call(backend, "SET", "k", "v")
    assert call(backend, "SCAN", cursor) == b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n"


def test_keys_randomkey_empty(backend):
    assert call(backend, "RANDOMKEY") == b"$-1\r\n"


# -- custom and debug ---------------------------------------------------------------------------

def test_custom_vclock_and_repair(backend):
    assert call(backend, "VCLOCK", "k") == b"*2\r\n$0\r\n\r\n*0\r\n"
    call(backend, "SET", "k", "v")
    assert call(backend, "VCLOCK", "k") == (
        b"*2\r\n$4\r\nn1:2\r\n*2\r\n"
        b"*3\r\n$1\r\nv\r\n$4\r\nn1:2\r\n:1234\r\n"
        b"*3\r\n$-1\r\n$4\r\nn1:1\r\n:1000\r\n")
    assert call(backend, "REPAIR") == b"*4\r\n$5\r\npeers\r\n:2\r\n$9\r\nkeys_sent\r\n:0\r\n"
    assert call(backend, "REPAIR", "k").endswith(b":1\r\n")
    assert call(backend, "REPAIR", "k", "j") == err("ERR syntax error")


def test_debug_passthrough_and_sleep(backend):
    assert call(backend, "DEBUG", "LOCALGET", "k") == b"$6\r\npassed\r\n"
    assert backend.debug_calls == [[b"LOCALGET", b"k"]]
    assert call(backend, "DEBUG", "SLEEP", "0") == b"+OK\r\n"
    assert call(backend, "DEBUG", "SLEEP", "x") == err("ERR value is not a valid float")
    assert call(backend, "DEBUG", "help").startswith(b"*")


def test_debug_backend_value_error_becomes_err(backend):
    async def bad(args):
        raise ValueError("unknown DEBUG subcommand or wrong arguments: JMAP")
    backend.debug = bad
    assert call(backend, "DEBUG", "JMAP") == \
        err("ERR unknown DEBUG subcommand or wrong arguments: JMAP")


def test_specs_metadata_is_consistent():
    for spec in SPECS.values():
        assert spec.name == spec.name.upper()
        assert spec.summary and spec.since
        if spec.first_key:
            assert spec.key_step >= 1
        assert ("write" in spec.flags) != ("readonly" in spec.flags) or spec.name in (
            b"DEBUG", b"REPAIR")


def test_specs_arity_through_the_dispatcher():
    from resp_kv.commands import Dispatcher
    from resp_kv.config import Config
    from resp_kv.server_state import ServerState

    table = {spec.name: spec for spec in SPECS.values()}
    state = ServerState(Config())
    dispatcher = Dispatcher(Session(backend=DictBackend(), server=state, config=None), table)

    def run(*words: str) -> bytes:
        return asyncio.run(dispatcher.execute([w.encode() for w in words]))

    assert run("GET") == b"-ERR wrong number of arguments for 'get' command\r\n"
    assert run("mset", "k") == b"-ERR wrong number of arguments for 'mset' command\r\n"
    assert run("SET", "k", "v", "EX", "10", "NX") == b"+OK\r\n"
    assert run("set", "k", "v", "nx") == b"$-1\r\n"
    assert run("INCR", "k") == b"-ERR value is not an integer or out of range\r\n"
    assert run("EXPIRE", "k") == b"-ERR wrong number of arguments for 'expire' command\r\n"
    assert run("RANDOMKEY") == b"$1\r\nk\r\n"
