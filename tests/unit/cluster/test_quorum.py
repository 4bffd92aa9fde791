"""Quorum bookkeeping (cluster/quorum.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.quorum import ReadQuorum, WriteQuorum
from cluster.types import Sibling


def test_write_quorum_succeeds_at_w_acks() -> None:
    q = WriteQuorum(3, 2)
    q.record("a")
    assert not q.done and not q.succeeded and q.outstanding == 2
    q.record("b", None)
    assert q.done and q.succeeded and q.acks == {"a", "b"}


def test_write_quorum_fails_when_w_unreachable() -> None:
    q = WriteQuorum(3, 2)
    q.record("a", "timeout")
    assert not q.done
    q.record("b", ConnectionError("refused"))
    assert q.done and not q.succeeded
    assert set(q.failures) == {"a", "b"}


def test_write_quorum_first_result_per_node_counts() -> None:
    q = WriteQuorum(3, 2)
    q.record("a")
    q.record("a")
    q.record("a", "late error")
    assert q.acks == {"a"} and not q.failures and not q.done


def test_write_quorum_with_fewer_targets_than_w_is_done_and_failed() -> None:
    q = WriteQuorum(1, 2)
    assert q.done and not q.succeeded
    assert WriteQuorum(0, 1).done


@pytest.mark.parametrize("n, w", [(3, 0), (-1, 1)])
def test_quorum_rejects_bad_sizes(n: int, w: int) -> None:
    with pytest.raises(ValueError):
        WriteQuorum(n, w)
    with pytest.raises(ValueError):
        ReadQuorum(n, w)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5).flatmap(lambda n: st.tuples(
    st.just(n), st.integers(1, n), st.lists(st.booleans(), min_size=n, max_size=n))))
def test_write_quorum_outcome_known_exactly_when_decided(case) -> None:
    n, w, oks = case
    q = WriteQuorum(n, w)
    for i, ok in enumerate(oks):
        q.record(f"n{i}", None if ok else "err")
        acks, fails = sum(oks[:i + 1]), i + 1 - sum(oks[:i + 1])
        assert q.succeeded == (acks >= w)
        assert q.done == (acks >= w or fails > n - w)
    assert q.done


def _s(actor: str, counter: int, ctx: dict | None = None) -> Sibling:
    return Sibling((actor, counter), ctx or {}, b"%s%d" % (actor.encode(), counter), counter)


def test_read_quorum_merges_and_finds_stale_replicas() -> None:
    old = _s("a", 1)
    new = _s("a", 2, {"a": 1})
    concurrent = _s("b", 1)
    q = ReadQuorum(3, 2)
    q.record("n1", [old])
    assert not q.done
    q.record("n2", [new, concurrent])
    assert q.done and q.succeeded
    q.record("n3", [])                          # a late reply still counts for repair
    merged = q.merged()
    assert sorted(s.dot for s in merged) == [("a", 2), ("b", 1)]
    assert q.stale_nodes(merged) == ["n1", "n3"]
    assert q.acks == {"n1", "n2", "n3"}


def test_read_quorum_failures() -> None:
    q = ReadQuorum(3, 2)
    q.record("n1", TimeoutError())
    q.record("n2", "connection refused")
    assert q.done and not q.succeeded
    assert q.merged() == [] and q.stale_nodes([]) == []


def test_read_quorum_not_found_everywhere_is_a_success() -> None:
    q = ReadQuorum(2, 2)
    q.record("n1", [])
    q.record("n2", iter(()))
    assert q.succeeded and q.merged() == [] and q.stale_nodes([]) == []
