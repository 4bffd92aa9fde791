"""resp_kv/canonical.py: whole canonical frames split in place, and nothing else accepted.

The law: `split_canonical(data)` is None, or it is exactly what the reference parser
(RequestParser, Redis's rules) returns for `data`, with no error and no byte left over.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resp_kv.canonical import split_canonical
from resp_kv.config import ServerConfig
from resp_kv.resp import (HiredisRequestParser, ProtocolError, QueryBufferExceeded,
                          RequestParser)
from tests.unit.resp.test_parser import _stream, frame

_command = st.lists(st.binary(max_size=300), min_size=1, max_size=8)


def reference(data: bytes) -> list[list[bytes]] | None:
    """RequestParser's commands for `data` if it reads all of it without an error, else None."""
    parser = RequestParser()
    parser.feed(data)
    commands = []
    try:
        while (command := parser.next_command()) is not None:
            commands.append(command)
    except ProtocolError:
        return None
    return commands if not parser.buffered else None


@settings(max_examples=300, deadline=None)
@given(st.lists(_command, min_size=1, max_size=20))
def test_whole_canonical_frames_split_into_their_commands(commands) -> None:
    data = b"".join(frame(*c) for c in commands)
    assert split_canonical(data) == commands == reference(data)


@settings(max_examples=300, deadline=None)
@given(_stream())
def test_anything_it_accepts_the_reference_parser_reads_the_same(stream) -> None:
    data, _ = stream
    split = split_canonical(data)
    if split is not None:
        assert split == reference(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(_command, min_size=1, max_size=4), st.data())
def test_one_changed_byte_is_refused_or_read_as_the_reference_reads_it(commands, data) -> None:
    whole = bytearray(b"".join(frame(*c) for c in commands))
    at = data.draw(st.integers(0, len(whole) - 1))
    whole[at] = data.draw(st.integers(0, 255))
    split = split_canonical(bytes(whole))
    if split is not None:
        assert split == reference(bytes(whole))


@pytest.mark.parametrize("data", [
    b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI",          # a partial frame at the end
    b"*2\r\n$3\r\nGET\r\n",                          # fewer elements than counted
    b"*0\r\n", b"*-1\r\n", b"*01\r\n$4\r\nPING\r\n", b"*+1\r\n$4\r\nPING\r\n",
    b"*1\r\n$04\r\nPING\r\n", b"*1\r\n$-1\r\n", b"*1\r\n$4\r\nPINGXY",   # no CRLF after it
    b"*1\r\n+PING\r\n", b"*1\r\n:1\r\n", b"*1\r\n*1\r\n$4\r\nPING\r\n",
    b"*1\n$4\r\nPING\r\n", b"*1\r$4\r\nPING\r\n", b"*1\r\n$4\nPING\r\n",
    b"PING\r\n", b"*1\r\n$4\r\nPING\r\nPING\r\n",    # inline commands
    b">1\r\n$4\r\nPING\r\n", b"~1\r\n$4\r\nPING\r\n", b"|1\r\n$4\r\nPING\r\n",
    b"*1234567890\r\n$4\r\nPING\r\n",               # ten digits: never a big int
    b"*3000000000\r\n", b"*1\r\n$3000000000\r\n",   # declared, never allocated
    b"*1\r\n$1\r\n",
])
def test_refused_bytes_go_the_general_way(data) -> None:
    assert split_canonical(data) is None


def test_the_server_entry_point_splits_without_hiredis() -> None:
    """feed_into: a read of whole canonical frames never reaches the reader; one that is not
    (here a partial frame) still goes to hiredis, and the commands come out the same."""
    parser, parsed = HiredisRequestParser(), []
    parser.feed_into(frame(b"SET", b"k", b"v") + frame(b"GET", b"k"), parsed)
    assert parsed == [[b"SET", b"k", b"v"], [b"GET", b"k"]]
    assert not parser._reader.has_data() and parser._last is None and not parser._mirror
    partial = frame(b"GET", b"k2")
    parser.feed_into(partial[:9], parsed)
    parser.feed_into(partial[9:], parsed)
    assert parsed[2:] == [[b"GET", b"k2"]] and parser._fallback is None


@pytest.mark.parametrize("config, data", [
    (ServerConfig(proto_max_bulk_len=10), frame(b"SET", b"k", b"x" * 11)),
    (ServerConfig(proto_max_bulk_len=10), frame(b"SET", b"k", b"x" * 10)),
    (ServerConfig(max_multibulk_len=2), frame(b"SET", b"k", b"v")),
    (ServerConfig(max_multibulk_len=2), frame(b"GET", b"k") + frame(b"SET", b"k", b"v")),
    (ServerConfig(client_query_buffer_limit=40), frame(b"SET", b"k", b"v" * 30)),
])
def test_configured_limits_hold_for_reads_the_walker_could_split(config, data) -> None:
    """Whole canonical frames through the server's entry point (feed_into) still get Redis's
    errors for a configured limit: the walker only sees reads that no limit can refuse."""
    parser, parsed = HiredisRequestParser(config), []
    try:
        parser.feed_into(data, parsed)
        outcome = (parsed, None)
    except ProtocolError as error:
        outcome = (parsed, error.reply())
    except QueryBufferExceeded:
        outcome = (parsed, b"closed")
    reference = RequestParser(config)
    commands: list = []
    try:
        reference.feed(data)
        while (command := reference.next_command()) is not None:
            commands.append(command)
        expected = (commands, None)
    except ProtocolError as error:
        expected = (commands, error.reply())
    except QueryBufferExceeded:
        expected = (commands, b"closed")
    assert outcome == expected
