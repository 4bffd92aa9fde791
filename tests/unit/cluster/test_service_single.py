"""The Cluster facade as a cluster of one: the fast path, mutate, scan, flush, GC, restart."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from cluster import versioning
from cluster.merkle import segment_of
from cluster.replica import data_key, data_key_of, segment_of_data_key, token_of_data_key
from cluster.service import Cluster
from cluster.types import Outcome, Write, key_token
from resp_kv.reply import NOT_NOW
from resp_kv.config import ClusterConfig
from tests.helpers.fake_network import FakeClock, MemoryStore


def _incr(current, args, now_ms):
    value = int(current.value) + 1 if current is not None else 1
    return Outcome(value, Write(str(value).encode()))


def _del(current, args, now_ms):
    return Outcome(int(current is not None), Write(None) if current is not None else None)


MUTATORS = {"incr": _incr, "del": _del}


def _cluster(store=None, clock=None) -> Cluster:
    config = ClusterConfig(node_id="solo", seeds=(), peer_port=0)
    return Cluster(config, store or MemoryStore(), MUTATORS, clock or FakeClock())


def run(coro):
    return asyncio.run(coro)


def test_single_node_put_get_roundtrip_and_overwrite() -> None:
    async def scenario():
        cluster = _cluster()
        await cluster.start()
        await cluster.put(b"k", b"v1")
        await cluster.put(b"k", b"v2")
        siblings = await cluster.get(b"k")
        assert [s.value for s in siblings] == [b"v2"]
        assert cluster.info()["local_keys"] == 1
        assert await cluster.dbsize() == 1
        await cluster.stop()
    run(scenario())


@given(st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_data_key_of_equals_data_key_of_the_token(key: bytes) -> None:
    assert data_key_of(key) == data_key(key_token(key), key)


@given(st.integers(0, 2**64 - 1), st.binary(max_size=16))
@settings(max_examples=300, deadline=None)
def test_a_data_keys_segment_is_its_tokens(token: int, key: bytes) -> None:
    store_key = data_key(token, key)
    assert token_of_data_key(store_key) == token
    assert segment_of_data_key(store_key) == segment_of(token)


def test_single_node_value_now_answers_as_get_current() -> None:
    async def scenario():
        clock = FakeClock()
        cluster = _cluster(clock=clock)
        await cluster.start()
        await cluster.put(b"plain", b"v")
        await cluster.put(b"gone", b"v")
        await cluster.put(b"gone", None)
        await cluster.put(b"ttl", b"t", expire_at_ms=clock.wall_ms() + 1000)
        for key in (b"plain", b"gone", b"ttl", b"never"):
            current = await cluster.get_current(key, clock.wall_ms())
            assert cluster.value_now(key) == (current.value if current else None), key
        await clock.advance(2.0)
        assert cluster.value_now(b"ttl") is None and cluster.value_now(b"plain") == b"v"
        cluster.solo = False                                # a cluster reads through R replicas
        assert cluster.value_now(b"plain") is NOT_NOW
        await cluster.stop()
    run(scenario())


def test_single_node_stale_context_makes_siblings_and_join_resolves() -> None:
    async def scenario():
        cluster = _cluster()
        await cluster.start()
        await cluster.put(b"k", b"a")
        await cluster.put(b"k", b"b", context={})
        siblings = await cluster.get(b"k")
        assert sorted(s.value for s in siblings) == [b"a", b"b"]
        await cluster.put(b"k", b"c", context=versioning.join_context(siblings))
        assert [s.value for s in await cluster.get(b"k")] == [b"c"]
    run(scenario())


def test_single_node_mutate_and_delete_counts_keys() -> None:
    async def scenario():
        cluster = _cluster()
        await cluster.start()
        assert await cluster.mutate(b"n", "incr", []) == 1
        assert await cluster.mutate(b"n", "incr", []) == 2
        assert cluster.info()["local_keys"] == 1
        assert await cluster.mutate(b"n", "del", []) == 1
        assert await cluster.mutate(b"n", "del", []) == 0
        assert cluster.info()["local_keys"] == 0
        assert versioning.winner(await cluster.get(b"n"), 0) is None
    run(scenario())


def test_single_node_scan_pages_cover_every_key_once() -> None:
    async def scenario():
        cluster = _cluster()
        await cluster.start()
        keys = {f"key:{i}".encode() for i in range(250)}
        await cluster.put_many([(k, b"x") for k in keys])
        await cluster.mutate(b"key:7", "del", [])
        seen, cursor = [], 0
        while True:
            cursor, page = await cluster.scan(cursor, 10)
            seen += page
            if cursor == 0:
                break
        assert sorted(seen) == sorted(keys - {b"key:7"})
    run(scenario())


def test_single_node_incarnation_persists_and_fresh_dir_gets_a_new_one() -> None:
    store = MemoryStore()
    first, again, other = _cluster(store), _cluster(store), _cluster(MemoryStore())
    assert first.actor == again.actor
    assert first.actor != other.actor


def test_compaction_filter_drops_dead_records_only_single_node() -> None:
    async def scenario():
        store = MemoryStore()
        cluster = _cluster(store)
        await cluster.start()
        await cluster.put(b"gone", b"v")
        await cluster.mutate(b"gone", "del", [])
        await cluster.put(b"kept", b"v")
        filtered = {k: cluster.compaction_filter(k, v, 0) for k, v in store.data.items()}
        assert sum(filtered.values()) == 1
        assert [k for k, drop in filtered.items() if drop][0].endswith(b"gone")
        cluster.antientropy = None     # with peers, GC is otherwise gated by anti-entropy
        cluster.solo = False
        assert not any(cluster.compaction_filter(k, v, 0) for k, v in store.data.items())
    run(scenario())


def test_info_fields_in_design_order() -> None:
    cluster = _cluster()
    assert list(cluster.info()) == [
        "node_id", "cluster_nodes", "cluster_nodes_up", "replicas", "read_quorum",
        "write_quorum", "vnodes", "hints_pending", "hints_delivered", "hints_dropped",
        "read_repairs", "conflicts_detected", "repair_runs", "repair_keys_sent",
        "repair_keys_received", "repair_bytes_sent", "repair_bytes_received",
        "local_keys", "local_expires"]
    assert cluster.info()["replicas"] == 1


def test_debug_localget_and_localvclock() -> None:
    async def scenario():
        cluster = _cluster()
        await cluster.start()
        await cluster.put(b"k", b"v")
        assert await cluster.debug([b"LOCALGET", b"k"]) == b"v"
        assert await cluster.debug([b"LOCALGET", b"nope"]) is None
        context, siblings = await cluster.debug([b"LOCALVCLOCK", b"k"])
        assert context == f"{cluster.actor}:1".encode() and siblings[0][0] == b"v"
    run(scenario())


def test_dbsize_and_info_do_not_count_expired_keys() -> None:
    async def scenario():
        clock = FakeClock()
        store = MemoryStore()
        cluster = _cluster(store, clock)
        await cluster.start()
        now = clock.wall_ms()
        await cluster.put(b"short", b"v", now + 50)
        await cluster.put(b"long", b"v", now + 10_000)
        await cluster.put(b"forever", b"v")
        await cluster.put(b"renewed", b"v", now + 50)
        await cluster.put(b"renewed", b"v")                # SET without TTL clears it
        assert await cluster.dbsize() == 4 and cluster.info()["local_expires"] == 2
        await clock.advance(0.1)
        assert await cluster.dbsize() == 3
        assert (cluster.info()["local_keys"], cluster.info()["local_expires"]) == (3, 1)
        restarted = _cluster(store, clock)
        await restarted.start()
        assert await restarted.dbsize() == 3
    run(scenario())
