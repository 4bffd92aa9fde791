"""Keeping this node's Merkle tree current across writes, compactions and restarts.

Not the tree arithmetic (merkle.py) and not the exchange (antientropy.py): this is the tree's
lifecycle against the LocalStore.

- Writes: the replica's write listener calls `on_write`, an O(depth) update.
- Restarts: `save()` (at shutdown, store still open) writes the leaf array and a clean marker;
  `load()` at start takes the leaves only if the marker is there and deletes it, so a crash
  after that means a rebuild. Store keys (docs/contracts.md, `b"t"` prefix)::

      b"tleaves" -> merkle.encode_leaves(leaves)       b"tclean" -> b"1"

- Rebuild: `rebuild()` scans the data range in chunks, yielding to the loop between them;
  `state` is "building" meanwhile (INFO says so, exchanges wait on `ready`). A write to a key
  at or above the scan cursor is left to the scan, which will read its new value; one below is
  applied to the partial tree as usual, so the result is exact.
- Dormant: a node alone in its ring with no seeds has nobody to exchange with, so it keeps no
  tree at all (state "dormant": no per-write hashing, the single-node SET path's largest
  cost after the protocol). When a peer appears it is rebuilt, as after a crash. Cassandra
  builds its Merkle trees only when a repair asks; we keep ours only while it can be asked.
- Compaction: a record compaction drops never reaches the listener. `note_gc_drop` (compaction
  thread) remembers its segment with the engine's compaction count; `resolve_gc` (loop thread)
  rescans those segments once the count shows that compaction published its result.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from cluster import merkle
from cluster.merkle import MerkleTree, Range
from cluster.local_store import LocalStore
from cluster.replica import DATA_END, DATA_PREFIX, Replica, segment_of_data_key

log = logging.getLogger("cluster.merkle_keeper")

LEAVES_KEY = b"tleaves"                 # on-disk: never change
CLEAN_KEY = b"tclean"                   # on-disk: never change
_BUILD_CHUNK = 4096                     # records per synchronous rebuild step

__all__ = ["MerkleKeeper", "LEAVES_KEY", "CLEAN_KEY", "compaction_counter"]


class MerkleKeeper:
    """The node's tree and its lifecycle. Event-loop thread only, except `note_gc_drop`."""

    def __init__(self, store: LocalStore, replica: Replica,
                 compactions: Callable[[], int | None] | None = None) -> None:
        self.store, self.replica = store, replica
        self._compactions = compactions or compaction_counter(store)
        self.tree = MerkleTree()
        self.state = "building"
        self.ready = asyncio.Event()
        self._build_cursor = DATA_PREFIX          # data keys < cursor are in the tree
        self._saved = False
        self._gc_pending: list[tuple[int, int]] = []           # (compaction count, segment)
        self._gc_lock = threading.Lock()                       # the compaction thread appends

    # --- restarts ---------------------------------------------------------------------------

    def load(self) -> bool:
        """Take the saved leaves if they were saved cleanly; return False if a rebuild is due."""
        if self.store.get(CLEAN_KEY) is None:
            return False
        blob = self.store.get(LEAVES_KEY)
        self.store.delete(CLEAN_KEY)            # from now on a crash means: rebuild
        try:
            leaves = merkle.decode_leaves(blob or b"")
        except ValueError as error:
            log.warning("saved Merkle leaves unusable (%s): rebuilding", error)
            return False
        self.tree = MerkleTree(leaves)
        self.tree.count = max(0, self.replica.local_keys)    # an estimate (cost model only)
        self.set_ready()
        return True

    async def save(self) -> None:
        """Save the leaves with a clean marker (at shutdown; the store must still be open)."""
        self.resolve_gc(force=False)
        if self.state == "ready" and not self._gc_pending:
            self.store.put(LEAVES_KEY, merkle.encode_leaves(self.tree.leaves))
            self.store.put(CLEAN_KEY, b"1")
            self._saved = True
            await self.store.durable()

    def make_dormant(self) -> None:
        """Keep no tree (no peers, none expected); `rebuild()` wakes it. A saved tree becomes
        stale with the first write, so its clean marker goes now."""
        self.tree, self.state, self._build_cursor = MerkleTree(), "dormant", DATA_PREFIX
        self.ready.clear()
        with self._gc_lock:
            self._gc_pending = []
        if self.store.get(CLEAN_KEY) is not None:
            self.store.delete(CLEAN_KEY)
        self._saved = False

    def set_ready(self) -> None:
        self.state = "ready"
        self._build_cursor = DATA_END
        self.ready.set()

    async def rebuild(self) -> None:
        """Build the tree from a scan of the data range, a chunk per loop iteration."""
        self.tree, self.state, self._build_cursor = MerkleTree(), "building", DATA_PREFIX
        self.ready.clear()
        leaves, item = self.tree.leaves, merkle.item_hash
        count = 0
        while True:
            chunk, last = 0, None
            for store_key, raw in self.store.scan(self._build_cursor, DATA_END):
                leaves[segment_of_data_key(store_key)] ^= item(store_key[9:], raw)
                last, chunk = store_key, chunk + 1
                if chunk >= _BUILD_CHUNK:
                    break
            count += chunk
            if last is None or chunk < _BUILD_CHUNK:
                break
            self._build_cursor = last + b"\x00"
            await asyncio.sleep(0)
        writes_meanwhile = self.tree.count                   # update() counted those
        self.tree = MerkleTree(leaves)
        self.tree.count = count + writes_meanwhile
        self.set_ready()
        log.info("Merkle tree rebuilt")

    # --- writes and compaction ----------------------------------------------------------------

    def on_write(self, key: bytes, store_key: bytes, old: bytes | None,
                 new: bytes | None) -> None:
        """Replica write listener: one leaf toggled."""
        if self.state != "ready" and store_key >= self._build_cursor:
            return                                # the rebuild scan will see the new value
        self.tree.update_segment(segment_of_data_key(store_key), key, old, new)
        if self._saved:                           # a write after the save: the save is stale
            self.store.delete(CLEAN_KEY)
            self._saved = False

    def note_gc_drop(self, token: int) -> None:
        """Compaction is dropping a record of `token` (compaction thread)."""
        if self.state == "dormant":
            return                                # no tree: the rebuild will read what is left
        done = self._compactions()
        with self._gc_lock:
            self._gc_pending.append((done if done is not None else 0, merkle.segment_of(token)))

    def resolve_gc(self, force: bool = False) -> None:
        """Rescan the segments compaction dropped records from, once that compaction is
        published (the engine's compaction count moved past the one noted)."""
        if not self._gc_pending:
            return
        done = self._compactions()
        with self._gc_lock:
            pending = self._gc_pending
            due = [force or done is None or p[0] < done for p in pending]
            ready = [p for p, d in zip(pending, due) if d]
            if not ready:
                return
            self._gc_pending = [p for p, d in zip(pending, due) if not d]
        for segment in sorted({s for _, s in ready}):
            self.tree.set_leaf(segment, self.scan_leaf([merkle.segment_bounds(segment)]))

    def scan_leaf(self, ranges: list[Range]) -> int:
        """Return the leaf hash of the stored keys in `ranges` (a scan: small ranges only)."""
        value = 0
        for start, end in ranges:
            for _, key, raw in self.replica.scan_range(start, end):
                value ^= merkle.item_hash(key, raw)
        return value


def compaction_counter(store) -> Callable[[], int | None]:
    """Return a reader of the engine's published-compaction count, or of None if the store
    does not expose one (then compaction-dropped segments are rescanned at the next tick)."""
    engine = getattr(store, "engine", store)
    stats = getattr(engine, "stats", None)
    if stats is None:
        return lambda: None

    def read() -> int | None:
        try:
            return int(stats()["compactions"])
        except Exception:                           # noqa: BLE001 - a store without the field
            return None
    return read
