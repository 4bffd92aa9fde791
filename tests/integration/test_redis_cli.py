"""redis-cli, the reference client, against a real resp-kv node: one-shot, --pipe, interactive.

The interactive test runs redis-cli under a pseudo-terminal (so it uses its line editor and, as
redis-cli 7 does, asks the server for COMMAND DOCS at start-up) and checks that it does not abort,
answers PING with PONG and exits on `quit`.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

pytestmark = pytest.mark.integration


def cli(tools: dict[str, str], port: int, *args: str, stdin: bytes | None = None,
        timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([tools["redis-cli"], "-h", "127.0.0.1", "-p", str(port), *args],
                          input=stdin, capture_output=True, timeout=timeout_s)


def resp_command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def test_redis_cli_ping(node, redis_tools):
    result = cli(redis_tools, node.port(), "ping")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b"PONG"


def test_redis_cli_set_then_get(node, redis_tools):
    assert cli(redis_tools, node.port(), "set", "cli:greeting", "hello world").stdout.strip() == b"OK"
    assert cli(redis_tools, node.port(), "get", "cli:greeting").stdout.strip() == b"hello world"
    assert cli(redis_tools, node.port(), "get", "cli:missing").stdout.strip() == b""
    assert node.client().get("cli:greeting") == b"hello world"


def test_redis_cli_pipe_100k_sets(node, redis_tools):
    count = 100_000
    payload = b"".join(resp_command(b"SET", b"pipe:%d" % i, b"value-%d" % i) for i in range(count))
    result = cli(redis_tools, node.port(), "--pipe", stdin=payload, timeout_s=240)
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out + result.stderr.decode(errors="replace")
    assert out.strip().splitlines()[-1] == f"errors: 0, replies: {count}", out
    client = node.client()
    assert client.get("pipe:0") == b"value-0"
    assert client.get(f"pipe:{count - 1}") == f"value-{count - 1}".encode()
    assert client.dbsize() == count


class Pty:
    """A child process on a pseudo-terminal: write keystrokes, read until a text appears."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        env = dict(os.environ, TERM="xterm", REDISCLI_HISTFILE="/dev/null")
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.output = b""

    def send(self, text: bytes) -> None:
        os.write(self.master, text)

    def read_until(self, needle: bytes, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        while needle not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {needle!r} within {timeout_s}s; terminal shows {self.output!r}")
            ready, _, _ = select.select([self.master], [], [], min(remaining, 0.2))
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:          # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"terminal closed before {needle!r}; it showed {self.output!r}"
                                         f"; exit code {self.proc.poll()}")
                self.output += chunk
                if b"\x1b[6n" in chunk:  # cursor-position query from the line editor
                    self.send(b"\x1b[1;1R")
        return self.output

    def wait_exit(self, timeout_s: float) -> int:
        """Keep reading the terminal (a child blocked writing to a full pty never exits) until it exits."""
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still running {timeout_s}s later; terminal shows {self.output!r}")
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.master, 4096)
                except OSError:
                    pass
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        os.close(self.master)


def test_redis_cli_interactive_under_a_terminal(node, redis_tools):
    port = node.port()
    term = Pty([redis_tools["redis-cli"], "-h", "127.0.0.1", "-p", str(port)])
    try:
        prompt = f"127.0.0.1:{port}>".encode()
        term.read_until(prompt, timeout_s=15)
        term.output = b""
        # Type the next line only once the prompt is back: the line editor re-enters raw mode
        # with TCSAFLUSH before printing it, which discards anything typed earlier.
        term.send(b"PING\r")
        term.read_until(b"PONG\r\n" + prompt, timeout_s=15)
        term.send(b"SET interactive:k v1\r")
        term.read_until(b"OK\r\n" + prompt, timeout_s=15)
        term.send(b"quit\r")
        assert term.wait_exit(timeout_s=30) == 0, term.output
    finally:
        term.close()
    assert node.nodes[0].running, "the node must survive an interactive redis-cli session"
    assert node.client().get("interactive:k") == b"v1"
