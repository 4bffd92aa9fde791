"""Request parsers: framing, inline commands, Redis's limits and error texts, hiredis parity.

Both parsers run every test (`parser_cls` fixture); the pure-Python one is the reference.
"""

from __future__ import annotations

import resource

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resp_kv.config import ServerConfig
from resp_kv.resp import (HiredisRequestParser, ProtocolError, QueryBufferExceeded,
                          RequestParser, make_request_parser, split_inline)


@pytest.fixture(params=[RequestParser, HiredisRequestParser], ids=["python", "hiredis"])
def parser_cls(request):
    return request.param


def frame(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def drain(parser) -> list[list[bytes]]:
    commands = []
    while (command := parser.next_command()) is not None:
        commands.append(command)
    return commands


def parse_all(parser_cls, data: bytes, config: ServerConfig | None = None) -> list[list[bytes]]:
    parser = parser_cls(config)
    parser.feed(data)
    return drain(parser)


def error_of(parser_cls, data: bytes, config: ServerConfig | None = None) -> bytes:
    parser = parser_cls(config)
    with pytest.raises(ProtocolError) as caught:
        parser.feed(data)
        drain(parser)
    return caught.value.reply()


def test_parser_make_request_parser_prefers_hiredis():
    assert isinstance(make_request_parser(ServerConfig()), HiredisRequestParser)


def test_parser_one_multibulk_command(parser_cls):
    assert parse_all(parser_cls, frame(b"SET", b"k", b"v")) == [[b"SET", b"k", b"v"]]


def test_parser_binary_safe_values(parser_cls):
    value = bytes(range(256)) + b"\r\n*1\r\n$3\r\n"
    assert parse_all(parser_cls, frame(b"SET", b"k\x00", value)) == [[b"SET", b"k\x00", value]]


def test_parser_empty_bulk(parser_cls):
    assert parse_all(parser_cls, frame(b"SET", b"k", b"")) == [[b"SET", b"k", b""]]


def test_parser_pipelined_batch_in_order(parser_cls):
    data = b"".join(frame(b"INCR", b"k%d" % i) for i in range(100))
    assert parse_all(parser_cls, data) == [[b"INCR", b"k%d" % i] for i in range(100)]


def test_parser_byte_at_a_time(parser_cls):
    data = frame(b"SET", b"key", b"value") + b"PING\r\n" + frame(b"GET", b"key") + b"\r\n"
    parser = parser_cls()
    commands = []
    for i in range(len(data)):
        parser.feed(data[i:i + 1])
        commands.extend(drain(parser))
    assert commands == [[b"SET", b"key", b"value"], [b"PING"], [b"GET", b"key"]]


def test_parser_every_split_point(parser_cls):
    data = frame(b"SET", b"key", b"value") + frame(b"GET", b"key") + b"ECHO hi\r\n"
    for cut in range(len(data) + 1):
        parser = parser_cls()
        parser.feed(data[:cut])
        commands = drain(parser)
        parser.feed(data[cut:])
        commands += drain(parser)
        assert commands == [[b"SET", b"key", b"value"], [b"GET", b"key"], [b"ECHO", b"hi"]], cut


def test_parser_blank_lines_and_empty_multibulk_are_ignored(parser_cls):
    data = b"\r\n\n*0\r\n*-1\r\n" + frame(b"PING") + b"   \r\n*0\r\n" + frame(b"PING")
    assert parse_all(parser_cls, data) == [[b"PING"], [b"PING"]]


def test_parser_inline_commands(parser_cls):
    data = b"SET k v\r\nGET   k\nPING\r\n"
    assert parse_all(parser_cls, data) == [[b"SET", b"k", b"v"], [b"GET", b"k"], [b"PING"]]


def test_parser_inline_after_multibulk_in_one_chunk(parser_cls):
    data = frame(b"PING") + b"ECHO x\r\n" + frame(b"GET", b"k")
    assert parse_all(parser_cls, data) == [[b"PING"], [b"ECHO", b"x"], [b"GET", b"k"]]


@pytest.mark.parametrize("line, args", [
    (b'SET k "hello world"', [b"SET", b"k", b"hello world"]),
    (b"SET k 'it''s'", None),
    (b"SET k 'it\\'s'", [b"SET", b"k", b"it's"]),
    (b'ECHO "a\\x41\\n\\t\\"b"', [b"ECHO", b'aA\n\t"b']),
    (b'ECHO ""', [b"ECHO", b""]),
    (b'ECHO "unterminated', None),
    (b"ECHO 'unterminated", None),
    (b'ECHO "a"b', None),
])
def test_parser_inline_quoting_like_sdssplitargs(parser_cls, line, args):
    if args is None:
        assert error_of(parser_cls, line + b"\r\n") == (
            b"-ERR Protocol error: unbalanced quotes in request\r\n")
    else:
        assert parse_all(parser_cls, line + b"\r\n") == [args]


def test_parser_split_inline_whitespace_only():
    assert split_inline(b" \t ") == []


@pytest.mark.parametrize("data, message", [
    (b"*abc\r\n", b"invalid multibulk length"),
    (b"*+1\r\n", b"invalid multibulk length"),
    (b"*1048577\r\n", b"invalid multibulk length"),
    (b"*99999999999999999999999\r\n", b"invalid multibulk length"),
    (b"*1\r\n$abc\r\n", b"invalid bulk length"),
    (b"*1\r\n$-1\r\n", b"invalid bulk length"),
    (b"*1\r\n$-5\r\n", b"invalid bulk length"),
    (b"*1\r\n$01\r\nx\r\n", b"invalid bulk length"),
    (b"*1\r\n$536870913\r\n", b"invalid bulk length"),
    (b"*1\r\n$4294967296\r\n", b"invalid bulk length"),
    (b"*1\r\n:1\r\n", b"expected '$', got ':'"),
    (b"*1\r\n*1\r\n$1\r\na\r\n", b"expected '$', got '*'"),
    (b"*2\r\n$3\r\nGET\r\nfoo\r\n", b"expected '$', got 'f'"),
])
def test_parser_malformed_multibulk_exact_errors(parser_cls, data, message):
    assert error_of(parser_cls, data) == b"-ERR Protocol error: " + message + b"\r\n"


def test_parser_error_comes_after_earlier_commands(parser_cls):
    parser = parser_cls()
    parser.feed(frame(b"PING") + frame(b"ECHO", b"a") + b"*1\r\n$-3\r\n")
    assert parser.next_command() == [b"PING"]
    assert parser.next_command() == [b"ECHO", b"a"]
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        parser.next_command()


def test_parser_bulk_limit_is_configurable(parser_cls):
    config = ServerConfig(proto_max_bulk_len=10)
    assert parse_all(parser_cls, frame(b"SET", b"k", b"x" * 10), config) == [
        [b"SET", b"k", b"x" * 10]]
    assert error_of(parser_cls, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$11\r\n", config) == (
        b"-ERR Protocol error: invalid bulk length\r\n")


def test_parser_too_big_inline_request(parser_cls):
    assert error_of(parser_cls, b"x" * (64 * 1024 + 1)) == (
        b"-ERR Protocol error: too big inline request\r\n")


def test_parser_inline_just_under_limit_waits(parser_cls):
    parser = parser_cls()
    parser.feed(b"ECHO " + b"x" * (64 * 1024 - 10))
    assert parser.next_command() is None


def test_parser_too_big_count_strings(parser_cls):
    assert error_of(parser_cls, b"*" + b"1" * (64 * 1024 + 1)) == (
        b"-ERR Protocol error: too big mbulk count string\r\n")
    assert error_of(parser_cls, b"*1\r\n$" + b"1" * (64 * 1024 + 1)) == (
        b"-ERR Protocol error: too big bulk count string\r\n")


def test_parser_query_buffer_limit_closes(parser_cls):
    config = ServerConfig(client_query_buffer_limit=1000)
    parser = parser_cls(config)
    parser.feed(b"*2\r\n$3\r\nGET\r\n$900\r\n" + b"x" * 500)
    assert parser.next_command() is None
    with pytest.raises(QueryBufferExceeded):
        parser.feed(b"x" * 600)
        parser.next_command()
    assert QueryBufferExceeded("x").reply() == b""


def test_parser_limits_hold_for_whole_frames_too(parser_cls):
    """hiredis checks no limits; a frame that arrives whole still gets Redis's error."""
    small_bulk = ServerConfig(proto_max_bulk_len=10)
    assert error_of(parser_cls, frame(b"SET", b"k", b"x" * 11), small_bulk) == (
        b"-ERR Protocol error: invalid bulk length\r\n")
    few_args = ServerConfig(max_multibulk_len=2)
    assert parse_all(parser_cls, frame(b"GET", b"k"), few_args) == [[b"GET", b"k"]]
    assert error_of(parser_cls, frame(b"SET", b"k", b"v"), few_args) == (
        b"-ERR Protocol error: invalid multibulk length\r\n")


def test_parser_huge_declared_lengths_never_allocate(parser_cls):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for data in (b"*1\r\n$4000000000\r\n", b"*1048576\r\n$1\r\na\r\n",
                 b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\nabc"):
        parser = parser_cls()
        try:
            parser.feed(data)
            assert parser.next_command() is None
        except ProtocolError:
            pass
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 50_000


def test_parser_large_value_across_many_chunks(parser_cls):
    value = b"v" * 300_000
    data = frame(b"SET", b"k", value) + frame(b"GET", b"k")
    parser = parser_cls()
    commands = []
    for start in range(0, len(data), 7000):
        parser.feed(data[start:start + 7000])
        commands += drain(parser)
    assert commands == [[b"SET", b"k", value], [b"GET", b"k"]]


@pytest.mark.parametrize("size", [0, 9, 10, 9_999, 10_000, 123_456])
def test_parser_whole_frames_with_any_bulk_size_stay_on_hiredis(size):
    """The unrolled two- and three-argument size check, across the header-table boundary."""
    value = b"v" * size
    commands = [[b"GET", value], [b"SET", b"k", value], [value, b"k", b"v"], [b"PING"]]
    parser = HiredisRequestParser()
    reader = parser._reader                   # replaced when the bytes go to RequestParser
    parser.feed(b"".join(frame(*c) for c in commands))
    sink: list = []
    parser.commands_into(sink)
    assert sink == commands
    assert parser._reader is reader and parser._fallback is None and not parser._mirror


def test_parser_simple_string_element_is_rejected_even_in_a_whole_frame(parser_cls):
    assert error_of(parser_cls, frame(b"PING") + b"*1\r\n+PING\r\n") == (
        b"-ERR Protocol error: expected '$', got '+'\r\n")


@pytest.mark.parametrize("short", [b"+a\r\n", b"(1\r\n"])
def test_parser_shorter_and_longer_elements_cannot_hide_each_other(parser_cls, short):
    """Four frames with a `+simple` or `(big number` element (3 bytes shorter than the
    canonical bulk) and three with a verbatim one (4 bytes longer) add up to the canonical
    size of seven GETs; hiredis returns all seven as bytes. Redis refuses the first."""
    data = (b"*2\r\n$3\r\nGET\r\n" + short) * 4 + b"*2\r\n$3\r\nGET\r\n=5\r\ntxt:a\r\n" * 3
    assert len(data) == 7 * len(frame(b"GET", b"a"))
    assert error_of(parser_cls, data) == (
        b"-ERR Protocol error: expected '$', got '%s'\r\n" % short[:1])
    for cuts in ([], [len(data) // 2], [40, 90]):
        reference = _outcome(RequestParser, frame(b"PING") + data, cuts)
        assert _outcome(HiredisRequestParser, frame(b"PING") + data, cuts, "fused") == reference


@pytest.mark.parametrize("kind", [b"~", b">", b"|", b"%"])
def test_parser_resp3_aggregates_in_requests_answer_as_the_reference(kind):
    """hiredis reads RESP3 sets, pushes and attributes as lists of bytes the size of a `*`
    array, and pre-allocates their declared counts (a 30-byte request used to cost a 24 GB
    allocation and seconds of a stalled loop). Redis reads a request's frames as `*` arrays
    or inline lines only: the reference parser's answer, whole or split, no allocation."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for data in (frame(b"PING") + kind + b"2\r\n$3\r\nGET\r\n$1\r\nk\r\n" + frame(b"PING"),
                 frame(b"PING") + kind + b"3000000000\r\n" + frame(b"PING"),
                 frame(b"PING") + b"*1\r\n" + kind + b"3000000000\r\n"):
        for cuts in ([], [len(data) - 30], [len(data) - 20, len(data) - 10]):
            reference = _outcome(RequestParser, data, cuts)
            assert _outcome(HiredisRequestParser, data, cuts, "fused") == reference
            assert _outcome(HiredisRequestParser, data, cuts, batch=True) == reference
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000


@pytest.mark.parametrize("after", [
    b"~1\r\n$4\r\nPING\r\n", b">1\r\n$4\r\nPING\r\n", b"|1\r\n$1\r\na\r\n$1\r\nb\r\n",
    b"~3000000000\r\n", b">3000000000\r\n",
])
def test_parser_resp3_frame_after_the_two_unread_bytes_of_a_bulk(after):
    """Redis and hiredis skip the two bytes after a bulk without reading them, so a frame may
    start right after any two bytes, not after a line end: `PINGXY~1...` is PING, then an
    inline `~1` for Redis; hiredis read a set there, a list passing for a second PING."""
    data = b"*1\r\n$4\r\nPINGXY" + after + frame(b"PING")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for cuts in ([], [10], [len(data) - 12]):
        reference = _outcome(RequestParser, data, cuts)
        assert _outcome(HiredisRequestParser, data, cuts, "fused") == reference
        assert _outcome(HiredisRequestParser, data, cuts, batch=True) == reference
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000


def test_parser_verbatim_and_simple_elements_after_unread_bytes_answer_as_the_reference():
    """A longer `=` and a shorter `+` element, each after two unread bytes, even out in the
    canonical sizes: neither needs a line end before it to be read by hiredis."""
    data = (b"*3\r\n$3\r\nSETXY+abc\r\n$3\r\nabcXY=7\r\ntxt:abc\r\n" + frame(b"PING"))
    for cuts in ([], [20]):
        reference = _outcome(RequestParser, data, cuts)
        assert _outcome(HiredisRequestParser, data, cuts, "fused") == reference


def test_parser_benchmark_values_stay_on_hiredis():
    """redis-benchmark's values are random bytes from `0` to `z`: `=`, `>`, `<`, `[`... A
    frame that holds them whole is read by hiredis, with no reference parser and no copy."""
    value = b"VXKeHogKgJ=[5V9_X^b?48OKF2jGA<f:iR@50o7dS3JV4Q6L68lC[GTA]0DaMg>_oSmcS2^N1J?ELSX"
    commands = [[b"SET", b"key:%012d" % i, value] for i in range(16)]
    parser, parsed = HiredisRequestParser(), []
    for request in (frame(*commands[0]), b"".join(frame(*c) for c in commands)):
        parser.feed_into(request, parsed)
        assert parser._fallback is None and not parser._mirror and parser._last is None
    assert parsed == commands[:1] + commands


def test_parser_streamed_pipeline_stays_on_hiredis():
    """Reads that end inside a frame (a long pipeline, `redis-cli --pipe`) keep the partial
    frame's bytes and go on with the same reader: the reference parser never runs."""
    commands = [[b"SET", b"key:%d" % i, b"v" * (i % 300)] for i in range(2000)]
    data = b"".join(frame(*c) for c in commands)
    parser = HiredisRequestParser()
    reader, parsed = parser._reader, []
    for start in range(0, len(data), 4093):   # a prime: the cuts fall inside frames
        parser.feed_into(data[start:start + 4093], parsed)
        assert parser._fallback is None and parser._reader is reader
        assert len(parser._mirror) < 400       # at most the one partial frame
    assert parsed == commands and not parser._mirror


@pytest.mark.parametrize("inner", [b"b" * 1000, b"*1\r\n$900\r\n" + b"b" * 990])
def test_parser_partial_frame_after_a_simple_string_element_is_replayed(inner):
    """`+` elements before a read's partial frame make it start earlier than the canonical
    sizes say (3 bytes each; seven of them point 21 bytes in, at the second case's inner
    frame, which would pass for a partial frame): the reference parser takes the read."""
    data = (frame(b"PING") + b"*2\r\n$4\r\nECHO\r\n+a\r\n" * 7 + frame(b"ECHO", inner))
    for cut in range(len(data) - len(inner) + 5, len(data) - len(inner) + 60, 9):
        reference = _outcome(RequestParser, data, [cut])
        assert reference == ([[b"PING"]], b"-ERR Protocol error: expected '$', got '+'\r\n")
        assert _outcome(HiredisRequestParser, data, [cut], "fused") == reference


def test_parser_partial_frame_after_a_verbatim_element_is_replayed():
    """A `=` verbatim element is 4 bytes longer than its canonical bulk (its `txt:` prefix
    is dropped), so the canonical sizes point 4 bytes before the partial frame: here at
    `*2\r\n` inside the verbatim string, which would pass for a partial frame. The
    reference parser takes the read (a `=` alone reaches hiredis, since it cannot make the
    sizes add up, except where a partial frame is cut from them)."""
    verbatim = b"txt:helloooo*2"
    data = b"*2\r\n$4\r\nECHO\r\n=%d\r\n%s\r\n$5\r\nab" % (len(verbatim), verbatim)
    reference = _outcome(RequestParser, data, [])
    assert reference == ([], b"-ERR Protocol error: expected '$', got '='\r\n")
    assert _outcome(HiredisRequestParser, data, [], "fused") == reference
    assert _outcome(HiredisRequestParser, data, [], batch=True) == reference


@pytest.mark.parametrize("data", [
    b"*3000000000\r\n", b"*1\r\n*3000000000\r\n", b"*2\r\n$1\r\na\r\n*4000000000\r\n",
])
def test_parser_huge_array_counts_never_reach_hiredis(parser_cls, data):
    parser = parser_cls()
    with pytest.raises(ProtocolError):
        for i in range(0, len(data), 3):      # split headers across chunks too
            parser.feed(data[i:i + 3])
            parser.next_command()
    if parser_cls is HiredisRequestParser:
        assert not parser._mirror
    whole = parser_cls()                      # in one read, through the server's call
    with pytest.raises(ProtocolError):
        whole.feed_into(data, [])


def test_parser_value_that_looks_like_a_big_array_is_fine(parser_cls):
    value = b"*12345678\r\n" * 3
    assert parse_all(parser_cls, frame(b"SET", b"k", value) + frame(b"GET", b"k")) == [
        [b"SET", b"k", value], [b"GET", b"k"]]


# --------------------------------------------------------------------------------- parity

_arg = st.binary(max_size=40)
_command = st.lists(_arg, min_size=1, max_size=6)
_inline_word = st.text(alphabet="abcXYZ019_-:", min_size=1, max_size=8).map(str.encode)
_junk = st.sampled_from([
    b"\r\n", b"*0\r\n", b"*-1\r\n", b"*1\r\n$-1\r\n", b"*1\r\n:5\r\n", b"*x\r\n",
    b"*1\r\n$99999999999\r\n", b'ECHO "open\r\n', b"*2\r\n$1\r\na\r\n*1\r\n$1\r\nb\r\n",
    b"*2\r\n$3\r\nGET\r\n:5\r\n", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n+v\r\n",
    b"*3\r\n$3\r\nSET\r\n*1\r\n$1\r\nk\r\n$1\r\nv\r\n", b"*2\r\n$03\r\nGET\r\n$1\r\nk\r\n",
    b"*02\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$-1\r\n",
    b"*2\r\n$3\r\nGET\r\n(123\r\n", b"*2\r\n$3\r\nGET\r\n=5\r\ntxt:a\r\n",
    b"~2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b">1\r\n$4\r\nPING\r\n", b"|1\r\n$1\r\na\r\n$1\r\nb\r\n",
    b"%1\r\n*1\r\n$1\r\na\r\n$1\r\nb\r\n",
    # a bulk followed by two bytes that are not a line end (read past unchecked), so what
    # comes next starts after them
    b"*1\r\n$4\r\nPINGXY", b"*2\r\n$3\r\nGETXY", b"*3\r\n$3\r\nSET\r\n$1\r\nkXY",
])


@st.composite
def _stream(draw):
    parts = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["frame", "frame", "inline", "junk"]))
        if kind == "frame":
            parts.append(frame(*draw(_command)))
        elif kind == "inline":
            parts.append(b" ".join(draw(st.lists(_inline_word, min_size=1, max_size=4))) + b"\r\n")
        else:
            parts.append(draw(_junk))
    data = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return data, cuts


def _outcome(parser_cls, data: bytes, cuts: list[int], batch: bool | str = False):
    """Parse `data` fed in pieces cut at `cuts`: commands one by one, or `batch`
    (commands_into after each feed), or batch="fused" (feed_into, the server's call)."""
    parser = parser_cls()
    commands: list = []
    bounds = [0, *cuts, len(data)]
    try:
        for start, end in zip(bounds, bounds[1:]):
            if batch == "fused":
                parser.feed_into(data[start:end], commands)
                continue
            parser.feed(data[start:end])
            if batch:
                parser.commands_into(commands)
            else:
                while (command := parser.next_command()) is not None:
                    commands.append(command)
    except ProtocolError as error:
        return commands, error.reply()
    return commands, None


@settings(max_examples=150, deadline=None)
@given(_stream())
def test_parser_hiredis_matches_python(stream):
    data, cuts = stream
    reference = _outcome(RequestParser, data, cuts)
    assert _outcome(HiredisRequestParser, data, cuts) == reference
    assert _outcome(HiredisRequestParser, data, cuts, batch=True) == reference
    assert _outcome(HiredisRequestParser, data, cuts, batch="fused") == reference
    assert _outcome(RequestParser, data, cuts, batch=True) == reference


@pytest.mark.parametrize("data", [
    b"*2\r\n$3\r\nGET\r\n:5\r\n", b"*2\r\n:5\r\n$3\r\nGET\r\n", b"*2\r\n$3\r\nGET\r\n$-1\r\n",
    b"*2\r\n$3\r\nGET\r\n*1\r\n$1\r\nk\r\n", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n+v\r\n",
    b"*3\r\n$3\r\nSET\r\n:1\r\n$1\r\nv\r\n", b"*3\r\n$-1\r\n$1\r\nk\r\n$1\r\nv\r\n",
    b"*2\r\n$03\r\nGET\r\n$1\r\nk\r\n", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$01\r\nv\r\n",
])
def test_parser_short_commands_with_odd_elements_answer_as_the_reference(data):
    """Two- and three-element arrays (the unrolled size check) holding a non-bulk element or
    a non-canonical header: what Redis (RequestParser) says, whole or split."""
    for cuts in ([], [len(data) // 2]):
        reference = _outcome(RequestParser, data + frame(b"PING"), cuts)
        assert _outcome(HiredisRequestParser, data + frame(b"PING"), cuts, batch=True) == reference
        assert _outcome(HiredisRequestParser, data + frame(b"PING"), cuts, "fused") == reference


def test_parser_commands_into_appends_then_raises(parser_cls):
    parser = parser_cls()
    parser.feed(frame(b"PING") + b"*1\r\n:1\r\n")
    commands: list = []
    with pytest.raises(ProtocolError, match="expected '\\$', got ':'"):
        parser.commands_into(commands)
    assert commands == [[b"PING"]]


@settings(max_examples=80, deadline=None)
@given(st.lists(_command, min_size=1, max_size=20), st.data())
def test_parser_valid_streams_roundtrip_at_any_split(commands, data):
    raw = b"".join(frame(*c) for c in commands)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=5)))
    for parser_cls in (RequestParser, HiredisRequestParser):
        assert _outcome(parser_cls, raw, cuts) == (commands, None)
        assert _outcome(parser_cls, raw, cuts, batch=True) == (commands, None)
