"""DEBUG: fault-injection hooks for tests, registered only with `--debug-commands`.

`DEBUG SLEEP seconds` sleeps on the event loop (as Redis, which blocks the server) and replies OK;
`DEBUG HELP` lists the subcommands. Every other subcommand (LOCALGET, PARTITION, HEAL, ...) goes
to `backend.debug` unchanged, and the cluster answers it or returns an error for one it does not
know. Never enabled by default: these hooks can partition the node.
"""

from __future__ import annotations

import asyncio
import math

from resp_kv.commands.spec import CommandSpec, Session
from resp_kv.errors import CommandError
from resp_kv.reply import OK, SimpleString

__all__ = ["SPECS"]

_HELP = [
    "DEBUG <subcommand> [<arg> ...]. Subcommands are:",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "LOCALGET <key>",
    "    This node's own winner value of <key> (or nil), without quorum or repair.",
    "LOCALVCLOCK <key>",
    "    This node's own [context, [[value, clock, timestamp_ms], ...]] for <key>.",
    "PARTITION <node-id> ...",
    "    Drop all peer traffic to and from the given nodes.",
    "HEAL",
    "    Undo every PARTITION.",
    "REMOVENODE <node-id>",
    "    Remove a dead node from the ring for good.",
    "HELP",
    "    Print this help.",
]


async def debug(session: Session, args: list[bytes]) -> object:
    sub = args[0].upper()
    if sub == b"HELP":
        return [SimpleString(line) for line in _HELP]
    if sub == b"SLEEP":
        if len(args) != 2:
            raise CommandError("wrong number of arguments for 'debug|sleep' command")
        try:
            seconds = float(args[1])
        except ValueError:
            raise CommandError("value is not a valid float") from None
        if not math.isfinite(seconds):
            raise CommandError("value is not a valid float")
        await asyncio.sleep(max(seconds, 0.0))
        return OK
    try:
        return await session.backend.debug(list(args))
    except ValueError as error:     # cluster/debug.py reports a bad request this way
        raise CommandError(str(error)) from None


SPECS: list[CommandSpec] = [
    CommandSpec(name=b"DEBUG", arity=-2, handler=debug,
                flags=("admin", "noscript", "loading", "stale"),
                first_key=0, last_key=0, key_step=0, group="server",
                summary="A container for debugging commands (fault hooks in resp-kv).",
                since="1.0.0"),
]
