"""Merkle trees over the token space, kept current by every local change: the anti-entropy core.

Pure: no I/O, no clock, no asyncio. `antientropy.py` feeds it changes and runs exchanges.

Shape (a decision, not a tuning knob: both sides of an exchange must agree on it)::

    token    : u64                          (cluster.types.key_token)
    segment  : token >> 48                  65536 fixed segments = the leaves
    level d  : FANOUT**d nodes, d = 0..4    level 0 is the root, level 4 the leaves
    node     : XOR of its FANOUT children   (fanout 16)
    leaf     : XOR of item(key, encoded) over the keys stored in its segment
    item     : mmh3.hash128(encoded + key, seed=len(key) + 1)   as an unsigned 128-bit int,
               `encoded` the key's stored sibling set (the seed makes the split unambiguous;
               + 1 because murmur3 of nothing under seed 0 is 0, an item XOR cannot see)
    digest   : mmh3.hash_bytes(encoded sibling set) == versioning.digest(siblings), because
               versioning.encode_siblings is canonical (expiry is part of each sibling, so a
               changed expiry changes the digest)

Fixed segments instead of per-vnode trees make any two nodes' trees comparable without agreeing
on ring ranges first; an exchange restricts itself to the token ranges both sides replicate by
building a *view* (`MerkleTree.restricted`) whose leaves are the live leaves for segments wholly
inside the shared ranges, scanned sub-leaves for the few segments a range boundary cuts, and 0
elsewhere. XOR makes the combine incremental: adding and removing an item are the same O(depth)
toggle, and a tree updated by any sequence of changes equals the one built from scratch over the
final contents (tests/unit/cluster/test_merkle.py proves both that and exact diffs).

Leaf array persistence (`encode_leaves` / `decode_leaves`)::

    leaves := VERSION:u8 count:u32 hash:u128be{count}            (count = SEGMENTS)

Range list on the wire (`encode_ranges` / `decode_ranges`): (start:u64be, end_minus_1:u64be)
pairs, half-open [start, end) with end in 1 .. 2**64.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Final

import mmh3

__all__ = [
    "SEGMENT_BITS", "SEGMENTS", "FANOUT", "DEPTH", "TOKEN_LIMIT", "HASH_BYTES",
    "segment_of", "segment_bounds", "version_digest", "item_hash", "MerkleTree",
    "normalize_ranges", "intersect_ranges", "segment_coverage", "segments_of_ranges",
    "encode_ranges", "decode_ranges", "encode_hashes", "decode_hashes",
    "encode_leaves", "decode_leaves", "diff_digests", "in_ranges",
]

SEGMENT_BITS = 16                       # wire + disk: never change
SEGMENTS = 1 << SEGMENT_BITS
_FANOUT_BITS = 4                        # wire: never change
FANOUT = 1 << _FANOUT_BITS
DEPTH = SEGMENT_BITS // _FANOUT_BITS    # levels below the root; level DEPTH = leaves
TOKEN_LIMIT = 1 << 64
HASH_BYTES = 16
_SEGMENT_SHIFT = 64 - SEGMENT_BITS
_LEAVES_VERSION = 2                     # on-disk: 1 held items of digests (a rebuild)
_LEAVES_HEAD = struct.Struct(">BI")     # on-disk: never change
_RANGE = struct.Struct(">QQ")           # wire: never change
# Final: a C global of this compiled module (a module attribute read per call otherwise);
# unsigned by default
_hash128: Final = mmh3.hash128

Range = tuple[int, int]                 # half-open [start, end), 0 <= start < end <= 2**64


def segment_of(token: int) -> int:
    """Return the leaf (segment) a token falls in."""
    return token >> _SEGMENT_SHIFT


def segment_bounds(segment: int) -> Range:
    """Return the token range [start, end) of a segment."""
    return segment << _SEGMENT_SHIFT, (segment + 1) << _SEGMENT_SHIFT


def version_digest(encoded: bytes) -> bytes:
    """Return the 16-byte digest of an encoded sibling set (== versioning.digest(decoded))."""
    return mmh3.hash_bytes(encoded)


def item_hash(key: bytes, encoded: bytes) -> int:
    """Return one key's contribution to its leaf, `encoded` its stored sibling set. (Not of
    its 16-byte digest, as before leaves version 2: one hash per version instead of two, on
    every write of every replica.)"""
    return mmh3.hash128(encoded + key, len(key) + 1, signed=False)


class MerkleTree:
    """XOR Merkle tree over the 65536 segments. Event-loop thread only (not locked).

    Invariant, whenever `levels` is read: `levels[d][i]` == XOR of
    `levels[d + 1][FANOUT * i .. FANOUT * i + FANOUT - 1]` and `levels[DEPTH][s]` == XOR of
    `item_hash` over the stored keys of segment `s`. A change updates its leaf and notes the
    leaf's parent as stale; the inner levels are brought up to date when next read (`levels`,
    `root`, `children`, ...). Every write pays one leaf XOR instead of DEPTH + 1 (measured:
    the eager walk was a fifth of a replica write's Merkle cost), and an exchange, which reads
    inner nodes a few times a round, pays for the stale paths once: ~1 ms after 300 writes,
    8 ms at most (every segment changed; measured on this 2-core machine).
    `changes` counts toggles, so a cached view can tell it is stale. `count` is the number of
    items as far as `update` saw them (an estimate after `set_leaf` or a restore: it only
    steers the exchange's cost model, never correctness).
    """

    __slots__ = ("_levels", "_stale", "_is_stale", "_leaves", "changes", "count")

    def __init__(self, leaves: list[int] | None = None) -> None:
        leaf_level = list(leaves) if leaves is not None else [0] * SEGMENTS
        if len(leaf_level) != SEGMENTS:
            raise ValueError(f"expected {SEGMENTS} leaves, got {len(leaf_level)}")
        levels: list[list[int]] = [leaf_level]
        for _ in range(DEPTH):
            below = levels[0]
            levels.insert(0, [_xor_all(below[i:i + FANOUT])
                              for i in range(0, len(below), FANOUT)])
        self._levels = levels
        self._leaves = leaf_level               # levels[DEPTH], one attribute load per write
        # Level DEPTH - 1 nodes whose leaves changed, as a list and a flag per node: a write
        # reads one flag from a 32 KiB list of shared True/False objects, where adding to a set
        # of ints made an int and probed a hash table (perf: ~a fifth of the update's cost, the
        # rest mostly the cache misses of the leaf read)
        self._stale: list[int] = []
        self._is_stale: list[bool] = [False] * (SEGMENTS >> _FANOUT_BITS)
        self.changes = 0
        self.count = 0

    @classmethod
    def from_items(cls, items: Iterable[tuple[int, bytes, bytes]]) -> MerkleTree:
        """Build from scratch over (token, key, encoded) items."""
        leaves, count = [0] * SEGMENTS, 0
        for token, key, encoded in items:
            leaves[token >> _SEGMENT_SHIFT] ^= item_hash(key, encoded)
            count += 1
        tree = cls(leaves)
        tree.count = count
        return tree

    # --- changes -------------------------------------------------------------------------

    def toggle(self, segment: int, value: int) -> None:
        """XOR `value` into a leaf (its ancestors follow when read). Adding == removing."""
        self._leaves[segment] ^= value
        parent = segment >> _FANOUT_BITS
        if not self._is_stale[parent]:
            self._is_stale[parent] = True
            self._stale.append(parent)
        self.changes += 1

    def update(self, token: int, key: bytes, old: bytes | None, new: bytes | None) -> None:
        """Record that `key`'s stored set changed from `old` to `new` (None = absent)."""
        self.update_segment(token >> _SEGMENT_SHIFT, key, old, new)

    def update_segment(self, segment: int, key: bytes, old: bytes | None,
                       new: bytes | None) -> None:
        """`update` of a key in `segment` (`segment_of(token)`; the write listener reads it
        from the store key's bytes, where shifting a token past 2**62 is a big-int op)."""
        if old is None:
            value = 0
            self.count += 1
        else:
            value = _hash128(old + key, len(key) + 1)  # item_hash, inlined: every local write
        if new is not None:
            value ^= _hash128(new + key, len(key) + 1)
        else:
            self.count -= 1
        if value:
            self.toggle(segment, value)                     # compiled: a direct C call

    def set_leaf(self, segment: int, value: int) -> None:
        """Replace one leaf (after rescanning its segment)."""
        old = self._leaves[segment]
        if old != value:
            self.toggle(segment, old ^ value)

    @property
    def levels(self) -> list[list[int]]:
        """All levels, root first, the inner ones brought up to date."""
        if self._stale:
            self._settle()
        return self._levels

    def _settle(self) -> None:
        """Recompute the inner nodes above the leaves changed since the last read."""
        levels, stale_list, is_stale = self._levels, self._stale, self._is_stale
        self._stale = []
        for index in stale_list:
            is_stale[index] = False
        stale = set(stale_list)
        for depth in range(DEPTH - 1, -1, -1):
            level, below = levels[depth], levels[depth + 1]
            for index in stale:
                first = index << _FANOUT_BITS
                level[index] = _xor_all(below[first:first + FANOUT])
            stale = {index >> _FANOUT_BITS for index in stale}

    # --- reading -------------------------------------------------------------------------

    @property
    def root(self) -> int:
        return self.levels[0][0]

    @property
    def leaves(self) -> list[int]:
        return self._leaves

    def node(self, level: int, index: int) -> int:
        return self.levels[level][index]

    def children(self, level: int, index: int) -> list[int]:
        """Return the FANOUT child hashes of node (level, index); level < DEPTH."""
        start = index << _FANOUT_BITS
        return self.levels[level + 1][start:start + FANOUT]

    def restricted(self, full: Iterable[int], partial: Mapping[int, int]) -> MerkleTree:
        """Return a view keeping the leaves of segments `full`, taking `partial` leaves as
        given (hashes of the shared part of a cut segment), and zero elsewhere. O(SEGMENTS)."""
        mine = self._leaves
        leaves = [0] * SEGMENTS
        for segment in full:
            leaves[segment] = mine[segment]
        for segment, value in partial.items():
            leaves[segment] = value
        return MerkleTree(leaves)

    def diff(self, other: MerkleTree) -> list[int]:
        """Return the segments whose leaves differ, walking only differing subtrees."""
        frontier = [0] if self.root != other.root else []
        for level in range(DEPTH):
            mine, theirs = self.levels[level + 1], other.levels[level + 1]
            frontier = [child for index in frontier
                        for child in range(index << _FANOUT_BITS, (index + 1) << _FANOUT_BITS)
                        if mine[child] != theirs[child]]
        return frontier

    def differing_children(self, level: int, parents: list[int], remote: list[int]) -> list[int]:
        """Given the remote hashes of the children of `parents` (FANOUT each, in order), return
        the indices (at level + 1) of the children that differ from ours."""
        out = []
        below = self.levels[level + 1]
        for n, parent in enumerate(parents):
            first = parent << _FANOUT_BITS
            for k in range(FANOUT):
                if below[first + k] != remote[n * FANOUT + k]:
                    out.append(first + k)
        return out


def _xor_all(values: Iterable[int]) -> int:
    out = 0
    for value in values:
        out ^= value
    return out


# --- ranges -----------------------------------------------------------------------------

def normalize_ranges(ranges: Iterable[Range]) -> list[Range]:
    """Sort and merge overlapping or touching ranges; drop empty ones."""
    out: list[list[int]] = []
    for start, end in sorted(r for r in ranges if r[0] < r[1]):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def intersect_ranges(a: Iterable[Range], b: Iterable[Range]) -> list[Range]:
    """Return the normalized intersection of two range lists."""
    left, right = normalize_ranges(a), normalize_ranges(b)
    out, i, j = [], 0, 0
    while i < len(left) and j < len(right):
        start, end = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if start < end:
            out.append((start, end))
        if left[i][1] <= right[j][1]:
            i += 1
        else:
            j += 1
    return out


def in_ranges(token: int, ranges: list[Range]) -> bool:
    """Return True if `token` is in one of the (normalized) ranges."""
    return any(start <= token < end for start, end in ranges)


def segment_coverage(ranges: Iterable[Range]) -> tuple[list[int], dict[int, list[Range]]]:
    """Split normalized ranges into segments wholly inside them and, per cut segment, the
    sub-ranges inside it. Returns (full segments ascending, {segment: [sub-range, ...]})."""
    full: list[int] = []
    partial: dict[int, list[Range]] = {}
    for start, end in normalize_ranges(ranges):
        first, last = start >> _SEGMENT_SHIFT, (end - 1) >> _SEGMENT_SHIFT
        for segment in {first, last}:            # only the end segments can be cut
            lo, hi = segment_bounds(segment)
            sub = (max(lo, start), min(hi, end))
            if sub == (lo, hi):
                full.append(segment)
            else:
                partial.setdefault(segment, []).append(sub)
        full.extend(range(first + 1, last))
    full.sort()
    return full, partial


def segments_of_ranges(ranges: Iterable[Range]) -> list[int]:
    """Return every segment the ranges touch, ascending."""
    full, partial = segment_coverage(ranges)
    return sorted(set(full) | set(partial))


def encode_ranges(ranges: Iterable[Range]) -> bytes:
    return b"".join(_RANGE.pack(start, end - 1) for start, end in ranges)


def decode_ranges(blob: bytes) -> list[Range]:
    """Decode a range list; raises ValueError on a malformed blob."""
    if len(blob) % _RANGE.size:
        raise ValueError("range list length is not a multiple of 16")
    out = [(s, last + 1) for s, last in _RANGE.iter_unpack(blob)]
    if any(s >= e for s, e in out):
        raise ValueError("empty or inverted range")
    return out


# --- hashes and leaves on the wire / disk ------------------------------------------------

def encode_hashes(values: Iterable[int]) -> bytes:
    return b"".join(v.to_bytes(HASH_BYTES, "big") for v in values)


def decode_hashes(blob: bytes) -> list[int]:
    if len(blob) % HASH_BYTES:
        raise ValueError("hash list length is not a multiple of 16")
    return [int.from_bytes(blob[i:i + HASH_BYTES], "big") for i in range(0, len(blob), HASH_BYTES)]


def encode_leaves(leaves: list[int]) -> bytes:
    return _LEAVES_HEAD.pack(_LEAVES_VERSION, len(leaves)) + encode_hashes(leaves)


def decode_leaves(blob: bytes) -> list[int]:
    """Decode a persisted leaf array; raises ValueError if it is not one of ours."""
    if len(blob) < _LEAVES_HEAD.size:
        raise ValueError("leaf array too short")
    version, count = _LEAVES_HEAD.unpack_from(blob)
    if version != _LEAVES_VERSION or count != SEGMENTS:
        raise ValueError(f"unknown leaf array (version {version}, count {count})")
    leaves = decode_hashes(blob[_LEAVES_HEAD.size:])
    if len(leaves) != SEGMENTS:
        raise ValueError("leaf array truncated")
    return leaves


def diff_digests(mine: Mapping[bytes, bytes], theirs: Mapping[bytes, bytes]
                 ) -> tuple[list[bytes], list[bytes]]:
    """Compare two {key: digest} lists of the same leaves.

    Returns (keys to pull: theirs differs or only they have it, keys to push: only we have it).
    A key both hold with different digests is pulled first; the caller pushes the merge back
    only if it differs from theirs.
    """
    pull = sorted(k for k, d in theirs.items() if mine.get(k) != d)
    push = sorted(k for k in mine if k not in theirs)
    return pull, push
