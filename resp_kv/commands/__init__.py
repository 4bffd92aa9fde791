"""The command table and the dispatcher: name -> CommandSpec -> handler -> encoded reply.

Not the handlers (one module per family) and not the socket (`server.py`). The table is
explicit: every supported command is listed in one family's `SPECS`, assembled here in a fixed
order, so the supported surface is what `COMMAND COUNT` says. `debug.SPECS` joins only when
`ServerConfig.debug_commands` is on.

Dispatch order, as Redis `processCommand`: lookup (case-insensitive) -> arity -> auth gate ->
handler. Every outcome is encoded reply bytes; a handler bug becomes `-ERR internal error`
(logged with its traceback) and the node keeps serving.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from resp_kv.commands import connection, custom, keys, server, strings
from resp_kv.commands.spec import CommandSpec, Session
from resp_kv.errors import CommandError, NoAuth, UnknownCommand, WrongArity
from resp_kv.resp import encode, encode_error

if TYPE_CHECKING:
    from resp_kv.config import Config

__all__ = ["COMMANDS", "Dispatcher", "command_table", "CommandSpec", "Session"]

log = logging.getLogger("resp_kv.commands")

# Commands a client may send before authenticating (Redis: the `no_auth` flag).
NO_AUTH = frozenset({b"AUTH", b"HELLO", b"QUIT", b"RESET"})

_INTERNAL_ERROR = b"-ERR internal error\r\n"


def _build(families: tuple[tuple[CommandSpec, ...], ...]) -> dict[bytes, CommandSpec]:
    table: dict[bytes, CommandSpec] = {}
    for specs in families:
        for spec in specs:
            if spec.name in table:
                raise ValueError(f"command {spec.name!r} defined twice")
            table[spec.name] = spec
    return table


_FAMILIES = (
    tuple(connection.SPECS), tuple(server.SPECS), tuple(strings.SPECS), tuple(keys.SPECS),
    tuple(custom.SPECS),
)

COMMANDS: dict[bytes, CommandSpec] = _build(_FAMILIES)
_WITH_DEBUG: dict[bytes, CommandSpec] | None = None


def command_table(config: "Config | None") -> dict[bytes, CommandSpec]:
    """The table a node with `config` serves: COMMANDS, plus DEBUG when debug_commands is on."""
    global _WITH_DEBUG
    if config is None or not config.server.debug_commands:
        return COMMANDS
    if _WITH_DEBUG is None:
        from resp_kv.commands import debug
        _WITH_DEBUG = _build(_FAMILIES + (tuple(debug.SPECS),))
    return _WITH_DEBUG


class Dispatcher:
    """Runs one connection's commands against its Session. Event-loop thread only.

    `execute` is a coroutine that completes without suspending whenever the handler does, so
    the server may drive it with `send(None)` and skip the event loop (see server.py).
    """

    __slots__ = ("session", "_table", "_state", "_auth_required")

    def __init__(self, session: Session, table: dict[bytes, CommandSpec] | None = None) -> None:
        self.session = session
        self._table = table if table is not None else command_table(session.config)
        self._state = session.server
        self._auth_required = (session.config is not None
                               and session.config.server.requirepass is not None)

    async def execute(self, args: list[bytes]) -> bytes:
        """Run one command; always return encoded reply bytes, errors included."""
        session = self.session
        name = args[0]
        spec = self._table.get(name)
        if spec is None:
            spec = self._table.get(name.upper())
        state = self._state
        try:
            if spec is None:
                raise UnknownCommand(args)
            arity = spec.arity
            if len(args) != arity and (arity > 0 or len(args) < -arity):
                raise WrongArity(spec.name)
            if self._auth_required and not session.authenticated and spec.name not in NO_AUTH:
                raise NoAuth()
            state.total_commands_processed += 1
            reply = await spec.handler(session, args[1:])
        except CommandError as error:
            state.total_error_replies += 1
            return encode_error(error)
        except Exception:
            state.unexpected_errors += 1
            log.exception("internal error running %r", args[0][:64])
            return _INTERNAL_ERROR
        if reply.__class__ is bytes:
            return b"$%d\r\n%s\r\n" % (len(reply), reply)
        try:
            return encode(reply, session.protocol)
        except Exception:
            state.unexpected_errors += 1
            log.exception("cannot encode the reply of %r", args[0][:64])
            return _INTERNAL_ERROR
