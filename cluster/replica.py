"""The replica role (riak_kv vnode): this node's copy of the keys it stores, in the LocalStore.

Not quorum logic (coordinator.py) and not hints (hints.py): a replica merges what it is given
into what it has and stores the result. Key space (docs/contracts.md):

    data_key := b"d" token:u64be key          -> versioning.encode_siblings(siblings)

Storing data in token order makes a ring range, a SCAN page and a handoff stream one `scan()`.

Invariant: every local change to a data key goes through `apply()` / `delete_all()`, which call
each write listener's `on_write(key, store_key, old_encoded | None, new_encoded | None)` (the seam
the Merkle trees hang on). `local_keys` counts data keys with at least one non-tombstone sibling and
`local_expires` those of them with an expiry; an expired but not yet collected key still counts,
as an expired key does in Redis until it is reclaimed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import mmh3
from mypy_extensions import mypyc_attr
from sortedcontainers import SortedList

from cluster import encoded, versioning
from cluster.local_store import LocalStore
from cluster.types import Sibling

DATA_PREFIX = b"d"          # on-disk: never change
DATA_END = b"e"
TOKEN_LIMIT = 1 << 64

# Final: C globals of this compiled module, not module-dict lookups (resp_kv/native.py)
_encode: Final = versioning.encode_siblings
_hash_bytes: Final = mmh3.hash_bytes



@mypyc_attr(allow_interpreted_subclasses=True)
class WriteListener:
    """Hears every local change to a data key (the Merkle tree's keeper does).

    A native base class, not a callable: compiled, the replica's call is a C call through the
    vtable, where calling a stored bound method was a generic call with argument parsing
    (~350 instructions) on every write of every replica. Interpreted subclasses are allowed
    (their override is called as a Python method)."""

    def on_write(self, key: bytes, store_key: bytes, old: bytes | None,
                 new: bytes | None) -> None:
        """`key` (stored under `store_key`: its token and segment are in its bytes,
        `token_of_data_key`, `segment_of_data_key`) changed from the encoded set `old` to `new`
        (None: absent). The store key, not the token: every writer has it, where a token was
        one more u64 to box on a replica write, and one more to shift for the segment."""
        raise NotImplementedError


def data_key(token: int, key: bytes) -> bytes:
    """Return the store key of `key`'s sibling set."""
    return b"d" + token.to_bytes(8, "big") + key


def data_key_of(key: bytes) -> bytes:
    """`data_key(key_token(key), key)` with one hash call and no int: the token is the first
    half of the mmh3 x64 128 digest, so its big-endian bytes are the digest's first 8 bytes
    reversed (the digest is little-endian). Hot: every single-node GET."""
    return b"d" + _hash_bytes(key)[7::-1] + key


def segment_of_data_key(store_key: bytes) -> int:
    """`merkle.segment_of(token_of_data_key(store_key))`: the token's top 16 bits, the key's
    bytes 1-2 (loads, compiled; no int past 2**62 made and shifted)."""
    return store_key[1] << 8 | store_key[2]


def token_of_data_key(store_key: bytes) -> int:
    """Return the token a data store key begins with."""
    return int.from_bytes(store_key[1:9], "big")


def _liveness(siblings: list[Sibling]) -> tuple[int, int]:
    """Return (1 if any non-tombstone sibling else 0, 1 if such a sibling expires else 0)."""
    live = expiring = 0
    for sibling in siblings:
        if sibling.value is not None:
            live = 1
            if sibling.expire_at_ms:
                expiring = 1
    return live, expiring


def _dot(sibling: Sibling):
    return sibling.dot


def _death_ms(siblings: list[Sibling]) -> int:
    """Return when the key stops being live: the latest expiry of its values, or 0 if some
    value never expires (or there is no value at all)."""
    death = 0
    for sibling in siblings:
        if sibling.value is not None:
            if not sibling.expire_at_ms:
                return 0
            if sibling.expire_at_ms > death:
                death = sibling.expire_at_ms
    return death


def _changes_liveness(old: Sibling, new: Sibling) -> bool:
    """For a one-sibling overwrite: does it change `local_keys`/`local_expires`?"""
    return (old.value is None) != (new.value is None) or (
        bool(old.expire_at_ms) != bool(new.expire_at_ms))


def is_live(siblings: list[Sibling], now_ms: int) -> bool:
    """Return True if some sibling is neither a tombstone nor expired."""
    return not versioning.is_dead(siblings, now_ms)


class Replica:
    """This node's stored sibling sets. Event-loop thread only; all methods but `apply_put` are
    synchronous so the coordinator's single-node fast path never yields between read and write."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.listeners: list[WriteListener] = []
        self.local_keys = 0
        self.local_expires = 0
        # Keys whose values all expire, by the time they stop being live, so DBSIZE can
        # subtract the expired ones without a scan. Entries are checked against the store
        # when counted (others may delete records: compaction GC, anti-entropy purge).
        self._deaths: dict[bytes, int] = {}
        self._death_order: SortedList = SortedList()

    def recount(self) -> None:
        """Recount `local_keys`/`local_expires` with one scan of the data range (at start)."""
        keys = expires = 0
        decode = versioning.decode_siblings
        self._deaths.clear()
        self._death_order.clear()
        for store_key, raw in self.store.scan(DATA_PREFIX, DATA_END):
            siblings = decode(raw)
            live, expiring = _liveness(siblings)
            keys += live
            expires += expiring
            if expiring:
                self._track_death(store_key, siblings)
        self.local_keys, self.local_expires = keys, expires

    def read(self, key: bytes, token: int) -> list[Sibling]:
        """Return this node's siblings of `key` ([] if none)."""
        raw = self.store.get(data_key(token, key))
        return versioning.decode_siblings(raw) if raw is not None else []

    def read_encoded(self, key: bytes, token: int) -> bytes | None:
        return self.store.get(data_key(token, key))

    def read_encoded_of(self, key: bytes) -> bytes | None:
        """`read_encoded(key, key_token(key))` without making the token (`data_key_of`): a
        replica's answer to a coordinator's read."""
        return self.store.get(data_key_of(key))

    def apply(self, key: bytes, token: int, incoming: list[Sibling]) -> list[Sibling]:
        """Merge `incoming` into the stored siblings, store the result, return it.

        A merge that changes nothing writes nothing (read repair and hints are idempotent).
        """
        old_raw = self.store.get(data_key(token, key), False)     # replaced below: no row cache fill
        local = versioning.decode_siblings(old_raw) if old_raw is not None else []
        merged = versioning.sync(local, incoming) if local else versioning.sync(incoming, ())
        self.store_merged(key, token, local, old_raw, merged)
        return merged

    def apply_encoded(self, key: bytes, token: int, raw: bytes) -> None:
        """`apply()` for an encoded incoming set (a replica PUT). Encodings are canonical, so
        when the merge keeps exactly the incoming siblings their bytes are stored as they came."""
        self.apply_encoded_at(key, data_key(token, key), raw)

    def apply_encoded_at(self, key: bytes, store_key: bytes, raw: bytes) -> None:
        """`apply_encoded` by the key's store key (`data_key_of(key)`, so a replica's write
        makes no token int unless a merge needs it)."""
        old_raw = self.store.get(store_key, False)
        if old_raw == raw:
            return
        fast = encoded.replaces_encoded(old_raw, raw)
        if fast is not None:                      # the incoming sibling supersedes: bytes only
            old_flags, old_expire_ms, new_flags, new_expire_ms = fast
            self.store_overwrite(key, store_key, old_raw, raw, old_flags, old_expire_ms,
                                 new_flags == 0, new_expire_ms)
            return
        incoming = versioning.decode_siblings(raw)
        local = versioning.decode_siblings(old_raw) if old_raw is not None else []
        merged = versioning.sync(local, incoming)
        same = len(merged) == len(incoming) and all(
            a is b for a, b in zip(merged, sorted(incoming, key=_dot)))
        self.store_merged(key, token_of_data_key(store_key), local, old_raw, merged, store_key,
                          raw if same else None)

    def store_merged(self, key: bytes, token: int, local: list[Sibling], old_raw: bytes | None,
                     merged: list[Sibling], store_key: bytes | None = None,
                     new_raw: bytes | None = None) -> bytes:
        """Store `merged`, which replaces `local` (read as `old_raw`); the coordinator's hot
        path calls this directly after `versioning.write`, skipping a second read and merge.
        `new_raw` may carry the encoding of `merged` when the caller has it. Return it."""
        if new_raw is None:
            new_raw = _encode(merged)
        if new_raw == old_raw:
            return new_raw
        store_key = store_key or data_key(token, key)
        self.store.put(store_key, new_raw)
        if len(local) != 1 or len(merged) != 1:
            self._account(local, merged)
            self._track_death(store_key, merged)
        else:
            old, new = local[0], merged[0]
            if _changes_liveness(old, new):
                self._account(local, merged)
            if old.expire_at_ms or new.expire_at_ms:
                self._track_death(store_key, merged)
        if self.listeners:
            for listener in self.listeners:
                listener.on_write(key, store_key, old_raw, new_raw)
        return new_raw

    def store_overwrite(self, key: bytes, store_key: bytes,
                        old_raw: bytes | None, new_raw: bytes, old_flags: int, old_expire_ms: int,
                        new_live: bool, new_expire_ms: int) -> None:
        """`store_merged` for a one-sibling set replacing at most one sibling, described by
        fields (`encoded.overwrite_encoded`: old flags -1 = absent, 0 = value, else a
        tombstone) so the single-node SET path never builds Sibling objects. Same effects:
        the store write, `local_keys`/`local_expires`, expiry tracking, the listeners."""
        self.store.put(store_key, new_raw)
        old_live = old_flags == 0
        if old_live != new_live or (old_live and bool(old_expire_ms) != bool(new_expire_ms)):
            new_exp = 1 if new_live and new_expire_ms else 0
            old_exp = 1 if old_live and old_expire_ms else 0
            self.local_keys += new_live - old_live
            self.local_expires += new_exp - old_exp
        if old_flags < 0 or old_expire_ms or new_expire_ms:
            # as _track_death(store_key, [new sibling]): a record that was absent may still
            # have a stale entry (dropped by compaction) to forget
            old = self._deaths.pop(store_key, None)
            if old is not None:
                self._death_order.discard((old, store_key))
            if new_live and new_expire_ms:
                self._deaths[store_key] = new_expire_ms
                self._death_order.add((new_expire_ms, store_key))
        if self.listeners:
            for listener in self.listeners:
                listener.on_write(key, store_key, old_raw, new_raw)

    async def apply_put(self, key: bytes, token: int, incoming: list[Sibling]) -> list[Sibling]:
        """`apply()`, then wait until the write is as durable as the fsync policy promises."""
        merged = self.apply(key, token, incoming)
        await self.store.durable()
        return merged

    def _track_death(self, store_key: bytes, siblings: list[Sibling]) -> None:
        old = self._deaths.pop(store_key, None)
        if old is not None:
            self._death_order.discard((old, store_key))
        death = _death_ms(siblings)
        if death:
            self._deaths[store_key] = death
            self._death_order.add((death, store_key))

    def expired_count(self, now_ms: int) -> int:
        """Return how many counted keys have expired by `now_ms` (all values past expiry)."""
        order = self._death_order
        due = list(order.islice(0, order.bisect_left((now_ms + 1, b""))))
        expired = 0
        for death, store_key in due:
            raw = self.store.get(store_key)
            if raw is not None and _death_ms(versioning.decode_siblings(raw)) == death:
                expired += 1
            else:                          # deleted or rewritten behind our back: forget it
                self._deaths.pop(store_key, None)
                order.discard((death, store_key))
        return expired

    def _account(self, old: list[Sibling], new: list[Sibling]) -> None:
        old_live, old_exp = _liveness(old)
        new_live, new_exp = _liveness(new)
        self.local_keys += new_live - old_live
        self.local_expires += new_exp - old_exp

    def scan_range(self, start_token: int, end_token: int | None = None
                   ) -> Iterator[tuple[int, bytes, bytes]]:
        """Yield (token, key, encoded siblings) for tokens in [start_token, end_token)."""
        start = DATA_PREFIX + start_token.to_bytes(8, "big")
        end = DATA_END if end_token is None or end_token >= TOKEN_LIMIT else (
            DATA_PREFIX + end_token.to_bytes(8, "big"))
        for store_key, raw in self.store.scan(start, end):
            yield int.from_bytes(store_key[1:9], "big"), store_key[9:], raw

    def scan_live(self, cursor: int, count: int, now_ms: int, budget: int = 0
                  ) -> tuple[list[tuple[int, bytes]], int]:
        """Return live (token, key) pairs from token `cursor` on, and the token scanned up to.

        Stops at a token boundary once `count` keys are collected (so a token's keys are never
        split between pages), or after `budget` records (default 10 * count + 100) so a range of
        dead keys cannot stall the loop. The second value is the first token NOT yet covered, or
        TOKEN_LIMIT when the whole range was scanned.
        """
        budget = budget or 10 * count + 100
        found: list[tuple[int, bytes]] = []
        decode = versioning.decode_siblings
        last_token = -1
        for token, key, raw in self.scan_range(cursor):
            if token != last_token and (len(found) >= count or budget <= 0):
                return found, token
            last_token = token
            budget -= 1
            if is_live(decode(raw), now_ms):
                found.append((token, key))
        return found, TOKEN_LIMIT

    def delete_all(self) -> int:
        """Delete every data key (FLUSHALL); return how many were deleted."""
        doomed = list(self.store.scan(DATA_PREFIX, DATA_END))
        for store_key, raw in doomed:
            self.store.delete(store_key)
            key = store_key[9:]
            for listener in self.listeners:
                listener.on_write(key, store_key, raw, None)
        self.local_keys = self.local_expires = 0
        self._deaths.clear()
        self._death_order.clear()
        return len(doomed)
