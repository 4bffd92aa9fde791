"""Key commands: DEL UNLINK EXISTS EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL PERSIST TYPE SCAN
KEYS RANDOMKEY.

Parsing and wording follow Redis 7.2 `db.c` and `expire.c`. DEL/UNLINK delete each key with its
own coordinator-side mutation (concurrently) and sum the 1/0 replies; they are not atomic across
keys, as in Redis Cluster. EXPIRE's time is made absolute here, then the option checks run at the
coordinator (mutations.expire). SCAN/KEYS walk the cluster-wide cursor of `backend.scan` and
filter with Redis glob semantics (glob.py); there is one type, so `TYPE string` keeps every key
and any other type name keeps none. SCAN's cursor is the backend's opaque integer.
"""

from __future__ import annotations

import asyncio
import random
import re

from resp_kv.commands import glob
from resp_kv.commands.mutations import LLONG_MAX, LLONG_MIN, parse_ll
from resp_kv.commands.spec import CommandSpec, Session
from resp_kv.commands.strings import now_ms
from resp_kv.errors import CommandError, NotAnInteger, SyntaxErr
from resp_kv.reply import SimpleString

__all__ = ["SPECS"]


async def del_(session: Session, args: list[bytes]) -> object:
    backend = session.backend
    if len(args) == 1:          # no gather: completes without suspending on a local backend
        replies = [await backend.mutate(args[0], "del", [])]
    else:
        replies = await asyncio.gather(*(backend.mutate(key, "del", []) for key in args))
    for reply in replies:
        if isinstance(reply, CommandError):
            return reply
    return sum(replies)


async def exists(session: Session, args: list[bytes]) -> object:
    currents = await session.backend.get_many(list(args))
    return sum(1 for c in currents if c is not None)


def _expire_flags(options: list[bytes]) -> list[bytes]:
    """Parse NX|XX|GT|LT as Redis `parseExtendedExpireArgumentsOrReply`."""
    flags: set[bytes] = set()
    for opt in options:
        upper = opt.upper()
        if upper not in (b"NX", b"XX", b"GT", b"LT"):
            raise CommandError(f"Unsupported option {opt.decode(errors='replace')}")
        flags.add(upper)
    if b"NX" in flags and len(flags) > 1:
        raise CommandError("NX and XX, GT or LT options at the same time are not compatible")
    if b"GT" in flags and b"LT" in flags:
        raise CommandError("GT and LT options at the same time are not compatible")
    return sorted(flags)


async def _expire(session: Session, args: list[bytes], unit_ms: int, relative: bool,
                  command: str) -> object:
    flags = _expire_flags(args[2:])
    when = parse_ll(args[1])
    if when is None:
        raise NotAnInteger()
    invalid = CommandError(f"invalid expire time in '{command}' command")
    if unit_ms == 1000:
        if when > LLONG_MAX // 1000 or when < -(-LLONG_MIN // 1000):
            raise invalid
        when *= 1000
    issued_ms = now_ms()
    base = issued_ms if relative else 0
    if when > LLONG_MAX - base:
        raise invalid
    when += base
    return await session.backend.mutate(
        args[0], "expire", [str(when).encode(), str(issued_ms).encode(), *flags])


async def expire(session: Session, args: list[bytes]) -> object:
    return await _expire(session, args, 1000, True, "expire")


async def pexpire(session: Session, args: list[bytes]) -> object:
    return await _expire(session, args, 1, True, "pexpire")


async def expireat(session: Session, args: list[bytes]) -> object:
    return await _expire(session, args, 1000, False, "expireat")


async def pexpireat(session: Session, args: list[bytes]) -> object:
    return await _expire(session, args, 1, False, "pexpireat")


async def _ttl(session: Session, key: bytes, in_ms: bool) -> int:
    current = await session.backend.get(key)
    if current is None:
        return -2
    if not current.expire_at_ms:
        return -1
    ttl = max(current.expire_at_ms - now_ms(), 0)
    return ttl if in_ms else (ttl + 500) // 1000


async def ttl(session: Session, args: list[bytes]) -> object:
    return await _ttl(session, args[0], False)


async def pttl(session: Session, args: list[bytes]) -> object:
    return await _ttl(session, args[0], True)


async def persist(session: Session, args: list[bytes]) -> object:
    return await session.backend.mutate(args[0], "persist", [])


async def type_(session: Session, args: list[bytes]) -> object:
    current = await session.backend.get(args[0])
    return SimpleString("none" if current is None else "string")


_ULONG_MAX = 2**64 - 1
_CURSOR = re.compile(rb"([+-]?)([0-9]{1,40})")


def _parse_cursor(text: bytes) -> int:
    """Parse as Redis `parseScanCursorOrReply`: C strtoul over the whole C string.

    So "" is 0, "+5" is 5, "-1" wraps to 2**64-1 (strtoul negates), a leading space or any
    trailing byte is `ERR invalid cursor`, and bytes after a NUL are ignored (C string).
    """
    text = text.split(b"\0", 1)[0]
    if not text:
        return 0
    match = _CURSOR.fullmatch(text)
    if match is None or int(match.group(2)) > _ULONG_MAX:
        raise CommandError("invalid cursor")
    value = int(match.group(2))
    return (-value) & _ULONG_MAX if match.group(1) == b"-" else value


async def scan(session: Session, args: list[bytes]) -> object:
    cursor = _parse_cursor(args[0])
    count, pattern, type_name = 10, None, None
    j = 1
    while j < len(args):
        opt = args[j].upper()
        if len(args) - j < 2:
            raise SyntaxErr()
        if opt == b"COUNT":
            value = parse_ll(args[j + 1])
            if value is None:
                raise NotAnInteger()
            if value < 1:
                raise SyntaxErr()
            count = value
        elif opt == b"MATCH":
            pattern = args[j + 1]
        elif opt == b"TYPE":
            type_name = args[j + 1].lower()
        else:
            raise SyntaxErr()
        j += 2
    next_cursor, keys = await session.backend.scan(cursor, count)
    if type_name is not None and type_name != b"string":
        keys = []
    if pattern is not None and pattern != b"*":
        keys = [k for k in keys if glob.match(pattern, k)]
    return [str(next_cursor).encode(), keys]


_KEYS_BATCH = 1000


async def keys(session: Session, args: list[bytes]) -> object:
    pattern = args[0]
    found: list[bytes] = []
    cursor = 0
    while True:
        cursor, batch = await session.backend.scan(cursor, _KEYS_BATCH)
        found.extend(k for k in batch if pattern == b"*" or glob.match(pattern, k))
        if cursor == 0:
            return found


async def randomkey(session: Session, args: list[bytes]) -> object:
    # Start the scan at a random cursor (a ring token in the cluster), wrapping to 0 once.
    backend = session.backend
    _, batch = await backend.scan(random.getrandbits(64) or 1, 16)
    if not batch:
        _, batch = await backend.scan(0, 16)
    return random.choice(batch) if batch else None


def _spec(name: str, arity: int, handler, flags: tuple[str, ...], summary: str, since: str,
          first_key: int = 1, last_key: int = 1, key_step: int = 1) -> CommandSpec:
    return CommandSpec(name=name.encode(), arity=arity, handler=handler, flags=flags,
                       first_key=first_key, last_key=last_key, key_step=key_step,
                       group="generic", summary=summary, since=since)


_WF, _R = ("write", "fast"), ("readonly", "fast")
_NOKEYS = {"first_key": 0, "last_key": 0, "key_step": 0}

SPECS: list[CommandSpec] = [
    _spec("DEL", -2, del_, ("write",), "Deletes one or more keys.", "1.0.0", last_key=-1),
    _spec("UNLINK", -2, del_, _WF, "Asynchronously deletes one or more keys.", "4.0.0",
          last_key=-1),
    _spec("EXISTS", -2, exists, _R, "Determines whether one or more keys exist.", "1.0.0",
          last_key=-1),
    _spec("EXPIRE", -3, expire, _WF, "Sets the expiration time of a key in seconds.", "1.0.0"),
    _spec("PEXPIRE", -3, pexpire, _WF, "Sets the expiration time of a key in milliseconds.",
          "2.6.0"),
    _spec("EXPIREAT", -3, expireat, _WF, "Sets the expiration time of a key to a Unix timestamp.",
          "1.2.0"),
    _spec("PEXPIREAT", -3, pexpireat, _WF, "Sets the expiration time of a key to a Unix "
          "milliseconds timestamp.", "2.6.0"),
    _spec("TTL", 2, ttl, _R, "Returns the expiration time in seconds of a key.", "1.0.0"),
    _spec("PTTL", 2, pttl, _R, "Returns the expiration time in milliseconds of a key.", "2.6.0"),
    _spec("PERSIST", 2, persist, _WF, "Removes the expiration time of a key.", "2.2.0"),
    _spec("TYPE", 2, type_, _R, "Determines the type of value stored at a key.", "1.0.0"),
    _spec("SCAN", -2, scan, ("readonly",), "Iterates over the key names in the database.",
          "2.8.0", **_NOKEYS),
    _spec("KEYS", 2, keys, ("readonly",), "Returns all key names that match a pattern.", "1.0.0",
          **_NOKEYS),
    _spec("RANDOMKEY", 1, randomkey, ("readonly",), "Returns a random key name from the "
          "database.", "1.0.0", **_NOKEYS),
]
