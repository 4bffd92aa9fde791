"""End to end: every client command of DESIGN.md §3 against one real `python -m resp_kv` node.

Clients: redis-py sync and redis.asyncio, in RESP2 and RESP3 (`protocol=3`), plus a raw socket
where the exact reply bytes matter. Where Redis has the same command, a real `redis-server`
started in this module is the oracle: the same request goes to both and the replies must be
byte-for-byte identical (differential testing), so an expectation here is never a guess.

One node serves the whole module (started once, FLUSHALL before each test) to keep the file fast.
"""

from __future__ import annotations

import asyncio
import fnmatch
import io
import os
import re
import shutil
import socket
import subprocess
import time
from collections import Counter
from typing import Iterator

import pytest
import redis
import redis.asyncio

from tests.helpers.harness import HOST, ClusterHarness
from tests.helpers.ports import free_port
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration


# --- a raw RESP client: exact reply bytes, and a decoder for them ------------------------------

class RespError(str):
    """An error reply (`-ERR ...`), decoded."""


def _pack(args: tuple) -> bytes:
    parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _read_raw(f) -> bytes:
    """Read exactly one RESP2/RESP3 reply from a buffered socket file; return its bytes."""
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError(f"connection closed mid-reply (got {line!r})")
    kind = line[:1]
    if kind in b"+-:,_#(":
        return line
    if kind in b"$!=":
        size = int(line[1:-2])
        return line if size < 0 else line + f.read(size + 2)
    if kind in b"*~>%|":
        count = int(line[1:-2])
        if count < 0:
            return line
        count *= 2 if kind in b"%|" else 1
        body = b"".join(_read_raw(f) for _ in range(count))
        return line + body + (_read_raw(f) if kind == b"|" else b"")
    raise AssertionError(f"not a RESP reply: {line!r}")


def decode(raw: bytes):
    """Decode one raw reply into Python values (maps -> dict, errors -> RespError)."""
    return _decode(io.BytesIO(raw))


def _decode(f):
    line = f.readline()
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        return RespError(body.decode())
    if kind in b":(":
        return int(body)
    if kind == b",":
        return float(body)
    if kind == b"_":
        return None
    if kind == b"#":
        return body == b"t"
    if kind in b"$!=":
        size = int(body)
        if size < 0:
            return None
        data = f.read(size + 2)[:-2]
        return data[4:] if kind == b"=" else data
    if kind in b"*~>":
        count = int(body)
        return None if count < 0 else [_decode(f) for _ in range(count)]
    if kind == b"%":
        return {_hashable(_decode(f)): _decode(f) for _ in range(int(body))}
    raise AssertionError(f"cannot decode {line!r}")


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


class Raw:
    """One raw TCP connection; `call` returns the exact reply bytes."""

    def __init__(self, port: int, protocol: int = 2, password: str | None = None) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=15)
        self.file = self.sock.makefile("rb")
        if password is not None:
            assert self.call("AUTH", password) == b"+OK\r\n"
        if protocol == 3:
            hello = self.call("HELLO", "3")
            assert hello.startswith(b"%"), hello[:200]

    def call(self, *args) -> bytes:
        self.sock.sendall(_pack(args))
        return _read_raw(self.file)

    def value(self, *args):
        return decode(self.call(*args))

    def closed_by_peer(self) -> bool:
        """True once the server has closed this connection (EOF)."""
        return self.file.read(1) == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ref_port(tmp_path_factory) -> Iterator[int]:
    """A real redis-server, the oracle for differential checks; stopped by its pid."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server must be installed for the differential tests"
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis-ref")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", HOST, "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: redis.Redis(host=HOST, port=port, protocol=2).ping(), 10, "redis-server PONG")
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(autouse=True)
def _clean(kv: ClusterHarness) -> None:
    with redis.Redis(host=HOST, port=kv.port(0), protocol=2, socket_timeout=15) as c:
        c.flushall()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(request, kv: ClusterHarness) -> redis.Redis:
    """A redis-py client for the node, in RESP2 and in RESP3."""
    return kv.client(0, protocol=request.param)


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def protocol(request) -> int:
    return request.param


def assert_same_as_redis(kv_port: int, ref_port: int, commands: list[tuple], protocol: int = 2) -> None:
    """Send each command on one connection to resp-kv and to redis-server; replies must be equal."""
    ours, theirs = Raw(kv_port, protocol), Raw(ref_port, protocol)
    theirs.call("FLUSHALL")
    try:
        for command in commands:
            expected = theirs.call(*command)
            got = ours.call(*command)
            assert got == expected, f"{command!r}: redis-server replied {expected!r}, resp-kv {got!r}"
    finally:
        ours.close()
        theirs.close()


# --- connection and server ---------------------------------------------------------------------

def test_ping_and_echo(r: redis.Redis) -> None:
    assert r.ping() is True
    assert Raw(r.connection_pool.connection_kwargs["port"]).call("PING", "hello") == b"$5\r\nhello\r\n"
    assert r.echo(b"a\x00b\r\n") == b"a\x00b\r\n"
    assert r.echo(b"") == b""


def test_ping_echo_and_arity_errors_match_redis(kv, ref_port, protocol) -> None:
    assert_same_as_redis(kv.port(), ref_port, [
        ("PING",), ("PING", "x"), ("ping", "a", "b"), ("ECHO",), ("ECHO", "hi"), ("echo", "a", "b"),
        ("GET",), ("GET", "a", "b"), ("SET", "k"), ("MGET",), ("MSET", "k"), ("MSET", "a", "1", "b"),
        ("INCRBY", "k"), ("EXPIRE", "k"), ("DEL",), ("UNLINK",), ("EXISTS",), ("TTL",), ("PTTL",),
        ("STRLEN",), ("APPEND", "k"), ("GETDEL",), ("GETSET", "k"), ("DBSIZE", "x"), ("TYPE",),
        ("PERSIST",), ("SETNX", "k"), ("SETEX", "k", "1"), ("INCR",), ("DECRBY", "k"),
        ("INCRBYFLOAT", "k"), ("KEYS",), ("SCAN",), ("SELECT",), ("TIME", "x"),
    ], protocol)


def test_unknown_command_error_text_matches_redis(kv, ref_port, protocol) -> None:
    assert_same_as_redis(kv.port(), ref_port, [
        ("NOSUCHCOMMAND",), ("nosuchcommand", "a", "b"), ("foo", "x" * 200, "y"),
        ("X" * 300,), ("bar", ""),
    ], protocol)


def test_unknown_command_error_text_exact(kv) -> None:
    raw = Raw(kv.port())
    assert raw.call("FOO", "a", "b") == b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"
    assert raw.call("PING") == b"+PONG\r\n"      # the connection stays open after an error


def test_commands_we_do_not_have_get_an_error_at_once(kv, protocol) -> None:
    """Clients probe with commands we lack: each gets an error reply, in order, never silence."""
    probes = [("HSET", "h", "f", "v"), ("LPUSH", "l", "x"), ("SADD", "s", "m"), ("ZADD", "z", "1", "m"),
              ("XADD", "x", "*", "f", "v"), ("SUBSCRIBE", "ch"), ("PSUBSCRIBE", "c*"), ("EVAL", "return 1", "0"),
              ("CLUSTER", "SLOTS"), ("FOOBAR",)]
    raw = Raw(kv.port(), protocol)
    raw.sock.sendall(b"".join(_pack(p) for p in probes) + _pack(("PING",)))
    replies = [_read_raw(raw.file) for _ in probes]
    for probe, reply in zip(probes, replies):
        assert reply.startswith(b"-"), f"{probe}: {reply!r}"
    assert replies[0] == b"-ERR unknown command 'HSET', with args beginning with: 'h' 'f' 'v' \r\n"
    assert _read_raw(raw.file) == b"+PONG\r\n"          # not stuck in a subscribe mode either
    assert raw.call("SET", "k", "v") == b"+OK\r\n"


def test_quit_replies_ok_and_closes(kv) -> None:
    raw = Raw(kv.port())
    assert raw.call("QUIT") == b"+OK\r\n"
    assert wait_until(raw.closed_by_peer, 5, "server closes the connection after QUIT")


def test_select(r: redis.Redis) -> None:
    assert r.execute_command("SELECT", 0) in (True, b"OK", "OK")
    with pytest.raises(redis.ResponseError, match=r"^DB index is out of range$"):
        r.execute_command("SELECT", 1)
    with pytest.raises(redis.ResponseError, match=r"^value is not an integer or out of range$"):
        r.execute_command("SELECT", "x")
    assert r.ping() is True


def test_select_raw_replies(kv) -> None:
    raw = Raw(kv.port())
    assert raw.call("SELECT", "0") == b"+OK\r\n"
    assert raw.call("SELECT", "1") == b"-ERR DB index is out of range\r\n"
    assert raw.call("SELECT", "16") == b"-ERR DB index is out of range\r\n"


def test_hello_3_map_fields(kv) -> None:
    raw = Raw(kv.port())
    reply = raw.call("HELLO", "3")
    assert reply.startswith(b"%"), reply
    fields = decode(reply)
    for name in (b"server", b"version", b"proto", b"id", b"mode", b"role", b"modules"):
        assert name in fields, f"HELLO 3 map lacks {name!r}: {fields!r}"
    assert fields[b"proto"] == 3
    assert isinstance(fields[b"id"], int) and fields[b"id"] > 0
    assert fields[b"role"] == b"master"
    assert fields[b"modules"] == []
    assert fields[b"id"] == raw.value("CLIENT", "ID")
    # from now on RESP3 types: null is `_`
    assert raw.call("GET", "missing") == b"_\r\n"
    assert raw.call("MGET", "missing", "missing2") == b"*2\r\n_\r\n_\r\n"


def test_hello_2_flat_array_and_back_to_resp2(kv) -> None:
    raw = Raw(kv.port(), protocol=3)
    reply = raw.call("HELLO", "2")
    assert reply.startswith(b"*14\r\n"), reply
    flat = decode(reply)
    fields = dict(zip(flat[::2], flat[1::2]))
    assert fields[b"proto"] == 2 and fields[b"server"]
    assert raw.call("GET", "missing") == b"$-1\r\n"


def test_hello_errors_and_setname(kv, ref_port) -> None:
    assert_same_as_redis(kv.port(), ref_port, [("HELLO", "4"), ("HELLO", "x"), ("HELLO", "1")])
    raw = Raw(kv.port())
    assert decode(raw.call("HELLO", "3", "SETNAME", "worker-1"))[b"proto"] == 3
    assert raw.value("CLIENT", "GETNAME") == b"worker-1"


def test_redis_py_resp3_handshake(kv) -> None:
    client = kv.client(0, protocol=3)
    assert client.ping() is True
    assert client.connection_pool.get_connection().get_protocol() in (3, "3")


def test_client_setname_getname_id_list_info(r: redis.Redis, kv) -> None:
    assert r.client_getname() is None
    assert r.client_setname("tester") is True
    assert r.client_getname() in (b"tester", "tester")
    client_id = r.client_id()
    assert isinstance(client_id, int) and client_id > 0

    raw = Raw(kv.port())
    assert raw.call("CLIENT", "SETNAME", "rawconn") == b"+OK\r\n"
    raw_id = raw.value("CLIENT", "ID")
    assert raw_id != client_id
    listing = raw.value("CLIENT", "LIST").decode()
    lines = [line for line in listing.split("\n") if line]
    by_id = {int(re.search(r"\bid=(\d+)", line).group(1)): line for line in lines}
    assert raw_id in by_id and client_id in by_id, listing
    assert "name=rawconn" in by_id[raw_id].split() and "name=tester" in by_id[client_id].split()
    info = raw.value("CLIENT", "INFO").decode()
    assert f"id={raw_id} " in info and "name=rawconn" in info.split()
    assert raw.call("CLIENT", "SETINFO", "lib-name", "pytest") == b"+OK\r\n"


def test_client_errors_match_redis_and_keep_connection(kv, ref_port, protocol) -> None:
    assert_same_as_redis(kv.port(), ref_port, [
        ("CLIENT", "NOSUCH"), ("client", "foo", "bar"), ("CLIENT", "SETNAME", "a b"),
        ("CLIENT", "SETNAME", "a\nb"), ("CLIENT", "GETNAME", "x"), ("CLIENT", "SETNAME"),
        ("PING",),
    ], protocol)


def test_client_setname_empty_clears_name(kv) -> None:
    raw = Raw(kv.port())
    raw.call("CLIENT", "SETNAME", "x")
    assert raw.call("CLIENT", "SETNAME", "") == b"+OK\r\n"
    assert raw.call("CLIENT", "GETNAME") == b"$-1\r\n"


def test_reset(kv) -> None:
    raw = Raw(kv.port(), protocol=3)
    raw.call("CLIENT", "SETNAME", "before-reset")
    assert raw.call("RESET") == b"+RESET\r\n"
    assert raw.call("CLIENT", "GETNAME") == b"$-1\r\n"          # name gone, and back to RESP2


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Iterator[ClusterHarness]:
    """A node with --requirepass (readiness polled with the password: PING alone gets NOAUTH)."""
    harness = ClusterHarness(tmp_path_factory.mktemp("auth"), size=1, extra_args=["--requirepass", "s3cret"])
    try:
        harness.start_all()
        wait_until(lambda: redis.Redis(host=HOST, port=harness.port(), password="s3cret", protocol=2).ping(),
                   30, "authenticated PONG")
        yield harness
    finally:
        harness.kill_all()


def test_requirepass_noauth_wrongpass_and_auth(secured) -> None:
    raw = Raw(secured.port())
    assert raw.call("GET", "k") == b"-NOAUTH Authentication required.\r\n"
    assert raw.call("SET", "k", "v") == b"-NOAUTH Authentication required.\r\n"
    assert raw.call("AUTH", "wrong") == b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    assert raw.call("AUTH", "default", "wrong") == (
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
    assert raw.call("GET", "k") == b"-NOAUTH Authentication required.\r\n"
    assert raw.call("AUTH", "s3cret") == b"+OK\r\n"
    assert raw.call("SET", "k", "v") == b"+OK\r\n"
    other = Raw(secured.port())
    assert other.call("AUTH", "default", "s3cret") == b"+OK\r\n"
    assert other.call("GET", "k") == b"$1\r\nv\r\n"


def test_requirepass_hello_auth(secured) -> None:
    raw = Raw(secured.port())
    assert raw.call("HELLO", "3", "AUTH", "default", "wrong").startswith(b"-WRONGPASS")
    fields = decode(raw.call("HELLO", "3", "AUTH", "default", "s3cret"))
    assert fields[b"proto"] == 3
    assert raw.call("PING") == b"+PONG\r\n"


@pytest.mark.parametrize("proto", [2, 3])
def test_requirepass_redis_py_clients(secured, proto) -> None:
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=HOST, port=secured.port(), password="nope", protocol=proto).ping()
    good = secured.client(0, password="s3cret", protocol=proto)
    assert good.set("a", "1") is True and good.get("a") == b"1"


def test_auth_without_requirepass_matches_redis(kv, ref_port) -> None:
    assert_same_as_redis(kv.port(), ref_port, [("AUTH", "x")])


def test_command_count_info_docs(kv) -> None:
    raw = Raw(kv.port())
    count = raw.value("COMMAND", "COUNT")
    everything = raw.value("COMMAND")
    assert isinstance(count, int) and count == len(everything)
    names = {entry[0].lower() for entry in everything}
    documented = ("ping echo quit hello auth select client command info config dbsize time flushall "
                  "flushdb reset get set setnx setex psetex getset getdel mget mset del unlink exists "
                  "expire pexpire expireat pexpireat ttl pttl persist type incr decr incrby decrby "
                  "incrbyfloat append strlen scan keys vclock repair").split()
    missing = [name for name in documented if name.encode() not in names]
    assert not missing, f"COMMAND lacks {missing}"

    info = raw.value("COMMAND", "INFO", "get", "SET", "vclock", "repair", "nosuchcommand")
    assert len(info) == 5 and info[4] is None
    expected_arity = {b"get": 2, b"set": -3, b"vclock": 2, b"repair": -1}
    for entry, (name, arity) in zip(info, expected_arity.items()):
        assert isinstance(entry, list) and len(entry) >= 6, entry
        assert entry[0] == name and entry[1] == arity, entry
        assert isinstance(entry[2], list) and all(isinstance(flag, str) for flag in entry[2]), entry
        assert all(isinstance(x, int) for x in entry[3:6]), entry
    assert info[0][3:6] == [1, 1, 1]            # GET: first key, last key, step

    docs = raw.value("COMMAND", "DOCS", "get", "vclock")
    docs = dict(zip(docs[::2], docs[1::2])) if isinstance(docs, list) else docs
    assert set(docs) == {b"get", b"vclock"}, docs
    for body in docs.values():
        body = dict(zip(body[::2], body[1::2])) if isinstance(body, list) else body
        assert b"summary" in body and body[b"summary"], body


def test_command_docs_and_info_in_resp3(kv) -> None:
    raw = Raw(kv.port(), protocol=3)
    assert raw.call("COMMAND", "DOCS", "get").startswith(b"%1\r\n")
    assert raw.call("COMMAND", "COUNT").startswith(b":")
    assert decode(raw.call("COMMAND", "INFO", "vclock"))[0][0] == b"vclock"


def test_command_unknown_subcommand_matches_redis(kv, ref_port) -> None:
    assert_same_as_redis(kv.port(), ref_port, [("COMMAND", "NOPE"), ("CONFIG", "NOPE"), ("CONFIG", "GET")])


def _info_text(port: int, *sections: str) -> str:
    raw = Raw(port)
    try:
        return raw.value("INFO", *sections).decode()
    finally:
        raw.close()


def _sections(text: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("# "):
            current = out.setdefault(line[2:].strip().lower(), {})
        elif line and current is not None:
            name, _, value = line.partition(":")
            current[name] = value
    return out


def test_info_sections_and_fields(kv, r) -> None:
    r.set("a", "1")
    r.set("b", "2")
    r.set("c", "3", ex=1000)
    text = _info_text(kv.port())
    sections = _sections(text)
    for name in ("server", "clients", "memory", "persistence", "stats", "replication", "cpu",
                 "cluster", "keyspace", "storage"):
        assert name in sections, f"INFO lacks '# {name}': {list(sections)}"
    server = sections["server"]
    assert server["redis_version"] == "7.2.0"
    assert server["redis_mode"] == "standalone"
    assert server["resp_kv_version"] and server["os"] and server["arch_bits"] in ("32", "64")
    assert int(server["process_id"]) == kv.pid(0)
    assert re.fullmatch(r"[0-9a-f]{40}", server["run_id"]), server["run_id"]
    assert int(server["tcp_port"]) == kv.port(0)
    assert int(server["uptime_in_seconds"]) >= 0
    assert sections["replication"]["role"] == "master"

    storage = sections["storage"]
    assert storage["fsync_policy"] == "everysec"
    for field in ("wal_bytes", "memtable_keys", "memtable_bytes", "sstables", "sstable_bytes",
                  "flushes", "wal_checkpoints", "compactions", "bloom_negatives", "row_cache_bytes",
                  "row_cache_hits"):
        assert int(storage[field]) >= 0, field

    cluster = sections["cluster"]
    names = list(cluster)
    assert names[0] == "cluster_enabled" and cluster["cluster_enabled"] == "0", names
    assert cluster["node_id"] == "n0"
    assert int(cluster["cluster_nodes"]) == 1 and int(cluster["cluster_nodes_up"]) == 1
    for field in ("replicas", "read_quorum", "write_quorum", "vnodes", "hints_pending", "hints_delivered",
                  "hints_dropped", "read_repairs", "conflicts_detected", "repair_runs", "repair_keys_sent",
                  "repair_keys_received", "repair_bytes_sent", "repair_bytes_received"):
        assert int(cluster[field]) >= 0, field
    assert int(cluster["vnodes"]) == 64

    db0 = dict(part.split("=") for part in sections["keyspace"]["db0"].split(","))
    assert int(db0["keys"]) == 3 and int(db0["expires"]) == 1, sections["keyspace"]


def test_info_single_and_multiple_sections(kv, r) -> None:
    only_server = _sections(_info_text(kv.port(), "server"))
    assert list(only_server) == ["server"]
    two = _sections(_info_text(kv.port(), "server", "cluster"))
    assert set(two) == {"server", "cluster"}
    storage = _sections(_info_text(kv.port(), "STORAGE"))
    assert set(storage) == {"storage"}
    assert r.info("cluster")["cluster_enabled"] == 0
    assert r.info("replication")["role"] == "master"
    r.set("x", "1")
    assert r.info("keyspace")["db0"]["keys"] == 1


def test_config_get(r: redis.Redis) -> None:
    config = {k.decode() if isinstance(k, bytes) else k: v for k, v in r.config_get("*").items()}
    for name in ("save", "appendonly", "databases"):
        assert name in config, f"CONFIG GET * lacks {name}"
    assert r.config_get("appendonly")[b"appendonly" if b"appendonly" in r.config_get("appendonly")
                                      else "appendonly"] in (b"yes", b"no", "yes", "no")
    databases = list(r.config_get("databases").values())
    assert len(databases) == 1 and int(databases[0]) >= 1
    globbed = r.config_get("data*")
    keys = [k.decode() if isinstance(k, bytes) else k for k in globbed]
    assert "databases" in keys and all(fnmatch.fnmatchcase(k, "data*") for k in keys), keys
    assert r.config_get("no-such-parameter-anywhere") == {}
    assert set(r.config_get("s?ve")) in ({b"save"}, {"save"})


def test_config_get_raw_resp2_and_resp3(kv) -> None:
    assert decode(Raw(kv.port()).call("CONFIG", "GET", "databases"))[0] == b"databases"
    assert Raw(kv.port(), protocol=3).call("CONFIG", "GET", "databases").startswith(b"%1\r\n")


def test_time(r: redis.Redis) -> None:
    seconds, micros = r.time()
    assert abs(seconds - time.time()) < 5
    assert 0 <= micros < 1_000_000


def test_dbsize_flushall_flushdb(r: redis.Redis) -> None:
    assert r.dbsize() == 0
    r.mset({f"k{i}": i for i in range(20)})
    assert r.dbsize() == 20
    assert r.flushall() is True
    assert r.dbsize() == 0 and r.get("k1") is None
    r.mset({"a": 1, "b": 2})
    assert r.flushdb() is True
    assert r.dbsize() == 0 and r.exists("a", "b") == 0


# --- keys and strings --------------------------------------------------------------------------

def test_set_get_and_options(r: redis.Redis) -> None:
    assert r.get("k") is None
    assert r.set("k", "v1") is True
    assert r.get("k") == b"v1"
    assert r.set("k", "v2", nx=True) is None
    assert r.get("k") == b"v1"
    assert r.set("missing", "x", xx=True) is None
    assert r.exists("missing") == 0
    assert r.set("k", "v3", xx=True) is True
    assert r.set("k", "v4", get=True) == b"v3"
    assert r.set("new", "n", get=True) is None
    assert r.get("new") == b"n"
    assert r.set("k", "v5", nx=True, get=True) == b"v4"       # Redis 7: NX+GET returns old, no write
    assert r.get("k") == b"v4"


def test_get_replies_of_every_size_match_redis(kv, ref_port, protocol) -> None:
    """Bulk replies around the precomputed header table (1024), alone and pipelined."""
    sizes = [0, 1, 9, 10, 1023, 1024, 1025, 70_000]
    commands = [c for n in sizes for c in (("SET", f"b{n}", "x" * n), ("GET", f"b{n}"))]
    assert_same_as_redis(kv.port(), ref_port, commands, protocol)
    ours, theirs = Raw(kv.port(), protocol), Raw(ref_port, protocol)
    try:
        pipeline = b"".join(_pack(("GET", f"b{n}")) for n in sizes)
        replies = []
        for raw in (ours, theirs):
            raw.sock.sendall(pipeline)
            replies.append([_read_raw(raw.file) for _ in sizes])
        assert replies[0] == replies[1]
    finally:
        ours.close()
        theirs.close()


def test_set_option_replies_match_redis(kv, ref_port, protocol) -> None:
    assert_same_as_redis(kv.port(), ref_port, [
        ("SET", "s", "1"), ("SET", "s", "2", "NX"), ("SET", "s", "3", "XX"), ("GET", "s"),
        ("SET", "t", "1", "XX"), ("SET", "s", "4", "GET"), ("SET", "u", "4", "GET"),
        ("SET", "s", "5", "NX", "GET"), ("SET", "s", "6", "XX", "GET"), ("SET", "v", "6", "xx", "get"),
        ("SET", "s", "7", "NX", "XX"), ("SET", "s", "7", "EX", "10", "PX", "10"),
        ("SET", "s", "7", "KEEPTTL", "EX", "1"), ("SET", "s", "7", "EX"), ("SET", "s", "7", "FOO"),
        ("SET", "s", "7", "EX", "0"), ("SET", "s", "7", "EX", "-1"), ("SET", "s", "7", "PX", "0"),
        ("SET", "s", "7", "EX", "abc"), ("SET", "s", "7", "PX", "1.5"), ("SET", "s", "7", "EXAT", "0"),
        ("SET", "s", "7", "EXAT", "1", "PXAT", "1"), ("SET", "s", "7", "EX", "9223372036854775807"),
        ("SET", "s", "8", "KEEPTTL"), ("GET", "s"), ("SET", "s", "9", "EX", "100", "GET"),
        ("SETNX", "s", "x"), ("SETNX", "w", "x"), ("GETSET", "w", "y"), ("GETSET", "nope", "y"),
        ("GETDEL", "w"), ("GETDEL", "w"), ("SETEX", "s", "0", "v"), ("SETEX", "s", "x", "v"),
        ("PSETEX", "s", "-1", "v"), ("SETEX", "s", "100", "v"), ("PSETEX", "s", "100000", "v"),
        ("GET", "s"), ("PING",),
    ], protocol)


def test_set_expiry_options_set_ttl(r: redis.Redis) -> None:
    now = time.time()
    r.set("ex", "v", ex=100)
    assert 95 <= r.ttl("ex") <= 100
    r.set("px", "v", px=100_000)
    assert 95_000 <= r.pttl("px") <= 100_000
    r.set("exat", "v", exat=int(now) + 100)
    assert 95 <= r.ttl("exat") <= 101
    r.set("pxat", "v", pxat=int(now * 1000) + 100_000)
    assert 95_000 <= r.pttl("pxat") <= 100_000
    r.set("ex", "v2", keepttl=True)
    assert r.get("ex") == b"v2" and 95 <= r.ttl("ex") <= 100
    r.set("ex", "v3")
    assert r.ttl("ex") == -1
    assert r.execute_command("SETEX", "se", 100, "v") in (True, b"OK", "OK") and 95 <= r.ttl("se") <= 100
    assert r.psetex("pse", 100_000, "v") is True and 95_000 <= r.pttl("pse") <= 100_000


def test_key_with_px_50_disappears(r: redis.Redis) -> None:
    assert r.set("short", "v", px=50) is True
    wait_until(lambda: r.get("short") is None, 5, "key with PX 50 to expire")
    assert r.exists("short") == 0
    assert r.ttl("short") == -2 and r.pttl("short") == -2
    assert r.dbsize() == 0
    r.set("short2", "v")
    assert r.pexpire("short2", 50) is True
    wait_until(lambda: r.exists("short2") == 0, 5, "key with PEXPIRE 50 to expire")
    assert b"short2" not in r.keys("*")


def test_ttl_pttl_persist_type(r: redis.Redis) -> None:
    assert r.ttl("none") == -2 and r.pttl("none") == -2
    r.set("k", "v")
    assert r.ttl("k") == -1 and r.pttl("k") == -1
    assert r.persist("k") is False
    r.expire("k", 100)
    assert r.persist("k") is True and r.ttl("k") == -1
    assert r.persist("none") is False
    assert r.type("k") in (b"string", "string")
    assert r.type("none") in (b"none", "none")


def test_expire_options_match_redis(kv, ref_port, protocol) -> None:
    assert_same_as_redis(kv.port(), ref_port, [
        ("EXPIRE", "k", "100"), ("SET", "k", "v"), ("TTL", "k"),
        ("EXPIRE", "k", "100", "XX"), ("EXPIRE", "k", "100", "GT"), ("EXPIRE", "k", "100", "LT"),
        ("EXPIRE", "k", "100", "NX"), ("EXPIRE", "k", "200", "NX"), ("EXPIRE", "k", "50", "GT"),
        ("EXPIRE", "k", "500", "GT"), ("EXPIRE", "k", "1000", "LT"), ("EXPIRE", "k", "300", "LT"),
        ("EXPIRE", "k", "300", "XX"), ("PEXPIRE", "k", "100", "gt"), ("PEXPIRE", "k", "100000", "lt"),
        ("EXPIRE", "k", "10", "NX", "XX"), ("EXPIRE", "k", "10", "GT", "LT"), ("EXPIRE", "k", "10", "NX", "GT"),
        ("EXPIRE", "k", "10", "FOO"), ("EXPIRE", "k", "x"), ("PEXPIREAT", "k", "abc"),
        ("EXPIREAT", "k", "99999999999", "XX"), ("PEXPIREAT", "k", "99999999999000", "NX"),
        ("PERSIST", "k"), ("TTL", "k"), ("PERSIST", "k"), ("EXPIRE", "k", "100", "XX"),
        ("EXPIRE", "k", "-1"), ("EXISTS", "k"), ("TTL", "k"),
        ("SET", "k", "v"), ("EXPIREAT", "k", "1"), ("GET", "k"), ("SET", "k", "v"), ("PEXPIREAT", "k", "1"),
        ("EXISTS", "k"), ("PEXPIRE", "nokey", "100"), ("EXPIREAT", "nokey", "99999999999"),
    ], protocol)


def test_expire_family_sets_ttl(r: redis.Redis) -> None:
    r.set("k", "v")
    assert r.expire("k", 100) is True and 95 <= r.ttl("k") <= 100
    assert r.pexpire("k", 200_000) is True and 195_000 <= r.pttl("k") <= 200_000
    assert r.expireat("k", int(time.time()) + 300) is True and 295 <= r.ttl("k") <= 301
    assert r.pexpireat("k", int(time.time() * 1000) + 400_000) is True and 395 <= r.ttl("k") <= 401
    assert r.expire("k", 1000, gt=True) is True and r.expire("k", 10, gt=True) is False
    assert r.expire("k", 10, lt=True) is True and 5 <= r.ttl("k") <= 10


def test_incr_family(r: redis.Redis) -> None:
    assert r.incr("n") == 1
    assert r.incrby("n", 10) == 11
    assert r.decr("n") == 10
    assert r.decrby("n", 20) == -10
    assert r.incrby("n", -5) == -15
    assert r.get("n") == b"-15"
    r.set("max", 2**63 - 1)
    with pytest.raises(redis.ResponseError, match=r"^increment or decrement would overflow$"):
        r.incr("max")
    r.set("min", -(2**63))
    with pytest.raises(redis.ResponseError, match=r"^increment or decrement would overflow$"):
        r.decr("min")
    r.set("s", "abc")
    with pytest.raises(redis.ResponseError, match=r"^value is not an integer or out of range$"):
        r.incr("s")
    assert r.get("max") == str(2**63 - 1).encode() and r.get("s") == b"abc"


def test_incr_errors_match_redis(kv, ref_port, protocol) -> None:
    assert_same_as_redis(kv.port(), ref_port, [
        ("INCR", "c"), ("INCRBY", "c", "41"), ("DECR", "c"), ("DECRBY", "c", "-10"), ("GET", "c"),
        ("INCRBY", "c", "x"), ("INCRBY", "c", "1.5"), ("INCRBY", "c", "9223372036854775808"),
        ("SET", "big", "9223372036854775807"), ("INCR", "big"), ("INCRBY", "big", "0"),
        ("SET", "small", "-9223372036854775808"), ("DECR", "small"), ("DECRBY", "small", "1"),
        ("DECRBY", "c", "-9223372036854775808"), ("INCRBY", "small", "-1"),
        ("SET", "z", "01"), ("INCR", "z"), ("SET", "z", " 1"), ("INCR", "z"), ("SET", "z", "1 "),
        ("INCR", "z"), ("SET", "z", ""), ("INCR", "z"), ("SET", "z", "+1"), ("INCR", "z"),
        ("SET", "z", "-0"), ("INCR", "z"), ("SET", "z", "99999999999999999999"), ("INCR", "z"),
        ("SET", "e", "5"), ("EXPIRE", "e", "100"), ("INCR", "e"), ("TTL", "e"),
    ], protocol)


def test_incrbyfloat(r: redis.Redis) -> None:
    assert r.incrbyfloat("f", 10.5) == 10.5
    assert r.incrbyfloat("f", 0.1) == pytest.approx(10.6)
    assert r.get("f") == b"10.6"
    r.set("g", "5.0e3")
    assert r.incrbyfloat("g", 0) == 5000
    assert r.get("g") == b"5000"
    r.set("s", "abc")
    with pytest.raises(redis.ResponseError, match=r"^value is not a valid float$"):
        r.incrbyfloat("s", 1)


def test_incrbyfloat_matches_redis(kv, ref_port, protocol) -> None:
    assert_same_as_redis(kv.port(), ref_port, [
        ("INCRBYFLOAT", "f", "10.5"), ("INCRBYFLOAT", "f", "0.1"), ("INCRBYFLOAT", "f", "-5"),
        ("INCRBYFLOAT", "f", "1e2"), ("GET", "f"), ("SET", "i", "3"), ("INCRBYFLOAT", "i", "1.5"),
        ("INCRBYFLOAT", "f", "abc"), ("INCRBYFLOAT", "f", "inf"), ("INCRBYFLOAT", "f", "nan"),
        ("SET", "s", "abc"), ("INCRBYFLOAT", "s", "1"), ("SET", "g", "5.0e3"), ("INCRBYFLOAT", "g", "0"),
        ("INCRBYFLOAT", "n", "3.0"), ("INCRBYFLOAT", "n", "0.0000001"), ("GET", "n"),
    ], protocol)


def test_append_strlen(r: redis.Redis) -> None:
    assert r.strlen("a") == 0
    assert r.append("a", "hello") == 5
    assert r.append("a", b" world\x00") == 12
    assert r.get("a") == b"hello world\x00"
    assert r.strlen("a") == 12
    r.set("a", "x", ex=100)
    assert r.append("a", "y") == 2 and 95 <= r.ttl("a") <= 100   # APPEND keeps the TTL


def test_mget_mset(r: redis.Redis) -> None:
    assert r.mset({"a": "1", "b": "2", "c": "3"}) is True
    assert r.mget("a", "missing", "c", "b") == [b"1", None, b"3", b"2"]
    assert r.mset({"a": "10", "d": "4"}) is True
    assert r.mget(["a", "d"]) == [b"10", b"4"]


def test_del_unlink_exists_counts(r: redis.Redis) -> None:
    r.mset({"a": 1, "b": 2, "c": 3, "d": 4})
    assert r.exists("a", "a", "b", "missing") == 3
    assert r.delete("a", "missing", "b") == 2
    assert r.delete("a") == 0
    assert r.unlink("c", "c", "nope") == 1
    assert r.exists("a", "b", "c", "d") == 1
    assert r.dbsize() == 1


def test_del_exists_counts_match_redis(kv, ref_port, protocol) -> None:
    assert_same_as_redis(kv.port(), ref_port, [
        ("MSET", "a", "1", "b", "2", "c", "3"), ("EXISTS", "a", "a", "b", "x"), ("DEL", "a", "x", "a"),
        ("UNLINK", "b", "c", "b"), ("EXISTS", "a", "b", "c"), ("DBSIZE",), ("TYPE", "a"),
        ("SET", "t", "v"), ("TYPE", "t"), ("STRLEN", "t"), ("APPEND", "t", "xyz"), ("GET", "t"),
        ("MGET", "t", "a", "t"), ("MSET", "t", "1", "t", "2"), ("GET", "t"),
    ], protocol)


def test_scan_covers_every_key_exactly_once(r: redis.Redis) -> None:
    keys = {f"user:{i}".encode() for i in range(600)} | {f"item:{i}".encode() for i in range(400)}
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.set(key, b"v")
    pipe.execute()
    seen = Counter(r.scan_iter(count=37))
    assert set(seen) == keys and max(seen.values()) == 1, "SCAN must return every key exactly once"
    users = Counter(r.scan_iter(match="user:*", count=100))
    assert set(users) == {k for k in keys if k.startswith(b"user:")} and max(users.values()) == 1
    assert list(r.scan_iter(match="nomatch*")) == []
    cursor, batch = r.scan(0, count=10)
    assert isinstance(cursor, int) and cursor != 0 and len(batch) >= 1


def test_scan_errors_match_redis(kv, ref_port) -> None:
    assert_same_as_redis(kv.port(), ref_port, [
        ("SCAN", "0", "COUNT", "0"), ("SCAN", "x"), ("SCAN", "0", "MATCH"), ("SCAN", "0", "FOO", "bar"),
        ("SCAN", "0", "COUNT", "abc"), ("SCAN", "0"),
    ])


def test_keys_patterns_like_redis(kv, ref_port) -> None:
    names = ["hello", "hallo", "hxllo", "hllo", "heeeello", "h*llo", "h?llo", "a[b", "x\\y", "user:1",
             "user:12", "user:2", "User:3"]
    patterns = ["*", "h?llo", "h*llo", "h[ae]llo", "h[^e]llo", "h[a-c]llo", "h\\*llo", "h\\?llo",
                "user:?", "user:[12]*", "[uU]ser:*", "a\\[b", "x\\\\y", "nomatch", "*llo", "h[!e]llo"]
    ours, theirs = redis.Redis(host=HOST, port=kv.port(), protocol=2), redis.Redis(host=HOST, port=ref_port)
    theirs.flushall()
    for client in (ours, theirs):
        client.mset({name: "v" for name in names})
    for pattern in patterns:
        assert sorted(ours.keys(pattern)) == sorted(theirs.keys(pattern)), pattern


def test_pipeline_1000_mixed_commands_in_order(kv, ref_port, protocol) -> None:
    """The same 1000-command pipeline to resp-kv and redis-server: identical reply lists."""
    def run(client: redis.Redis) -> list:
        pipe = client.pipeline(transaction=False)
        for i in range(250):
            key = f"k{i % 40}"
            pipe.set(key, i)
            pipe.incr(f"counter{i % 7}")
            pipe.get(key) if i % 3 else pipe.append(key, "x")
            if i % 50 == 49:
                pipe.incr("text")                   # an error reply in the middle of the batch
            elif i % 2:
                pipe.exists(key, "missing", key)
            else:
                pipe.delete(f"k{(i + 1) % 40}")
        return pipe.execute(raise_on_error=False)

    ours = kv.client(0, protocol=protocol)
    theirs = redis.Redis(host=HOST, port=ref_port, protocol=protocol)
    theirs.flushall()
    for client in (ours, theirs):
        client.set("text", "abc")
    got, expected = run(ours), run(theirs)
    assert len(got) == len(expected) == 1000
    for i, (a, b) in enumerate(zip(got, expected)):
        if isinstance(b, Exception):
            assert type(a) is type(b) and str(a) == str(b), (i, a, b)
        else:
            assert a == b, (i, a, b)


def test_binary_safe_keys_and_values(r: redis.Redis) -> None:
    every_byte = bytes(range(256))
    assert r.set(every_byte, every_byte * 4) is True
    assert r.get(every_byte) == every_byte * 4
    assert r.strlen(every_byte) == 1024
    singles = {bytes([i]): bytes([i]) * 3 + b"\r\n" for i in range(256)}
    assert r.mset(singles) is True
    assert r.mget(list(singles)) == list(singles.values())
    assert set(r.keys("*")) == set(singles) | {every_byte}
    assert r.exists(*singles) == 256
    assert r.append(b"\x00", b"\xff") == 6
    assert r.get(b"\x00") == b"\x00\x00\x00\r\n\xff"


def test_binary_values_roundtrip_exactly(r: redis.Redis) -> None:
    for i in range(256):
        value = bytes([i]) + b"\r\n$-1\r\n" + bytes([255 - i])
        r.set(f"b{i}", value)
        assert r.get(f"b{i}") == value


def test_large_value_10mb(kv) -> None:
    client = kv.client(0, protocol=2, socket_timeout=60)
    value = os.urandom(10 * 1024 * 1024)
    assert client.set("large", value) is True
    assert client.strlen("large") == len(value)
    assert client.get("large") == value
    assert client.ping() is True


# --- redis.asyncio -------------------------------------------------------------------------------

@pytest.mark.parametrize("proto", [2, 3])
def test_asyncio_client(kv, proto) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis(host=HOST, port=kv.port(), protocol=proto)
        try:
            assert await client.ping() is True
            assert await client.set("ak", "v", ex=100) is True
            assert await client.get("ak") == b"v"
            assert 95 <= await client.ttl("ak") <= 100
            assert await client.mget("ak", "none") == [b"v", None]
            # 100 concurrent INCRs over the pool: serialized per key at the coordinator, none lost
            results = await asyncio.gather(*(client.incr("ac") for _ in range(100)))
            assert sorted(results) == list(range(1, 101))
            async with client.pipeline(transaction=False) as pipe:
                for i in range(200):
                    pipe.set(f"ap{i}", i)
                    pipe.get(f"ap{i}")
                replies = await pipe.execute()
            assert replies[1::2] == [str(i).encode() for i in range(200)]
            with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get' command"):
                await client.execute_command("GET")
            assert await client.dbsize() == 202
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_asyncio_many_connections(kv) -> None:
    async def scenario() -> None:
        clients = [redis.asyncio.Redis(host=HOST, port=kv.port(), protocol=3 if i % 2 else 2)
                   for i in range(20)]
        try:
            await asyncio.gather(*(c.set(f"conn{i}", i) for i, c in enumerate(clients)))
            values = await asyncio.gather(*(c.get(f"conn{(i + 1) % 20}") for i, c in enumerate(clients)))
            assert values == [str((i + 1) % 20).encode() for i in range(20)]
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    asyncio.run(scenario())


# --- REPAIR (custom) -----------------------------------------------------------------------------

REPAIR_FIELDS = (b"peers", b"ranges_compared", b"ranges_differing", b"keys_sent", b"keys_received",
                 b"bytes_sent", b"bytes_received", b"duration_ms")


def test_repair_reply_fields_resp2_and_resp3(kv) -> None:
    raw = Raw(kv.port())
    raw.call("SET", "rk", "v")
    flat = raw.value("REPAIR")
    assert isinstance(flat, list) and len(flat) % 2 == 0, flat
    fields = dict(zip(flat[::2], flat[1::2]))
    for name in REPAIR_FIELDS:
        assert isinstance(fields.get(name), int) and fields[name] >= 0, (name, fields)
    assert fields[b"peers"] == 0                          # a cluster of one has nobody to compare with
    one_key = raw.value("REPAIR", "rk")
    assert isinstance(one_key, list) and b"keys_sent" in one_key[::2], one_key

    raw3 = Raw(kv.port(), protocol=3)
    reply = raw3.call("REPAIR")
    assert reply.startswith(b"%"), reply
    assert set(REPAIR_FIELDS) <= set(decode(reply))
    assert raw3.call("GET", "rk") == b"$1\r\nv\r\n"
