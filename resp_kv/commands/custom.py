"""resp-kv's own commands: VCLOCK (a key's concurrent versions) and REPAIR (anti-entropy now).

Reply shapes are DESIGN.md §3: `VCLOCK key` -> `[context, [[value|nil, clock, timestamp_ms], ...]]`;
`REPAIR [key]` -> field/value pairs (a map in RESP3, a flat array in RESP2). The work is the
backend's; this module only shapes replies.
"""

from __future__ import annotations

from resp_kv.commands.spec import CommandSpec, Session
from resp_kv.errors import SyntaxErr
from resp_kv.reply import Map

__all__ = ["SPECS"]


async def vclock(session: Session, args: list[bytes]) -> object:
    context, views = await session.backend.vclock(args[0])
    return [context, [[value, clock, timestamp_ms] for value, clock, timestamp_ms in views]]


async def repair(session: Session, args: list[bytes]) -> object:
    if len(args) > 1:
        raise SyntaxErr()
    stats = await session.backend.repair(args[0] if args else None)
    return Map((name.encode() if isinstance(name, str) else name, value)
               for name, value in stats.items())


SPECS: list[CommandSpec] = [
    CommandSpec(name=b"VCLOCK", arity=2, handler=vclock, flags=("readonly",),
                first_key=1, last_key=1, key_step=1, group="generic",
                summary="Returns the causal context and the concurrent versions (siblings) of a "
                        "key.", since="1.0.0"),
    CommandSpec(name=b"REPAIR", arity=-1, handler=repair, flags=("admin",),
                first_key=0, last_key=0, key_step=0, group="server",
                summary="Runs one anti-entropy repair round now, for every shared range or one "
                        "key.", since="1.0.0"),
]
