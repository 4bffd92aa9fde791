"""The peer port's server side: authenticate a peer, run its requests, answer in batches.

Not the handlers (coordinator, gossip, anti-entropy register theirs with `register`) and not
the client side (transport.py). Frames are in messages.py. Rules (DESIGN.md §5, §7):

- The server speaks first (HELLO nonce); the first frame from the peer must be a valid AUTH,
  else the connection is closed. Before AUTH at most PRE_AUTH_MAX_BYTES may be buffered, and
  the bytes are read by the pure-Python request parser (resp.RequestParser), not by hiredis,
  which pre-allocates whatever count a RESP3 push header declares; after AUTH, hiredis.
- Garbage (a RESP protocol error, a frame that is not a request array, a buffer over the bound)
  closes that connection only; the node and every other connection go on.
- Replies of one event-loop iteration go out in one write, after `barrier()` (the store's fsync
  policy, resp_kv/durability.py), so a peer's ack means what a client's OK means.
- A node on the blocked set (DEBUG PARTITION) has its connections closed and refused.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from functools import partial

import hiredis

from cluster import messages
from cluster.types import NodeId
from resp_kv.resp import ProtocolError, RequestParser

log = logging.getLogger("cluster.peer_server")

# handler(peer node id, args after the request id) -> payload, or an awaitable of it
Handler = Callable[[NodeId, list], object]


class PeerServer:
    """Accepts peer connections on the peer port. Event-loop thread only."""

    def __init__(self, host: str, port: int, secret: str | None,
                 barrier: Callable[[], Awaitable[None] | None] | None = None,
                 is_blocked: Callable[[NodeId], bool] | None = None) -> None:
        self.host, self.port = host, port
        self.secret = secret
        self.barrier = barrier or _no_barrier
        self.is_blocked = is_blocked or _never_blocked
        self.handlers: dict[bytes, Handler] = {}
        self.connections: set[_PeerServerProtocol] = set()
        self.tasks: set[asyncio.Task] = set()
        self._server: asyncio.base_events.Server | None = None

    def register(self, verb: bytes, handler: Handler) -> None:
        """Serve `verb` with `handler` (raises ValueError if the verb is taken)."""
        if verb in self.handlers:
            raise ValueError(f"peer verb {verb!r} already registered")
        self.handlers[verb] = handler

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _PeerServerProtocol(self),
                                                self.host, self.port, reuse_address=True)
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()
        for task in list(self.tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def drop(self, nodes: set[NodeId]) -> None:
        """Close every connection from `nodes` (DEBUG PARTITION)."""
        for connection in list(self.connections):
            if connection.peer in nodes:
                connection.close()

    def _spawn(self, awaitable) -> asyncio.Task:
        task = asyncio.ensure_future(awaitable)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


class _PeerServerProtocol(asyncio.Protocol):
    """One inbound peer connection."""

    def __init__(self, server: PeerServer) -> None:
        self._server = server
        self._reader = hiredis.Reader()
        # Until AUTH the bytes go to the pure-Python request parser, never to hiredis: hiredis
        # pre-allocates a `>` push's declared count, so a 14-byte `>3000000000` from anyone
        # who can connect stalled the node for ~18 s and took it to ~23 GB.
        self._pre_auth: RequestParser | None = RequestParser()
        self._transport: asyncio.Transport | None = None
        self._nonce = os.urandom(16).hex().encode()
        self.peer: NodeId | None = None          # set by AUTH
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._closed = False

    def connection_made(self, transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()   # once: a getpid(2) syscall per call in 3.11
        self._server.connections.add(self)
        transport.write(messages.encode_value([messages.HELLO, self._nonce]))

    def connection_lost(self, exc) -> None:
        self._closed = True
        self._server.connections.discard(self)

    def close(self) -> None:
        if not self._closed and self._transport is not None:
            self._closed = True
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._pre_auth is not None:
            data = self._after_auth(data)
            if not data:
                return
        reader = self._reader
        reader.feed(data)
        try:
            while not self._closed:
                frame = reader.gets()
                if frame is False:
                    break
                self._request(frame)
        except (hiredis.ProtocolError, _BadFrame) as error:
            log.warning("closing peer connection %s: %s", self._describe(), error)
            self.close()
            return
        if reader.len() > messages.PEER_MAX_BUFFER_BYTES:
            log.warning("closing peer connection %s: %d bytes buffered", self._describe(),
                        reader.len())
            self.close()

    def _after_auth(self, data: bytes) -> bytes:
        """Read the AUTH frame with the reference parser; return the bytes after it once it
        is accepted (b"" while it is incomplete, or when the connection was closed)."""
        parser = self._pre_auth
        try:
            parser.feed(data)
            frame = parser.next_command()
            if frame is None:
                if parser.buffered > messages.PRE_AUTH_MAX_BYTES:
                    raise _BadFrame(f"{parser.buffered} bytes buffered before AUTH")
                return b""
            self._authenticate(frame)
        except (ProtocolError, _BadFrame) as error:
            log.warning("closing peer connection %s: %s", self._describe(), error)
            self.close()
            return b""
        self._pre_auth = None
        return parser.take_rest()

    def _describe(self) -> str:
        name = self._transport.get_extra_info("peername") if self._transport else None
        return f"{self.peer or '?'}@{name}"

    def _authenticate(self, frame) -> None:
        if not (isinstance(frame, list) and len(frame) == 3 and frame[0] == messages.AUTH
                and isinstance(frame[1], bytes) and isinstance(frame[2], bytes)):
            raise _BadFrame("first frame is not AUTH")
        try:
            node = frame[1].decode()
        except UnicodeDecodeError:
            raise _BadFrame("bad node id in AUTH") from None
        if not messages.check_proof(self._server.secret, self._nonce, node, frame[2]):
            raise _BadFrame(f"bad cluster secret proof from {node!r}")
        if self._server.is_blocked(node):
            raise _BadFrame(f"{node!r} is partitioned away")
        self.peer = node

    def _request(self, frame) -> None:
        if not (isinstance(frame, list) and len(frame) >= 2 and isinstance(frame[0], bytes)
                and isinstance(frame[1], bytes)):
            raise _BadFrame("request is not [verb, id, ...]")
        if self._server.is_blocked(self.peer):
            self.close()
            return
        verb, rid, args = frame[0], frame[1], frame[2:]
        handler = self._server.handlers.get(verb)
        if handler is None:
            self._respond(rid, False, f"unknown peer verb {verb!r}")
            return
        try:
            result = handler(self.peer, args)
        except Exception as error:      # a bad request is answered, never fatal
            self._respond(rid, False, f"{type(error).__name__}: {error}")
            return
        if type(result) in _PLAIN or not inspect.isawaitable(result):
            self._respond(rid, True, result)    # the common case: a synchronous handler
        else:
            task = self._server._spawn(result)
            task.add_done_callback(partial(self._finish, rid))

    def _finish(self, rid: bytes, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._respond(rid, False, f"{type(error).__name__}: {error}")
        else:
            self._respond(rid, True, task.result())

    def _respond(self, rid: bytes, ok: bool, payload) -> None:
        if self._closed:
            return
        try:
            self._out.append(messages.encode_response(rid, ok, payload))
        except TypeError as error:
            self._out.append(messages.encode_response(rid, False, str(error)))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, []
        if not out or self._closed:
            return
        waiter = self._server.barrier()
        if waiter is None:
            self._transport.write(b"".join(out))
        else:
            fut = asyncio.ensure_future(waiter)
            fut.add_done_callback(lambda f: self._write_after(f, out))

    def _write_after(self, waiter, out: list[bytes]) -> None:
        if waiter.cancelled() or waiter.exception() is not None:
            log.error("peer acks withheld: durability barrier failed; closing %s", self._describe())
            self.close()
            return
        if not self._closed:
            self._transport.write(b"".join(out))


def _no_barrier() -> None:
    return None


def _never_blocked(node: NodeId) -> bool:
    return False


# Payload types a synchronous handler returns: no need to ask inspect.isawaitable (measured: a
# visible share of a replica's CPU per PUT).
_PLAIN = frozenset({bytes, type(None), list, int})


class _BadFrame(Exception):
    """A frame that breaks the peer protocol: the connection is closed."""
