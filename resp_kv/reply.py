"""Reply values, what command handlers return, and `encode`, which writes them for a client.

    Reply := bytes (bulk) | int | None (null) | SimpleString | Double | Map | Set
           | list[Reply] (array) | CommandError (error reply)

RESP2 has no map, set or double: `encode` flattens Map to an array of key, value, ...,
Set to an array, Double to a bulk string, as Redis does for a RESP2 client.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# part of this module's API, compiled there (encode_bulk), and the table peer frames use
from resp_kv.bulk import BULK_HEADS, BULK_HEADS_MAX, encode_bulk  # noqa: F401
from resp_kv.errors import CommandError


@dataclass(frozen=True, slots=True)
class SimpleString:
    """A status reply such as +OK or +PONG (no CR or LF inside)."""

    text: str


@dataclass(frozen=True, slots=True)
class Double:
    """A RESP3 double `,<value>`; a bulk string in RESP2."""

    value: float


class Map(dict):
    """A RESP3 map `%`; a flat array key, value, ... in RESP2. Keeps insertion order."""


class Set(list):
    """A RESP3 set `~`; an array in RESP2."""


class _NoReply:
    """Nothing at all goes out: SHUTDOWN closes the connection without a reply, as Redis does
    (redis-py's shutdown() treats any reply as a failure)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY = _NoReply()


OK = SimpleString("OK")

# Not a reply: what a command's synchronous `now` handler returns when the answer needs
# waiting (commands/spec.py); the dispatcher then runs the async handler.
NOT_NOW = type("NotNow", (), {"__repr__": lambda self: "NOT_NOW"})()
PONG = SimpleString("PONG")
QUEUED = SimpleString("QUEUED")


# ---------------------------------------------------------------------------------- encoding

_NULL = (b"", b"", b"$-1\r\n", b"_\r\n")
_SIMPLE_CACHE: dict[str, bytes] = {}   # text -> encoded (OK, PONG...)


def _clean(text: str) -> bytes:
    # Redis replaces CR/LF in status and error lines with spaces.
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")


def encode_error(error: CommandError) -> bytes:
    return b"-%s\r\n" % _clean(error.line)


def _format_double(value: float) -> bytes:
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    if math.isnan(value):
        return b"nan"
    if value.is_integer() and abs(value) < 1e17:
        return b"%d" % int(value)
    return repr(value).encode()


def encode(reply: Any, protocol: int = 2) -> bytes:
    """Encode one reply value (see resp_kv.reply) for a RESP2 or RESP3 client."""
    cls = reply.__class__
    if cls is bytes:
        return encode_bulk(reply)
    if reply is None:
        return _NULL[protocol]
    if cls is SimpleString:
        cached = _SIMPLE_CACHE.get(reply.text)
        if cached is None:
            cached = b"+%s\r\n" % _clean(reply.text)
            if len(_SIMPLE_CACHE) < 256:
                _SIMPLE_CACHE[reply.text] = cached
        return cached
    if cls is int:
        return b":%d\r\n" % reply
    return _encode_other(reply, protocol)


def _encode_other(reply: Any, protocol: int) -> bytes:
    if reply is NO_REPLY:
        return b""
    if isinstance(reply, (list, tuple)):
        head = b"~%d\r\n" if protocol == 3 and isinstance(reply, Set) else b"*%d\r\n"
        return head % len(reply) + b"".join([encode(item, protocol) for item in reply])
    if isinstance(reply, dict):
        if protocol == 3:
            parts = [b"%%%d\r\n" % len(reply)]
        else:
            parts = [b"*%d\r\n" % (2 * len(reply))]
        for key, value in reply.items():
            parts.append(encode(key, protocol))
            parts.append(encode(value, protocol))
        return b"".join(parts)
    if isinstance(reply, CommandError):
        return encode_error(reply)
    if isinstance(reply, bool):
        if protocol == 3:
            return b"#t\r\n" if reply else b"#f\r\n"
        return b":1\r\n" if reply else b":0\r\n"
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, (Double, float)):
        text = _format_double(reply.value if isinstance(reply, Double) else reply)
        if protocol == 3:
            return b",%s\r\n" % text
        return b"$%d\r\n%s\r\n" % (len(text), text)
    if isinstance(reply, (bytearray, memoryview)):
        data = bytes(reply)
        return b"$%d\r\n%s\r\n" % (len(data), data)
    if isinstance(reply, str):
        data = reply.encode("utf-8")
        return b"$%d\r\n%s\r\n" % (len(data), data)
    if isinstance(reply, SimpleString):
        return b"+%s\r\n" % _clean(reply.text)
    if isinstance(reply, (set, frozenset)):
        return _encode_other(Set(reply), protocol)
    raise TypeError(f"cannot encode {type(reply).__name__}")
