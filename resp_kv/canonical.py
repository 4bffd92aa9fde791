"""The request parser's first try: a chunk of whole, canonical RESP frames, split in place.

Canonical, the only form this reads (anything else returns None and the chunk goes the
general way in `resp.HiredisRequestParser`: hiredis, screened, or the reference parser)::

    chunk   := frame+                              (the whole chunk, nothing left over)
    frame   := "*" count CRLF bulk{count}
    bulk    := "$" length CRLF byte{length} CRLF
    count   := a decimal 1-999999999, no sign, no leading zero
    length  := a decimal 0-999999999, no sign, no leading zero but "0" itself

What every Redis client sends, what redis-benchmark pipelines, and what a read at -P 1 holds.
For such a chunk every parser of ours returns the same commands (hiredis, the reference
parser), so this changes no reply; it only skips their costs. Why it exists (callgrind,
per command): hiredis `feed`/`gets`, the screen that keeps hiredis from pre-allocating a
huge aggregate (`resp._needs_reference`, regex scans of the whole chunk) and the canonical
size check were 6.9k instructions of a 19k GET at -P 1 and 11.3k of a 34k SET; compiled, this
walk is a load and a compare per header byte and a slice per argument. It reads only what
it was given: a count larger than the chunk can hold fails on the chunk's end, never
allocates ahead (hiredis's `*3000000000` hazard cannot arise here).

Compiled with mypyc (resp_kv/native.py): `data[i]` on bytes is a C load, the (value, position)
tuples are C structs.
"""

from __future__ import annotations

from typing import Final

_STAR: Final = 42           # "*"
_DOLLAR: Final = 36         # "$"
_CR: Final = 13
_LF: Final = 10
_ZERO: Final = 48           # "0"
_NINE: Final = 57
_MAX_DIGITS: Final = 9      # up to 999999999: a C long, never a big int


def split_canonical(data: bytes) -> list[list[bytes]] | None:
    """The commands of `data` if it is nothing but whole canonical frames (module docstring),
    in order; None otherwise (the caller parses `data` the general way; nothing is consumed)."""
    end = len(data)
    pos = 0
    commands: list[list[bytes]] = []
    while pos < end:
        if data[pos] != _STAR:
            return None
        count, pos = _decimal(data, pos + 1, end)
        if count <= 0:                              # not canonical, or an empty frame
            return None
        command: list[bytes] = []
        while count:
            if pos >= end or data[pos] != _DOLLAR:
                return None
            length, pos = _decimal(data, pos + 1, end)
            if length < 0:
                return None
            stop = pos + length
            if stop + 2 > end or data[stop] != _CR or data[stop + 1] != _LF:
                return None
            command.append(data[pos:stop])
            pos = stop + 2
            count -= 1
        commands.append(command)
    return commands


def _decimal(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(the canonical decimal at `pos` ended by CRLF, the position after the CRLF), or
    (-1, pos) if there is none there."""
    start = pos
    value = 0
    while pos < end:
        byte = data[pos]
        if _ZERO <= byte <= _NINE:
            value = value * 10 + (byte - _ZERO)
            pos += 1
        elif byte == _CR:
            digits = pos - start
            if (digits == 0 or (digits > 1 and data[start] == _ZERO)
                    or pos + 1 >= end or data[pos + 1] != _LF):
                return -1, pos
            return value, pos + 2
        else:
            return -1, pos
        if pos - start > _MAX_DIGITS:
            return -1, pos
    return -1, pos
