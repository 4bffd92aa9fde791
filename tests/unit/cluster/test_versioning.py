"""Laws of dotted version vectors (cluster/versioning.py), checked over random histories."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster import versioning as v
from cluster.types import Current, Sibling

ACTORS = ["n1@a", "n2@b", "n3@c", "10.0.0.1:6379@zz"]
FAST = settings(max_examples=40, deadline=None)


def _run_history(ops: list[tuple], replicas: int = 3) -> list[list[Sibling]]:
    """Replay writes (at a replica, over its join or a stale context) and syncs; return states."""
    states: list[list[Sibling]] = [[] for _ in range(replicas)]
    seen_contexts: list[dict] = [{}]
    ts = 0
    for op in ops:
        ts += 1
        if op[0] == "write":
            _, at, actor_i, stale_i, tomb = op
            local = states[at]
            context = (seen_contexts[stale_i % len(seen_contexts)] if stale_i is not None
                       else v.join_context(local))
            _, states[at] = v.write(local, context, ACTORS[actor_i], None if tomb else b"x%d" % ts,
                                    ts)
            seen_contexts.append(v.join_context(local))
        else:
            _, i, j = op
            merged = v.sync(states[i], states[j])
            states[i], states[j] = merged, list(merged)
    return states


# A coordinator writes with its own actor at the replica it coordinates on (the dot-uniqueness
# invariant of DVVs): actor_i is tied to the replica below.
_write = st.tuples(st.just("write"), st.integers(0, 2), st.none(),
                   st.one_of(st.none(), st.integers(0, 50)), st.booleans()).map(
    lambda t: (t[0], t[1], t[1], t[3], t[4]))
_sync = st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2))
histories = st.lists(st.one_of(_write, _sync), max_size=25).map(_run_history)


def _canon(siblings: list[Sibling]) -> list[Sibling]:
    return v.ordered(siblings)


@FAST
@given(histories)
def test_sync_commutative(states: list[list[Sibling]]) -> None:
    a, b, _ = states
    assert _canon(v.sync(a, b)) == _canon(v.sync(b, a))


@FAST
@given(histories)
def test_sync_associative(states: list[list[Sibling]]) -> None:
    a, b, c = states
    assert _canon(v.sync(v.sync(a, b), c)) == _canon(v.sync(a, v.sync(b, c)))


@FAST
@given(histories)
def test_sync_idempotent(states: list[list[Sibling]]) -> None:
    a, b, _ = states
    assert _canon(v.sync(a, a)) == _canon(a)
    ab = v.sync(a, b)
    assert _canon(v.sync(ab, ab)) == _canon(ab)
    assert _canon(v.sync(ab, a)) == _canon(ab)


@FAST
@given(histories, st.data())
def test_write_drops_exactly_what_context_covers(states, data) -> None:
    local = states[0]
    joined = v.join_context(local)
    context = {a: data.draw(st.integers(0, c), label=a) for a, c in joined.items()}
    new, survivors = v.write(local, context, "n9@q", b"new", 99)
    assert survivors[-1] is new
    assert survivors[:-1] == [s for s in local if not v.covers(context, s)]
    assert new.dot == ("n9@q", 1)
    assert all(c > 0 for c in new.context.values())


@FAST
@given(histories, st.integers(0, 2))
def test_stale_context_write_never_loses_a_version(states, other) -> None:
    local = states[0]
    stale = v.join_context(states[other])            # what some client read earlier, elsewhere
    new, survivors = v.write(local, stale, ACTORS[0], b"w", 1000)
    for s in local:
        assert s in survivors or v.covers(stale, s)
    # and at every replica the new version supersedes only what its writer had seen
    for state in states:
        merged = v.sync(state, [new])
        assert new in merged
        for s in state:
            if s not in merged:
                assert v.covers(stale, s) or any(
                    v.covers(o.context, s) for o in state if o is not s)


def test_write_counter_is_past_context_and_local_dots() -> None:
    a = Sibling(("n1@a", 7), {}, b"a", 1)
    new, survivors = v.write([a], {"n1@a": 3}, "n1@a", b"b", 2)
    assert new.dot == ("n1@a", 8)
    assert survivors == [a, new]                     # {n1@a:3} does not cover dot 7
    new2, _ = v.write([a], {"n1@a": 9}, "n1@a", b"b", 2)
    assert new2.dot == ("n1@a", 10)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.booleans()), min_size=1, max_size=60))
def test_interleaved_read_modify_write_keeps_siblings_bounded(steps) -> None:
    """Two coordinators each read their local join and write over it; replication lags."""
    actors = ["n1@a", "n2@b"]
    states: list[list[Sibling]] = [[], []]
    for ts, (at, replicate) in enumerate(steps):
        local = states[at]
        new, states[at] = v.write(local, v.join_context(local), actors[at], b"%d" % ts, ts)
        if replicate:
            other = 1 - at
            states[other] = v.sync(states[other], [new])
        assert len(states[0]) <= 2 and len(states[1]) <= 2
    merged = v.sync(*states)
    assert 1 <= len(merged) <= 2
    _, after = v.write(merged, v.join_context(merged), actors[0], b"final", 10**6)
    assert len(after) == 1                           # reading the join and writing resolves


siblings_st = st.lists(st.builds(
    Sibling,
    dot=st.tuples(st.sampled_from(ACTORS + ["ünï@1"]), st.integers(1, 2**64 - 1)),
    context=st.dictionaries(st.sampled_from(ACTORS + ["ünï@1"]), st.integers(1, 2**64 - 1),
                            max_size=4),
    value=st.one_of(st.none(), st.binary(max_size=40)),
    timestamp_ms=st.integers(0, 2**64 - 1),
    expire_at_ms=st.integers(0, 2**64 - 1),
), max_size=5, unique_by=lambda s: s.dot)


@settings(max_examples=60, deadline=None)
@given(siblings_st)
def test_encode_decode_round_trip(siblings) -> None:
    data = v.encode_siblings(siblings)
    assert _canon(v.decode_siblings(data)) == _canon(siblings)
    assert v.encode_siblings(list(reversed(siblings))) == data       # canonical
    assert v.digest(list(reversed(siblings))) == v.digest(siblings)
    assert len(v.digest(siblings)) == 16


@settings(max_examples=40, deadline=None)
@given(siblings_st, st.data())
def test_decode_rejects_truncation_and_garbage(siblings, data) -> None:
    encoded = v.encode_siblings(siblings)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(ValueError):
        v.decode_siblings(encoded[:cut])
    with pytest.raises(ValueError):
        v.decode_siblings(encoded + b"\x00")


def test_decode_rejects_unknown_version() -> None:
    data = bytearray(v.encode_siblings([Sibling(("n1@a", 1), {}, b"x", 1)]))
    data[0] = 2
    with pytest.raises(ValueError):
        v.decode_siblings(bytes(data))


@pytest.mark.parametrize("actor", ["", "a,b"])
def test_encode_rejects_unencodable_actor(actor: str) -> None:
    with pytest.raises(ValueError):
        v.encode_siblings([Sibling((actor, 1), {}, b"x", 1)])
    with pytest.raises(ValueError):
        v.encode_siblings([Sibling(("ok", 1), {actor: 1}, b"x", 1), Sibling(("b", 1), {}, b"", 1)])


def test_digest_differs_for_different_sets() -> None:
    a = Sibling(("n1@a", 1), {}, b"x", 1)
    b = Sibling(("n1@a", 1), {}, b"y", 1)
    assert v.digest([a]) != v.digest([b]) != v.digest([])


@FAST
@given(siblings_st, st.randoms(use_true_random=False), st.integers(0, 2**64))
def test_winner_deterministic_regardless_of_order(siblings, rnd, now_ms) -> None:
    shuffled = list(siblings)
    rnd.shuffle(shuffled)
    assert v.winner(shuffled, now_ms) == v.winner(siblings, now_ms)


def test_winner_rules() -> None:
    old = Sibling(("n2@b", 1), {}, b"old", 5)
    new = Sibling(("n1@a", 1), {}, b"new", 6, expire_at_ms=100)
    tie = Sibling(("n3@c", 1), {}, b"tie", 6)
    assert v.winner([old, new], 50) == Current(b"new", 100)
    assert v.winner([old, new], 100) is None                        # expired at exactly now
    assert v.winner([old, new, tie], 50) == Current(b"tie", 0)      # same ts: higher actor
    assert v.winner([old, Sibling(("n1@a", 2), {}, None, 9)], 0) is None   # tombstone wins
    assert v.winner([], 0) is None


def test_is_dead() -> None:
    assert v.is_dead([], 0)
    assert v.is_dead([Sibling(("a", 1), {}, None, 1), Sibling(("b", 1), {}, b"x", 1, 10)], 10)
    assert not v.is_dead([Sibling(("b", 1), {}, b"x", 1, 10)], 9)
    assert not v.is_dead([Sibling(("b", 1), {}, b"x", 1, 0)], 10**15)


def test_format_clock_and_context() -> None:
    s = Sibling(("n2@b", 4), {"n2@b": 3, "n1@a": 2, "10.0.0.1:6379@zz": 1}, b"x", 1)
    assert v.format_clock(s) == "10.0.0.1:6379@zz:1,n1@a:2,n2@b:4"
    assert v.format_context(v.join_context([s])) == v.format_clock(s)
    assert v.format_context({}) == ""
    assert v.parse_context(v.format_clock(s).encode()) == {
        "10.0.0.1:6379@zz": 1, "n1@a": 2, "n2@b": 4}
    assert v.parse_context(b"") == {} == v.parse_context("")


@pytest.mark.parametrize("bad", [b",", b"a", b"a:", b":3", b"a:0", b"a:-1", b"a:+1", b"a:1,",
                                 b"a:1,a:2", b"a:x", b"a:1 ", b" a:1", b"a:\xff", b"\xff:1",
                                 b"a:99999999999999999999999"])
def test_parse_context_rejects_malformed(bad: bytes) -> None:
    with pytest.raises(ValueError):
        v.parse_context(bad)


@FAST
@given(st.dictionaries(st.sampled_from(ACTORS), st.integers(1, 2**64 - 1)))
def test_context_text_round_trip(ctx) -> None:
    assert v.parse_context(v.format_context(ctx)) == ctx


def test_ordered_is_by_dot() -> None:
    rnd = random.Random(1)
    sibs = [Sibling((a, c), {}, b"", 0) for a in ACTORS for c in (1, 2)]
    shuffled = list(sibs)
    rnd.shuffle(shuffled)
    assert v.ordered(shuffled) == sorted(sibs, key=lambda s: s.dot)


def test_stale_write_does_not_remint_a_superseded_dot() -> None:
    """(n1,3) was superseded by a sibling whose context saw it; a write over an empty context
    at n1 must mint (n1,4), not (n1,1), which that context would silently discard."""
    b = Sibling(("n2@b", 1), {"n1@a": 3}, b"b", 5)
    new, survivors = v.write([b], {}, "n1@a", b"late", 6)
    assert new.dot == ("n1@a", 4)
    assert v.ordered(v.sync([b], [new])) == v.ordered([b, new])


def test_decode_accepts_memoryview_and_bytearray() -> None:
    data = v.encode_siblings([Sibling(("n1@a", 1), {"n2@b": 3}, b"x", 1)])
    assert v.decode_siblings(memoryview(data)) == v.decode_siblings(bytearray(data)) == \
        v.decode_siblings(data)


@FAST
@given(histories)
def test_sync_one_and_one_fast_path_matches_general_path(states) -> None:
    for x in (s for state in states for s in state):
        for y in (s for state in states for s in state):
            assert v.sync([x], [y]) == v.sync(iter([x]), iter([y]))
    covered = Sibling(("n1@a", 1), {}, b"x", 1)
    assert v.sync([covered], [Sibling(("n2@b", 1), {"n1@a": 1}, b"y", 2)]) == \
        [Sibling(("n2@b", 1), {"n1@a": 1}, b"y", 2)]
