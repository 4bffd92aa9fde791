"""Reply encoding: exact bytes for every reply type in RESP2 and RESP3."""

from __future__ import annotations

import math

import hiredis
import pytest

from resp_kv.errors import CommandError, NoAuth, WrongArity
from resp_kv.reply import OK, PONG, Double, Map, Set, SimpleString
from resp_kv.reply import encode, encode_error


@pytest.mark.parametrize("reply, resp2, resp3", [
    (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
    (b"hello", b"$5\r\nhello\r\n", b"$5\r\nhello\r\n"),
    (b"a\r\nb", b"$4\r\na\r\nb\r\n", b"$4\r\na\r\nb\r\n"),
    (None, b"$-1\r\n", b"_\r\n"),
    (0, b":0\r\n", b":0\r\n"),
    (-42, b":-42\r\n", b":-42\r\n"),
    (2**63 - 1, b":9223372036854775807\r\n", b":9223372036854775807\r\n"),
    (OK, b"+OK\r\n", b"+OK\r\n"),
    (PONG, b"+PONG\r\n", b"+PONG\r\n"),
    (SimpleString("two\r\nlines"), b"+two  lines\r\n", b"+two  lines\r\n"),
    ([], b"*0\r\n", b"*0\r\n"),
    ([b"a", 1, None], b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n", b"*3\r\n$1\r\na\r\n:1\r\n_\r\n"),
    ([[b"x"], []], b"*2\r\n*1\r\n$1\r\nx\r\n*0\r\n", b"*2\r\n*1\r\n$1\r\nx\r\n*0\r\n"),
    (Map({b"k": 1, b"m": [b"v"]}), b"*4\r\n$1\r\nk\r\n:1\r\n$1\r\nm\r\n*1\r\n$1\r\nv\r\n",
     b"%2\r\n$1\r\nk\r\n:1\r\n$1\r\nm\r\n*1\r\n$1\r\nv\r\n"),
    (Map(), b"*0\r\n", b"%0\r\n"),
    (Set([b"a", b"b"]), b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", b"~2\r\n$1\r\na\r\n$1\r\nb\r\n"),
    (Double(1.5), b"$3\r\n1.5\r\n", b",1.5\r\n"),
    (Double(3.0), b"$1\r\n3\r\n", b",3\r\n"),
    (Double(math.inf), b"$3\r\ninf\r\n", b",inf\r\n"),
    (Double(-math.inf), b"$4\r\n-inf\r\n", b",-inf\r\n"),
    (True, b":1\r\n", b"#t\r\n"),
    (False, b":0\r\n", b"#f\r\n"),
    ("text", b"$4\r\ntext\r\n", b"$4\r\ntext\r\n"),
    ((b"t",), b"*1\r\n$1\r\nt\r\n", b"*1\r\n$1\r\nt\r\n"),
])
def test_encode_exact_bytes(reply, resp2, resp3):
    assert encode(reply) == resp2
    assert encode(reply, 2) == resp2
    assert encode(reply, 3) == resp3


def test_encode_errors():
    assert encode(CommandError("syntax error")) == b"-ERR syntax error\r\n"
    assert encode(NoAuth(), 3) == b"-NOAUTH Authentication required.\r\n"
    assert encode(WrongArity(b"GET")) == b"-ERR wrong number of arguments for 'get' command\r\n"
    assert encode_error(CommandError("bad\r\nnews", prefix="X")) == b"-X bad  news\r\n"


def test_encode_nested_map_in_array_resp3():
    assert encode([Map({b"a": None})], 3) == b"*1\r\n%1\r\n$1\r\na\r\n_\r\n"


def test_encode_rejects_unknown_types():
    with pytest.raises(TypeError):
        encode(object())


def test_encode_round_trips_through_hiredis():
    reply = [b"bin\x00\r\n", 7, None, [Map({b"k": b"v"})], OK]
    reader = hiredis.Reader()
    reader.feed(encode(reply))
    assert reader.gets() == [b"bin\x00\r\n", 7, None, [[b"k", b"v"]], b"OK"]
