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

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Final

from resp_kv.commands import admin, connection, custom, keys, server, strings
from resp_kv.commands.spec import CommandSpec, Session
from resp_kv.errors import CommandError, NoAuth, UnknownCommand, WrongArity
from resp_kv.bulk import encode_bulk
from resp_kv import reply as reply_module
from resp_kv.reply import encode, encode_error
from resp_kv.resume import resume
from resp_kv.started import StartedReply

if TYPE_CHECKING:
    from resp_kv.config import Config
    from resp_kv.server_state import ServerState

__all__ = ["BATCH_FULL", "COMMANDS", "Dispatcher", "PendingReply", "command_table"]

log = logging.getLogger("resp_kv.commands")

# Commands a client may send before authenticating (Redis: the `no_auth` flag).
NO_AUTH = frozenset({b"AUTH", b"HELLO", b"QUIT", b"RESET"})

# Final: C globals of this compiled module, not module-dict lookups (resp_kv/native.py)
NOT_NOW: Final = reply_module.NOT_NOW
OK: Final = reply_module.OK
_INTERNAL_ERROR: Final = b"-ERR internal error\r\n"
_OK: Final = b"+OK\r\n"                   # reply.OK encoded (RESP2 and RESP3 alike)


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
    tuple(custom.SPECS), tuple(admin.SPECS),
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


BATCH_FULL: Final = type("BatchFull", (), {"__repr__": lambda self: "BATCH_FULL"})()


class Dispatcher:
    """Runs one connection's commands against its Session. Event-loop thread only.

    `run(args)` is the server's hot path: a plain call that starts the handler's coroutine
    with `send(None)`; when the handler completes without suspending (most do), the encoded
    reply comes back at once, with no task and no loop round trip. Otherwise it returns a
    `PendingReply` to await. `execute(args)` is the same as a coroutine, for everyone else.
    """

    __slots__ = ("session", "_table", "_fast", "_state", "_auth_required")

    def __init__(self, session: Session, table: dict[bytes, CommandSpec] | None = None) -> None:
        self.session = session
        self._table = table if table is not None else command_table(session.config)
        self._fast = _fast_table(self._table)
        self._state: ServerState = session.server     # typed: native attribute access
        self._auth_required = (session.config is not None
                               and session.config.server.requirepass is not None)

    async def execute(self, args: list[bytes]) -> bytes:
        """Run one command; always return encoded reply bytes, errors included."""
        reply = self.run(args)
        if type(reply) is bytes:
            return reply
        return await reply

    async def drain(self, queue: deque, out: list[bytes], limit: int = 1 << 30) -> object:
        """Run queued commands in order, appending each encoded reply to `out`.

        Returns when the queue is empty (None), when the session is closing (None), after
        `limit` commands with more queued (BATCH_FULL: write `out`, then call again), or at the
        first item that is not a command, which it pops and returns (the server's
        ProtocolError marker). One coroutine per batch, not per command: the server starts it
        with `send(None)`, so a batch whose handlers never suspend costs one StopIteration.
        """
        fast, session, state = self._fast, self.session, self._state
        processed = 0
        reply: object                           # any handler's reply (typed: see native.py)
        in_flight: set[bytes] | None = None     # keys of suspended commands still running
        try:
            while queue:
                if len(out) >= limit:
                    if in_flight is not None:
                        await _settle(out)
                    return BATCH_FULL
                args = queue.popleft()
                if type(args) is not list:
                    if in_flight is not None:
                        await _settle(out)
                    return args
                entry = fast.get(args[0])
                if entry is None or (self._auth_required and not session.authenticated):
                    if in_flight is not None:
                        await _settle(out)
                        in_flight = None
                    reply = self._run_checked(args)
                    out.append(reply if type(reply) is bytes else await reply)
                    if session.closing:
                        return None
                    continue
                handler, arity, key_at, now = entry
                count = len(args)
                if count != arity and (arity > 0 or count < -arity):
                    out.append(self._run_checked(args))    # the arity error: never suspends
                    continue
                if in_flight is not None:
                    # Ordering barrier: a command touching a key still in flight, or with no
                    # key at all (DBSIZE, SCAN, QUIT...), waits for everything started before it.
                    if type(key_at) is int:
                        overtakes = args[key_at] in in_flight
                    else:
                        keys = _keys(args, key_at)
                        overtakes = keys is None or not in_flight.isdisjoint(keys)
                    if overtakes:
                        await _settle(out)
                        in_flight = None
                session.last_command = args[0]
                processed += 1
                try:
                    if now is None or (reply := now(session, args)) is NOT_NOW:
                        coro = handler(session, args[1:])
                        yielded = coro.send(None)
                        reply = NOT_NOW                 # it suspended: below
                except StopIteration as stop:
                    reply = stop.value
                except CommandError as error:
                    state.total_error_replies += 1
                    out.append(encode_error(error))
                    continue
                except Exception:
                    out.append(self._internal_error(args))
                    continue
                if reply is NOT_NOW or type(reply) is StartedReply:
                    # Suspended (a quorum wait), or started by callbacks (a StartedReply of
                    # the encoded reply): let it finish concurrently and go on with the
                    # pipeline, so one connection's commands share peer round trips. Its reply
                    # keeps its place in `out`; _settle() fills it in before anything is written.
                    out.append(_in_background(PendingReply(self, coro, yielded, args))
                               if reply is NOT_NOW else reply)
                    if type(key_at) is int:     # one key (GET, SET...): no list made
                        if in_flight is None:
                            in_flight = {args[key_at]}
                        else:
                            in_flight.add(args[key_at])
                        continue
                    keys = _keys(args, key_at)
                    if keys is None:                # keyless: nothing may overtake it
                        await _settle(out)
                        in_flight = None
                    elif in_flight is None:
                        in_flight = set(keys)
                    else:
                        in_flight.update(keys)
                    continue
                if type(reply) is bytes:            # GET, then SET: the hottest first
                    out.append(encode_bulk(reply))
                elif reply is OK:
                    out.append(_OK)
                    if session.closing:             # QUIT
                        return None
                elif reply is None:
                    out.append(b"$-1\r\n" if session.protocol == 2 else b"_\r\n")
                elif type(reply) is int:
                    out.append(b":%d\r\n" % reply)
                else:
                    out.append(self._encode(reply, args))
                    if session.closing:             # QUIT, SHUTDOWN
                        return None
            if in_flight is not None:
                await _settle(out)
            return None
        finally:
            state.total_commands_processed += processed

    def run(self, args: list[bytes]) -> "bytes | PendingReply | StartedReply":
        """Start one command: encoded reply bytes, or a PendingReply if the handler suspended."""
        entry = self._fast.get(args[0])
        session = self.session
        if entry is None or (self._auth_required and not session.authenticated):
            return self._run_checked(args)
        handler, arity, _, now = entry
        count = len(args)
        if count != arity and (arity > 0 or count < -arity):
            return self._run_checked(args)
        session.last_command = args[0]
        self._state.total_commands_processed += 1
        try:
            if now is None or (reply := now(session, args)) is NOT_NOW:
                coro = handler(session, args[1:])
                return PendingReply(self, coro, coro.send(None), args)
        except StopIteration as stop:
            reply = stop.value
        except CommandError as error:
            self._state.total_error_replies += 1
            return encode_error(error)
        except Exception:
            return self._internal_error(args)
        if type(reply) is bytes:                # every GET at -P 1
            return encode_bulk(reply)
        if reply is OK:
            return _OK
        if type(reply) is StartedReply:          # started by callbacks: bytes later
            return reply
        return self._encode(reply, args)

    def _run_checked(self, args: list[bytes]) -> "bytes | PendingReply":
        """The general path: case-insensitive lookup, arity, the auth gate, then run."""
        session = self.session
        spec = self._table.get(args[0].upper())
        try:
            if spec is None:
                raise UnknownCommand(args)
            arity = spec.arity
            if len(args) != arity and (arity > 0 or len(args) < -arity):
                raise WrongArity(spec.name)
            if self._auth_required and not session.authenticated and spec.name not in NO_AUTH:
                raise NoAuth()
        except CommandError as error:
            self._state.total_error_replies += 1
            return encode_error(error)
        session.last_command = spec.name
        self._state.total_commands_processed += 1
        coro = spec.handler(session, args[1:])
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return self._encode(stop.value, args)
        except CommandError as error:
            self._state.total_error_replies += 1
            return encode_error(error)
        except Exception:
            return self._internal_error(args)
        return PendingReply(self, coro, yielded, args)

    def _encode(self, reply: object, args: list[bytes]) -> bytes:
        if isinstance(reply, CommandError):      # e.g. a mutator's error reply
            self._state.total_error_replies += 1
        try:
            return encode(reply, self.session.protocol)
        except Exception:
            return self._internal_error(args, "cannot encode the reply of")

    def _internal_error(self, args: list[bytes], what: str = "internal error running") -> bytes:
        self._state.unexpected_errors += 1
        log.exception("%s %r", what, args[0][:64])
        return _INTERNAL_ERROR


class PendingReply:
    """A command whose handler suspended: awaiting it resumes the handler and encodes its reply.

    The rest of `await handler(...)` after its first `send(None)` yielded `first`: whatever the
    event loop sends or throws goes to the handler, so futures and cancellation behave exactly
    as if a task had awaited the handler from the start.
    """

    __slots__ = ("_dispatcher", "_coro", "_first", "_args")

    def __init__(self, dispatcher: Dispatcher, coro, first: object, args: list[bytes]) -> None:
        self._dispatcher, self._coro, self._first, self._args = dispatcher, coro, first, args

    def __await__(self):
        dispatcher = self._dispatcher
        try:
            reply = yield from resume(self._coro, self._first)
        except CommandError as error:
            dispatcher._state.total_error_replies += 1
            return encode_error(error)
        except Exception:
            return dispatcher._internal_error(self._args)
        if type(reply) is bytes:
            return encode_bulk(reply)
        return dispatcher._encode(reply, self._args)


_FAST_CACHE: dict[int, dict[bytes, tuple]] = {}


# Keyless commands that may run while keyed ones are in flight: they observe nothing.
_ORDER_FREE = frozenset((b"PING", b"ECHO"))


def _key_positions(spec: CommandSpec) -> int | tuple[int, int, int] | None:
    """The index of a one-key command's key; else (first, last, step) of the spec's keys;
    None = orders with everything (see drain)."""
    if spec.name in _ORDER_FREE:
        return (0, -1, 0)                        # no keys, never a barrier
    if spec.first_key <= 0 or spec.key_step <= 0:
        return None
    if spec.first_key == spec.last_key:
        return spec.first_key
    return (spec.first_key, spec.last_key, spec.key_step)


def _keys(args: list[bytes], key_at: int | tuple[int, int, int] | None) -> list[bytes] | None:
    """The keys among `args` per COMMAND key positions, or None for an order-sensitive
    keyless command."""
    if type(key_at) is int:
        return [args[key_at]]
    if key_at is None:
        return None
    first, last, step = key_at
    if step == 0:
        return []
    end = len(args) + last if last < 0 else last
    return args[first:end + 1:step]


async def _await(pending: "PendingReply") -> bytes:
    return await pending


def _in_background(pending: "PendingReply") -> asyncio.Task:
    return asyncio.get_running_loop().create_task(_await(pending))


async def _settle(out: list) -> None:
    """Replace every in-flight placeholder of `out` with its encoded reply, in order. A
    StartedReply's future is made only if its reply is not there yet (once the first one of a
    batch is, the others usually are too)."""
    for i, item in enumerate(out):
        if type(item) is StartedReply:
            data = item.data
            out[i] = data if data is not None else await item.wait()
        elif type(item) is not bytes:
            out[i] = await item


def _fast_table(table: dict[bytes, CommandSpec]) -> dict[bytes, tuple]:
    """name as clients usually spell it (UPPER, lower) -> (handler, arity, key positions, now
    handler), for commands any authenticated client may run. Everything else takes
    `_run_checked`."""
    fast = _FAST_CACHE.get(id(table))
    if fast is None:
        fast = {}
        for name, spec in table.items():
            fast[name] = fast[name.lower()] = (spec.handler, spec.arity, _key_positions(spec),
                                               spec.now)
        _FAST_CACHE[id(table)] = fast
    return fast
