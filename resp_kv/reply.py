"""Reply values: what command handlers return and `resp.encode` turns into bytes.

    Reply := bytes (bulk) | int | None (null) | SimpleString | Double | Map | Set
           | list[Reply] (array) | CommandError (error reply)

RESP2 has no map, set or double: `encode` flattens Map to an array of key, value, ...,
Set to an array, Double to a bulk string, as Redis does for a RESP2 client.
"""

from __future__ import annotations

from dataclasses import dataclass


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
