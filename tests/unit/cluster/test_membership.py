"""Membership merge and views (cluster/membership.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.failure import PhiAccrualDetector
from cluster.membership import DOWN, REMOVED, UP, Membership, NodeState

SELF = NodeState("self", "127.0.0.1", 6379, 16379, incarnation=5)


def _state(node: str, inc: int, hb: int, status: str = UP) -> NodeState:
    return NodeState(node, "10.0.0.%s" % node[-1], 7000, 17000, inc, hb, status)


states_st = st.builds(_state, st.sampled_from(["n1", "n2", "n3"]), st.integers(1, 3),
                      st.integers(0, 5), st.sampled_from([UP, UP, REMOVED]))
messages_st = st.lists(st.lists(states_st, max_size=5), max_size=5)


def _view(messages: list[list[NodeState]]) -> list[NodeState]:
    m = Membership(SELF)
    for message in messages:
        m.merge(message)
    return m.states()


@settings(max_examples=60, deadline=None)
@given(messages_st, st.randoms(use_true_random=False))
def test_merge_is_order_independent(messages, rnd) -> None:
    shuffled = [list(msg) for msg in messages]
    rnd.shuffle(shuffled)
    for msg in shuffled:
        rnd.shuffle(msg)
    assert _view(shuffled) == _view(messages)


@settings(max_examples=40, deadline=None)
@given(messages_st)
def test_merge_is_idempotent(messages) -> None:
    m = Membership(SELF)
    for message in messages:
        m.merge(message)
    before = m.states()
    for message in messages:
        assert m.merge(message) == []
    assert m.merge(m.digest()) == []
    assert m.states() == before


@settings(max_examples=40, deadline=None)
@given(messages_st, messages_st)
def test_two_nodes_converge_by_exchanging_digests(a_msgs, b_msgs) -> None:
    a = Membership(NodeState("a", "h", 1, 2, 1))
    b = Membership(NodeState("b", "h", 1, 2, 1))
    for msg in a_msgs:
        a.merge(msg)
    for msg in b_msgs:
        b.merge(msg)
    b.merge(a.digest())
    a.merge(b.digest())
    assert a.states() == b.states()


def test_precedence_incarnation_then_removed_then_heartbeat() -> None:
    m = Membership(SELF)
    assert m.merge([_state("n1", 1, 3)]) == ["n1"]
    assert m.merge([_state("n1", 1, 2)]) == []                     # older heartbeat
    assert m.merge([_state("n1", 1, 4)]) == ["n1"]
    assert m.get("n1").heartbeat == 4
    assert m.merge([_state("n1", 1, 0, REMOVED)]) == ["n1"]        # removal beats heartbeat
    assert m.merge([_state("n1", 1, 99)]) == []                    # sticky for incarnation 1
    assert m.get("n1").removed and "n1" not in m.ring_nodes()
    assert m.merge([_state("n1", 2, 0)]) == ["n1"]                 # a new incarnation returns
    assert not m.get("n1").removed and "n1" in m.ring_nodes()


def test_remove_is_sticky_and_spreads() -> None:
    a, b = Membership(NodeState("a", "h", 1, 2, 1)), Membership(NodeState("b", "h", 1, 2, 1))
    for m in (a, b):
        m.merge([_state("n1", 7, 10)])
    assert a.remove("n1") and not a.remove("n1") and not a.remove("ghost")
    b.merge([_state("n1", 7, 11)])                                 # n1 still gossips itself
    b.merge(a.digest())
    a.merge(b.digest())
    assert b.get("n1").removed
    assert b.ring_nodes() == ["a", "b"] == a.ring_nodes()


def test_self_state_only_changes_by_tick_or_own_removal() -> None:
    m = Membership(SELF)
    assert m.tick() == 1 and m.tick() == 2
    assert m.merge([NodeState("self", "evil", 1, 1, 5, 0)]) == []
    assert m.self_state.host == "127.0.0.1"
    assert m.merge([NodeState("self", "x", 1, 1, 5, 40)]) == ["self"]   # echo from before a crash
    assert m.self_state.heartbeat == 41
    assert m.merge([NodeState("self", "x", 1, 1, 4, 0, REMOVED)]) == []  # an old incarnation
    assert m.merge([NodeState("self", "x", 1, 1, 5, 0, REMOVED)]) == ["self"]
    assert m.self_state.removed and m.ring_nodes() == []


def test_wire_round_trip_and_validation() -> None:
    state = NodeState("n1", "10.0.0.1", 6379, 16379, 1700000000000, 42, DOWN)
    wire = state.to_wire()
    assert wire == [b"n1", b"10.0.0.1", 6379, 16379, 1700000000000, 42, b"up"]
    assert all(isinstance(x, (bytes, int)) for x in wire)
    assert NodeState.from_wire(wire) == NodeState("n1", "10.0.0.1", 6379, 16379,
                                                  1700000000000, 42, UP)
    assert NodeState.from_wire([b"n1", b"h", b"1", b"2", b"3", b"4", b"removed"]).removed
    for bad in ([b"n1"], [b"n1", b"h", 1, 2, 3, 4, b"weird"], [b"n1", b"h", 1, 2, -3, 4, b"up"],
                [b"", b"h", 1, 2, 3, 4, b"up"], [b"n1", b"h", 1, 2, 3, 4, b"down"],
                [b"n1", b"h", None, 2, 3, 4, b"up"], [b"n1", b"h", True, 2, 3, 4, b"up"]):
        with pytest.raises(ValueError):
            NodeState.from_wire(bad)
    m = Membership(SELF)
    with pytest.raises(ValueError):
        m.merge([wire, [b"bad"]])
    assert m.get("n1") is None                                     # all or nothing
    assert m.merge([wire]) == ["n1"]


def test_down_is_local_live_nodes_and_ring() -> None:
    detector = PhiAccrualDetector()
    m = Membership(SELF)
    m.merge([_state("n1", 1, 1), _state("n2", 1, 1)])
    detector.heartbeat("n1", 0.0)
    detector.heartbeat("n2", 0.0)
    for t in range(1, 30):
        detector.heartbeat("n1", float(t))
    assert m.live_nodes(detector, 29.0) == {"self", "n1"}
    assert m.refresh(detector, 29.0) == ["n2"]
    assert m.get("n2").status == DOWN and m.refresh(detector, 29.0) == []
    assert m.ring_nodes() == ["n1", "n2", "self"]                  # down stays in the ring
    assert m.digest()[1][6] == b"up"                               # never gossiped as fact
    assert m.merge([_state("n2", 1, 2)]) == ["n2"]                 # news, but opinion stays
    assert m.get("n2").status == DOWN
    detector.heartbeat("n2", 29.5)
    assert m.refresh(detector, 29.6) == ["n2"] and m.get("n2").status == UP
    m.remove("n1")
    assert m.live_nodes(detector, 29.6) == {"self", "n2"}
    assert m.refresh(detector, 100.0) == ["n2"]                    # removed n1 is left alone
