"""Server commands: COMMAND INFO CONFIG DBSIZE TIME FLUSHALL FLUSHDB SAVE BGSAVE LASTSAVE SHUTDOWN.

Not the network server (`resp_kv/server.py`) and not the store's statistics (`Backend.info()`).

Persistence: there is no RDB snapshot and no AOF. Every write goes through the LSM engine's
write-ahead log and is as durable as `--fsync` promises before it is acknowledged, so SAVE and
BGSAVE have nothing to do: they answer like Redis and only move LASTSAVE. INFO persistence says
`aof_enabled:0`, and `CONFIG GET save` is empty, so tools do not wait for a snapshot.
FLUSHALL and FLUSHDB (one database) delete every key cluster-wide; ASYNC and SYNC both block
until the cluster answered.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time

from resp_kv import __version__ as RESP_KV_VERSION
from resp_kv.commands.glob import match
from resp_kv.commands.spec import CommandSpec, Session
from resp_kv.errors import CommandError, SyntaxErr, UnknownSubcommand
from resp_kv.reply import NO_REPLY, OK, Map, Set, SimpleString

__all__ = ["SPECS", "info_text"]

REDIS_VERSION = "7.2.0"


# --------------------------------------------------------------------------------- COMMAND

def _table(session: Session) -> dict[bytes, CommandSpec]:
    from resp_kv.commands import command_table  # the table is assembled from this module
    return command_table(session.config)


_GROUP_CATEGORY = {"string": "@string", "generic": "@keyspace", "connection": "@connection",
                   "server": "@admin", "cluster": "@admin"}


def _categories(spec: CommandSpec) -> list[SimpleString]:
    flags = spec.flags
    categories = []
    if "write" in flags:
        categories.append("@write")
    if "readonly" in flags:
        categories.append("@read")
    group = _GROUP_CATEGORY.get(spec.group)
    if group and group not in categories:
        categories.append(group)
    if "admin" in flags and "@admin" not in categories:
        categories.append("@admin")
    if "@admin" in categories:
        categories.append("@dangerous")
    categories.append("@fast" if "fast" in flags else "@slow")
    return [SimpleString(c) for c in categories]


def _key_specs(spec: CommandSpec) -> list[Map]:
    if spec.first_key <= 0:
        return []
    access = ["RW", "update"] if "write" in spec.flags else ["RO", "access"]
    last = spec.last_key if spec.last_key < 0 else spec.last_key - spec.first_key
    return [Map({
        b"flags": Set(SimpleString(a) for a in access),
        b"begin_search": Map({b"type": b"index", b"spec": Map({b"index": spec.first_key})}),
        b"find_keys": Map({b"type": b"range", b"spec": Map({
            b"lastkey": last, b"keystep": spec.key_step or 1, b"limit": 0})}),
    })]


def _command_info(spec: CommandSpec) -> list:
    """One COMMAND INFO entry in the Redis 7 shape (10 fields)."""
    return [
        spec.name.lower(), spec.arity, Set(SimpleString(f) for f in spec.flags),
        spec.first_key, spec.last_key, spec.key_step, Set(_categories(spec)), [],
        _key_specs(spec), [_command_info(sub) for sub in spec.subcommands],
    ]


def _command_docs(spec: CommandSpec) -> Map:
    docs = Map({
        b"summary": (spec.summary or spec.name.decode()).encode(),
        b"since": spec.since.encode(),
        b"group": spec.group.encode(),
        b"complexity": b"O(1)" if "fast" in spec.flags else b"O(N)",
    })
    if spec.subcommands:
        docs[b"subcommands"] = Map({sub.name.lower(): _command_docs(sub)
                                    for sub in spec.subcommands})
    return docs


def _lookup(table: dict[bytes, CommandSpec], name: bytes) -> CommandSpec | None:
    parent, _, sub = name.upper().partition(b"|")
    spec = table.get(parent)
    if spec is None or not sub:
        return spec
    return next((s for s in spec.subcommands if s.name == parent + b"|" + sub), None)


async def command(session: Session, args: list[bytes]) -> object:
    table = _table(session)
    if not args:
        return [_command_info(spec) for spec in table.values()]
    sub, rest = args[0].upper(), args[1:]
    if sub == b"COUNT" and not rest:
        return len(table)
    if sub == b"LIST":
        if rest and not (len(rest) == 3 and rest[0].upper() == b"FILTERBY"):
            raise SyntaxErr()
        names = [spec.name.lower() for spec in table.values()]
        if rest:
            kind, value = rest[1].upper(), rest[2]
            if kind == b"PATTERN":
                names = [n for n in names if match(value, n, nocase=True)]
            elif kind == b"ACLCAT":
                wanted = "@" + value.decode(errors="replace").lower()
                names = [spec.name.lower() for spec in table.values()
                         if wanted in {c.text for c in _categories(spec)}]
            elif kind == b"MODULE":
                names = []
            else:
                raise SyntaxErr()
        return names
    if sub == b"INFO":
        specs = table.values() if not rest else [_lookup(table, name) for name in rest]
        return [None if spec is None else _command_info(spec) for spec in specs]
    if sub == b"DOCS":
        if not rest:
            return Map({spec.name.lower(): _command_docs(spec) for spec in table.values()})
        docs = Map()
        for name in rest:
            spec = _lookup(table, name)
            if spec is not None:
                docs[spec.name.lower()] = _command_docs(spec)
        return docs
    if sub == b"HELP" and not rest:
        return [SimpleString(line) for line in (
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)", "    Return details about all Redis commands.",
            "COUNT", "    Return the total number of commands in this Redis server.",
            "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "HELP", "    Print this help.")]
    if sub in (b"COUNT", b"HELP"):
        raise CommandError(f"wrong number of arguments for 'command|{sub.lower().decode()}' "
                           "command")
    raise UnknownSubcommand(b"COMMAND", args[0])


# ------------------------------------------------------------------------------------ INFO

def _human(size: int) -> str:
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.2f}{unit}"
    return f"{size}B"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _section_server(session: Session) -> dict:
    state, config = session.server, session.config
    uname = platform.uname()
    uptime = state.uptime_s
    return {
        "redis_version": REDIS_VERSION, "resp_kv_version": RESP_KV_VERSION,
        "redis_git_sha1": "00000000", "redis_git_dirty": 0, "redis_build_id": "0",
        "redis_mode": "standalone", "os": f"{uname.system} {uname.release} {uname.machine}",
        "arch_bits": 64 if sys.maxsize > 2**32 else 32, "monotonic_clock": "POSIX clock_gettime",
        "multiplexing_api": "epoll", "atomicvar_api": "c11-builtin",
        "gcc_version": "0.0.0", "python_version": platform.python_version(),
        "process_id": os.getpid(), "process_supervised": "no", "run_id": state.run_id,
        "tcp_port": config.server.port, "server_time_usec": time.time_ns() // 1000,
        "uptime_in_seconds": uptime, "uptime_in_days": uptime // 86400, "hz": 10,
        "configured_hz": 10, "lru_clock": int(time.time()) & ((1 << 24) - 1),
        "executable": sys.executable, "config_file": "", "io_threads_active": 0,
    }


def _section_clients(session: Session) -> dict:
    return {
        "connected_clients": session.server.connected_clients, "cluster_connections": 0,
        "maxclients": 10000, "client_recent_max_input_buffer": 0,
        "client_recent_max_output_buffer": 0, "blocked_clients": 0, "tracking_clients": 0,
        "clients_in_timeout_table": 0, "total_blocking_keys": 0,
    }


def _section_memory(session: Session) -> dict:
    rss = _rss_bytes()
    peak = max(rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 0
    return {
        "used_memory": rss, "used_memory_human": _human(rss), "used_memory_rss": rss,
        "used_memory_rss_human": _human(rss), "used_memory_peak": peak,
        "used_memory_peak_human": _human(peak), "total_system_memory": total,
        "total_system_memory_human": _human(total), "maxmemory": 0, "maxmemory_human": "0B",
        "maxmemory_policy": "noeviction", "mem_fragmentation_ratio": "1.00",
        "mem_allocator": "libc", "lazyfree_pending_objects": 0,
    }


def _section_persistence(session: Session) -> dict:
    state = session.server
    return {
        "loading": 0, "async_loading": 0, "current_cow_peak": 0, "current_cow_size": 0,
        "rdb_changes_since_last_save": 0, "rdb_bgsave_in_progress": 0,
        "rdb_last_save_time": state.last_save_time, "rdb_last_bgsave_status": "ok",
        "rdb_last_bgsave_time_sec": -1, "rdb_current_bgsave_time_sec": -1,
        "aof_enabled": 0, "aof_rewrite_in_progress": 0, "aof_rewrite_scheduled": 0,
        "aof_last_rewrite_time_sec": -1, "aof_current_rewrite_time_sec": -1,
        "aof_last_bgrewrite_status": "ok", "aof_last_write_status": "ok",
        "module_fork_in_progress": 0,
    }


def _section_stats(session: Session) -> dict:
    state = session.server
    now, processed = time.monotonic(), state.total_commands_processed
    last = state._ops_sample
    ops = 0
    if last is not None and now > last[0]:
        ops = int((processed - last[1]) / (now - last[0]))
    state._ops_sample = (now, processed)
    return {
        "total_connections_received": state.total_connections_received,
        "total_commands_processed": processed, "instantaneous_ops_per_sec": ops,
        "total_net_input_bytes": state.total_net_input_bytes,
        "total_net_output_bytes": state.total_net_output_bytes,
        "rejected_connections": state.rejected_connections, "sync_full": 0,
        "sync_partial_ok": 0, "sync_partial_err": 0, "expired_keys": 0, "evicted_keys": 0,
        "keyspace_hits": state.keyspace_hits, "keyspace_misses": state.keyspace_misses,
        "pubsub_channels": 0, "pubsub_patterns": 0, "total_error_replies": state.total_error_replies,
        "unexpected_error_replies": state.unexpected_errors,
    }


def _section_replication(session: Session) -> dict:
    return {
        "role": "master", "connected_slaves": 0, "master_failover_state": "no-failover",
        "master_replid": session.server.run_id, "master_replid2": "0" * 40,
        "master_repl_offset": 0, "second_repl_offset": -1, "repl_backlog_active": 0,
        "repl_backlog_size": 0, "repl_backlog_first_byte_offset": 0,
        "repl_backlog_histlen": 0,
    }


def _section_cpu(session: Session) -> dict:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "used_cpu_sys": f"{own.ru_stime:.6f}", "used_cpu_user": f"{own.ru_utime:.6f}",
        "used_cpu_sys_children": f"{children.ru_stime:.6f}",
        "used_cpu_user_children": f"{children.ru_utime:.6f}",
    }


def _backend_section(name: str):
    def section(session: Session, backend_info: dict) -> dict:
        return dict(backend_info.get(name, {}))
    return section


# name -> (header, builder); order is the INFO order. Backend sections take backend.info().
_SECTIONS = {
    "server": ("Server", _section_server), "clients": ("Clients", _section_clients),
    "memory": ("Memory", _section_memory), "persistence": ("Persistence", _section_persistence),
    "stats": ("Stats", _section_stats), "replication": ("Replication", _section_replication),
    "cpu": ("CPU", _section_cpu), "storage": ("Storage", None),
    "cluster": ("Cluster", None), "keyspace": ("Keyspace", None),
}
_BACKEND_SECTIONS = ("storage", "cluster", "keyspace")


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, float):
        return f"{value:.2f}" if not value.is_integer() else str(int(value))
    return str(value)


def info_text(session: Session, sections: list[str]) -> bytes:
    """Render the INFO reply for lower-case section names ([] = default)."""
    wanted = [s for s in sections if s not in ("all", "everything", "default")]
    if not sections or len(wanted) < len(sections):
        names = list(_SECTIONS)
    else:
        names = [s for s in _SECTIONS if s in wanted]
    backend_info: dict = {}
    if any(name in _BACKEND_SECTIONS for name in names):
        try:
            backend_info = session.backend.info() or {}
        except Exception:           # INFO must answer even when the store cannot
            import logging
            logging.getLogger("resp_kv.commands").exception("backend.info() failed")
    out: list[str] = []
    for name in names:
        header, builder = _SECTIONS[name]
        if builder is not None:
            fields = builder(session)
        elif name == "cluster":
            fields = {"cluster_enabled": 0, **backend_info.get("cluster", {})}
        else:
            fields = dict(backend_info.get(name, {}))
        if out:
            out.append("")
        out.append(f"# {header}")
        out.extend(f"{key}:{_format_value(value)}" for key, value in fields.items())
    return ("\r\n".join(out) + "\r\n").encode() if out else b""


async def info(session: Session, args: list[bytes]) -> object:
    return info_text(session, [a.decode(errors="replace").lower() for a in args])


# ---------------------------------------------------------------------------------- CONFIG

def _parameters(session: Session) -> dict[str, str]:
    config = session.config
    server, storage, cluster = config.server, config.storage, config.cluster
    parameters = {
        "bind": server.bind, "port": str(server.port),
        "requirepass": "" if server.requirepass is None else "********",
        "save": "", "appendonly": "no", "appendfsync": storage.fsync, "databases": "1",
        "dir": str(storage.data_dir), "dbfilename": "", "maxmemory": "0",
        "maxmemory-policy": "noeviction", "maxclients": "10000", "timeout": "0",
        "tcp-keepalive": "300", "protected-mode": "no", "loglevel": "notice", "hz": "10",
        "proto-max-bulk-len": str(server.proto_max_bulk_len),
        "client-query-buffer-limit": str(server.client_query_buffer_limit),
        "cluster-enabled": "no", "io-threads": "1", "notify-keyspace-events": "",
        "slowlog-log-slower-than": "10000", "slowlog-max-len": "128",
        "lua-time-limit": "5000", "busy-reply-threshold": "5000", "replica-read-only": "yes",
        "lazyfree-lazy-user-del": "no", "latency-tracking": "yes",
        "replicas": str(cluster.replicas), "read-quorum": str(cluster.read_quorum),
        "write-quorum": str(cluster.write_quorum), "vnodes": str(cluster.vnodes),
        "node-id": cluster.node_id, "fsync": storage.fsync,
    }
    parameters.update(session.server.config_overrides)
    return parameters


# Accepted by CONFIG SET and only remembered (reported by CONFIG GET): nothing in resp-kv
# changes behaviour on them, but tools and test suites set them routinely.
_SOFT_SETTABLE = frozenset({
    "save", "appendonly", "timeout", "loglevel", "notify-keyspace-events", "hz",
    "slowlog-log-slower-than", "slowlog-max-len", "maxmemory", "maxmemory-policy",
    "lazyfree-lazy-user-del", "latency-tracking", "tcp-keepalive", "lua-time-limit",
    "busy-reply-threshold", "maxclients",
})
_FIXED_VALUES = {"appendonly": {"no"}, "maxmemory": {"0"}}


async def config(session: Session, args: list[bytes]) -> object:
    sub, rest = args[0].upper(), args[1:]
    if sub == b"GET" and rest:
        parameters = _parameters(session)
        found = Map()
        for pattern in rest:
            for name, value in parameters.items():
                if match(pattern, name.encode(), nocase=True):
                    found[name.encode()] = value.encode()
        return found
    if sub == b"SET" and rest and len(rest) % 2 == 0:
        return _config_set(session, rest)
    if sub == b"RESETSTAT" and not rest:
        session.server.reset_stats()
        return OK
    if sub == b"REWRITE" and not rest:
        raise CommandError("The server is running without a config file")
    if sub == b"HELP" and not rest:
        return [SimpleString(line) for line in (
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>", "    Set the configuration <directive> to <value>.",
            "RESETSTAT", "    Reset statistics reported by the INFO command.",
            "REWRITE", "    Rewrite the configuration file.",
            "HELP", "    Print this help.")]
    if sub in (b"GET", b"SET", b"RESETSTAT", b"REWRITE", b"HELP"):
        raise CommandError(f"wrong number of arguments for 'config|{sub.lower().decode()}' "
                           "command")
    raise UnknownSubcommand(b"CONFIG", args[0])


def _config_set(session: Session, args: list[bytes]) -> object:
    known = _parameters(session)
    updates: dict[str, str] = {}
    for i in range(0, len(args), 2):
        name = args[i].decode(errors="replace").lower()
        value = args[i + 1].decode(errors="replace")
        if name not in known:
            raise CommandError(f"Unknown option or number of arguments for CONFIG SET - '{name}'")
        if name not in _SOFT_SETTABLE:
            raise CommandError(f"CONFIG SET failed (possibly related to argument '{name}') - "
                               "can't set immutable config")
        allowed = _FIXED_VALUES.get(name)
        if allowed is not None and value.lower() not in allowed:
            raise CommandError(f"CONFIG SET failed (possibly related to argument '{name}') - "
                               f"resp-kv supports only {name} {sorted(allowed)[0]}")
        updates[name] = value
    session.server.config_overrides.update(updates)
    return OK


# ------------------------------------------------------------------------------ the others

async def dbsize(session: Session, args: list[bytes]) -> object:
    return await session.backend.dbsize()


async def time_(session: Session, args: list[bytes]) -> object:
    now_us = time.time_ns() // 1000
    return [str(now_us // 1_000_000).encode(), str(now_us % 1_000_000).encode()]


async def flushall(session: Session, args: list[bytes]) -> object:
    if len(args) > 1 or (args and args[0].upper() not in (b"ASYNC", b"SYNC")):
        raise SyntaxErr()
    await session.backend.flushall()
    return OK


async def save(session: Session, args: list[bytes]) -> object:
    session.server.last_save_time = int(time.time())
    return OK


async def bgsave(session: Session, args: list[bytes]) -> object:
    if args and not (len(args) == 1 and args[0].upper() == b"SCHEDULE"):
        raise SyntaxErr()
    session.server.last_save_time = int(time.time())
    return SimpleString("Background saving started")


async def lastsave(session: Session, args: list[bytes]) -> object:
    return session.server.last_save_time


async def shutdown(session: Session, args: list[bytes]) -> object:
    for word in args:
        if word.upper() not in (b"NOSAVE", b"SAVE", b"NOW", b"FORCE", b"ABORT"):
            raise SyntaxErr()
    if any(word.upper() == b"ABORT" for word in args):
        raise CommandError("No shutdown in progress.")
    hook = getattr(session.server, "shutdown_hook", None)
    if hook is None:
        raise CommandError("Errors trying to SHUTDOWN. Check logs.")
    hook()
    session.closing = True
    return NO_REPLY                             # Redis closes without replying


def _spec(name: str, arity: int, handler, flags: tuple[str, ...], summary: str, since: str,
          subcommands: tuple[CommandSpec, ...] = ()) -> CommandSpec:
    return CommandSpec(name=name.encode(), arity=arity, handler=handler, flags=flags,
                       group="server", summary=summary, since=since, subcommands=subcommands)


def _subs(parent: str, handler, entries) -> tuple[CommandSpec, ...]:
    return tuple(_spec(f"{parent}|{name}", arity, handler, flags, summary, since)
                 for name, arity, flags, summary, since in entries)


_LS = ("loading", "stale")
_COMMAND_SUBS = _subs("COMMAND", command, (
    ("COUNT", 2, _LS, "Returns a count of commands.", "2.8.13"),
    ("DOCS", -2, _LS, "Returns documentary information about one, multiple or all commands.",
     "7.0.0"),
    ("HELP", 2, _LS, "Returns helpful text about the different subcommands.", "5.0.0"),
    ("INFO", -2, _LS, "Returns information about one, multiple or all commands.", "2.8.13"),
    ("LIST", -2, _LS, "Returns a list of command names.", "7.0.0"),
))
_CONFIG_SUBS = _subs("CONFIG", config, (
    ("GET", -3, ("admin", "noscript", "loading", "stale"),
     "Returns the effective values of configuration parameters.", "2.0.0"),
    ("HELP", 2, _LS, "Returns helpful text about the different subcommands.", "5.0.0"),
    ("RESETSTAT", 2, ("admin", "noscript", "loading", "stale"),
     "Resets the server's statistics.", "2.0.0"),
    ("REWRITE", 2, ("admin", "noscript", "loading", "stale"),
     "Persists the effective configuration to file.", "2.8.0"),
    ("SET", -4, ("admin", "noscript", "loading", "stale"),
     "Sets configuration parameters in-flight.", "2.0.0"),
))

SPECS: tuple[CommandSpec, ...] = (
    _spec("COMMAND", -1, command, _LS, "Returns detailed information about all commands.",
          "2.8.13", _COMMAND_SUBS),
    _spec("INFO", -1, info, ("loading", "stale"),
          "Returns information and statistics about the server.", "1.0.0"),
    _spec("CONFIG", -2, config, (), "A container for server configuration commands.", "2.0.0",
          _CONFIG_SUBS),
    _spec("DBSIZE", 1, dbsize, ("readonly", "fast"),
          "Returns the number of keys in the database.", "1.0.0"),
    _spec("TIME", 1, time_, ("loading", "stale", "fast"), "Returns the server time.", "2.6.0"),
    _spec("FLUSHALL", -1, flushall, ("write",), "Removes all keys from all databases.", "1.0.0"),
    _spec("FLUSHDB", -1, flushall, ("write",), "Remove all keys from the current database.",
          "1.0.0"),
    _spec("SAVE", 1, save, ("admin", "noscript"),
          "Synchronously saves the database(s) to disk.", "1.0.0"),
    _spec("BGSAVE", -1, bgsave, ("admin", "noscript"),
          "Asynchronously saves the database(s) to disk.", "1.0.0"),
    _spec("LASTSAVE", 1, lastsave, ("loading", "stale", "fast"),
          "Returns the Unix timestamp of the last successful save to disk.", "1.0.0"),
    _spec("SHUTDOWN", -1, shutdown, ("admin", "noscript", "loading", "stale"),
          "Synchronously saves the database(s) to disk and shuts down the Redis server.",
          "1.0.0"),
)
