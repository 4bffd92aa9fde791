"""Hinted handoff: writes held for a replica that was down, delivered when it is back.

Not placement (ring.plan_writes decides who holds a hint) and not transport. Hints live in the
node's LocalStore, so they survive a restart (DESIGN.md §5):

    hint_key   := b"h" owner_len:u8 owner:utf8 token:u64be key
    hint_value := created_ms:u64be versioning.encode_siblings(siblings)

One record per (owner, key): a second hint for the same key is merged into the first with
`versioning.sync` (so hints are idempotent and bounded by the key count) and keeps the first
`created_ms`. Caps: a hint older than `hint_max_age_s` is dropped at delivery time, and a new hint
that would push the stored bytes over `hint_max_bytes` is refused; both count `dropped`.

`created_ms` is the earlier of now and the oldest timestamp among the hint's siblings, so a hint
is never younger than any write it carries, however late it reached this node (a fallback that
was paused with the write in its socket buffer). The GC gate relies on that: it keeps a dead
record `hint_max_age_s` (plus the request timeout) past its newest timestamp
(service.hint_wait_s), so a hint holding a value that a delete superseded cannot be delivered
after the tombstone is collected and bring the value back.

A refused hint never fails a write that already met W: the coordinator records hints
best-effort, and a fallback that cannot store one simply does not ack (the write then needs W
elsewhere).

`HandoffDeliverer` (the task) scans an owner's hints when the failure detector says it is up,
sends each as a replica PUT, and deletes the hint once the owner acked it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

from cluster import versioning
from cluster.clock import Clock
from cluster.types import NodeId, Sibling

log = logging.getLogger(__name__)

HINT_PREFIX = b"h"          # on-disk: never change
HINT_END = b"i"


def _owner_prefix(owner: NodeId) -> bytes:
    raw = owner.encode()
    return HINT_PREFIX + bytes((len(raw),)) + raw


def _prefix_end(prefix: bytes) -> bytes:
    """Return the smallest key greater than every key starting with `prefix`."""
    trimmed = prefix.rstrip(b"\xff")
    return trimmed[:-1] + bytes((trimmed[-1] + 1,))


def hint_key(owner: NodeId, token: int, key: bytes) -> bytes:
    return _owner_prefix(owner) + token.to_bytes(8, "big") + key


def split_hint_key(store_key: bytes) -> tuple[NodeId, int, bytes]:
    """Return (owner, token, key) from a hint store key."""
    size = store_key[1]
    owner = store_key[2:2 + size].decode()
    rest = store_key[2 + size:]
    return owner, int.from_bytes(rest[:8], "big"), rest[8:]


class HintStore:
    """Durable hints in the LocalStore, with counters for INFO. Event-loop thread only."""

    def __init__(self, store, clock: Clock, max_bytes: int, max_age_s: float) -> None:
        self._store = store
        self._clock = clock
        self._max_bytes = max_bytes
        self._max_age_ms = int(max_age_s * 1000)
        self.pending = 0
        self.pending_bytes = 0
        self.delivered = 0
        self.dropped = 0

    def recount(self) -> None:
        """Count stored hints (at start)."""
        count = size = 0
        for _, value in self._store.scan(HINT_PREFIX, HINT_END):
            count += 1
            size += len(value)
        self.pending, self.pending_bytes = count, size

    def add(self, owner: NodeId, token: int, key: bytes, siblings: list[Sibling]) -> bool:
        """Store (or merge into) a hint for `owner`; return False if the byte cap refused it."""
        store_key = hint_key(owner, token, key)
        old = self._store.get(store_key)
        if old is not None:
            created = old[:8]
            siblings = versioning.sync(versioning.decode_siblings(old[8:]), siblings)
        else:
            # Born no later than the oldest write it carries (see the module docstring).
            oldest = min((s.timestamp_ms for s in siblings), default=0)
            created = min(self._clock.wall_ms(), oldest).to_bytes(8, "big")
        value = created + versioning.encode_siblings(siblings)
        grow = len(value) - (len(old) if old is not None else 0)
        if self.pending_bytes + grow > self._max_bytes:
            self.dropped += 1
            return False
        self._store.put(store_key, value)
        self.pending_bytes += grow
        self.pending += old is None
        return True

    def owners(self) -> set[NodeId]:
        """Return the nodes that have hints waiting (one scan; used by the deliverer)."""
        found: set[NodeId] = set()
        start = HINT_PREFIX
        while True:
            entry = next(iter(self._store.scan(start, HINT_END)), None)
            if entry is None:
                return found
            owner, _, _ = split_hint_key(entry[0])
            found.add(owner)
            start = _prefix_end(_owner_prefix(owner))

    def for_owner(self, owner: NodeId, limit: int = 256
                  ) -> Iterator[tuple[bytes, int, bytes, bytes | None]]:
        """Yield up to `limit` (store_key, token, key, encoded siblings or None if too old)."""
        prefix = _owner_prefix(owner)
        now_ms = self._clock.wall_ms()
        for store_key, value in self._store.scan(prefix, _prefix_end(prefix)):
            if limit <= 0:
                return
            limit -= 1
            _, token, key = split_hint_key(store_key)
            too_old = now_ms - int.from_bytes(value[:8], "big") > self._max_age_ms
            yield store_key, token, key, None if too_old else value[8:]

    def remove(self, store_key: bytes, delivered: bool) -> None:
        """Delete a hint after its owner acked it (delivered) or because it expired (dropped)."""
        old = self._store.get(store_key)
        if old is None:
            return
        self._store.delete(store_key)
        self.pending -= 1
        self.pending_bytes -= len(old)
        if delivered:
            self.delivered += 1
        else:
            self.dropped += 1

    def remove_owner(self, owner: NodeId) -> None:
        """Drop every hint for a node removed from the cluster for good."""
        prefix = _owner_prefix(owner)
        for store_key, _ in list(self._store.scan(prefix, _prefix_end(prefix))):
            self.remove(store_key, delivered=False)

    def clear(self) -> None:
        """Delete every hint (FLUSHALL)."""
        for store_key, _ in list(self._store.scan(HINT_PREFIX, HINT_END)):
            self._store.delete(store_key)
        self.pending = self.pending_bytes = 0


# send(owner, key, token, encoded_siblings) -> True if the owner acked
SendHint = Callable[[NodeId, bytes, int, bytes], Awaitable[bool]]


class HandoffDeliverer:
    """Background task: deliver hints to owners the failure detector reports alive."""

    def __init__(self, hints: HintStore, clock: Clock, is_alive: Callable[[NodeId], bool],
                 send: SendHint, interval_s: float = 1.0) -> None:
        self._hints = hints
        self._clock = clock
        self._is_alive = is_alive
        self._send = send
        self._interval_s = interval_s

    async def run(self) -> None:
        """Loop forever: one delivery round per interval; errors are logged, never fatal."""
        while True:
            await self._clock.sleep(self._interval_s)
            try:
                await self.deliver_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hint delivery round failed; retrying next interval")

    async def deliver_once(self) -> int:
        """Deliver what can be delivered now; return the number of hints delivered."""
        if not self._hints.pending:
            return 0
        delivered = 0
        for owner in self._hints.owners():
            if not self._is_alive(owner):
                continue
            batch = list(self._hints.for_owner(owner))
            results = await asyncio.gather(*(
                self._deliver(owner, store_key, token, key, encoded)
                for store_key, token, key, encoded in batch))
            delivered += sum(results)
        return delivered

    async def _deliver(self, owner: NodeId, store_key: bytes, token: int, key: bytes,
                       encoded: bytes | None) -> bool:
        if encoded is None:
            self._hints.remove(store_key, delivered=False)
            return False
        if not await self._send(owner, key, token, encoded):
            return False
        # A newer hint for the same key may have been merged in while we waited: keep it.
        current = self._hints._store.get(store_key)
        if current is not None and current[8:] != encoded:
            return False
        self._hints.remove(store_key, delivered=True)
        return True
