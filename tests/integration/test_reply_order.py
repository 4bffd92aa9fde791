"""Replies wait for the WAL write (under `always`, the group fsync) and still leave in order.

Under every `--fsync` policy a write's reply is held by the loop iteration's WAL flush while the
replies of reads behind it on the same connection must not overtake it. Several raw-socket
clients send long pipelines of interleaved writes and reads at once (so they share flushes),
ending with QUIT: each must get exactly the bytes Redis would send, then the close.
"""

from __future__ import annotations

import socket
import threading

import pytest

from tests.helpers.harness import HOST, ClusterHarness

pytestmark = pytest.mark.integration


def _frame(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _pipeline(client: int, rounds: int) -> tuple[bytes, bytes]:
    """(request bytes, the exact reply bytes) for one client's pipeline."""
    sent, expected = [], []
    counter = f"counter:{client}".encode()
    for i in range(rounds):
        key, value = f"key:{client}:{i % 7}".encode(), f"v{client}.{i}".encode()
        sent += [_frame(b"SET", key, value), _frame(b"GET", key), _frame(b"INCR", counter),
                 _frame(b"PING"), _frame(b"DEL", key), _frame(b"EXISTS", key)]
        expected += [b"+OK\r\n", _bulk(value), b":%d\r\n" % (i + 1), b"+PONG\r\n", b":1\r\n",
                     b":0\r\n"]
    sent.append(_frame(b"SET", b"last:%d" % client, b"x"))
    sent.append(_frame(b"QUIT"))
    expected += [b"+OK\r\n", b"+OK\r\n"]
    return b"".join(sent), b"".join(expected)


def _exchange(port: int, request: bytes) -> bytes:
    """Send the whole pipeline, read until the server closes."""
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sender = threading.Thread(target=sock.sendall, args=(request,))
        sender.start()
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
        sender.join()
    return b"".join(chunks)


@pytest.mark.parametrize("fsync", ["always", "everysec", "no"])
def test_pipelined_replies_wait_for_the_wal_and_stay_in_order(tmp_path, fsync: str) -> None:
    with ClusterHarness(tmp_path, size=1, fsync=fsync) as node:
        node.up()
        pipelines = [_pipeline(client, 400) for client in range(6)]
        got: list[bytes | None] = [None] * len(pipelines)

        def run(client: int) -> None:
            got[client] = _exchange(node.port(0), pipelines[client][0])

        threads = [threading.Thread(target=run, args=(c,)) for c in range(len(pipelines))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for client, (_, expected) in enumerate(pipelines):
            assert got[client] == expected, f"client {client}: replies differ or out of order"
        check = node.client(0)
        assert [check.get(f"counter:{c}") for c in range(6)] == [b"400"] * 6
        assert all(check.get(f"last:{c}") == b"x" for c in range(6))
