"""The bulk string reply, `$<len>\r\n<data>\r\n`: every GET's answer.

A module of its own so that it is compiled (resp_kv/native.py) and called natively by the
dispatcher and by a replicated GET's completion (commands/strings.py); `reply.py`, which stays
interpreted, re-exports it as `reply.encode_bulk`.
"""

from __future__ import annotations

from typing import Final

BULK_HEADS: Final = tuple(b"$%d\r\n" % n for n in range(1024))
BULK_HEADS_MAX: Final = len(BULK_HEADS)


def encode_bulk(data: bytes) -> bytes:
    """`$<len>\r\n<data>\r\n`: one %-format, one allocation for the three pieces (compiled,
    mypyc's CPyBytes_Build; `head + data + b"\r\n"` allocated twice)."""
    size = len(data)
    if size < BULK_HEADS_MAX:
        return b"%s%s\r\n" % (BULK_HEADS[size], data)
    return b"$%d\r\n%s\r\n" % (size, data)
