"""cluster/encoded.py: every answer read from the bytes equals the decoding path's answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster import encoded as e
from cluster import versioning as v
from cluster.types import Sibling
from tests.unit.cluster.test_versioning import ACTORS, siblings_st


@given(siblings_st, st.integers(0, 2**64 - 1))
@settings(max_examples=300, deadline=None)
def test_winner_of_encoded_equals_winner_of_decoded(siblings, now_ms) -> None:
    data = v.encode_siblings(siblings)
    assert e.winner_of_encoded(data, now_ms) == v.winner(v.decode_siblings(data), now_ms)


@given(siblings_st, st.integers(0, 2**64 - 1))
@settings(max_examples=300, deadline=None)
def test_value_of_encoded_equals_the_winners_value(siblings, now_ms) -> None:
    data = v.encode_siblings(siblings)
    current = v.winner(v.decode_siblings(data), now_ms)
    expected = current.value if current is not None else None
    assert e.value_of_encoded(data, lambda: now_ms) == expected


@given(siblings_st, st.integers(0, 2**64 - 1))
@settings(max_examples=300, deadline=None)
def test_is_dead_encoded_equals_is_dead_of_decoded(siblings, now_ms) -> None:
    data = v.encode_siblings(siblings)
    assert e.is_dead_encoded(data, now_ms) == v.is_dead(v.decode_siblings(data), now_ms)
    one_live_forever = (len(siblings) == 1 and siblings[0].value is not None
                        and not siblings[0].expire_at_ms)
    assert e.lives_on_encoded(data) == one_live_forever
    assert e.is_one_sibling_encoded(data) == (len(siblings) == 1)
    if e.lives_on_encoded(data):
        assert not e.is_dead_encoded(data, 2**64 - 1)


@given(siblings_st, siblings_st)
@settings(max_examples=500, deadline=None)
def test_replaces_encoded_only_when_the_merge_is_the_incoming_set(old, new) -> None:
    old_raw, new_raw = v.encode_siblings(old), v.encode_siblings(new)
    fast = e.replaces_encoded(old_raw if old else None, new_raw)
    merged = v.sync(v.decode_siblings(old_raw), v.decode_siblings(new_raw))
    if fast is not None:
        assert v.encode_siblings(merged) == new_raw
        assert len(old) <= 1 and len(new) == 1
        flags = (lambda s: 0 if s.value is not None else 1)
        assert fast == ((flags(old[0]), old[0].expire_at_ms) if old else (-1, 0)) + (
            flags(new[0]), new[0].expire_at_ms)


def test_replaces_encoded_the_replica_write_of_a_plain_set() -> None:
    stored = v.encode_siblings([Sibling(("n1@a", 4), {}, b"old", 10)])
    over = v.encode_siblings([Sibling(("n2@b", 1), {"n1@a": 4}, b"new", 11)])
    assert e.replaces_encoded(stored, over) == (0, 0, 0, 0)
    concurrent = v.encode_siblings([Sibling(("n2@b", 1), {"n1@a": 3}, b"new", 11)])
    assert e.replaces_encoded(stored, concurrent) is None
    assert e.replaces_encoded(stored, stored) is None
    assert e.replaces_encoded(stored, over[:-1]) is None                 # malformed: decode
    assert e.replaces_encoded(None, over) == (-1, 0, 0, 0)


one_actor_sibling = st.builds(
    lambda counter, seen, tombstone, ts, exp: Sibling(
        ("n1@a", counter), {"n1@a": seen} if seen >= 0 else {}, None if tombstone else b"value",
        ts, exp),
    st.integers(1, 6), st.integers(-1, 6), st.booleans(), st.integers(0, 9), st.integers(0, 9))


@given(one_actor_sibling, one_actor_sibling, st.integers(0, 200), st.integers(0, 255))
@settings(max_examples=500, deadline=None)
def test_replaces_encoded_one_actor_shortcut_equals_the_general_path(old, new, at, byte) -> None:
    """The shape of a replica write of a key one node coordinates (a stored set with or without
    a context: a key's second write is over its first, which has none): the shortcut decides
    as the entry-by-entry path does, also when the incoming bytes are damaged anywhere."""
    old_raw, new_raw = v.encode_siblings([old]), v.encode_siblings([new])
    assert e.replaces_encoded(old_raw, new_raw) == e._replaces_general(old_raw, new_raw)
    damaged = bytearray(new_raw)
    damaged[at % len(damaged)] = byte
    damaged = bytes(damaged)
    assert e.replaces_encoded(old_raw, damaged) == e._replaces_general(old_raw, damaged)
    assert e.replaces_encoded(old_raw, damaged[:at % len(damaged)]) == e._replaces_general(
        old_raw, damaged[:at % len(damaged)])


def test_replaces_encoded_one_actor_shortcut_reads_only_actor_zero() -> None:
    """The shortcut never decodes the actor table: it equals the stored set's byte for byte
    and every index is 0, so a table of several actors decides as the general path does."""
    old = v.encode_siblings([Sibling(("n1@a", 1), {"n1@a": 0}, b"old", 1)])
    new = v.encode_siblings([Sibling(("n1@a", 2), {"n1@a": 1}, b"new", 2)])
    assert e.replaces_encoded(old, new) == (0, 0, 0, 0)
    for table in (b"n1,a", b"a,n1"):
        old_t, new_t = old.replace(b"n1@a", table), new.replace(b"n1@a", table)
        assert e.replaces_encoded(old_t, new_t) == e._replaces_general(old_t, new_t)


# Counters and times about the bounds of a u32, of a compiled int's tagged form (2**62) and of
# a u64: the shortcuts assemble each u64 from its bytes.
wide = st.builds(lambda base, step: base + step,
                 st.sampled_from([1, 2**32 - 4, 2**62 - 4, 2**64 - 8]), st.integers(0, 7))
one_actor_wide_sibling = st.builds(
    lambda counter, seen, tombstone, ts, exp: Sibling(
        ("n1@a", counter), {"n1@a": seen} if seen else {}, None if tombstone else b"value",
        ts, exp),
    wide, st.one_of(st.just(0), wide), st.booleans(), wide, st.one_of(st.just(0), wide))


@given(one_actor_wide_sibling, one_actor_wide_sibling)
@settings(max_examples=500, deadline=None)
def test_replaces_encoded_shortcuts_read_whole_u64s(old, new) -> None:
    """Past 32 bits and past 2**62, both shortcuts compare and return every u64 field (dot
    counters, context counters, expiries) as the general path does, and the one-actor
    shortcut answers exactly when the merge is the incoming set."""
    old_raw, new_raw = v.encode_siblings([old]), v.encode_siblings([new])
    fast = e.replaces_encoded(old_raw, new_raw)
    assert fast == e._replaces_general(old_raw, new_raw)
    merged = v.encode_siblings(v.sync(v.decode_siblings(old_raw), v.decode_siblings(new_raw)))
    assert (fast is not None) == (merged == new_raw and old.dot != new.dot)
    flags = (lambda s: 0 if s.value is not None else 1)
    if fast is not None:
        assert fast == (flags(old), old.expire_at_ms, flags(new), new.expire_at_ms)
    first = v.encode_siblings([Sibling(new.dot, {}, new.value, new.timestamp_ms,
                                       new.expire_at_ms)])
    v.decode_siblings(first)                        # its actor table is in the decode cache
    assert e.replaces_encoded(None, first) == (-1, 0, flags(new), new.expire_at_ms)


first_write = st.builds(
    lambda actor, counter, tombstone, ts, exp: Sibling(
        (actor, counter), {}, None if tombstone else b"value", ts, exp),
    st.sampled_from(ACTORS), st.integers(1, 6), st.booleans(), st.integers(0, 9),
    st.integers(0, 9))


@given(first_write, st.integers(0, 200), st.integers(0, 255))
@settings(max_examples=500, deadline=None)
def test_replaces_encoded_first_write_shortcut_equals_the_general_path(new, at, byte) -> None:
    """A key's first replica write (no stored set, an empty context): the shortcut decides as
    `_one_sibling` does, also when the incoming bytes are damaged anywhere."""
    new_raw = v.encode_siblings([new])
    v.decode_siblings(new_raw)                      # its actor table is in the decode cache
    assert e.replaces_encoded(None, new_raw) == e._replaces_general(None, new_raw) is not None
    damaged = bytearray(new_raw)
    damaged[at % len(damaged)] = byte
    damaged = bytes(damaged)
    assert e.replaces_encoded(None, damaged) == e._replaces_general(None, damaged)
    cut = damaged[:at % len(damaged)]
    assert e.replaces_encoded(None, cut) == e._replaces_general(None, cut)


def test_winner_of_encoded_rejects_a_truncated_set() -> None:
    data = v.encode_siblings([Sibling(("a@1", 1), {"b@2": 4}, b"value", 5, 0)])
    with pytest.raises(ValueError):
        e.winner_of_encoded(data[:-3], 0)
    with pytest.raises(ValueError):
        e.value_of_encoded(data[:-3], lambda: 0)


@given(siblings_st, st.sampled_from(ACTORS), st.one_of(st.none(), st.binary(max_size=40)),
       st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
@settings(max_examples=500, deadline=None)
def test_overwrite_encoded_equals_a_write_over_the_joined_context(
        stored, actor, value, timestamp_ms, expire_at_ms) -> None:
    raw = v.encode_siblings(stored) if stored else None
    local = v.decode_siblings(raw) if raw else []
    _, survivors = v.write(local, v.join_context(local), actor, value, timestamp_ms,
                           expire_at_ms)
    try:
        expected = v.encode_siblings(survivors)
    except ValueError:                                      # a counter past u64: both refuse
        if len(stored) <= 1:
            with pytest.raises(ValueError):
                e.overwrite_encoded(raw, actor, value, timestamp_ms, expire_at_ms)
        return
    fast = e.overwrite_encoded(raw, actor, value, timestamp_ms, expire_at_ms)
    if fast is None:
        assert len(stored) > 1                              # several siblings: the slow path
        return
    old = local[0] if local else None
    assert fast == (expected,
                    -1 if old is None else (0 if old.value is not None else 1),
                    0 if old is None else old.expire_at_ms)


@pytest.mark.parametrize("actor", ["", "a,b"])
def test_overwrite_encoded_refuses_a_new_key_by_a_bad_actor_like_encode(actor: str) -> None:
    """A new key's fast path (`_fresh_own`) defers a name that is not an actor to the general
    encoder, which refuses it."""
    with pytest.raises(ValueError):
        v.encode_siblings([Sibling((actor, 1), {}, b"v", 1)])
    with pytest.raises(ValueError):
        e.overwrite_encoded(None, actor, b"v", 1)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ACTORS), st.lists(st.one_of(st.none(), st.binary(max_size=20)),
                                         min_size=2, max_size=6),
       st.integers(0, 3), st.integers(0, 2**64 - 1))
def test_writes_in_one_millisecond_share_a_timestamp_and_stay_exact(
        actor, values, ms_step, start_ms) -> None:
    """Overwrites whose timestamps repeat or move (the cached 8 bytes of the last one) encode
    what the general encoder does for each."""
    raw, now_ms = None, start_ms
    for value in values:
        now_ms = min(now_ms + ms_step, 2**64 - 1)
        local = v.decode_siblings(raw) if raw else []
        _, survivors = v.write(local, v.join_context(local), actor, value, now_ms, 0)
        raw = e.overwrite_encoded(raw, actor, value, now_ms)[0]
        assert raw == v.encode_siblings(survivors)


def test_overwrite_encoded_rejects_a_malformed_set_like_decode() -> None:
    raw = v.encode_siblings([Sibling(("n1@a", 1), {"n2@b": 3}, b"v", 1)])
    for bad in (raw[:-2], raw[:20], raw + b"\x00"):
        with pytest.raises(ValueError):
            v.decode_siblings(bad)
        with pytest.raises(ValueError):
            e.overwrite_encoded(bad, "n1@a", b"w", 2)
