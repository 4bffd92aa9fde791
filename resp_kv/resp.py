"""RESP codec, sans-IO: client request parsing and reply encoding (RESP2 and RESP3).

Not a socket owner: `server.py` feeds bytes in and writes the bytes `encode` returns.

Requests, as Redis 7.2 `networking.c` reads them:

    request   := multibulk | inline
    multibulk := "*" count CR LF { "$" length CR LF bytes[length] CR LF }      count <= 0: ignored
    inline    := line (LF or CR LF), split like `sdssplitargs` ("double" with \\x escapes, 'single')

Limits and the exact error texts (each closes the connection after earlier replies):

    *count not an integer / > max_multibulk_len   ERR Protocol error: invalid multibulk length
    $length not an integer / < 0 / > proto-max    ERR Protocol error: invalid bulk length
    element not starting with '$'                 ERR Protocol error: expected '$', got 'x'
    header line longer than 64 KB                 ERR Protocol error: too big mbulk count string
                                                  (bulk count string for a "$" header)
    inline line longer than 64 KB                 ERR Protocol error: too big inline request
    inline quotes unbalanced                      ERR Protocol error: unbalanced quotes in request
    buffered bytes > client_query_buffer_limit    QueryBufferExceeded: closed without a reply

Two parsers share one API (`feed(data)`, `next_command() -> list[bytes] | None`):
`RequestParser` (pure Python, the reference) and `HiredisRequestParser` (hiredis.Reader, the
fast path). hiredis validates less than Redis (it accepts any reply type inside an array and
waits for any declared length), so the hiredis parser keeps a mirror of the bytes since the last
known frame boundary and replays them through `RequestParser` whenever hiredis returns anything
but a list of bulk strings, raises, or stops mid-frame: a declared 4 GB bulk is rejected from
its header and never buffered. Known difference: hiredis accepts `+simple` strings in place of
bulk strings inside a complete pipelined frame (Redis rejects them); it never accepts more bytes
than the limits allow.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from resp_kv.errors import CommandError
from resp_kv.reply import Double, Map, Set, SimpleString

try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis is a hard dependency; fallback kept for parity
    hiredis = None

if TYPE_CHECKING:
    from resp_kv.config import ServerConfig

__all__ = [
    "ProtocolError", "QueryBufferExceeded", "RequestParser", "HiredisRequestParser",
    "make_request_parser", "encode", "encode_error",
]

_INLINE_MAX = 64 * 1024          # PROTO_INLINE_MAX_SIZE


class ProtocolError(Exception):
    """Malformed request framing. The client gets `-ERR Protocol error: <msg>` and is closed."""

    def reply(self) -> bytes:
        return b"-ERR Protocol error: %s\r\n" % str(self).encode("utf-8", "replace")


class QueryBufferExceeded(ProtocolError):
    """More unparsed bytes than client_query_buffer_limit: Redis logs and closes, no reply."""

    def reply(self) -> bytes:
        return b""


class _Limits:
    __slots__ = ("max_bulk", "max_multibulk", "max_inline", "max_buffer")

    def __init__(self, config: "ServerConfig | None") -> None:
        if config is None:
            from resp_kv.config import ServerConfig
            config = ServerConfig()
        self.max_bulk = config.proto_max_bulk_len
        self.max_multibulk = config.max_multibulk_len
        self.max_inline = config.max_inline_len
        self.max_buffer = config.client_query_buffer_limit


def _parse_ll(text: bytes) -> int | None:
    """Parse like Redis `string2ll`: optional '-', digits, no '+', spaces or leading zeros."""
    if text.isdigit():
        if (text[0] == 48 and len(text) > 1) or len(text) > 19:
            return None
        return int(text)
    if text[:1] == b"-" and text[1:].isdigit() and text[1] != 48 and len(text) <= 20:
        return -int(text[1:])
    return None


# sdssplitargs escapes inside double quotes
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = b"0123456789abcdefABCDEF"
_SPACE = b" \n\r\t\v\f\x00"


def split_inline(line: bytes) -> list[bytes]:
    """Split an inline request like Redis `sdssplitargs`; raise ProtocolError on bad quotes."""
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        in_dq = in_sq = False
        while True:
            if in_dq:
                if i >= n:
                    raise ProtocolError("unbalanced quotes in request")
                c = line[i]
                if (c == 92 and i + 3 < n and line[i + 1] == ord("x")
                        and line[i + 2] in _HEX and line[i + 3] in _HEX):
                    current.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif c == 92 and i + 1 < n:
                    i += 1
                    current.append(_ESCAPES.get(line[i], line[i]))
                elif c == 34:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        raise ProtocolError("unbalanced quotes in request")
                    in_dq = False
                    i += 1
                    break
                else:
                    current.append(c)
            elif in_sq:
                if i >= n:
                    raise ProtocolError("unbalanced quotes in request")
                c = line[i]
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    i += 1
                    current.append(39)
                elif c == 39:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        raise ProtocolError("unbalanced quotes in request")
                    in_sq = False
                    i += 1
                    break
                else:
                    current.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in _SPACE:
                    break
                if c == 34:
                    in_dq = True
                elif c == 39:
                    in_sq = True
                else:
                    current.append(c)
            i += 1
        args.append(bytes(current))


def parse_one(buf: bytes | bytearray | memoryview, pos: int, limits: _Limits
              ) -> tuple[list[bytes] | None, int]:
    """Parse one request at `buf[pos:]`.

    Returns (command, next_pos); command is [] for an ignored request (blank line, *0, *-1)
    and None when more bytes are needed (next_pos is then `pos`). Raises ProtocolError.
    """
    end_buf = len(buf)
    if buf[pos] != 42:  # '*'
        newline = buf.find(b"\n", pos)
        if newline < 0:
            if end_buf - pos > limits.max_inline:
                raise ProtocolError("too big inline request")
            return None, pos
        stop = newline - 1 if newline > pos and buf[newline - 1] == 13 else newline
        return split_inline(bytes(buf[pos:stop])), newline + 1
    cr = buf.find(b"\r", pos)
    if cr < 0 or cr + 1 >= end_buf:
        if end_buf - pos > limits.max_inline:
            raise ProtocolError("too big mbulk count string")
        return None, pos
    count = _parse_ll(bytes(buf[pos + 1:cr]))
    if count is None or count > limits.max_multibulk:
        raise ProtocolError("invalid multibulk length")
    at = cr + 2
    if count <= 0:
        return [], at
    args: list[bytes] = []
    max_bulk = limits.max_bulk
    for _ in range(count):
        if at >= end_buf:
            return None, pos
        if buf[at] != 36:  # '$'
            got = chr(buf[at])
            raise ProtocolError(f"expected '$', got '{got}'")
        cr = buf.find(b"\r", at)
        if cr < 0 or cr + 1 >= end_buf:
            if end_buf - at > limits.max_inline:
                raise ProtocolError("too big bulk count string")
            return None, pos
        size = _parse_ll(bytes(buf[at + 1:cr]))
        if size is None or size < 0 or size > max_bulk:
            raise ProtocolError("invalid bulk length")
        start = cr + 2
        if start + size + 2 > end_buf:
            return None, pos
        args.append(bytes(buf[start:start + size]))
        at = start + size + 2
    return args, at


class RequestParser:
    """Pure-Python request parser: the reference behaviour. Sans-IO, one per connection."""

    def __init__(self, limits: "ServerConfig | _Limits | None" = None) -> None:
        self._limits = limits if isinstance(limits, _Limits) else _Limits(limits)
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        """Append received bytes. Raises QueryBufferExceeded past client_query_buffer_limit."""
        self._buf += data
        if len(self._buf) - self._pos > self._limits.max_buffer:
            raise QueryBufferExceeded("query buffer limit exceeded")

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as commands."""
        return len(self._buf) - self._pos

    def next_command(self) -> list[bytes] | None:
        """Return the next complete command, or None if more bytes are needed."""
        buf = self._buf
        while self._pos < len(buf):
            command, self._pos = parse_one(buf, self._pos, self._limits)
            if command is None:
                break
            if command:
                self._compact()
                return command
        self._compact()
        return None

    def commands_into(self, append) -> None:
        """Call `append(command)` for every complete command; then raise a pending ProtocolError."""
        while (command := self.next_command()) is not None:
            append(command)

    def _compact(self) -> None:
        # Lazy compaction (h11 ReceiveBuffer): drop consumed bytes once they dominate.
        if self._pos and (self._pos == len(self._buf) or self._pos > 65536):
            del self._buf[:self._pos]
            self._pos = 0


class _Astray(Exception):
    """hiredis returned something Redis would not accept as a request: replay in Python."""


class HiredisRequestParser:
    """hiredis.Reader for speed, `parse_one` for anything hiredis would accept but Redis not.

    Invariant: `_mirror` holds every byte fed to the reader since the last frame boundary the
    reader has passed, and `_returned` counts commands the reader returned from it. When the
    reader goes astray, `RequestParser` takes over from that boundary until its buffer drains.
    """

    def __init__(self, limits: "ServerConfig | _Limits | None" = None) -> None:
        self._limits = limits if isinstance(limits, _Limits) else _Limits(limits)
        self._reader = hiredis.Reader()
        self._mirror = bytearray()
        self._returned = 0
        self._last: list[bytes] | None = None      # last command returned from the mirror
        self._fallback: RequestParser | None = None

    @property
    def buffered(self) -> int:
        if self._fallback is not None:
            return self._fallback.buffered
        return len(self._mirror)

    def feed(self, data: bytes) -> None:
        """Append received bytes. Raises QueryBufferExceeded past client_query_buffer_limit."""
        if self._fallback is not None:
            self._fallback.feed(data)
            return
        if not self._mirror and data[:1] != b"*":
            self._fallback = RequestParser(self._limits)   # inline (telnet) or garbage
            self._fallback.feed(data)
            return
        self._reader.feed(data)
        self._mirror += data
        if len(self._mirror) > self._limits.max_buffer:
            raise QueryBufferExceeded("query buffer limit exceeded")

    def next_command(self) -> list[bytes] | None:
        """Return the next complete command, or None if more bytes are needed."""
        while True:
            if self._fallback is not None:
                command = self._fallback.next_command()
                if command is None and not self._fallback.buffered:
                    self._fallback = None
                return command
            try:
                command = self._reader.gets()
            except hiredis.ProtocolError:
                self._replay()
                continue
            if command is False:
                self._at_rest()
                return None
            if command.__class__ is not list:
                self._replay()
                continue
            for arg in command:
                if arg.__class__ is not bytes:
                    self._replay()
                    break
            else:
                self._returned += 1
                if command:
                    self._last = command
                    return command

    def commands_into(self, append) -> None:
        """Call `append(command)` for every complete command; then raise a pending ProtocolError.

        The server's hot path: one call per received chunk instead of one per command.
        """
        if self._fallback is None:
            gets, returned, last = self._reader.gets, 0, None
            try:
                while True:
                    command = gets()
                    if command is False:
                        break
                    if command.__class__ is not list:
                        raise _Astray
                    for arg in command:
                        if arg.__class__ is not bytes:
                            raise _Astray
                    returned += 1
                    if command:
                        last = command
                        append(command)
            except (_Astray, hiredis.ProtocolError):
                self._returned += returned
                if last is not None:
                    self._last = last
                self._replay()
            else:
                self._returned += returned
                if last is not None:
                    self._last = last
                self._at_rest()
                return
        while (command := self.next_command()) is not None:
            append(command)

    def _at_rest(self) -> None:
        """The reader wants more bytes: find out whether it stopped at a boundary or mid-frame."""
        mirror = self._mirror
        if not mirror:
            return
        last = self._last
        if last is not None and self._returned and not self._reader.has_data():
            # Did the reader stop right after the last command, or mid-frame after an element?
            if len(last) == 2:          # the common GET-shaped case without a generator
                tail = b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
                    len(last[0]), last[0], len(last[1]), last[1])
            else:
                tail = b"*%d\r\n" % len(last) + b"".join(
                    [b"$%d\r\n%s\r\n" % (len(a), a) for a in last])
            if mirror.endswith(tail):
                mirror.clear()
                self._returned = 0
                self._last = None
                return
        # Mid-frame (or unsure): validate the partial frame's headers and move the boundary.
        pos = self._skip_returned()
        command, _ = parse_one(mirror, pos, self._limits) if pos < len(mirror) else (None, pos)
        if command is not None:   # the reader is behind what Redis would parse: resync
            self._replay()
            return
        del mirror[:pos]
        self._returned = 0
        self._last = None

    def _skip_returned(self) -> int:
        pos, skipped, mirror, limits = 0, 0, self._mirror, self._limits
        while skipped < self._returned:
            command, pos = parse_one(mirror, pos, limits)
            if command is None:
                raise ProtocolError("invalid multibulk length")   # desync: malformed input
            skipped += 1
        return pos

    def _replay(self) -> None:
        """Hand the bytes after the last returned command to the reference parser."""
        pos = self._skip_returned()
        fallback = RequestParser(self._limits)
        fallback.feed(bytes(self._mirror[pos:]))
        self._fallback = fallback
        self._reader = hiredis.Reader()
        self._mirror = bytearray()
        self._returned = 0
        self._last = None


def make_request_parser(limits: "ServerConfig | None" = None
                        ) -> "HiredisRequestParser | RequestParser":
    """hiredis when importable, else pure Python; both expose feed()/next_command()."""
    if hiredis is not None:
        return HiredisRequestParser(limits)
    return RequestParser(limits)  # pragma: no cover


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
        return b"$%d\r\n%s\r\n" % (len(reply), reply)
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
