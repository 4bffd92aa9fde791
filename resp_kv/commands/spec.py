"""What a command is (CommandSpec) and what a handler sees (Session).

Not the table: `commands/dispatch.py` assembles the families' lists into `COMMANDS`.

A handler is `async def handler(session: Session, args: list[bytes]) -> Reply`, where `args`
excludes the command name. It parses, calls `session.backend`, and returns a reply value
(`resp_kv.reply`); it raises `CommandError` for an error reply. It never touches a socket.

A command may also have a `now` handler: `def now(session, argv) -> Reply | NOT_NOW`, with
`argv` INCLUDING the name, a plain function the dispatcher tries first. It answers when the
backend can without waiting (a single node), or returns a `resp_kv.started.StartedReply` of
the ENCODED reply when the backend started the work with callbacks (a replicated GET or SET), or
returns `NOT_NOW`, and then the async handler runs. Only the hottest commands have one (GET,
SET): it saves the coroutine layers and, in a cluster, the task per command.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# Imported at run time, not only for type checking: the compiled dataclass reads its field
# annotations when the module loads.
from resp_kv.backend import Backend
from resp_kv.config import Config
from resp_kv.reply import encode_error

Handler = Callable[["Session", list[bytes]], Awaitable[Any]]
NowHandler = Callable[["Session", list[bytes]], Any]   # returns a reply or reply.NOT_NOW


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command: name, Redis arity (negative = at least), handler and COMMAND metadata."""

    name: bytes                 # upper case, e.g. b"GET"
    arity: int                  # Redis convention: counts the name; -3 = at least 3
    handler: Handler
    flags: tuple[str, ...] = ()  # COMMAND INFO flags: "write", "readonly", "fast", "noauth", ...
    first_key: int = 0
    last_key: int = 0
    key_step: int = 0
    group: str = "generic"      # COMMAND DOCS group: string, generic, connection, server
    summary: str = ""
    since: str = "1.0.0"
    subcommands: tuple["CommandSpec", ...] = ()
    now: NowHandler | None = None   # the synchronous attempt (module docstring)


def started_error(session: "Session", error: Exception) -> bytes:
    """The encoded reply for an error a backend `*_started` callback reported (counted)."""
    session.server.total_error_replies += 1
    return encode_error(session.backend.client_error(error))


_client_ids = itertools.count(1)


@dataclass(slots=True)
class Session:
    """Per-connection state, plus the node-wide services a handler may call.

    Event-loop thread only. `server` is the node-wide `ServerState` (INFO counters, client list,
    start time, config); the shell (`server.py`) owns sockets and closes on `closing`.
    """

    backend: Backend
    server: Any                               # resp_kv.server_state.ServerState
    config: Config | None                   # None: unit tests of handlers without a node
    client_id: int = field(default_factory=_client_ids.__next__)
    protocol: int = 2                         # 2 or 3, switched by HELLO
    authenticated: bool = False
    name: bytes = b""
    lib_name: bytes = b""
    lib_version: bytes = b""
    address: str = ""
    closing: bool = False                     # QUIT: reply, then close
    last_command: bytes = b""
    # The connection's event loop, set by the server: asyncio.get_running_loop() is a getpid(2)
    # syscall in CPython 3.11, once per replicated command otherwise (strace, 3-node SET -P 1).
    loop: Any = None
