"""RESP request parsing, sans-IO: the bytes a client sends -> commands (lists of bytes).

Not a socket owner: `server.py` feeds bytes in. Replies are encoded by `reply.py`.

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

Two parsers share one API (`feed(data)`, `next_command() -> list[bytes] | None`, and the
batch form `commands_into(sink)`): `RequestParser` (pure Python, the reference) and
`HiredisRequestParser` (hiredis.Reader, the fast path). hiredis validates less than Redis (it
reads every RESP3 type, accepts any type inside an array, checks no limits, waits for any
declared length, and pre-allocates a list for a declared array, set, push or attribute
count), so bytes that could hold a big aggregate header or a RESP3 type it would read
differently never reach it (`_needs_reference`), and it only keeps what it returns when the
returned commands' canonical sizes account for exactly the bytes it was fed; otherwise the
bytes go to `RequestParser`. A declared 4 GB bulk or a 3e9-element aggregate is rejected
from its header and never allocated. Before any of that, a read that starts at a frame
boundary and is nothing but whole canonical frames (every request of redis-benchmark, any
client's pipeline) is split in place by `canonical.split_canonical`, compiled: for such bytes
all three give the same commands, and that walk costs a fraction of hiredis plus the screen.
"""

from __future__ import annotations

import re
from collections import deque
from typing import TYPE_CHECKING, Final

import hiredis

from resp_kv.canonical import split_canonical

if TYPE_CHECKING:
    from resp_kv.config import ServerConfig

__all__ = [
    "ProtocolError", "QueryBufferExceeded", "RequestParser", "HiredisRequestParser",
    "make_request_parser",
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
    __slots__ = ("max_bulk", "max_multibulk", "max_inline", "max_buffer", "hiredis_max")

    def __init__(self, config: "ServerConfig | None") -> None:
        if config is None:
            from resp_kv.config import ServerConfig
            config = ServerConfig()
        self.max_bulk = config.proto_max_bulk_len
        self.max_multibulk = config.max_multibulk_len
        self.max_inline = config.max_inline_len
        self.max_buffer = config.client_query_buffer_limit
        # The most bytes since a frame boundary hiredis may see: past it a frame could hold a
        # bulk longer than max_bulk, or more than max_multibulk elements (6 bytes each at
        # least, "$0\r\n\r\n"), which hiredis does not check. Only small configured limits
        # make it matter; past it the reference parser reads the bytes.
        self.hiredis_max = min(self.max_bulk, 6 * self.max_multibulk, self.max_buffer)


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


def parse_one(buf: bytes | bytearray, pos: int, limits: _Limits
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

    def feed_into(self, data: bytes, sink) -> None:
        """`feed(data)`, then `commands_into(sink)`."""
        self.feed(data)
        self.commands_into(sink)

    def take_rest(self) -> bytes:
        """Return the bytes not yet parsed and forget them (another parser takes over)."""
        rest = bytes(self._buf[self._pos:])
        self._buf, self._pos = bytearray(), 0
        return rest

    def commands_into(self, sink) -> None:
        """Append every complete command to `sink`; then raise a pending ProtocolError."""
        append = sink.append
        while (command := self.next_command()) is not None:
            append(command)

    def _compact(self) -> None:
        # Lazy compaction (h11 ReceiveBuffer): drop consumed bytes once they dominate.
        if self._pos and (self._pos == len(self._buf) or self._pos > 65536):
            del self._buf[:self._pos]
            self._pos = 0


class _Astray(Exception):
    """hiredis returned something Redis would not accept as a request: replay in Python."""


# An aggregate header with 7+ digits anywhere in the input: hiredis pre-allocates the count
# (PyList_New: 3e9 slots = 24 GB of address space, and seconds of a stalled loop) for `*`
# arrays and for RESP3 `~` sets, `>` pushes and `|` attributes alike (not for `%` maps,
# measured). Such bytes never reach hiredis; the reference parser applies max_multibulk_len
# instead (Redis reads `*` arrays and inline lines only). A value that merely contains such
# text costs Python parsing for that chunk, nothing more. `_BIG_ARRAY` is the literal-prefix
# scan every read can afford; the other types' scans run only when their byte is there (each
# a literal prefix too: a `[~>|]` class made sre five times slower, 1 us per SET frame of
# redis-benchmark's random values). "Anywhere", not "after a line end": hiredis, like Redis,
# skips the two bytes after a bulk without looking at them, so a header may follow any two.
_BIG_ARRAY: Final = re.compile(rb"\*[0-9]{7,}")
_BIG_SET: Final = re.compile(rb"~[0-9]{7,}")
_BIG_PUSH: Final = re.compile(rb">[0-9]{7,}")
_BIG_ATTRIBUTE: Final = re.compile(rb"\|[0-9]{7,}")
_TAIL: Final = 32                     # bytes of the previous chunk searched to catch a split header
# A read that ends inside a frame keeps that frame's bytes (at most this many) and stays on
# hiredis; a longer partial frame (a big value) goes to the reference parser, which holds it
# once instead of twice (the reader's copy and ours).
_PARTIAL_MAX: Final = 64 * 1024

# Byte values for the `in` tests below: `int in bytes` is a memchr, while `bytes in bytes`
# first tries its argument as an int (and formats a TypeError), and `find` parses its
# arguments the slow way (~600 instructions, a few % of a GET at -P 1).
_EQUALS: Final = ord("=")
_TILDE: Final = ord("~")
_GREATER: Final = ord(">")
_BAR: Final = ord("|")
_PLUS: Final = ord("+")
_PAREN: Final = ord("(")
_STAR: Final = ord("*")


def _needs_reference(data: bytes | bytearray, aggregates: bool | None = None) -> bool:
    """True if hiredis must not read `data`: a big aggregate header (above), or both a longer
    and a shorter element than canonical could be there, which could make up for each other
    in the canonical-size check: a `=` verbatim string comes back without its 4-byte format
    prefix (longer than the canonical bulk), a `+simple` or `(big number` as bytes shorter
    than it. Every other element type comes back as something other than bytes (the class
    checks), and a top-level `~` set, `>` push or `|` attribute as a list the size of a `*`
    array, which `_aggregate_types` has the frame starts checked for. Common data costs one
    literal-prefix regex scan and four memchrs; redis-benchmark's random values (`=`, `>`,
    `<`...) two more memchrs and a literal-prefix scan per `~`/`>`/`|` byte present. (A `%`
    map comes back as a dict, or hiredis raises for a list key: either way the reference
    parser reads it.)

    Bytes, not positions: a type byte need not follow a line end, since the two bytes after a
    bulk are skipped unread (`*1\r\n$4\r\nPINGXY~1...` is PING, then an inline `~1`).
    `aggregates`: `_aggregate_types(data)` if the caller has it (no `~`/`>`/`|` byte: no such
    header to search for)."""
    if aggregates is None:
        aggregates = _aggregate_types(data)
    return (_BIG_ARRAY.search(data) is not None or (aggregates and _big_aggregate(data))
            or (_EQUALS in data and (_PLUS in data or _PAREN in data)))


def _big_aggregate(data: bytes | bytearray) -> bool:
    """A `~`, `>` or `|` header with 7+ digits may be in `data` (see `_BIG_ARRAY`)."""
    return ((_TILDE in data and _BIG_SET.search(data) is not None)
            or (_GREATER in data and _BIG_PUSH.search(data) is not None)
            or (_BAR in data and _BIG_ATTRIBUTE.search(data) is not None))


def _aggregate_types(data: bytes | bytearray) -> bool:
    """True if `data` holds a `~`, `>` or `|` byte: a top-level frame of one of those types
    would come back as a list, so every frame must be seen to start with `*`."""
    return _TILDE in data or _GREATER in data or _BAR in data


def _short_element(data: bytes | bytearray) -> bool:
    """True if `data` may hold a `+simple` or `(big number` element."""
    return _PLUS in data or _PAREN in data


def _odd_sized_element(data: bytes | bytearray) -> bool:
    """True if `data` may hold an element of other than its canonical size: shorter (`+`,
    `(`) or longer (a `=` verbatim string)."""
    return _EQUALS in data or _PLUS in data or _PAREN in data


_HDR_MAX: Final = 10000
_BULK_HDR: Final = tuple(5 + len(str(k)) for k in range(_HDR_MAX))   # "$<k>\r\n" + "\r\n"


def _canonical_size(command: list) -> int:
    """The size of `command` framed canonically ("*<n>" then "$<len>" bulks); raises _Astray
    for an element that is not a bulk string."""
    count = len(command)
    size = 4 if count < 10 else 3 + len(str(count))
    for arg in command:
        if type(arg) is not bytes:
            raise _Astray
        length = len(arg)
        size += length + (_BULK_HDR[length] if length < _HDR_MAX else 5 + len(str(length)))
    return size


class HiredisRequestParser:
    """hiredis.Reader for speed; the reference parser whenever hiredis could differ from Redis.

    Invariant: `_mirror` + `_last` hold exactly the bytes fed to the reader since the last
    frame boundary (`_last`: a chunk fed at a boundary, kept by reference: a request that
    arrives whole, every request at -P 1, is never copied).

    Bytes `_needs_reference` flags never reach the reader, and when a `~`/`>`/`|` byte is
    among those that do, every frame is checked to start with `*` (`_check_starts`). So a
    command hiredis returns is a `*` array whose elements are canonical `$` bulks, or
    shorter `+simple`/`(big number` ones, or longer `=` verbatim ones, never both kinds of
    odd size in one stretch of bytes. After the reader has returned all it can, the
    canonical sizes of the returned commands equal the bytes they took exactly when every
    one was canonical:

    - the reader holds nothing and the sizes add up to the mirror: every frame was canonical;
      the mirror is dropped;
    - the reader holds the start of a frame (a read that ended inside one: streamed
      pipelines, `redis-cli --pipe`) and no `+`/`(`/`=` element can be in the mirror: the
      whole frames were canonical, the partial one starts at their size, and the mirror
      keeps just its bytes (up to `_PARTIAL_MAX`);
    - anything else (a non-canonical or malformed frame, a hiredis error, inline commands,
      a partial frame past `_PARTIAL_MAX`) hands the mirror to `RequestParser`, which parses
      it exactly as Redis would, until its buffer is empty at a boundary; then hiredis takes
      over again.
    """

    def __init__(self, limits: "ServerConfig | _Limits | None" = None) -> None:
        self._limits = limits if isinstance(limits, _Limits) else _Limits(limits)
        self._reader = hiredis.Reader()
        self._mirror = bytearray()
        self._last: bytes | None = None
        self._check_starts = False                # `_aggregate_types` in the mirrored bytes
        self._fallback: RequestParser | None = None
        self._ready: deque[list[bytes]] = deque()
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        if self._fallback is not None:
            return self._fallback.buffered
        return len(self._mirror) + (len(self._last) if self._last is not None else 0)

    def feed(self, data: bytes) -> None:
        """Append received bytes. Raises QueryBufferExceeded past client_query_buffer_limit."""
        mirror = self._mirror
        if self._last is not None:                # fed twice without commands_into
            mirror += self._last
            self._last = None
        if self._fallback is None:
            if mirror:
                # A frame continues from the last read: a header may straddle the two, and a
                # longer and a shorter element be one on each side.
                if (_needs_reference(bytes(mirror[-_TAIL:]) + data[:_TAIL])
                        or _needs_reference(data)
                        or ((_EQUALS in mirror or _EQUALS in data)
                            and (_short_element(mirror) or _short_element(data)))
                        or len(mirror) + len(data) > self._limits.hiredis_max):
                    self._to_fallback()
                elif _aggregate_types(data):
                    self._check_starts = True
            elif data[:1] != b"*":
                self._fallback = RequestParser(self._limits)    # inline (telnet) or garbage
            else:
                aggregates = _aggregate_types(data)
                if _needs_reference(data, aggregates) or len(data) > self._limits.hiredis_max:
                    self._to_fallback()
                else:
                    self._check_starts = aggregates
        if self._fallback is not None:
            self._fallback.feed(data)
            return
        self._reader.feed(data)
        if mirror:
            mirror += data
            if len(mirror) > self._limits.max_buffer:
                raise QueryBufferExceeded("query buffer limit exceeded")
        else:
            self._last = data
            if len(data) > self._limits.max_buffer:
                raise QueryBufferExceeded("query buffer limit exceeded")

    def feed_into(self, data: bytes, sink) -> None:
        """`feed(data)`, then `commands_into(sink)`: the server's hot path, one call per read.
        A read that starts at a frame boundary and is whole canonical frames (what clients
        send) is split in place instead (resp_kv/canonical.py): no hiredis, no screen. Under
        hiredis_max, as hiredis's input is, so no frame there can pass a configured limit."""
        if (self._fallback is None and self._last is None and not self._mirror
                and data[:1] == b"*" and len(data) <= self._limits.hiredis_max):
            commands = split_canonical(data)
            if commands is not None:
                sink.extend(commands)
                return
        self.feed(data)
        self.commands_into(sink)

    def _keep_partial(self, size: int) -> bool:
        """The reader holds the start of a frame after whole frames of canonical `size`:
        keep only that frame's bytes and return True, if no `+`/`(`/`=` element can be among
        the fed bytes (then `size` is what the whole frames took) and the reference parser finds
        nothing wrong with the partial frame so far (hiredis checks no limits: a header past
        proto-max-bulk-len must be refused now, as Redis does); else False (replay)."""
        last = self._last
        fed = last if last is not None else self._mirror
        if fed[size:size + 1] != b"*" or _odd_sized_element(fed):
            return False
        probe = RequestParser(self._limits)
        try:
            probe.feed(bytes(fed[size:]))
            if probe.next_command() is not None:
                return False                      # not partial after all: cannot be
        except ProtocolError:
            return False
        if last is not None:
            self._mirror += memoryview(last)[size:]
            self._last = None
        else:
            del self._mirror[:size]
        return True

    def _to_fallback(self) -> None:
        self._check_starts = False
        fallback = RequestParser(self._limits)
        if self._last is not None:
            self._mirror += self._last
            self._last = None
        if self._mirror:
            fallback.feed(bytes(self._mirror))
        self._fallback = fallback
        self._reader = hiredis.Reader()
        self._mirror = bytearray()

    def commands_into(self, sink) -> None:
        """Append every complete command to `sink` (a list or deque); then raise a pending
        ProtocolError. The server's hot path: one call per received chunk."""
        if self._fallback is None:
            gets, append, size, added = self._reader.gets, sink.append, 0, 0
            last = self._last
            # Where frames start, when a top-level `~`/`>`/`|` frame could pass for an array:
            # at the canonical sizes so far (if those are wrong, so is the final sum).
            starts = (last if last is not None else self._mirror) if self._check_starts else None
            try:
                while (command := gets()) is not False:
                    if type(command) is not list:
                        raise _Astray
                    if starts is not None and starts[size] != _STAR:
                        raise _Astray
                    count = len(command)
                    # Two and three arguments (GET, SET...) unrolled: the per-argument loop
                    # (_canonical_size) was a fifth of the lines of Python of a pipelined GET.
                    # An IndexError is a bulk of 10k+ bytes: the loop sizes that one.
                    try:
                        if count == 2:
                            a, b = command
                            if type(a) is not bytes or type(b) is not bytes:
                                raise _Astray
                            la, lb = len(a), len(b)
                            size += 4 + _BULK_HDR[la] + _BULK_HDR[lb] + la + lb
                        elif count == 3:
                            a, b, c = command
                            if (type(a) is not bytes or type(b) is not bytes
                                    or type(c) is not bytes):
                                raise _Astray
                            la, lb, lc = len(a), len(b), len(c)
                            size += (4 + _BULK_HDR[la] + _BULK_HDR[lb] + _BULK_HDR[lc]
                                     + la + lb + lc)
                        else:
                            size += _canonical_size(command)
                    except IndexError:
                        size += _canonical_size(command)
                    if count:
                        append(command)
                        added += 1
            except Exception:
                # _Astray, a hiredis.ProtocolError, or anything else hiredis raises (its
                # TypeError for an unhashable map key was one): the reference parser decides.
                pass
            else:
                fed = len(self._mirror) + (len(last) if last is not None else 0)
                if size == fed and not self._reader.has_data():
                    if last is None:
                        self._mirror.clear()
                    self._last = None
                    self._check_starts = False
                    return
                if size < fed <= size + _PARTIAL_MAX and self._keep_partial(size):
                    return
            for _ in range(added):                # not canonical after all: replay it all
                sink.pop()
            self._to_fallback()
        fallback = self._fallback
        assert fallback is not None
        try:
            fallback.commands_into(sink)
        finally:
            if not fallback.buffered:
                self._fallback = None

    def next_command(self) -> list[bytes] | None:
        """Return the next complete command, or None if more bytes are needed."""
        if not self._ready and self._error is None:
            try:
                self.commands_into(self._ready)
            except ProtocolError as error:
                self._error = error
        if self._ready:
            return self._ready.popleft()
        if self._error is not None:
            raise self._error
        return None


def make_request_parser(limits: "ServerConfig | None" = None
                        ) -> "HiredisRequestParser | RequestParser":
    """The request parser a connection uses: hiredis, exact as `HiredisRequestParser` says."""
    return HiredisRequestParser(limits)
