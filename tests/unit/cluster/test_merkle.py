"""Laws of cluster/merkle.py: incremental == from scratch, and diffs are exact."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.merkle import (
    SEGMENTS, TOKEN_LIMIT, MerkleTree, decode_hashes, decode_leaves, decode_ranges, diff_digests,
    encode_hashes, encode_leaves, encode_ranges, intersect_ranges, item_hash, normalize_ranges,
    segment_bounds, segment_coverage, segment_of,
)

# Small key alphabet so operations collide on keys; tokens spread over a few segments so
# several keys share a leaf (the interesting case for XOR).
KEYS = st.binary(min_size=0, max_size=3)
VALUES = st.binary(min_size=0, max_size=4)
_TOKENS = [0, 1, 5 << 48, (5 << 48) + 7, (9 << 48) + 3, TOKEN_LIMIT - 1]
OPS = st.lists(st.tuples(st.sampled_from(["put", "delete"]), KEYS, VALUES), max_size=60)


def _token(key: bytes) -> int:
    """A key's token is a function of the key, as on the ring; few distinct ones on purpose."""
    return _TOKENS[sum(key) % len(_TOKENS)]


def _apply(ops, tree: MerkleTree | None = None) -> tuple[dict, MerkleTree]:
    """Run ops on a dict store and, incrementally, on a tree; return both."""
    tree = tree if tree is not None else MerkleTree()
    store: dict[tuple[int, bytes], bytes] = {}
    for op, key, value in ops:
        token = _token(key)
        old = store.get((token, key))
        new = value if op == "put" else None
        if new is None:
            store.pop((token, key), None)
        else:
            store[(token, key)] = new
        tree.update(token, key, old, new)
    return store, tree


def _scratch(store: dict) -> MerkleTree:
    return MerkleTree.from_items((t, k, v) for (t, k), v in store.items())


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_merkle_incremental_equals_from_scratch(ops) -> None:
    store, tree = _apply(ops)
    scratch = _scratch(store)
    assert tree.levels == scratch.levels
    assert tree.diff(scratch) == []


@settings(max_examples=60, deadline=None)
@given(OPS, OPS)
def test_merkle_diff_is_exactly_the_leaves_whose_keys_differ(ops_a, ops_b) -> None:
    store_a, tree_a = _apply(ops_a)
    store_b, tree_b = _apply(ops_b)
    differing = {segment_of(t) for (t, k) in set(store_a) | set(store_b)
                 if store_a.get((t, k)) != store_b.get((t, k))}
    # A 128-bit XOR cancelling by accident is not a case these small inputs can hit.
    assert set(tree_a.diff(tree_b)) == differing
    assert tree_a.diff(tree_b) == sorted(differing)
    assert (tree_a.root == tree_b.root) == (not differing)


@settings(max_examples=50, deadline=None)
@given(OPS)
def test_merkle_differing_children_walk_matches_diff(ops) -> None:
    _, a = _apply(ops)
    b = MerkleTree()
    frontier = [0] if a.root != b.root else []
    for level in range(4):
        remote = [h for parent in frontier for h in b.children(level, parent)]
        frontier = a.differing_children(level, frontier, remote)
    assert frontier == a.diff(b)


@settings(max_examples=10, deadline=None)
@given(OPS)
def test_merkle_leaves_survive_encoding(ops) -> None:
    _, tree = _apply(ops)
    assert MerkleTree(decode_leaves(encode_leaves(tree.leaves))).levels == tree.levels


def test_merkle_leaves_saved_before_the_item_change_are_refused() -> None:
    """Version 1 leaves hashed each key with its digest, not its set: loading them would make
    every exchange see differences that are not there, so they are refused (a rebuild)."""
    tree = MerkleTree()
    tree.update(7 << 48, b"k", None, b"v")
    blob = encode_leaves(tree.leaves)
    assert blob[0] == 2
    try:
        decode_leaves(b"\x01" + blob[1:])
    except ValueError as error:
        assert "version 1" in str(error)
    else:
        raise AssertionError("version 1 leaves were accepted")


def test_merkle_set_leaf_keeps_ancestors_consistent() -> None:
    tree = MerkleTree()
    tree.update(123 << 48, b"k", None, b"d" * 16)
    tree.set_leaf(123, 0)
    assert tree.levels == MerkleTree().levels


def test_merkle_restricted_view_keeps_only_shared_leaves() -> None:
    tree = MerkleTree()
    tree.update(3 << 48, b"a", None, b"1" * 16)
    tree.update(4 << 48, b"b", None, b"2" * 16)
    view = tree.restricted([3], {7: 99})
    assert view.leaves[3] == tree.leaves[3] and view.leaves[4] == 0 and view.leaves[7] == 99
    assert view.root == tree.leaves[3] ^ 99


RANGES = st.lists(st.tuples(st.integers(0, TOKEN_LIMIT - 1), st.integers(1, 1 << 50)).map(
    lambda r: (r[0], min(TOKEN_LIMIT, r[0] + r[1]))), max_size=6)


@settings(max_examples=200, deadline=None)
@given(RANGES, RANGES, st.lists(st.integers(0, TOKEN_LIMIT - 1), max_size=20))
def test_merkle_range_intersection_is_pointwise_and(a, b, tokens) -> None:
    both = intersect_ranges(a, b)
    for token in tokens + [s for s, _ in a + b] + [e - 1 for _, e in a + b]:
        expected = any(s <= token < e for s, e in a) and any(s <= token < e for s, e in b)
        assert any(s <= token < e for s, e in both) == expected
    assert decode_ranges(encode_ranges(both)) == both


@settings(max_examples=200, deadline=None)
@given(RANGES)
def test_merkle_segment_coverage_partitions_ranges(ranges) -> None:
    full, partial = segment_coverage(ranges)
    assert not set(full) & set(partial)
    pieces = [segment_bounds(s) for s in full] + [r for subs in partial.values() for r in subs]
    assert normalize_ranges(pieces) == normalize_ranges(ranges)


def test_merkle_whole_ring_is_all_full_segments() -> None:
    full, partial = segment_coverage([(0, TOKEN_LIMIT)])
    assert full == list(range(SEGMENTS)) and partial == {}


def test_merkle_digest_list_diff() -> None:
    pull, push = diff_digests({b"a": b"1", b"b": b"2", b"c": b"3"},
                              {b"a": b"1", b"b": b"X", b"d": b"4"})
    assert pull == [b"b", b"d"] and push == [b"c"]


def test_merkle_wire_helpers_roundtrip() -> None:
    values = [0, 1, (1 << 128) - 1, item_hash(b"k", b"v")]
    assert decode_hashes(encode_hashes(values)) == values
