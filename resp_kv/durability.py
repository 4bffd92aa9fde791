"""The fsync policy, applied at reply boundaries: nothing is acknowledged before it is as durable
as `--fsync` promises, and the hot path pays one WAL write per batch, not one per command.

Not the WAL itself (`storage/wal.py`): this module decides *when* the engine's buffered WAL bytes
reach the OS (`wal_flush`) and the disk (`wal_sync`).

    policy    before a reply (client or peer) is written      in the background
    always    wal_flush + one fdatasync for every waiter      -
              of this loop iteration (group commit)
    everysec  wal_flush (bytes in the OS: survive kill -9)    fdatasync once a second, in a thread
    no        wal_flush                                       never (the OS decides)

Two barriers. `barrier()` flushes at once (`always`: a future of the group commit); the peer
server calls it from its own once-per-iteration flush, and `durable()` awaits it.
`reply_barrier()` is the client server's: under every policy the WAL is written once per loop
iteration (`always`: and fdatasynced, the group commit), and a `FlushTick` shared by every
connection that wrote in it holds their replies and hands them back right after, in the same
callback. That is Redis's order too (beforeSleep: flushAppendOnlyFile, then
handleClientsWithPendingWrites). At most one tick is pending at a time: it completes inside
the callback that flushes, so a reply that must wait behind an earlier one of its connection
joins the same tick.

Measured (issue 2): one WAL write per event-loop batch costs ~0.8 µs per SET at -P 16, one write
per SET ~2.4 µs; an inline fdatasync (~0.15 ms) per batch beats handing it to a thread. At -P 1
with 50 clients a loop iteration serves ~47 of them, so a write per batch was a write per SET;
strace: 38,597 WAL writes for 38,589 replies before reply_barrier, one per iteration after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator
from typing import cast

from mypy_extensions import mypyc_attr

from cluster.local_store import LocalStore
from resp_kv.storage.engine import LSMStore

log = logging.getLogger("resp_kv.durability")


@mypyc_attr(allow_interpreted_subclasses=True)     # tests hold replies of their own
class ReplyHolder:
    """What parks replies on a FlushTick: a client connection (server.RespProtocol). A native
    base class, so the tick's release is a C call per connection (a generic Python call was
    ~350 instructions of a SET at -P 1, callgrind)."""

    def tick_released(self, tick: FlushTick, data: bytes | list[bytes],
                      error: BaseException | None) -> None:
        """`tick` wrote the WAL (error None) or failed to: write the held `data`, or close."""
        raise NotImplementedError


class FlushTick:
    """The WAL write (`always`: and fdatasync) that the client replies of one loop iteration
    wait for. `replies` holds [holder, reply bytes or a list of them] entries, one per
    connection, in arrival order (None once done); each is handed back synchronously right after
    the write through `holder.tick_released(tick, data, error)` (an asyncio future would
    defer each release to yet another loop pass, and a callback per reply cost a connection's
    queue and bound method)."""

    __slots__ = ("replies",)

    def __init__(self) -> None:
        self.replies: list[list] | None = []

    def _complete(self, error: BaseException | None) -> None:
        replies, self.replies = self.replies, None      # None: takes no more
        if replies is None:                     # done already (narrowed: a typed loop below)
            return
        for entry in replies:
            try:
                # by index: unpacking a list entry compiled to a generic iteration
                cast(ReplyHolder, entry[0]).tick_released(self, entry[1], error)
            except Exception:                   # one connection's bug must not stall the rest
                log.exception("reply release after the WAL flush failed")


@mypyc_attr(allow_interpreted_subclasses=True)     # tests hold replies behind their own ticks
class DurableStore(LocalStore):
    """The node's `cluster.types.LocalStore`: the LSM engine plus the fsync policy.

    Event-loop thread only, except `wal_sync`, which the engine makes safe from the everysec
    thread. `barrier()` is what both servers call before writing replies. The engine is typed
    (and the store is the cluster's native `LocalStore`), so a SET's store calls are C calls
    down to the engine: as protocols they were three generic calls (~350 instructions each).
    """

    def __init__(self, engine: LSMStore, policy: str) -> None:
        self.engine = engine
        self.policy = policy
        self._dirty = False                     # WAL bytes buffered since the last wal_flush
        self._unsynced = False                  # WAL bytes written since the last fdatasync
        self._commit_waiters: list[asyncio.Future] = []
        self._commit_scheduled = False
        self._tick: FlushTick | None = None     # this iteration's WAL flush, once scheduled

    def get(self, key: bytes, fill: bool = True) -> bytes | None:
        return self.engine.get(key, fill)

    def scan(self, start: bytes = b"", end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        return self.engine.scan(start, end)

    def put(self, key: bytes, value: bytes) -> None:
        self._dirty = True
        self.engine.put(key, value)

    def delete(self, key: bytes) -> None:
        self._dirty = True
        self.engine.delete(key)

    def write_batch(self, ops) -> None:
        self._dirty = True
        self.engine.write_batch(ops)

    def barrier(self) -> Awaitable[None] | None:
        """Make buffered writes durable per policy before a reply goes out.

        Returns None when nothing needs waiting (the common case: cheap to test), else a future
        that resolves after the group commit (policy `always`).
        """
        if not self._dirty:
            return None
        if self.policy != "always":
            self._flush()
            return None
        future = asyncio.get_running_loop().create_future()
        self._commit_waiters.append(future)
        self._schedule_commit()
        return future

    def _schedule_commit(self) -> None:
        if not self._commit_scheduled:
            self._commit_scheduled = True
            # call_soon: every writer of this loop iteration joins the same fdatasync.
            asyncio.get_running_loop().call_soon(self._group_commit)

    def reply_barrier(self) -> FlushTick | None:
        """`barrier()` for client replies: None when nothing is buffered, else the tick of this
        loop iteration's WAL write (`always`: of its group commit)."""
        if not self._dirty:
            return None
        tick = self._tick
        if tick is None:
            tick = self._tick = FlushTick()
            if self.policy != "always":
                asyncio.get_running_loop().call_soon(self._flush_tick)
            else:
                self._schedule_commit()
        return tick

    def _flush_tick(self) -> None:
        tick, self._tick = self._tick, None
        error: BaseException | None = None
        if self._dirty:
            try:
                self._flush()
            except BaseException as exc:        # a failed WAL write must fail the replies
                log.error("WAL write failed: %s", exc)
                error = exc
        tick._complete(error)

    async def durable(self) -> None:
        """Return once everything written so far is durable per the policy (LocalStore)."""
        waiter = self.barrier()
        if waiter is not None:
            await waiter

    def _flush(self) -> None:
        self._dirty = False
        if self.engine.wal_flush():
            self._unsynced = True

    def _group_commit(self) -> None:
        waiters, self._commit_waiters = self._commit_waiters, []
        tick, self._tick = self._tick, None
        self._commit_scheduled = False
        error: BaseException | None = None
        try:
            self._flush()
            self.engine.wal_sync()
            self._unsynced = False
        except BaseException as exc:  # a failed fsync must fail the acks, never be ignored
            log.error("WAL fsync failed: %s", exc)
            error = exc
        for future in waiters:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
        if tick is not None:
            tick._complete(error)

    async def run_everysec(self, stop: asyncio.Event) -> None:
        """Under `everysec`, fdatasync the WAL once a second in a thread until `stop` is set."""
        if self.policy != "everysec":
            return
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
            if self._dirty:
                self._flush()
            if self._unsynced:
                self._unsynced = False
                try:
                    await asyncio.to_thread(self.engine.wal_sync)
                except OSError as exc:
                    self._unsynced = True
                    log.error("background WAL fsync failed, will retry: %s", exc)

    def close(self) -> None:
        """Flush and sync what is buffered, then close the engine."""
        if self._dirty:
            self._flush()
        self.engine.close()

