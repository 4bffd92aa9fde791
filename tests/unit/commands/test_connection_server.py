"""Connection and server commands against the FakeBackend: exact reply bytes."""

from __future__ import annotations

import asyncio
import time

import hiredis
import pytest

from resp_kv.commands import COMMANDS, Dispatcher
from resp_kv.commands.spec import Session
from resp_kv.config import Config, ServerConfig
from resp_kv.server_state import ServerState
from tests.helpers.fake_backend import FakeBackend


def make(config: Config | None = None, state: ServerState | None = None) -> Dispatcher:
    config = config or Config()
    state = state or ServerState(config)
    session = Session(backend=FakeBackend(), server=state, config=config, address="127.0.0.1:5")
    session.authenticated = config.server.requirepass is None
    state.client_connected(session)
    return Dispatcher(session)


def run(d: Dispatcher, *words: bytes | str) -> bytes:
    args = [w.encode() if isinstance(w, str) else w for w in words]
    return asyncio.run(d.execute(args))


def decode(data: bytes):
    reader = hiredis.Reader()
    reader.feed(data)
    return reader.gets()


# ----------------------------------------------------------------------------- connection

def test_connection_ping_and_echo():
    d = make()
    assert run(d, "PING") == b"+PONG\r\n"
    assert run(d, "PING", "hi") == b"$2\r\nhi\r\n"
    assert run(d, "PING", "a", "b") == b"-ERR wrong number of arguments for 'ping' command\r\n"
    assert run(d, "ECHO", "x\r\ny") == b"$4\r\nx\r\ny\r\n"


def test_connection_quit_marks_session_closing():
    d = make()
    assert run(d, "QUIT") == b"+OK\r\n"
    assert d.session.closing


def test_connection_select():
    d = make()
    assert run(d, "SELECT", "0") == b"+OK\r\n"
    assert run(d, "SELECT", "1") == b"-ERR DB index is out of range\r\n"
    assert run(d, "SELECT", "x") == b"-ERR value is not an integer or out of range\r\n"


def test_connection_hello_default_and_3():
    d = make()
    reply = run(d, "HELLO")
    assert reply.startswith(b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n")
    client_id = d.session.client_id
    reply = run(d, "HELLO", "3")
    assert reply == (
        b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n"
        b"$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:" + str(client_id).encode() + b"\r\n"
        b"$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
        b"$7\r\nmodules\r\n*0\r\n")
    assert d.session.protocol == 3
    assert run(d, "HELLO", "2").startswith(b"*14\r\n")


def test_connection_hello_errors():
    d = make()
    assert run(d, "HELLO", "4") == b"-NOPROTO unsupported protocol version\r\n"
    assert run(d, "HELLO", "x") == (
        b"-ERR Protocol version is not an integer or out of range\r\n")
    assert run(d, "HELLO", "3", "BOGUS") == b"-ERR Syntax error in HELLO option 'BOGUS'\r\n"
    assert d.session.protocol == 2


def test_connection_hello_setname_and_auth():
    config = Config(server=ServerConfig(requirepass="pw"))
    d = make(config)
    assert run(d, "HELLO", "3").startswith(b"-NOAUTH HELLO must be called")
    assert run(d, "HELLO", "3", "AUTH", "default", "bad") == (
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
    assert run(d, "HELLO", "3", "AUTH", "default", "pw", "SETNAME", "me").startswith(b"%7")
    assert d.session.authenticated and d.session.name == b"me"


def test_connection_auth_without_password_configured():
    d = make()
    assert run(d, "AUTH", "x") == (
        b"-ERR AUTH <password> called without any password configured for the default user. "
        b"Are you sure your configuration is correct?\r\n")
    assert run(d, "AUTH", "default", "anything") == b"+OK\r\n"
    assert run(d, "AUTH", "other", "anything") == (
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
    assert run(d, "AUTH", "a", "b", "c") == b"-ERR syntax error\r\n"


def test_connection_client_subcommands():
    d = make()
    assert run(d, "CLIENT", "ID") == b":%d\r\n" % d.session.client_id
    assert run(d, "CLIENT", "GETNAME") == b"$-1\r\n"
    assert run(d, "CLIENT", "SETNAME", "worker-1") == b"+OK\r\n"
    assert run(d, "client", "getname") == b"$8\r\nworker-1\r\n"
    assert run(d, "CLIENT", "SETNAME", "a b") == (
        b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n")
    assert run(d, "CLIENT", "SETINFO", "LIB-NAME", "redis-py") == b"+OK\r\n"
    assert run(d, "CLIENT", "SETINFO", "LIB-VER", "5.0") == b"+OK\r\n"
    assert run(d, "CLIENT", "SETINFO", "COLOR", "red") == b"-ERR Unrecognized option 'COLOR'\r\n"
    info = decode(run(d, "CLIENT", "INFO"))
    assert info.startswith(b"id=%d addr=127.0.0.1:5 " % d.session.client_id)
    assert b" name=worker-1 " in info and b"lib-name=redis-py lib-ver=5.0" in info
    listing = decode(run(d, "CLIENT", "LIST"))
    assert listing.count(b"\n") == 1 and b"cmd=client" in listing
    assert decode(run(d, "CLIENT", "LIST", "TYPE", "pubsub")) == b""
    assert decode(run(d, "CLIENT", "LIST", "ID", str(d.session.client_id))) == listing
    assert run(d, "CLIENT", "KILL", "x") == (
        b"-ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n")
    assert run(d, "CLIENT", "SETNAME") == (
        b"-ERR wrong number of arguments for 'client|setname' command\r\n")
    assert decode(run(d, "CLIENT", "HELP"))[0].startswith(b"CLIENT <subcommand>")


def test_connection_reset():
    d = make()
    run(d, "HELLO", "3", "SETNAME", "n")
    assert run(d, "RESET") == b"+RESET\r\n"
    assert d.session.protocol == 2 and d.session.name == b""


# ---------------------------------------------------------------------------------- server

def test_server_command_count_and_list():
    d = make()
    assert run(d, "COMMAND", "COUNT") == b":%d\r\n" % len(COMMANDS)
    names = decode(run(d, "COMMAND", "LIST"))
    assert sorted(names) == sorted(n.lower() for n in COMMANDS)
    assert decode(run(d, "COMMAND", "LIST", "FILTERBY", "PATTERN", "v*")) == [b"vclock"]


def test_server_command_info_shape_for_every_command():
    d = make()
    entries = decode(run(d, "COMMAND"))
    assert len(entries) == len(COMMANDS)
    for entry in entries:
        name, arity, flags, first, last, step, categories, tips, keyspecs, subs = entry
        assert isinstance(name, bytes) and isinstance(arity, int)
        assert isinstance(flags, list) and isinstance(categories, list)
        assert all(c.startswith(b"@") for c in categories)
        assert isinstance(keyspecs, list) and isinstance(subs, list)
    get = decode(run(d, "COMMAND", "INFO", "get", "nosuch", "vclock", "repair"))
    assert get[0][:6] == [b"get", 2, [b"readonly", b"fast"], 1, 1, 1]
    assert get[1] is None
    assert get[2][0] == b"vclock" and get[3][0] == b"repair"


def test_server_command_info_resp3_uses_sets_and_maps():
    d = make()
    run(d, "HELLO", "3")
    reply = run(d, "COMMAND", "INFO", "get")
    assert reply.startswith(b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n")


def test_server_command_docs_for_every_command():
    d = make()
    docs = decode(run(d, "COMMAND", "DOCS"))
    as_dict = dict(zip(docs[::2], docs[1::2]))
    assert set(as_dict) == {n.lower() for n in COMMANDS}
    for name, fields in as_dict.items():
        fields = dict(zip(fields[::2], fields[1::2]))
        assert {b"summary", b"since", b"group", b"complexity"} <= set(fields), name
    one = decode(run(d, "COMMAND", "DOCS", "client"))
    client = dict(zip(one[1][::2], one[1][1::2]))
    assert b"subcommands" in client
    assert decode(run(d, "COMMAND", "DOCS", "nosuch")) == []


def test_server_command_unknown_subcommand():
    assert run(make(), "COMMAND", "NOPE") == (
        b"-ERR unknown subcommand 'NOPE'. Try COMMAND HELP.\r\n")


def _info(d: Dispatcher, *sections: str) -> dict[str, dict[str, str]]:
    text = decode(run(d, "INFO", *sections)).decode()
    parsed: dict[str, dict[str, str]] = {}
    current = None
    for line in text.split("\r\n"):
        if line.startswith("# "):
            current = parsed.setdefault(line[2:], {})
        elif line:
            key, _, value = line.partition(":")
            current[key] = value
    return parsed


def test_server_info_default_sections_and_fields():
    d = make()
    info = _info(d)
    assert list(info) == ["Server", "Clients", "Memory", "Persistence", "Stats", "Replication",
                          "CPU", "Storage", "Cluster", "Keyspace"]
    server = info["Server"]
    assert server["redis_version"] == "7.2.0" and server["redis_mode"] == "standalone"
    for field in ("resp_kv_version", "os", "arch_bits", "process_id", "run_id", "tcp_port",
                  "uptime_in_seconds"):
        assert field in server
    assert info["Clients"]["connected_clients"] == "1"
    assert int(info["Memory"]["used_memory"]) > 0 and info["Memory"]["maxmemory"] == "0"
    assert info["Persistence"]["loading"] == "0" and info["Persistence"]["aof_enabled"] == "0"
    assert info["Replication"]["role"] == "master"
    assert info["Cluster"]["cluster_enabled"] == "0"
    assert info["Cluster"]["node_id"] == "fake"
    assert info["Storage"]["fsync_policy"] == "everysec"
    assert "used_cpu_sys" in info["CPU"]
    assert int(info["Stats"]["total_commands_processed"]) >= 0


def test_server_info_selected_sections():
    d = make()
    run(d, "SET", "k", "v")
    assert list(_info(d, "server")) == ["Server"]
    assert list(_info(d, "CLUSTER", "keyspace")) == ["Cluster", "Keyspace"]
    assert _info(d, "keyspace")["Keyspace"] == {"db0": "keys=1,expires=0,avg_ttl=0"}
    assert len(_info(d, "everything")) == 10 and len(_info(d, "all")) == 10
    assert run(d, "INFO", "nosuch") == b"$0\r\n\r\n"


def test_server_info_text_ends_with_crlf():
    assert decode(run(make(), "INFO", "replication")).endswith(b"\r\n")


def test_server_config_get():
    d = make()
    assert decode(run(d, "CONFIG", "GET", "save")) == [b"save", b""]
    assert decode(run(d, "CONFIG", "GET", "appendonly")) == [b"appendonly", b"no"]
    assert decode(run(d, "CONFIG", "GET", "databases")) == [b"databases", b"1"]
    assert decode(run(d, "CONFIG", "GET", "maxmemory")) == [b"maxmemory", b"0"]
    assert decode(run(d, "CONFIG", "GET", "proto-max-bulk-len")) == [
        b"proto-max-bulk-len", b"536870912"]
    many = decode(run(d, "CONFIG", "GET", "*"))
    assert len(many) > 20 and dict(zip(many[::2], many[1::2]))[b"port"] == b"6379"
    assert decode(run(d, "CONFIG", "GET", "MAXMEM*")) == [b"maxmemory", b"0",
                                                            b"maxmemory-policy", b"noeviction"]
    assert decode(run(d, "CONFIG", "GET", "nosuch")) == []
    run(d, "HELLO", "3")
    assert run(d, "CONFIG", "GET", "save") == b"%1\r\n$4\r\nsave\r\n$0\r\n\r\n"


def test_server_config_get_hides_requirepass():
    d = make(Config(server=ServerConfig(requirepass="topsecret")))
    run(d, "AUTH", "topsecret")
    assert b"topsecret" not in run(d, "CONFIG", "GET", "*")


def test_server_config_set_and_resetstat():
    d = make()
    assert run(d, "CONFIG", "SET", "save", "") == b"+OK\r\n"
    assert run(d, "CONFIG", "SET", "timeout", "30") == b"+OK\r\n"
    assert decode(run(d, "CONFIG", "GET", "timeout")) == [b"timeout", b"30"]
    assert run(d, "CONFIG", "SET", "port", "1") == (
        b"-ERR CONFIG SET failed (possibly related to argument 'port') - "
        b"can't set immutable config\r\n")
    assert run(d, "CONFIG", "SET", "bogus", "1") == (
        b"-ERR Unknown option or number of arguments for CONFIG SET - 'bogus'\r\n")
    assert run(d, "CONFIG", "SET", "appendonly", "yes").startswith(b"-ERR CONFIG SET failed")
    run(d, "PING")
    assert run(d, "CONFIG", "RESETSTAT") == b"+OK\r\n"
    assert _info(d, "stats")["Stats"]["total_commands_processed"] == "1"
    assert run(d, "CONFIG", "NOPE") == b"-ERR unknown subcommand 'NOPE'. Try CONFIG HELP.\r\n"
    assert run(d, "CONFIG", "GET") == (
        b"-ERR wrong number of arguments for 'config|get' command\r\n")


def test_server_dbsize_flushall_flushdb():
    d = make()
    run(d, "SET", "a", "1")
    run(d, "SET", "b", "2")
    assert run(d, "DBSIZE") == b":2\r\n"
    assert run(d, "FLUSHALL") == b"+OK\r\n"
    assert run(d, "DBSIZE") == b":0\r\n"
    run(d, "SET", "a", "1")
    assert run(d, "FLUSHDB", "ASYNC") == b"+OK\r\n"
    assert run(d, "FLUSHALL", "SYNC") == b"+OK\r\n"
    assert run(d, "FLUSHALL", "NOW") == b"-ERR syntax error\r\n"
    assert run(d, "DBSIZE") == b":0\r\n"


def test_server_time():
    seconds, micros = decode(run(make(), "TIME"))
    assert abs(int(seconds) - time.time()) < 5 and 0 <= int(micros) < 1_000_000


def test_server_save_bgsave_lastsave():
    d = make()
    assert run(d, "SAVE") == b"+OK\r\n"
    assert run(d, "BGSAVE") == b"+Background saving started\r\n"
    assert abs(decode(run(d, "LASTSAVE")) - time.time()) < 5


def test_server_shutdown_without_hook_is_refused():
    assert run(make(), "SHUTDOWN") == b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n"


def test_server_shutdown_calls_hook():
    config = Config()
    state = ServerState(config)
    calls = []
    state.shutdown_hook = lambda: calls.append(1)
    d = make(config, state)
    assert run(d, "SHUTDOWN", "NOSAVE") == b""                  # Redis closes without a reply
    assert calls == [1] and d.session.closing


@pytest.mark.parametrize("words", [
    ("CLIENT", "NO-EVICT", "on"), ("CONFIG", "REWRITE"), ("COMMAND", "GETKEYS", "get", "k"),
    ("MULTI",), ("WAIT", "0", "0"), ("SUBSCRIBE", "c"),
])
def test_server_unsupported_commands_get_errors(words):
    assert run(make(), *words).startswith(b"-ERR ")
