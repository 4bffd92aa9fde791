"""Placement on the ring (cluster/ring.py)."""

from __future__ import annotations

import random

import mmh3
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.ring import (RING_SIZE, Ring, Target, WritePlans, plan_reads, plan_writes,
                          vnode_token)
from cluster.types import key_token

NODES = ["n1", "n2", "n3", "n4", "n5"]
tokens = st.integers(0, RING_SIZE - 1)


def _length(start: int, end: int) -> int:
    return (end - start) % RING_SIZE or RING_SIZE


def _in(token: int, start: int, end: int) -> bool:
    if start < end:
        return start < token <= end
    return token > start or token <= end


def _brute_preference_list(ring: Ring, token: int, n: int) -> list[str]:
    points = sorted((vnode_token(node, i), node) for node in ring.nodes for i in range(ring.vnodes))
    start = next((i for i, (t, _) in enumerate(points) if t >= token), 0)
    out: list[str] = []
    for step in range(len(points)):
        node = points[(start + step) % len(points)][1]
        if node not in out:
            out.append(node)
    return out[:n]


def test_vnode_token_is_the_documented_hash() -> None:
    assert vnode_token("n1", 3) == mmh3.hash64(b"n1#3", signed=False)[0]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_key_token_is_the_documented_hash(key: bytes) -> None:
    """The token places keys on the ring and orders data keys on disk: never change it."""
    assert key_token(key) == mmh3.hash64(key, signed=False)[0]


@settings(max_examples=80, deadline=None)
@given(tokens, st.integers(1, 6))
def test_preference_list_matches_brute_force(token: int, n: int) -> None:
    ring = Ring(NODES, 8)
    assert ring.preference_list(token, n) == _brute_preference_list(ring, token, n)
    assert list(ring.walk(token))[:n] == ring.preference_list(token, n)
    assert sorted(ring.walk(token)) == sorted(NODES)


def test_preference_list_edges() -> None:
    assert Ring([], 4).preference_list(5, 3) == []
    assert list(Ring([], 4).walk(5)) == []
    one = Ring(["solo"], 4)
    assert one.preference_list(0, 3) == ["solo"]
    assert one.preference_list(RING_SIZE - 1, 3) == ["solo"]
    ring = Ring(NODES, 16)
    last = ring.ranges()[-1][1]
    assert ring.preference_list(last + 1, 1) == [ring.ranges()[0][2]]   # wraps past the top


def test_ownership_balance_5_nodes_64_vnodes() -> None:
    """Primary share of the token space; max/min is ~1.15 for n1..n5 (and ~1.16 at N=3)."""
    ring = Ring(NODES, 64)
    share = dict.fromkeys(NODES, 0)
    for start, end, node in ring.ranges():
        share[node] += _length(start, end)
    assert sum(share.values()) == RING_SIZE
    assert max(share.values()) / min(share.values()) < 1.5
    replicated = {node: sum(_length(s, e) for s, e in ring.replica_ranges(node, 3))
                  for node in NODES}
    assert sum(replicated.values()) == 3 * RING_SIZE
    assert max(replicated.values()) / min(replicated.values()) < 1.5


def test_adding_a_node_moves_about_one_in_k_plus_one_keys() -> None:
    ring = Ring(NODES, 64)
    bigger = ring.with_node("n6")
    rnd = random.Random(7)
    keys = [rnd.randbytes(12) for _ in range(20_000)]
    moved = 0
    for key in keys:
        before = ring.preference_list(key_token(key), 1)
        after = bigger.preference_list(key_token(key), 1)
        if before != after:
            moved += 1
            assert after == ["n6"]                  # keys only move to the newcomer
    assert 0.10 < moved / len(keys) < 0.25          # ~1/6
    assert bigger.without_node("n6") == ring


def test_ranges_tile_the_ring() -> None:
    ring = Ring(NODES, 16)
    ranges = ring.ranges()
    assert len(ranges) == 5 * 16
    assert sum(_length(s, e) for s, e, _ in ranges) == RING_SIZE
    for (_, end, _), (start, _, _) in zip(ranges, ranges[1:] + ranges[:1]):
        assert end == start
    for start, end, node in ranges:
        assert ring.preference_list(end, 1) == [node]
        assert ring.preference_list((start + 1) % RING_SIZE, 1) == [node]


@settings(max_examples=60, deadline=None)
@given(tokens, st.sampled_from(NODES), st.integers(1, 5))
def test_replica_ranges_are_exactly_where_node_is_in_preference_list(token, node, n) -> None:
    ring = Ring(NODES, 8)
    inside = any(_in(token, s, e) for s, e in ring.replica_ranges(node, n))
    assert inside == (node in ring.preference_list(token, n))


def test_replica_ranges_whole_ring_when_n_covers_all() -> None:
    ring = Ring(NODES, 8)
    (whole,) = ring.replica_ranges("n1", 5)
    assert whole[0] == whole[1]
    assert Ring(["solo"], 1).replica_ranges("solo", 3) == [(vnode_token("solo", 0),) * 2]
    assert ring.replica_ranges("stranger", 3) == []


@settings(max_examples=60, deadline=None)
@given(tokens, tokens, st.integers(1, 4))
def test_owners_of_range_is_the_union_of_preference_lists(start, end, n) -> None:
    ring = Ring(NODES[:4], 4)
    expected: set[str] = set()
    for s, e, _ in ring.ranges():
        # the vnode range (s, e] meets (start, end]
        meets = (start == end or _in(e, start, end) or _in((start + 1) % RING_SIZE, s, e)
                 or _in(end, s, e))
        if meets:
            expected.update(ring.preference_list(e, n))
    assert set(ring.owners_of_range(start, end, n)) == expected


def test_owners_of_range_inside_one_vnode_is_its_preference_list() -> None:
    ring = Ring(NODES, 8)
    for start, end, _ in ring.ranges():
        if _length(start, end) > 2:
            assert ring.owners_of_range(start, (start + 2) % RING_SIZE, 3) == \
                ring.preference_list(end, 3)


def test_plan_writes_all_alive_is_the_preference_list() -> None:
    ring = Ring(NODES, 8)
    token = key_token(b"k")
    assert plan_writes(ring, token, 3, set(NODES)) == [
        Target(n) for n in ring.preference_list(token, 3)]


def test_plan_writes_replaces_down_primaries_with_hinted_fallbacks() -> None:
    ring = Ring(NODES, 8)
    token = key_token(b"k")
    walk = list(ring.walk(token))
    alive = set(NODES) - {walk[0], walk[2]}
    plan = plan_writes(ring, token, 3, alive)
    assert plan == [Target(walk[1]), Target(walk[3], hint_for=walk[0]),
                    Target(walk[4], hint_for=walk[2])]
    assert plan_reads(ring, token, 3, alive) == [walk[1], walk[3], walk[4]]


def test_plan_writes_runs_out_of_spares() -> None:
    ring = Ring(NODES[:3], 8)
    token = key_token(b"k")
    walk = list(ring.walk(token))
    assert plan_writes(ring, token, 3, {walk[2]}) == [Target(walk[2])]
    assert plan_writes(ring, token, 3, set()) == []
    small = plan_writes(ring, token, 2, {walk[1], walk[2]})
    assert small == [Target(walk[1]), Target(walk[2], hint_for=walk[0])]


@settings(max_examples=200, deadline=None)
@given(st.lists(tokens, min_size=1, max_size=30), st.integers(1, 4),
       st.sets(st.sampled_from(NODES)), st.sampled_from(NODES))
def test_write_plans_cache_is_plan_writes_and_knows_the_primaries(toks, n, down, me) -> None:
    ring = Ring(NODES, 8)
    alive = frozenset(NODES) - down | {me}
    plans = WritePlans(ring, n, alive, me)
    ends = [0, RING_SIZE - 1, ring._tokens[0], ring._tokens[-1], ring._tokens[-1] + 1]
    bucket = (1 << 52) - 1                        # WritePlans indexes tokens by their top 12 bits
    ends += [t & ~bucket for t in ring._tokens[:5]] + [t | bucket for t in ring._tokens[:5]]
    for token in toks + ends + toks + ends:       # the second pass answers from the cache
        targets, plan_ring, plan_alive, primary, peers = plans.plan(token)
        assert list(targets) == plan_writes(ring, token, n, alive)
        assert plan_ring is ring and plan_alive is alive
        preference = ring.preference_list(token, n)
        assert primary == (me in preference)
        # peers: the other primaries, only when every primary is up and this node is one
        if primary and not set(preference) - alive:
            assert peers == tuple(node for node in preference if node != me)
        else:
            assert peers is None
