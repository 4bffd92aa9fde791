"""End to end: malformed input over raw sockets never crashes the node or loses data (DESIGN.md §7).

Each framing error must get Redis's exact `-ERR Protocol error: ...` line and then the server
closes that connection, while another client, connected before the bad input, keeps working
and sees its data intact. The expected lines are what redis-server 7 sends for the same bytes
(checked by hand against a real server); `*2000000` follows the node's documented multibulk
limit (1024*1024, the limit and wording Redis used before 7.0). Command-level errors (wrong
arity, unknown commands, bad options) get an error reply and the connection stays open.
"""

from __future__ import annotations

import os
import socket
from typing import Iterator

import pytest
import redis

from tests.helpers.harness import HOST, ClusterHarness

pytestmark = pytest.mark.integration


def _connect(port: int, timeout_s: float = 10.0) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_until_closed(sock: socket.socket, timeout_s: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    sock.settimeout(timeout_s)
    chunks = []
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)
    except ConnectionResetError:
        return b"".join(chunks)
    except socket.timeout:
        raise AssertionError(f"server kept the connection open; it sent {b''.join(chunks)!r}") from None


def _read_exactly(sock: socket.socket, size: int, timeout_s: float = 10.0) -> bytes:
    sock.settimeout(timeout_s)
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except socket.timeout:
            raise AssertionError(f"expected {size} bytes, got only {data!r}") from None
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}")
        data += chunk
    return data


def _vm_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


MALFORMED = [
    pytest.param(b"*abc\r\n", "invalid multibulk length", id="multibulk-not-a-number"),
    pytest.param(b"*3000000000\r\n", "invalid multibulk length", id="multibulk-over-int-max"),
    pytest.param(b"*2000000\r\n", "invalid multibulk length", id="multibulk-over-limit"),
    pytest.param(b"*1\r\n$-2\r\n", "invalid bulk length", id="bulk-negative"),
    pytest.param(b"*1\r\n$-1\r\n", "invalid bulk length", id="bulk-null-in-request"),
    pytest.param(b"*1\r\n$abc\r\n", "invalid bulk length", id="bulk-not-a-number"),
    pytest.param(b"*1\r\n$999999999999\r\n", "invalid bulk length", id="bulk-huge"),
    pytest.param(b"*1\r\n$536870913\r\n", "invalid bulk length", id="bulk-over-512mb"),
    pytest.param(b"*1\r\n+foo\r\n", "expected '$', got '+'", id="bad-prefix-plus"),
    pytest.param(b"*2\r\n$3\r\nGET\r\n:1\r\n", "expected '$', got ':'", id="bad-prefix-colon"),
    *(pytest.param(b"*1\r\n%s3000000000\r\n" % kind, f"expected '$', got '{kind.decode()}'",
                   id=f"huge-resp3-aggregate-{kind.decode()}") for kind in (b"~", b">", b"|", b"%")),
    pytest.param(b'SET k "abc\r\n', "unbalanced quotes in request", id="inline-unbalanced-double"),
    pytest.param(b"set k 'a\r\n", "unbalanced quotes in request", id="inline-unbalanced-single"),
    pytest.param(b"PING " + b"x" * 70000, "too big inline request", id="inline-over-64kb"),
]


@pytest.mark.parametrize("payload, message", MALFORMED)
def test_malformed_resp_gets_protocol_error_and_close(kv: ClusterHarness, payload: bytes, message: str) -> None:
    bystander = kv.client(0, protocol=2)
    bystander.set("sentinel", b"intact\x00value")
    assert bystander.ping() is True                 # connected before the bad input arrives

    bad = _connect(kv.port())
    bad.sendall(payload)
    reply = _read_until_closed(bad)
    bad.close()
    assert reply == f"-ERR Protocol error: {message}\r\n".encode()

    assert kv.nodes[0].running, "the node died on malformed input"
    assert bystander.ping() is True
    assert bystander.get("sentinel") == b"intact\x00value"
    assert bystander.set("after", "ok") is True and bystander.get("after") == b"ok"
    fresh = kv.client(0, protocol=3)
    assert fresh.get("sentinel") == b"intact\x00value"


def test_commands_before_a_framing_error_are_answered_first(kv: ClusterHarness) -> None:
    bad = _connect(kv.port())
    bad.sendall(b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$2\r\npk\r\n$1\r\n1\r\n*1\r\n$-2\r\n")
    assert _read_until_closed(bad) == b"+PONG\r\n+OK\r\n-ERR Protocol error: invalid bulk length\r\n"
    assert kv.client(0).get("pk") == b"1"


def test_negative_and_zero_multibulk_and_blank_lines_are_ignored(kv: ClusterHarness) -> None:
    """As in Redis: `*-5`, `*0`, `*-1` and empty lines are no-ops, not errors."""
    sock = _connect(kv.port())
    sock.sendall(b"*-5\r\n\r\n*0\r\n*-1\r\n\r\nPING\r\n")
    assert _read_exactly(sock, 7) == b"+PONG\r\n"
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    assert _read_exactly(sock, 7) == b"+PONG\r\n"
    sock.close()


def test_inline_commands_work(kv: ClusterHarness) -> None:
    sock = _connect(kv.port())
    sock.sendall(b'SET inl "hello world"\r\nGET inl\r\nECHO \'a b\'\n')
    expected = b"+OK\r\n$11\r\nhello world\r\n$3\r\na b\r\n"
    assert _read_exactly(sock, len(expected)) == expected
    sock.close()


def test_declared_but_never_sent_500mb_bulk_does_not_grow_memory(kv: ClusterHarness) -> None:
    pid = kv.pid(0)
    bystander = kv.client(0, protocol=2)
    bystander.set("sentinel", "v")
    baseline = _vm_rss_bytes(pid)
    hogs = []
    for i in range(4):
        sock = _connect(kv.port())
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$524288000\r\n" + b"x" * (256 * 1024))
        hogs.append(sock)
    # a round trip on another connection after every hog's bytes went out: the node has read them
    for _ in range(3):
        assert bystander.ping() is True
    assert bystander.get("sentinel") == b"v"
    grown = _vm_rss_bytes(pid) - baseline
    assert grown < 50 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB for 4 unsent 500 MB bulks"
    for sock in hogs:
        sock.close()
    assert bystander.exists("big") == 0
    assert bystander.set("after", "1") is True


@pytest.mark.parametrize("kind", [b"~", b">", b"|", b"%"])
def test_a_huge_resp3_aggregate_header_after_a_command_allocates_nothing(
        kv: ClusterHarness, kind: bytes) -> None:
    """hiredis pre-allocates a RESP3 set's, push's or attribute's declared count: this
    30-byte request used to cost seconds of a stalled loop and ~23 GB. Redis reads a line
    that does not start with `*` as an inline command: an unknown command, connection open."""
    pid = kv.pid(0)
    bystander = kv.client(0, protocol=2)
    bystander.set("sentinel", "v")
    baseline = _vm_rss_bytes(pid)
    sock = _connect(kv.port())
    sock.sendall(b"*1\r\n$4\r\nPING\r\n" + kind + b"3000000000\r\n")
    expected = (b"+PONG\r\n-ERR unknown command '" + kind
                + b"3000000000', with args beginning with: \r\n")
    assert _read_exactly(sock, len(expected)) == expected
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    assert _read_exactly(sock, 7) == b"+PONG\r\n"
    grown = _vm_rss_bytes(pid) - baseline
    assert grown < 50 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"
    assert bystander.get("sentinel") == b"v"
    sock.close()


def test_command_errors_keep_the_connection_open_and_in_order(kv: ClusterHarness) -> None:
    sock = _connect(kv.port())
    sock.sendall(b"GET\r\nNOSUCH a\r\nSET k v BADOPT\r\nSET k v EX 0\r\nSET k v EX x\r\n"
                 b"SET k v NX XX\r\nCLIENT BOGUS\r\nINCR\r\nPING\r\n")
    expected = (b"-ERR wrong number of arguments for 'get' command\r\n"
                b"-ERR unknown command 'NOSUCH', with args beginning with: 'a' \r\n"
                b"-ERR syntax error\r\n"
                b"-ERR invalid expire time in 'set' command\r\n"
                b"-ERR value is not an integer or out of range\r\n"
                b"-ERR syntax error\r\n"
                b"-ERR unknown subcommand 'BOGUS'. Try CLIENT HELP.\r\n"
                b"-ERR wrong number of arguments for 'incr' command\r\n"
                b"+PONG\r\n")
    assert _read_exactly(sock, len(expected)) == expected
    sock.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
    assert _read_exactly(sock, 5) == b"$-1\r\n"         # no bad SET wrote anything
    sock.close()


def test_redis_py_sees_errors_and_keeps_working(kv: ClusterHarness) -> None:
    client = kv.client(0, protocol=3)
    for args in (("GET",), ("NOSUCH",), ("SET", "k", "v", "PX"), ("EXPIRE", "k", "1", "NX", "XX")):
        with pytest.raises(redis.ResponseError):
            client.execute_command(*args)
    assert client.ping() is True


def test_garbage_on_the_peer_port_does_not_hurt(kv: ClusterHarness) -> None:
    client = kv.client(0)
    client.set("sentinel", "v")
    for garbage in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096), b"*1\r\n$-2\r\n",
                    b"*2\r\n$4\r\nPING\r\n$99999999999\r\n", b"\x00" * 100):
        try:
            sock = _connect(kv.peer_port())
        except ConnectionRefusedError:
            pytest.fail("the peer port does not accept connections")
        try:
            sock.sendall(garbage)
            sock.settimeout(2)
            try:
                sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                pass
        finally:
            sock.close()
    assert kv.nodes[0].running
    assert client.get("sentinel") == b"v"


@pytest.fixture(scope="module")
def small_bulk(tmp_path_factory) -> Iterator[ClusterHarness]:
    with ClusterHarness(tmp_path_factory.mktemp("bulk1mb"), size=1,
                             extra_args=["--proto-max-bulk-len", "1mb"]) as harness:
        yield harness.up(timeout_s=30)


def test_proto_max_bulk_len_rejects_a_2mb_bulk(small_bulk: ClusterHarness) -> None:
    client = small_bulk.client(0, protocol=2)
    assert client.set("fits", b"x" * (1024 * 1024 - 1)) is True
    assert client.strlen("fits") == 1024 * 1024 - 1

    sock = _connect(small_bulk.port())
    sock.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$2097152\r\n")
    assert _read_until_closed(sock) == b"-ERR Protocol error: invalid bulk length\r\n"
    sock.close()
    assert client.ping() is True and client.exists("big") == 0

