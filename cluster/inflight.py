"""A coordinated request's state while its replicas answer: the coordinator's callbacks (no
task, no future per replica). Used only by coordinator.py, which owns the decisions (merge,
repair, hints, fallbacks); these classes count answers and hand over to it.

- `Waiter`: resolves once a quorum (quorum.py) is done; awaited or told to call back once.
- `Read`: one read's answers (raw and decoded), for the merge and the read repair.
- `QuickRead`, `QuickWrite`: the lean start of a client GET and plain SET when the plan is all
  N primaries (ring.Plan.peers). A quick read answers from the local copy's bytes while every
  answer is byte-identical to them (encodings are canonical: equal bytes, equal sets); a quick
  write only counts acks. The first answer that differs or fails escalates to `Read` or
  `Waiter` with the answers so far, which then go on exactly as a request started on the
  general path: the same results, the same repairs, hints and fallbacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from cluster import messages, versioning
from cluster.encoded import value_of_encoded
from cluster.quorum import ReadQuorum, WriteQuorum
from cluster.ring import Plan, Target
from cluster.transport import ItemWaiter
from cluster.types import NodeId, Sibling

if TYPE_CHECKING:
    from cluster.coordinator import Coordinator

__all__ = ["Waiter", "Read", "QuickRead", "QuickWrite"]


class Waiter:
    """Resolves once a quorum (quorum.py) is done. Fed from done-callbacks, so a request
    creates no task. Either awaited (`wait()`) or told to call `on_done()` once, when done."""

    def __init__(self, quorum) -> None:
        self.quorum = quorum
        self._future: asyncio.Future | None = None
        self.on_done: Callable[[], None] | None = None
        self.used: set[NodeId] | None = None    # a write's targets and fallbacks, once one fails

    def record(self, node: NodeId, result) -> None:
        quorum = self.quorum
        quorum.record(node, result)
        if quorum.done:
            future = self._future
            if future is not None and not future.done():
                future.set_result(None)
            on_done = self.on_done
            if on_done is not None:
                self.on_done = None
                on_done()

    def then(self, on_done: Callable[[], None]) -> None:
        """Call `on_done()` once the quorum is done: now if it is, else from `record`."""
        if self.quorum.done:
            on_done()
        else:
            self.on_done = on_done

    def wait(self) -> asyncio.Future:
        """Return a future resolved once the quorum is done (a plain method, not a coroutine:
        one coroutine frame less on every request)."""
        future = self._future = asyncio.get_running_loop().create_future()
        if self.quorum.done:
            future.set_result(None)
        return future


class Read:
    """One coordinated read's state, fed by the replicas' answers (no task, no future per
    replica). A remote answer byte-identical to the local copy reuses the local decode."""

    __slots__ = ("coordinator", "key", "token", "targets", "waiter", "raws", "local",
                 "answered", "merged_ready", "differs")

    def __init__(self, coordinator: "Coordinator", key: bytes, token: int,
                 targets: tuple[Target, ...], quorum: ReadQuorum) -> None:
        self.coordinator = coordinator
        self.key, self.token, self.targets = key, token, targets
        self.waiter = Waiter(quorum)
        self.raws: dict[NodeId, bytes | None] = {}   # raw answers, for the repair comparison
        self.local: tuple[bytes | None, list[Sibling]] | None = None
        self.answered = 0                  # targets that answered or failed
        self.merged_ready = False          # set once the read has answered its client
        self.differs = False               # a reply not byte-identical to the local copy came

    def record_local(self, raw: bytes | None) -> None:
        """The coordinator's own copy, the read's first answer."""
        me = self.coordinator.me
        self.raws[me] = raw
        self.local = (raw, versioning.decode_siblings(raw) if raw else [])
        self.waiter.record(me, self.local[1])
        self.answered += 1

    def record_same(self, node: NodeId) -> None:
        """`node` answered byte for byte the local copy (a QuickRead hands over its answers)."""
        self.raws[node] = self.local[0]
        self.waiter.record(node, self.local[1])
        self.answered += 1

    def answer_from(self, node: NodeId, hint_for: bytes | None = None):
        """The callback of `node`'s answer; with `hint_for` (an MGET item), a value refused as
        too big for the batched answer is asked for again with GET."""
        if hint_for is None:
            return lambda payload, error: self.answer(node, payload, error)

        def batched(payload, error: Exception | None) -> None:
            if messages.answered_alone(error):
                self.coordinator._send(node, messages.GET, [self.key, hint_for],
                                       self.answer_from(node))
                return
            self.answer(node, payload, error)
        return batched

    def answer(self, node: NodeId, raw, error: Exception | None) -> None:
        if error is not None:
            self.waiter.record(node, error)
        else:
            self.raws[node] = raw
            local = self.local
            if local is not None and raw == local[0]:
                self.waiter.record(node, local[1])     # record() copies the list
            else:
                self.differs = True
                try:
                    self.waiter.record(node, versioning.decode_siblings(raw) if raw else [])
                except ValueError as bad:
                    self.waiter.record(node, bad)
        self.answered += 1
        if self.merged_ready and self.answered == len(self.targets):
            self.coordinator._read_repair(self.key, self.token, self.targets,
                                          self.waiter.quorum, self.raws)


class QuickWrite(ItemWaiter):
    """A plain SET to all N live primaries while every send succeeds: it counts acks and
    answers after W (the local write counts as the first). The first failed send escalates it
    to the general `Waiter`, holding the acks so far, and goes on as `_start_put` would
    (a hint for the owner, a fallback while W is not met): the same result. It waits for
    its `MPUT` items itself (an `ItemWaiter`)."""

    __slots__ = ("coordinator", "key", "token", "plan", "encoded", "needed", "on_done",
                 "acked", "slow")

    def __init__(self, coordinator: "Coordinator", key: bytes, token: int, plan: Plan,
                 encoded: bytes, w: int, on_done: Callable) -> None:
        self.coordinator = coordinator
        self.key, self.token, self.plan, self.encoded = key, token, plan, encoded
        self.needed = w - 1                 # peer acks still needed besides the local write
        self.on_done: Callable | None = on_done     # None once the client has its answer
        self.acked: list[NodeId] = []
        self.slow: Waiter | None = None

    def answer(self) -> None:
        on_done, self.on_done = self.on_done, None
        on_done(None)

    def item_answered(self, node: NodeId, value: object, error: Exception | None) -> None:
        """`node`'s answer to its MPUT item (from the transport)."""
        slow = self.slow
        if error is None:
            if slow is not None:
                slow.record(node, None)
                return
            self.acked.append(node)
            if self.on_done is not None and len(self.acked) >= self.needed:
                self.answer()
            return
        waiter = slow if slow is not None else self.escalate()
        self.coordinator._put_failed(self.key, self.token, self.encoded, None, Target(node),
                                     waiter, self.plan.targets, error)

    def escalate(self) -> Waiter:
        """The general write's waiter, fed the acks so far; it answers the client if this
        has not."""
        coordinator = self.coordinator
        _, _, w = coordinator._sizes()
        waiter = self.slow = Waiter(WriteQuorum(len(self.plan.targets), w))
        waiter.record(coordinator.me, None)
        for node in self.acked:
            waiter.record(node, None)
        if self.on_done is not None:
            coordinator._on_put_finish(waiter, self.on_done)
            self.on_done = None
        return waiter


class QuickRead(ItemWaiter):
    """A GET while every answer is byte-identical to the local copy, a one-sibling set or
    absent (encodings are canonical: equal bytes, equal sets). Then the merge is the local
    copy, nothing is stale, and the value comes straight from its bytes. The first answer that
    differs or fails escalates to a `Read` holding the same answers, which merges, answers
    the client if this has not yet, and repairs: the same result as a `Read` from the start.
    It waits for its `MGET` items itself (an `ItemWaiter`).
    """

    __slots__ = ("coordinator", "key", "token", "plan", "raw", "needed", "on_done", "same",
                 "slow")

    def __init__(self, coordinator: "Coordinator", key: bytes, token: int, plan: Plan,
                 raw: bytes | None, r: int, on_done: Callable) -> None:
        self.coordinator = coordinator
        self.key, self.token, self.plan, self.raw = key, token, plan, raw
        self.needed = r - 1                 # equal answers still needed besides the local copy
        self.on_done: Callable | None = on_done     # None once the client has its answer
        self.same: list[NodeId] = []        # peers that answered the local copy's bytes
        self.slow: Read | None = None

    def answer_local(self) -> None:
        """Answer the client from the local copy (R reached)."""
        on_done, self.on_done = self.on_done, None
        raw = self.raw
        try:
            value = None if raw is None else value_of_encoded(
                raw, self.coordinator.cluster.clock.wall_ms)
        except Exception as error:          # any failure answers the client (never a hang)
            on_done(None, error)
            return
        on_done(value, None)

    def item_answered(self, node: NodeId, value: object, error: Exception | None) -> None:
        """`node`'s answer to its MGET item (from the transport; a lone GET's too)."""
        slow = self.slow
        if slow is not None:
            slow.answer(node, value, error)
        elif error is None and value == self.raw:
            self.same.append(node)
            if self.on_done is not None and len(self.same) >= self.needed:
                self.answer_local()
        elif messages.answered_alone(error):      # too big for a batched answer: ask alone
            self.coordinator._send(node, messages.GET, [self.key, b""],
                                   partial(self.item_answered, node))
        else:
            self.escalate().answer(node, value, error)

    def escalate(self) -> "Read":
        """The general read, fed the answers so far; it answers the client if this has not."""
        coordinator = self.coordinator
        _, r, _ = coordinator._sizes()
        targets = self.plan.targets
        slow = self.slow = Read(coordinator, self.key, self.token, targets,
                                 ReadQuorum(len(targets), r))
        slow.record_local(self.raw)
        for node in self.same:
            slow.record_same(node)
        if self.on_done is None:
            slow.merged_ready = True        # answered already: only the repair is left
        else:
            coordinator._on_get_finish(slow, self.on_done)
            self.on_done = None
        return slow
