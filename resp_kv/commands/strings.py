"""String commands: GET SET SETNX SETEX PSETEX GETSET GETDEL MGET MSET INCR DECR INCRBY DECRBY
INCRBYFLOAT APPEND STRLEN.

Handlers parse and validate (Redis 7.2 `t_string.c` order and wording), then either do a blind
`backend.put`/`get` or hand a read-modify-write to `backend.mutate` with the mutator arguments of
`mutations.py`. Not here: the arithmetic and NX/XX decisions themselves (mutations.py).

SET option parsing mirrors Redis `parseExtendedStringArgumentsOrReply`: options are case-insensitive;
conflicting ones (NX with XX, two different expiry kinds, KEEPTTL with an expiry) are
`ERR syntax error`; repeating the same option is accepted and the last expiry value wins, exactly
as Redis does. The expiry is validated after all options are parsed: not an integer ->
`ERR value is not an integer or out of range`; <= 0 or overflowing ->
`ERR invalid expire time in 'set' command`. EX/PX are turned into an absolute unix time in ms on
this node before the mutation is sent to the key's coordinator (see mutations.py).

`SET key value [EX|PX|EXAT|PXAT t] VCLOCK context` is a blind put that supersedes exactly the
versions `context` covers. Combining VCLOCK with NX, XX, GET or KEEPTTL is `ERR syntax error`:
those read the current value at the coordinator, which a causal-context write deliberately does
not do. A plain SET (no NX/XX/GET/KEEPTTL) is a blind put with no read, and clears any TTL.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from resp_kv.commands.mutations import LLONG_MAX, LLONG_MIN, parse_ll, parse_long_double
from resp_kv.commands.spec import CommandSpec, Session, started_error
from resp_kv.errors import CommandError, NotAFloat, NotAnInteger, SyntaxErr, WrongArity
from resp_kv import reply as reply_module
from resp_kv.bulk import encode_bulk
from resp_kv.started import StartedReply

__all__ = ["SPECS", "now_ms"]

# Final: C globals of this compiled module, not module-dict lookups (resp_kv/native.py)
NOT_NOW: Final = reply_module.NOT_NOW
OK: Final = reply_module.OK


def now_ms() -> int:
    """Wall clock in unix milliseconds (Redis `commandTimeSnapshot`)."""
    return time.time_ns() // 1_000_000


def _expire_error(command: str) -> CommandError:
    return CommandError(f"invalid expire time in '{command}' command")


def _absolute_expiry(text: bytes, unit_ms: int, relative: bool, command: str) -> int:
    """Turn an expiry argument into unix ms as Redis `getExpireMillisecondsOrReply` does."""
    value = parse_ll(text)
    if value is None:
        raise NotAnInteger()
    if value <= 0 or (unit_ms == 1000 and value > LLONG_MAX // 1000):
        raise _expire_error(command)
    value *= unit_ms
    if relative:
        value += now_ms()
    if value > LLONG_MAX:
        raise _expire_error(command)
    return value


def get_now(session: Session, argv: list[bytes]) -> object:
    backend, key = session.backend, argv[1]
    reply = backend.get_value_now(key)
    if reply is not NOT_NOW:
        return reply
    # A replicated read, answered from callbacks: the encoded reply, later (spec.py).
    started = StartedReply(session.loop or asyncio.get_running_loop())
    nil = b"$-1\r\n" if session.protocol == 2 else b"_\r\n"

    def on_done(value: bytes | None, error: Exception | None) -> None:
        if error is not None:
            started.set(started_error(session, error))
        elif value is None:
            started.set(nil)
        else:
            started.set(encode_bulk(value))
    return started if backend.get_started(key, on_done) else NOT_NOW


def set_now(session: Session, argv: list[bytes]) -> object:
    if len(argv) != 3:
        return NOT_NOW
    backend, key, value = session.backend, argv[1], argv[2]
    if backend.put_now(key, value):
        return OK
    started = StartedReply(session.loop or asyncio.get_running_loop())

    def on_done(error: Exception | None) -> None:
        started.set(_OK_BYTES if error is None else started_error(session, error))
    return started if backend.put_started(key, value, on_done) else NOT_NOW


async def get(session: Session, args: list[bytes]) -> object:
    current = await session.backend.get(args[0])
    return current.value if current is not None else None


_OK_BYTES: Final = b"+OK\r\n"

_EXPIRY_OPTIONS = {b"EX": (1000, True), b"PX": (1, True), b"EXAT": (1000, False), b"PXAT": (1, False)}


async def set_(session: Session, args: list[bytes]) -> object:
    key, value = args[0], args[1]
    if len(args) == 2:                              # fast path: blind put, no TTL
        await session.backend.put(key, value)
        return OK
    flags: set[bytes] = set()
    expiry: tuple[bytes, bytes] | None = None       # (option, argument)
    context: bytes | None = None
    j = 2
    while j < len(args):
        opt = args[j].upper()
        has_next = j + 1 < len(args)
        if opt == b"NX" and b"XX" not in flags:
            flags.add(b"NX")
        elif opt == b"XX" and b"NX" not in flags:
            flags.add(b"XX")
        elif opt == b"GET":
            flags.add(b"GET")
        elif opt == b"KEEPTTL" and expiry is None:
            flags.add(b"KEEPTTL")
        elif (opt in _EXPIRY_OPTIONS and b"KEEPTTL" not in flags and has_next
              and (expiry is None or expiry[0] == opt)):
            expiry = (opt, args[j + 1])
            j += 1
        elif opt == b"VCLOCK" and has_next:
            context = args[j + 1]
            j += 1
        else:
            raise SyntaxErr()
        j += 1
    if context is not None and flags:
        raise SyntaxErr()
    expire_at_ms = 0
    if expiry is not None:
        unit_ms, relative = _EXPIRY_OPTIONS[expiry[0]]
        expire_at_ms = _absolute_expiry(expiry[1], unit_ms, relative, "set")
    backend = session.backend
    if not flags:
        await backend.put(key, value, expire_at_ms, context=context)
        return OK
    return await backend.mutate(key, "set", [value, str(expire_at_ms).encode(), *sorted(flags)])


async def setnx(session: Session, args: list[bytes]) -> object:
    return await session.backend.mutate(args[0], "setnx", [args[1]])


async def _set_with_expiry(session: Session, args: list[bytes], unit_ms: int, command: str) -> object:
    expire_at_ms = _absolute_expiry(args[1], unit_ms, True, command)
    await session.backend.put(args[0], args[2], expire_at_ms)
    return OK


async def setex(session: Session, args: list[bytes]) -> object:
    return await _set_with_expiry(session, args, 1000, "setex")


async def psetex(session: Session, args: list[bytes]) -> object:
    return await _set_with_expiry(session, args, 1, "psetex")


async def getset(session: Session, args: list[bytes]) -> object:
    return await session.backend.mutate(args[0], "getset", [args[1]])


async def getdel(session: Session, args: list[bytes]) -> object:
    return await session.backend.mutate(args[0], "getdel", [])


async def mget(session: Session, args: list[bytes]) -> object:
    currents = await session.backend.get_many(list(args))
    return [c.value if c is not None else None for c in currents]


async def mset(session: Session, args: list[bytes]) -> object:
    if len(args) % 2:
        raise WrongArity("mset")
    await session.backend.put_many([(args[i], args[i + 1]) for i in range(0, len(args), 2)])
    return OK


async def _incr(session: Session, key: bytes, delta: int) -> object:
    return await session.backend.mutate(key, "incrby", [str(delta).encode()])


async def incr(session: Session, args: list[bytes]) -> object:
    return await _incr(session, args[0], 1)


async def decr(session: Session, args: list[bytes]) -> object:
    return await _incr(session, args[0], -1)


async def incrby(session: Session, args: list[bytes]) -> object:
    delta = parse_ll(args[1])
    if delta is None:
        raise NotAnInteger()
    return await _incr(session, args[0], delta)


async def decrby(session: Session, args: list[bytes]) -> object:
    delta = parse_ll(args[1])
    if delta is None:
        raise NotAnInteger()
    if delta == LLONG_MIN:
        raise CommandError("decrement would overflow")
    return await _incr(session, args[0], -delta)


async def incrbyfloat(session: Session, args: list[bytes]) -> object:
    if parse_long_double(args[1]) is None:
        raise NotAFloat()
    return await session.backend.mutate(args[0], "incrbyfloat", [args[1]])


async def append(session: Session, args: list[bytes]) -> object:
    return await session.backend.mutate(args[0], "append", [args[1]])


async def strlen(session: Session, args: list[bytes]) -> object:
    current = await session.backend.get(args[0])
    return len(current.value) if current is not None else 0


def _spec(name: str, arity: int, handler, flags: tuple[str, ...], summary: str, since: str,
          first_key: int = 1, last_key: int = 1, key_step: int = 1, now=None) -> CommandSpec:
    return CommandSpec(name=name.encode(), arity=arity, handler=handler, flags=flags,
                       first_key=first_key, last_key=last_key, key_step=key_step,
                       group="string", summary=summary, since=since, now=now)


_W, _WF, _R = ("write", "denyoom"), ("write", "denyoom", "fast"), ("readonly", "fast")

SPECS: list[CommandSpec] = [
    _spec("GET", 2, get, _R, "Returns the string value of a key.", "1.0.0", now=get_now),
    _spec("SET", -3, set_, _W, "Sets the string value of a key, ignoring its type. "
          "The key is created if it doesn't exist.", "1.0.0", now=set_now),
    _spec("SETNX", 3, setnx, _WF, "Set the string value of a key only when the key doesn't exist.",
          "1.0.0"),
    _spec("SETEX", 4, setex, _W, "Sets the string value and expiration time of a key. "
          "Creates the key if it doesn't exist.", "2.0.0"),
    _spec("PSETEX", 4, psetex, _W, "Sets both string value and expiration time in milliseconds "
          "of a key. The key is created if it doesn't exist.", "2.6.0"),
    _spec("GETSET", 3, getset, _WF, "Returns the previous string value of a key after setting it "
          "to a new value.", "1.0.0"),
    _spec("GETDEL", 2, getdel, ("write", "fast"), "Returns the string value of a key after "
          "deleting the key.", "6.2.0"),
    _spec("MGET", -2, mget, _R, "Atomically returns the string values of one or more keys.",
          "1.0.0", last_key=-1),
    _spec("MSET", -3, mset, _W, "Atomically creates or modifies the string values of one or more "
          "keys.", "1.0.1", last_key=-1, key_step=2),
    _spec("INCR", 2, incr, _WF, "Increments the integer value of a key by one. Uses 0 as initial "
          "value if the key doesn't exist.", "1.0.0"),
    _spec("DECR", 2, decr, _WF, "Decrements the integer value of a key by one. Uses 0 as initial "
          "value if the key doesn't exist.", "1.0.0"),
    _spec("INCRBY", 3, incrby, _WF, "Increments the integer value of a key by a number. Uses 0 as "
          "initial value if the key doesn't exist.", "1.0.0"),
    _spec("DECRBY", 3, decrby, _WF, "Decrements a number from the integer value of a key. Uses 0 "
          "as initial value if the key doesn't exist.", "1.0.0"),
    _spec("INCRBYFLOAT", 3, incrbyfloat, _WF, "Increment the floating point value of a key by a "
          "number. Uses 0 as initial value if the key doesn't exist.", "2.6.0"),
    _spec("APPEND", 3, append, _WF, "Appends a string to the value of a key. Creates the key if "
          "it doesn't exist.", "2.0.0"),
    _spec("STRLEN", 2, strlen, _R, "Returns the length of a string value.", "2.2.0"),
]
