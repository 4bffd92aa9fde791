"""End to end: VCLOCK and `SET ... VCLOCK context` on one real node (DESIGN.md §3 "Custom").

Reply shape: `[context, [[value, clock, timestamp_ms], ...]]`; context is "" for a key never
written; a tombstone's value is nil. These tests create siblings on a single node with stale
contexts (a write over a context that does not cover every version keeps the uncovered ones).
"""

from __future__ import annotations

import re
import socket
import time

import pytest
import redis

from tests.helpers.harness import HOST, ClusterHarness

pytestmark = pytest.mark.integration

_CLOCK = re.compile(r"^[^:,]+:\d+(,[^:,]+:\d+)*$")


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(request, kv: ClusterHarness) -> redis.Redis:
    client = kv.client(0, protocol=request.param)
    client.flushall()
    return client


def vclock(r: redis.Redis, key) -> tuple[bytes, list[list]]:
    """Return (context, siblings) after checking the reply's shape."""
    reply = r.execute_command("VCLOCK", key)
    assert isinstance(reply, list) and len(reply) == 2, reply
    context, siblings = reply
    assert isinstance(context, bytes), reply
    assert isinstance(siblings, list), reply
    for sibling in siblings:
        assert isinstance(sibling, list) and len(sibling) == 3, sibling
        value, clock, timestamp_ms = sibling
        assert value is None or isinstance(value, bytes), sibling
        assert isinstance(clock, bytes) and _CLOCK.match(clock.decode()), sibling
        pairs = [pair.rsplit(":", 1)[0] for pair in clock.decode().split(",")]
        assert pairs == sorted(pairs), f"clock not sorted by node id: {clock!r}"
        assert isinstance(timestamp_ms, int), sibling
    return context, siblings


def values(siblings: list[list]) -> list:
    return sorted(s[0] for s in siblings if s[0] is not None) + [None] * sum(s[0] is None for s in siblings)


def test_vclock_of_missing_key_is_empty(r: redis.Redis) -> None:
    assert r.execute_command("VCLOCK", "never-written") == [b"", []]


def test_vclock_after_set_has_one_sibling_with_clock_and_timestamp(r: redis.Redis) -> None:
    before_ms = int(time.time() * 1000)
    r.set("k", "v1")
    context, siblings = vclock(r, "k")
    assert context != b""
    assert len(siblings) == 1
    value, clock, timestamp_ms = siblings[0]
    assert value == b"v1"
    assert clock.decode().split(",")[0].startswith("n0"), clock       # minted by node n0
    assert before_ms - 5000 <= timestamp_ms <= int(time.time() * 1000) + 5000


def test_plain_set_supersedes_what_the_coordinator_holds(r: redis.Redis) -> None:
    r.set("k", "v1")
    r.set("k", "v2")
    r.set("k", "v3")
    _, siblings = vclock(r, "k")
    assert values(siblings) == [b"v3"]


def test_set_over_stale_context_leaves_two_siblings_and_joined_context_resolves(r: redis.Redis) -> None:
    r.set("k", "v1")
    stale, _ = vclock(r, "k")
    r.set("k", "v2")                                   # supersedes v1
    assert r.execute_command("SET", "k", "v3", "VCLOCK", stale) in (True, b"OK", "OK")
    joined, siblings = vclock(r, "k")
    assert values(siblings) == [b"v2", b"v3"], siblings   # v3's context never saw v2
    assert joined != stale

    # Winner = highest (timestamp, node id, counter): v3 was written after v2 by the same node,
    # so it has a timestamp at least as high and a higher counter.
    winner = r.get("k")
    by_value = {s[0]: s for s in siblings}
    assert by_value[b"v3"][2] >= by_value[b"v2"][2], siblings
    assert winner == b"v3", f"GET must return the newest sibling: {siblings}"
    assert all(r.get("k") == winner for _ in range(5)), "GET winner must be deterministic"
    assert r.mget("k")[0] == winner

    assert r.execute_command("SET", "k", "v4", "VCLOCK", joined) in (True, b"OK", "OK")
    _, siblings = vclock(r, "k")
    assert values(siblings) == [b"v4"]
    assert r.get("k") == b"v4"


def test_empty_context_write_is_concurrent_with_everything(r: redis.Redis) -> None:
    r.set("k", "a")
    r.execute_command("SET", "k", "b", "VCLOCK", "")
    context, siblings = vclock(r, "k")
    assert values(siblings) == [b"a", b"b"]
    clocks = {s[1] for s in siblings}
    assert len(clocks) == 2, "two concurrent siblings carry different dots"
    r.execute_command("SET", "k", "c", "VCLOCK", context)
    assert values(vclock(r, "k")[1]) == [b"c"]


def test_siblings_do_not_multiply_with_interleaved_stale_writers(r: redis.Redis) -> None:
    """Two writers each re-using the context of their own last read: at most 2 siblings (DVV)."""
    r.set("k", "start")
    ctx_a, _ = vclock(r, "k")
    ctx_b = ctx_a
    for i in range(5):
        r.execute_command("SET", "k", f"a{i}", "VCLOCK", ctx_a)
        ctx_a, _ = vclock(r, "k")
        r.execute_command("SET", "k", f"b{i}", "VCLOCK", ctx_b)
        ctx_b, siblings = vclock(r, "k")
        assert len(siblings) <= 2, siblings


def test_set_vclock_combines_with_other_options(r: redis.Redis) -> None:
    r.set("k", "v1")
    context, _ = vclock(r, "k")
    assert r.execute_command("SET", "k", "v2", "EX", "100", "VCLOCK", context) in (True, b"OK", "OK")
    assert 95 <= r.ttl("k") <= 100
    assert values(vclock(r, "k")[1]) == [b"v2"]


def test_del_leaves_a_tombstone(r: redis.Redis) -> None:
    r.set("k", "v")
    assert r.delete("k") == 1
    context, siblings = vclock(r, "k")
    assert context != b""
    assert len(siblings) == 1 and siblings[0][0] is None, siblings
    assert r.get("k") is None and r.exists("k") == 0
    r.set("k", "again")
    assert values(vclock(r, "k")[1]) == [b"again"]


def test_tombstone_sibling_beside_a_value(r: redis.Redis) -> None:
    r.set("k", "v1")
    stale, _ = vclock(r, "k")
    r.delete("k")
    r.execute_command("SET", "k", "v2", "VCLOCK", stale)     # concurrent with the delete
    _, siblings = vclock(r, "k")
    assert sorted((s[0] is None) for s in siblings) == [False, True], siblings
    assert b"v2" in [s[0] for s in siblings]


def test_vclock_errors_keep_the_connection(r: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError, match=r"^wrong number of arguments for 'vclock' command$"):
        r.execute_command("VCLOCK")
    with pytest.raises(redis.ResponseError):
        r.execute_command("SET", "k", "v", "VCLOCK", "not a context \x00\xff")
    with pytest.raises(redis.ResponseError, match=r"^syntax error$"):
        r.execute_command("SET", "k", "v", "VCLOCK")
    assert r.ping() is True
    assert r.get("k") is None


def test_vclock_raw_reply_types_in_resp2_and_resp3(kv: ClusterHarness) -> None:
    """Exact wire types: bulk context, array of [bulk|nil, bulk, integer]; nil is `_` in RESP3."""
    def call(sock_file, sock, *args: bytes) -> bytes:
        sock.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        return sock_file.readline()

    kv.client(0).delete("raw")
    kv.client(0).set("raw", "v")
    kv.client(0).delete("raw")                            # one tombstone sibling
    for protocol, nil in ((b"2", b"$-1\r\n"), (b"3", b"_\r\n")):
        sock = socket.create_connection((HOST, kv.port()), timeout=10)
        f = sock.makefile("rb")
        try:
            sock.sendall(b"*2\r\n$5\r\nHELLO\r\n$1\r\n%s\r\n" % protocol)
            hello = f.readline()
            count = int(hello[1:-2]) * (2 if hello.startswith(b"%") else 1)
            for _ in range(count):                        # skip the HELLO reply's elements
                line = f.readline()
                if line.startswith(b"$"):
                    f.readline()
                elif line.startswith(b"*"):
                    assert line == b"*0\r\n"              # modules: empty
            assert call(f, sock, b"VCLOCK", b"raw") == b"*2\r\n"
            assert f.readline().startswith(b"$") and f.readline()      # context bulk
            assert f.readline() == b"*1\r\n"                            # one sibling
            assert f.readline() == b"*3\r\n"
            assert f.readline() == nil                                  # tombstone value
            assert f.readline().startswith(b"$") and f.readline()      # clock bulk
            assert f.readline().startswith(b":")                        # timestamp integer
            assert call(f, sock, b"VCLOCK", b"never") == b"*2\r\n"
            assert f.readline() == b"$0\r\n" and f.readline() == b"\r\n"
            assert f.readline() == b"*0\r\n"
        finally:
            f.close()
            sock.close()
