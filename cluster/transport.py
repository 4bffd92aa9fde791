"""The peer port's client side: one persistent, pipelined connection per peer.

Not the server (peer_server.py) and not the frames (messages.py). `call()` returns a future
(no task per request); `send()` takes a callback instead, run straight from the response
parser, which saves the future and the event-loop hop its done-callbacks cost (the coordinator's
hot path). The request is queued on the peer's link and every frame queued in one event-loop
iteration leaves in one socket write. Responses are matched by request id.

`send_item()` queues one item of a batched verb (messages.MPUT, MGET): the items a link gets for
that verb in one event-loop iteration leave as one request (at most MAX_BATCH_ITEMS items or
MAX_BATCH_BYTES each), and its one answer settles every item's `ItemWaiter`. A request per replica
write cost the coordinator and each replica a frame, a request id, a pending entry and a
response each: 3-node SET -P 16, summed CPU per request 125-133 -> 96-107 us (A/B).

- Per-call timeout (config.request_timeout_s): a sweeper fails overdue calls with TimeoutError
  every TIMEOUT_TICK_S, so a timeout costs no timer per request.
- A link that fails fails its pending calls with PeerUnavailable and reconnects on the next call,
  after a backoff that doubles from 0.05 s up to 2 s; calls made during the backoff fail at once.
- `blocked` nodes (DEBUG PARTITION) fail at once, and their links are closed.
- Incoming bytes are bounded (messages.PEER_MAX_BUFFER_BYTES); garbage closes the link.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Final

import hiredis
from mypy_extensions import mypyc_attr

from cluster import messages
from cluster.clock import Clock
from cluster.types import NodeId, PeerBackingOff, PeerUnavailable

log = logging.getLogger("cluster.transport")

TIMEOUT_TICK_S = 0.05
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 2.0
MAX_PENDING_PER_PEER = 100_000   # bounded memory when a peer stops answering
# A batched request is sealed at this many items or this many bytes of encoded items: bounds
# one frame (a receiver buffers a frame whole, up to messages.PEER_MAX_BUFFER_BYTES) and the
# time a replica spends in one handler call before its event loop runs again.
# (Final: C constants of this compiled module, not two module-dict lookups per queued item)
MAX_BATCH_ITEMS: Final = 256
MAX_BATCH_BYTES: Final = 1 << 20


class PeerError(Exception):
    """The peer answered a request with an error."""


@mypyc_attr(allow_interpreted_subclasses=True)     # tests route calls in process instead
class PeerTransport:
    """Outbound peer calls. Event-loop thread only. Typed where the coordinator calls it, so
    `send_item` (every replicated GET and SET, per peer) is a C call."""

    def __init__(self, node_id: NodeId, secret: str | None,
                 resolve: Callable[[NodeId], tuple[str, int] | None], clock: Clock,
                 timeout_s: float) -> None:
        self.node_id = node_id
        self.secret = secret
        self.resolve = resolve
        self.clock = clock
        self.timeout_s = timeout_s
        self.blocked: set[NodeId] = set()
        self._links: dict[NodeId, _Link] = {}
        self._ids = itertools.count(1)
        self._sweeper: asyncio.Task | None = None
        # The last item queued and its encoding: the same item sent to the next peer is not
        # encoded again (a replicated SET or GET queues one item tuple for each of its peers).
        # Held, so the tuple cannot be freed and another take its address.
        self._last_item: tuple[bytes, ...] = ()
        self._last_frame = b""

    async def start(self) -> None:
        self._sweeper = asyncio.ensure_future(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for link in list(self._links.values()):
            link.close(PeerUnavailable("transport stopped"))
        self._links.clear()

    def call(self, node: NodeId, verb: bytes, args: list, timeout_s: float | None = None
             ) -> asyncio.Future:
        """Send one request; return a future of its payload (PeerError, PeerUnavailable or
        TimeoutError on failure)."""
        future = asyncio.get_running_loop().create_future()

        def settle(payload, error) -> None:
            if not future.done():
                if error is None:
                    future.set_result(payload)
                else:
                    future.set_exception(error)
        self.send(node, verb, args, settle, timeout_s)
        return future

    def send(self, node: NodeId, verb: bytes, args: list, callback: Callback,
             timeout_s: float | None = None) -> None:
        """Send one request; `callback(payload, error)` runs exactly once, with error None on
        success, else PeerError, PeerUnavailable or TimeoutError. It runs from the response
        parser (or the timeout sweeper); a failure known at once is reported on the next loop
        iteration, so the callback never runs inside `send` itself."""
        link = self._link(node)
        if link is None:
            _fail_soon(callback, _partitioned(node))
        else:
            link.request(callback, verb, b"%d" % next(self._ids), args, self._deadline(timeout_s))

    def send_item(self, node: NodeId, verb: bytes, item: tuple[bytes, ...],
                  waiter: ItemWaiter, timeout_s: float | None = None) -> None:
        """Queue one item (a tuple of bytes: messages.encode_item) of the batched `verb` for
        `node`; `waiter.item_answered(node, value, error)` runs exactly once, as a `send`
        callback does: the item's value and None, or None and PeerError with the peer's
        message when that item failed, or the whole request's failure."""
        link = self._links.get(node)              # _link(), inlined: twice per replicated GET/SET
        if link is None or node in self.blocked:
            link = self._link(node)
            if link is None:
                _fail_item_soon(waiter, node, _partitioned(node))
                return
        if item is not self._last_item:
            self._last_item, self._last_frame = item, messages.encode_item(item)
        link.request_item(waiter, verb, self._last_frame, len(item), timeout_s)

    def _link(self, node: NodeId) -> "_Link | None":
        """The link to `node` (made on first use); None while `node` is partitioned away."""
        if node in self.blocked:
            return None
        link = self._links.get(node)
        if link is None:
            link = self._links[node] = _Link(self, node)
        return link

    def _deadline(self, timeout_s: float | None) -> float:
        return self.clock.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)

    def block(self, nodes: set[NodeId]) -> None:
        self.blocked |= nodes
        for node in nodes:
            self.disconnect(node)

    def unblock_all(self) -> None:
        self.blocked.clear()

    def disconnect(self, node: NodeId) -> None:
        link = self._links.pop(node, None)
        if link is not None:
            link.close(PeerUnavailable(f"disconnected from {node}"))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(TIMEOUT_TICK_S)
            now = self.clock.monotonic()
            for link in list(self._links.values()):
                link.expire(now)


# callback(payload, error): error is None on success.
Callback = Callable[[object, Exception | None], None]


@mypyc_attr(allow_interpreted_subclasses=True)     # tests wait for items of their own
class ItemWaiter:
    """Waits for one node's answer to one item of a batched request (`send_item`).

    A native base class, not a callable: a batch's answer settles each item with a C call
    through the vtable. A callback per item was a `functools.partial` made per item and per
    peer and called generically (argument parsing) from the settle loop, on every replicated
    GET and SET. `ItemCallback` adapts a plain callback (the general paths)."""

    def item_answered(self, node: NodeId, value: object, error: Exception | None) -> None:
        """`node` answered the item: its value and None, or None and the failure."""
        raise NotImplementedError


class ItemCallback(ItemWaiter):
    """An `ItemWaiter` that calls `callback(value, error)`."""

    def __init__(self, callback: Callback) -> None:
        self.callback = callback

    def item_answered(self, node: NodeId, value: object, error: Exception | None) -> None:
        self.callback(value, error)


def _partitioned(node: NodeId) -> PeerUnavailable:
    return PeerUnavailable(f"{node} is partitioned away")


def _fail_soon(callback: Callback, error: Exception) -> None:
    """Fail a request on the next loop iteration (never inside the call that sent it)."""
    asyncio.get_running_loop().call_soon(_run, callback, None, error)


def _fail_item_soon(waiter: "ItemWaiter", node: NodeId, error: Exception) -> None:
    """`_fail_soon` for a batched item's waiter."""
    asyncio.get_running_loop().call_soon(_run_item, waiter, node, None, error)


def _settle_batch(node: NodeId, waiters: list[ItemWaiter]) -> Callback:
    """The one callback of a batched request: each item's waiter gets its value and status
    from the answer (messages.py, "batched answer"), or the whole request's failure."""
    def settle(payload, error: Exception | None) -> None:
        count = len(waiters)
        if error is None:
            try:
                statuses, values = payload
                if values is None:
                    values = [None] * count
                if len(values) != count or (statuses != messages.OK and (
                        len(statuses) != count
                        or not all(type(status) is bytes for status in statuses))):
                    raise ValueError("item count or status type")
            except (TypeError, ValueError):
                error = PeerError("malformed answer to a batched request")
        if error is not None:
            for waiter in waiters:
                _run_item(waiter, node, None, error)
        elif statuses == messages.OK:
            for i in range(count):                # _run_item, inlined: a call per item
                try:
                    waiters[i].item_answered(node, values[i], None)
                except Exception:
                    log.exception("peer call callback failed")
        else:
            for i in range(count):
                status = statuses[i]
                if status:
                    _run_item(waiters[i], node, None, PeerError(status.decode(errors="replace")))
                else:
                    _run_item(waiters[i], node, values[i], None)
    return settle


def _run(callback: Callback, payload, error: Exception | None) -> None:
    """Run one callback; its exception is logged, never allowed to break the link's parser."""
    try:
        callback(payload, error)
    except Exception:
        log.exception("peer call callback failed")


def _run_item(waiter: ItemWaiter, node: NodeId, value: object, error: Exception | None) -> None:
    """`_run` for an item's waiter."""
    try:
        waiter.item_answered(node, value, error)
    except Exception:
        log.exception("peer call callback failed")


class _Batch:
    """The open batch of one verb on a link: its items (encoded), their waiters, the first
    item's deadline, its bytes and its number of fields (a class, not a list: compiled, its
    fields are typed, so the appends are native)."""

    __slots__ = ("items", "waiters", "deadline", "size", "fields")

    def __init__(self, deadline: float) -> None:
        self.items: list[bytes] = []
        self.waiters: list[ItemWaiter] = []
        self.deadline = deadline
        self.size = 0
        self.fields = 0


class _Link(asyncio.Protocol):
    """One outbound connection to one peer, reconnected on demand."""

    def __init__(self, owner: PeerTransport, node: NodeId) -> None:
        self._owner = owner
        self.node = node
        self._pending: dict[bytes, tuple[Callback, float]] = {}
        self._queue: list[bytes] = []          # frames waiting for the connection or the flush
        self._batches: dict[bytes, _Batch] = {}      # verb -> its open batch
        self._transport: asyncio.Transport | None = None
        self._reader: hiredis.Reader | None = None
        self._state = "idle"                   # idle -> connecting -> hello -> ready -> idle
        self._flush_scheduled = False
        self._backoff_s = 0.0
        self._retry_at = 0.0
        self._connector: asyncio.Task | None = None
        # Once: asyncio.get_running_loop() is a getpid(2) syscall in CPython 3.11.
        self._loop = asyncio.get_running_loop()

    # --- requests ---------------------------------------------------------------------------

    def _refusal(self, new_request: bool) -> Exception | None:
        """Connect if idle; the error to fail a request with (soon, never from inside the
        call) while backing off after a failure, or when a `new_request` would pass
        MAX_PENDING_PER_PEER; else None."""
        if self._state == "idle":
            if self._owner.clock.monotonic() < self._retry_at:
                return PeerBackingOff(f"{self.node} unreachable (backing off)")
            self._connect()
        if new_request and len(self._pending) >= MAX_PENDING_PER_PEER:
            return PeerUnavailable(f"{self.node} overloaded: too many calls pending")
        return None

    def request(self, callback: Callback, verb: bytes, rid: bytes, args: list,
                deadline: float) -> None:
        refusal = self._refusal(True)
        if refusal is not None:
            _fail_soon(callback, refusal)
            return
        self._pending[rid] = (callback, deadline)
        self._queue.append(messages.encode_request(verb, rid, args))
        if self._state == "ready" and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def request_item(self, waiter: ItemWaiter, verb: bytes, item: bytes, fields: int,
                     timeout_s: float | None) -> None:
        batch = self._batches.get(verb)
        if batch is None or self._state == "idle":
            refusal = self._refusal(batch is None)
            if refusal is not None:
                _fail_item_soon(waiter, self.node, refusal)
                return
            if batch is None:
                # The batch's deadline is its first item's: one clock read per batch.
                batch = self._batches[verb] = _Batch(self._owner._deadline(timeout_s))
        batch.items.append(item)
        batch.waiters.append(waiter)
        batch.size += len(item)
        batch.fields += fields
        if (len(batch.waiters) >= MAX_BATCH_ITEMS or batch.size >= MAX_BATCH_BYTES
                or self._state != "ready"):
            # Full, or no connection yet: seal now, so its items are pending (and time out)
            # like any request while the link connects.
            self._seal(verb)
        if self._state == "ready" and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _seal(self, verb: bytes) -> None:
        """Turn the open batch of `verb` into one request frame on the queue."""
        batch = self._batches.pop(verb)
        rid = b"%d" % next(self._owner._ids)
        self._pending[rid] = (_settle_batch(self.node, batch.waiters), batch.deadline)
        self._queue.append(messages.encode_batch(verb, rid, batch.items, batch.fields))

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._state != "ready":
            return
        for verb in list(self._batches):
            self._seal(verb)
        if self._queue:
            frames, self._queue = self._queue, []
            self._transport.write(b"".join(frames))

    def expire(self, now: float) -> None:
        overdue = [key for key, (_, deadline) in self._pending.items() if deadline <= now]
        for key in overdue:
            callback, _ = self._pending.pop(key)
            _run(callback, None, TimeoutError(f"{self.node} did not answer in time"))

    # --- connection -------------------------------------------------------------------------

    def _connect(self) -> None:
        address = self._owner.resolve(self.node)
        self._state = "connecting"
        self._connector = asyncio.ensure_future(self._open(address))

    async def _open(self, address) -> None:
        if address is None:
            self._fail(PeerUnavailable(f"no address for {self.node}"))
            return
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.create_connection(lambda: self, *address),
                                   self._owner.timeout_s)
        except (OSError, TimeoutError) as error:
            self._fail(PeerUnavailable(f"cannot connect to {self.node} at {address}: {error}"))

    def connection_made(self, transport) -> None:
        self._transport = transport
        self._reader = hiredis.Reader()
        self._state = "hello"

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        try:
            if self._state == "hello":
                frame = reader.gets()
                if frame is not False:
                    self._hello(frame)
            if self._state != "hello":
                response = self._response
                while True:                     # after HELLO every frame is a response
                    frame = reader.gets()
                    if frame is False:
                        break
                    response(frame)
        except (hiredis.ProtocolError, ValueError, TypeError) as error:
            log.warning("closing link to %s: bad frame (%s)", self.node, error)
            self._transport.close()
            return
        if reader.len() > messages.PEER_MAX_BUFFER_BYTES:
            log.warning("closing link to %s: response buffer over the bound", self.node)
            self._transport.close()

    def _hello(self, frame) -> None:
        if not (isinstance(frame, list) and len(frame) == 2 and frame[0] == messages.HELLO):
            raise ValueError("no HELLO from the peer")
        owner = self._owner
        proof = messages.auth_proof(owner.secret, frame[1], owner.node_id)
        auth = messages.encode_value([messages.AUTH, owner.node_id.encode(), proof])
        self._state = "ready"
        self._backoff_s = 0.0
        for verb in list(self._batches):
            self._seal(verb)
        frames, self._queue = self._queue, []
        self._transport.write(auth + b"".join(frames))

    def _response(self, frame) -> None:
        if not (isinstance(frame, list) and len(frame) == 3):
            raise ValueError("response is not [id, status, payload]")
        entry = self._pending.pop(frame[0], None)
        if entry is None:
            return                              # timed out already
        if frame[1] == messages.STATUS_OK:
            payload, error = frame[2], None
        else:
            message = frame[2].decode(errors="replace") if isinstance(frame[2], bytes) else "?"
            payload, error = None, PeerError(message)
        try:
            entry[0](payload, error)
        except Exception:                       # the handler's bug, not a bad frame
            log.exception("peer call callback failed")

    def connection_lost(self, exc) -> None:
        self._fail(PeerUnavailable(f"connection to {self.node} lost"))

    def _fail(self, error: Exception) -> None:
        """Fail every pending call, go idle, and back off before the next connect."""
        self._state = "idle"
        self._transport = None
        self._queue.clear()
        batches, self._batches = self._batches, {}
        # Back off first: a callback that calls this peer again must see the backoff.
        self._backoff_s = min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, self._backoff_s * 2))
        self._retry_at = self._owner.clock.monotonic() + self._backoff_s
        pending, self._pending = self._pending, {}
        for callback, _ in pending.values():
            _run(callback, None, error)
        for batch in batches.values():
            for waiter in batch.waiters:
                _run_item(waiter, self.node, None, error)

    def close(self, error: Exception) -> None:
        if self._connector is not None and not self._connector.done():
            self._connector.cancel()
        transport = self._transport
        self._fail(error)
        if transport is not None:
            transport.close()
