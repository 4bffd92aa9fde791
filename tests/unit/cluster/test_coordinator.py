"""Coordinator logic over the in-process FakeNetwork: quorums, sloppy quorum and hints, read
repair, forwarding, per-key serialization of mutations, cluster-wide SCAN/DBSIZE/FLUSHALL."""

from __future__ import annotations

import asyncio

import pytest

from cluster import messages, versioning
from cluster.network import Network
from cluster.replica import data_key
from cluster.service import Cluster
from cluster.transport import PeerError
from cluster.types import Outcome, QuorumNotReached, Write, key_token
from resp_kv.config import ClusterConfig
from resp_kv.reply import SimpleString
from tests.helpers.fake_network import FakeClock, FakeNetwork, MemoryStore
from tests.helpers.wait import until


def _incr(current, args, now_ms):
    value = int(current.value) + 1 if current is not None else 1
    return Outcome(value, Write(str(value).encode()))


def _set_ok(current, args, now_ms):
    return Outcome(SimpleString("OK"), Write(args[0]))


MUTATORS = {"incr": _incr, "set": _set_ok}


def build(names, n=3, r=2, w=2):
    net, clock = FakeNetwork(), FakeClock()
    clusters = {}
    for name in names:
        config = ClusterConfig(node_id=name, replicas=n, read_quorum=r, write_quorum=w, vnodes=16)
        cluster = Cluster(config, MemoryStore(), MUTATORS, clock)
        cluster.network = Network(cluster, transport=net.transport_for(name), server=net.server(),
                                  gossip=False)
        net.add(name, cluster.network)
        clusters[name] = cluster
    for cluster in clusters.values():
        cluster.network.set_view(names, names)
    return net, clock, clusters


def prefs(cluster, key, n=3):
    return cluster.network.ring.preference_list(key_token(key), n)


def key_where(cluster, predicate, n=3):
    for i in range(10_000):
        key = b"key:%d" % i
        if predicate(prefs(cluster, key, n)):
            return key
    raise AssertionError("no such key")


async def settle():
    """Let every callback and task that is ready run (no timers: those are polled with until)."""
    for _ in range(50):
        await asyncio.sleep(0)


def local_value(cluster, key):
    winner = versioning.winner(cluster.replica.read(key, key_token(key)), 0)
    return None if winner is None else winner.value


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 10))


def test_put_reaches_every_replica_and_any_node_reads_it() -> None:
    async def scenario():
        net, _, nodes = build(["a", "b", "c"])
        assert not nodes["a"].solo
        await nodes["a"].put(b"k", b"v")
        await settle()
        assert all(local_value(c, b"k") == b"v" for c in nodes.values())
        for cluster in nodes.values():
            assert versioning.winner(await cluster.get(b"k"), 0).value == b"v"
    run(scenario())


def test_write_quorum_not_reached_when_coordinator_is_cut_off() -> None:
    async def scenario():
        net, _, nodes = build(["a", "b", "c"])
        net.partition("a", "b")
        net.partition("a", "c")
        with pytest.raises(QuorumNotReached) as error:
            await nodes["a"].put(b"k", b"v")
        assert (error.value.what, error.value.acked, error.value.needed) == ("write", 1, 2)
        with pytest.raises(QuorumNotReached):
            await nodes["a"].get(b"k")
    run(scenario())


def test_put_started_answers_once_after_w_acks_or_with_the_quorum_error() -> None:
    async def scenario():
        net, _, nodes = build(["a", "b", "c", "d"])
        key = key_where(nodes["a"], lambda p: p[0] == "a")
        results: list = []
        assert nodes["a"].put_started(key, b"v1", results.append) is True
        await until(lambda: results)
        await settle()                                   # the third ack must not answer again
        assert results == [None]
        assert all(local_value(nodes[n], key) == b"v1" for n in prefs(nodes["a"], key))
        elsewhere = key_where(nodes["a"], lambda p: "a" not in p)
        assert nodes["a"].put_started(elsewhere, b"x", results.append) is False   # forward: put()
        assert local_value(nodes["a"], elsewhere) is None and results == [None]
        for other in ("b", "c", "d"):
            net.partition("a", other)
        failed: list = []
        assert nodes["a"].put_started(key, b"v2", failed.append) is True
        await until(lambda: failed)
        await settle()
        assert len(failed) == 1 and isinstance(failed[0], QuorumNotReached)
        assert (failed[0].what, failed[0].acked, failed[0].needed) == ("write", 1, 2)
    run(scenario())


def test_get_started_answers_once_after_r_replies_or_with_the_quorum_error() -> None:
    async def scenario():
        net, _, nodes = build(["a", "b", "c", "d"])
        key = key_where(nodes["a"], lambda p: p[0] == "a")
        await nodes["b"].put(key, b"v1")
        await settle()
        results: list = []
        assert nodes["a"].get_started(key, lambda *answer: results.append(answer)) is True
        await until(lambda: results)
        await settle()                                   # the third reply must not answer again
        assert results == [(b"v1", None)]
        elsewhere = key_where(nodes["a"], lambda p: "a" not in p)
        assert nodes["a"].get_started(elsewhere, results.append) is False        # forward: get()
        assert len(results) == 1
        for other in ("b", "c", "d"):
            net.partition("a", other)
        failed: list = []
        assert nodes["a"].get_started(key, lambda *answer: failed.append(answer)) is True
        await until(lambda: failed)
        await settle()
        assert len(failed) == 1 and failed[0][0] is None
        error = failed[0][1]
        assert isinstance(error, QuorumNotReached) and (error.what, error.needed) == ("read", 2)
    run(scenario())


async def started_put(cluster, key, value):
    """The client SET path: `put_started`, awaited through its callback."""
    answers: list = []
    assert cluster.put_started(key, value, answers.append) is True
    await until(lambda: answers)
    await settle()                                # stragglers: no second answer
    assert len(answers) == 1
    if answers[0] is not None:
        raise answers[0]


@pytest.mark.parametrize("write", [Cluster.put, started_put])
def test_write_meets_quorum_with_one_replica_down_and_hints_it(write) -> None:
    async def scenario():
        net, _, nodes = build(["a", "b", "c"])
        net.drop("c")                             # c is silent: its send times out
        await write(nodes["a"], b"k", b"v")
        await until(lambda: nodes["a"].hints.pending == 1)   # the coordinator hinted the failed primary
        assert local_value(nodes["c"], b"k") is None
        net.heal()
        assert await nodes["a"].network.deliverer.deliver_once() == 1
        assert local_value(nodes["c"], b"k") == b"v"
        assert nodes["a"].hints.pending == 0 and nodes["a"].hints.delivered == 1
    run(scenario())


@pytest.mark.parametrize("write", [Cluster.put, started_put])
def test_sloppy_quorum_uses_a_fallback_that_stores_a_hint(write) -> None:
    async def scenario():
        names = ["a", "b", "c", "d"]
        net, _, nodes = build(names, n=3, r=2, w=3)
        key = key_where(nodes["a"], lambda p: p[0] == "a")
        down = prefs(nodes["a"], key)[2]
        spare = next(x for x in names if x not in prefs(nodes["a"], key))
        net.drop(down)
        await write(nodes["a"], key, b"v")        # W=3 met with the spare standing in
        await settle()
        assert nodes[spare].hints.pending == 1
        assert local_value(nodes[spare], key) is None      # a hint, not a replica copy
        net.heal()
        await nodes[spare].network.deliverer.deliver_once()
        assert local_value(nodes[down], key) == b"v"
    run(scenario())


def test_read_repair_fixes_a_stale_replica() -> None:
    async def scenario():
        net, _, nodes = build(["a", "b", "c"], r=3)
        await nodes["a"].put(b"k", b"v1")
        await settle()
        nodes["b"].store.data.clear()             # b lost the key
        assert versioning.winner(await nodes["a"].get(b"k"), 0).value == b"v1"
        await settle()
        assert local_value(nodes["b"], b"k") == b"v1"
        assert nodes["a"].stats["read_repairs"] == 1
    run(scenario())


async def started_get(cluster, key):
    """The client GET path: `get_started`, awaited through its callback."""
    answers: list = []
    assert cluster.get_started(key, lambda *answer: answers.append(answer)) is True
    await until(lambda: answers)
    await settle()                                # stragglers: the repair, no second answer
    assert len(answers) == 1
    return answers[0]


@pytest.mark.parametrize("stale", ["b", "c", "a"])
def test_a_started_get_answers_the_merge_and_repairs_whichever_copy_is_stale(stale) -> None:
    """R=2 of 3: the stale copy may be a peer that answers first or last (after the client
    has its answer, from the two byte-identical copies) or the coordinator's own."""
    async def scenario():
        net, _, nodes = build(["a", "b", "c"])
        await nodes["a"].put(b"k", b"v1")
        await settle()
        nodes[stale].store.data.clear()           # that replica lost the key
        assert await started_get(nodes["a"], b"k") == (b"v1", None)
        assert local_value(nodes[stale], b"k") == b"v1"
        assert nodes["a"].stats["read_repairs"] == 1
        assert await started_get(nodes["a"], b"k") == (b"v1", None)    # in sync: no repair
        assert nodes["a"].stats["read_repairs"] == 1
    run(scenario())


def test_a_started_get_with_one_peer_cut_off_answers_from_the_other() -> None:
    async def scenario():
        net, _, nodes = build(["a", "b", "c"])
        await nodes["a"].put(b"k", b"v1")
        await nodes["a"].put(b"gone", b"x")
        await nodes["a"].put(b"gone", None)       # a tombstone reads as missing
        await settle()
        net.partition("a", "b")
        assert await started_get(nodes["a"], b"k") == (b"v1", None)
        assert await started_get(nodes["a"], b"gone") == (None, None)
        assert await started_get(nodes["a"], b"never") == (None, None)
        assert nodes["a"].stats["read_repairs"] == 0
    run(scenario())


def test_a_started_get_asks_alone_for_a_value_too_big_for_a_batched_answer(monkeypatch) -> None:
    monkeypatch.setattr(messages, "MGET_ANSWER_MAX_BYTES", 1000)

    async def scenario():
        net, _, nodes = build(["a", "b", "c"])
        await nodes["a"].put(b"big", b"x" * 5000)
        await settle()
        net.calls.clear()
        assert await started_get(nodes["a"], b"big") == (b"x" * 5000, None)
        asked = [verb for _, _, verb in net.calls]
        assert asked.count(messages.MGET) == 2 and asked.count(messages.GET) == 2
        assert nodes["a"].stats["read_repairs"] == 0
    run(scenario())


def test_concurrent_writes_become_siblings_and_are_counted_as_conflicts() -> None:
    async def scenario():
        net, _, nodes = build(["a", "b", "c"], r=3)
        key = key_where(nodes["a"], lambda p: p[:2] == ["a", "b"])
        await settle()                            # let the start-up range streams finish
        net.partition("a", "b")
        await nodes["a"].put(key, b"from-a")
        await nodes["b"].put(key, b"from-b")
        net.heal()
        siblings = await nodes["a"].get(key)
        assert sorted(s.value for s in siblings) == [b"from-a", b"from-b"]
        assert nodes["a"].stats["conflicts_detected"] == 1
        await settle()                            # a's copy now holds both (read repair)
        value, error = await started_get(nodes["a"], key)     # siblings: the merging path
        assert error is None and value == versioning.winner(siblings, 0).value
        assert nodes["a"].stats["conflicts_detected"] == 2
    run(scenario())


def test_non_primary_forwards_get_put_and_mutate() -> None:
    async def scenario():
        names = ["a", "b", "c", "d"]
        net, _, nodes = build(names)
        key = key_where(nodes["a"], lambda p: "d" not in p)
        await nodes["d"].put(key, b"v")
        assert ("d", prefs(nodes["a"], key)[0], b"FPUT") in net.calls
        await settle()
        assert local_value(nodes["d"], key) is None
        assert versioning.winner(await nodes["d"].get(key), 0).value == b"v"
        assert await nodes["d"].mutate(key, "set", [b"w"]) == SimpleString("OK")
        assert await nodes["d"].mutate(b"n" + key, "incr", []) in (1,)
    run(scenario())


def test_mutations_on_one_key_are_serialized_at_the_coordinator() -> None:
    async def scenario():
        net, _, nodes = build(["a", "b", "c", "d"])
        callers = list(nodes.values())
        await asyncio.gather(*(callers[i % 4].mutate(b"counter", "incr", []) for i in range(40)))
        assert versioning.winner(await nodes["a"].get(b"counter"), 0).value == b"40"
    run(scenario())


def test_scan_dbsize_and_flushall_are_cluster_wide() -> None:
    async def scenario():
        net, _, nodes = build(["a", "b", "c", "d"])
        keys = {b"key:%d" % i for i in range(120)}
        await nodes["a"].put_many([(k, b"x") for k in keys])
        await settle()
        seen, cursor = [], 0
        while True:
            cursor, page = await nodes["b"].scan(cursor, 7)
            seen += page
            if cursor == 0:
                break
        assert sorted(seen) == sorted(keys)
        assert await nodes["c"].dbsize() == 120
        await nodes["d"].flushall()
        assert await nodes["a"].dbsize() == 0
        net.partition("a", "b")
        with pytest.raises(QuorumNotReached):
            await nodes["a"].flushall()
    run(scenario())


def test_joining_node_streams_its_ranges() -> None:
    async def scenario():
        net, _, nodes = build(["a", "b", "c"])
        for i in range(50):
            await nodes["a"].put(b"key:%d" % i, b"x")
        await settle()
        config = ClusterConfig(node_id="d", replicas=3, read_quorum=2, write_quorum=2, vnodes=16)
        d = Cluster(config, MemoryStore(), MUTATORS, nodes["a"].clock)
        d.network = Network(d, transport=net.transport_for("d"), server=net.server(), gossip=False)
        net.add("d", d.network)
        names = ["a", "b", "c", "d"]
        for cluster in (*nodes.values(), d):
            cluster.network.set_view(names, names)
        mine = [b"key:%d" % i for i in range(50) if "d" in prefs(d, b"key:%d" % i)]
        assert mine
        await until(lambda: all(local_value(d, k) == b"x" for k in mine))   # streamed to d
    run(scenario())


def test_dbsize_recounts_when_a_node_does_not_answer() -> None:
    async def scenario():
        net, _, nodes = build(["a", "b", "c"])
        await settle()
        await nodes["a"].put_many([(b"key:%d" % i, b"x") for i in range(30)])
        await settle()
        net.partition("a", "c")                   # a still believes c is alive
        assert await nodes["a"].dbsize() == 30
    run(scenario())


def test_a_batched_replica_write_fails_only_its_bad_triples() -> None:
    async def scenario():
        net, _, nodes = build(["a", "b", "c"])
        writer = nodes["a"]
        good = [writer.blind_write(b"g%d" % i, b"v%d" % i) for i in range(2)]
        args = [b"g0", good[0], b"", b"x", b"not a sibling set", b"", b"g1", good[1], b""]
        statuses, values = await net.deliver("a", "b", messages.MPUT, args)
        assert statuses[0] == b"" and statuses[2] == b"" and values is None
        assert b"ValueError" in statuses[1]
        assert local_value(nodes["b"], b"g0") == b"v0" and local_value(nodes["b"], b"g1") == b"v1"
        assert await net.deliver("a", "b", messages.MPUT, args[:3]) == [messages.OK, None]
        with pytest.raises(PeerError, match="items of 3"):
            await net.deliver("a", "b", messages.MPUT, args[:2])
        # MGET answers each pair: the stored set, nil for a key it does not have
        assert await net.deliver("a", "b", messages.MGET, [b"g0", b"", b"nope", b""]) == \
            [messages.OK, [good[0], None]]
        # items that are not bulk strings (a broken peer: integers, arrays) fail alone too
        odd = [7, good[0], b"", b"g1", good[1], b"", [b"k"], good[0], b""]
        statuses, _ = await net.deliver("a", "b", messages.MPUT, odd)
        assert statuses[0] and statuses[1] == b"" and statuses[2]
        statuses, values = await net.deliver("a", "b", messages.MGET, [7, b"", b"g1", b""])
        assert statuses[0] and statuses[1] == b"" and values == [None, good[1]]
        assert local_value(nodes["b"], b"g1") == b"v1"
    run(scenario())


def test_a_value_too_big_for_a_batched_answer_is_asked_for_alone(monkeypatch) -> None:
    monkeypatch.setattr(messages, "MGET_ANSWER_MAX_BYTES", 1000)

    async def scenario():
        net, _, nodes = build(["a", "b", "c"])
        small, big = b"small", b"big"              # N=3 on 3 nodes: every node holds both
        await nodes["a"].put(small, b"s")
        await nodes["a"].put(big, b"x" * 5000)
        await settle()
        statuses, values = await net.deliver("a", "b", messages.MGET, [small, b"", big, b""])
        assert statuses[0] == b"" and values[0] is not None
        assert statuses[1].decode().endswith(messages.ANSWER_ALONE) and values[1] is None
        net.calls.clear()
        assert versioning.winner(await nodes["a"].get(big), 0).value == b"x" * 5000
        asked = [verb for _, _, verb in net.calls]
        assert asked.count(messages.MGET) == 2 and asked.count(messages.GET) == 2
    run(scenario())


@pytest.mark.parametrize("path", ["quick", "merging"])
def test_a_failing_read_answers_a_started_get_with_an_error_not_a_hang(monkeypatch, path) -> None:
    """Both read paths: the quick one (replicas byte-identical: the value comes from the local
    bytes) and the merging one (here the coordinator's own copy differs from both peers').
    The failure is planted without patching the compiled modules (resp_kv/native.py): bytes
    that fail only when the value is read, or a failing `versioning.winner` (interpreted)."""
    from resp_kv.backend import ClusterBackend
    from resp_kv.errors import CommandError

    async def scenario():
        net, _, nodes = build(["a", "b", "c"])
        await nodes["a"].put(b"k", b"v")
        await settle()

        def broken(*args):
            raise RuntimeError("a bug in the read")
        if path == "quick":
            # One sibling by its header, its lengths wrong: every replica answers the same
            # bytes, so the read goes on quickly and fails reading the value.
            store_key = data_key(key_token(b"k"), b"k")
            bad = nodes["a"].store.get(store_key) + b"?"
            for node in nodes.values():
                node.store.put(store_key, bad)
        else:
            nodes["a"].blind_write(b"k", b"local only")     # a's copy alone: answers differ
            monkeypatch.setattr(versioning, "winner", broken)
        answers: list = []
        backend = ClusterBackend(nodes["a"], lambda: {})
        assert backend.get_started(b"k", lambda *answer: answers.append(answer)) is True
        await until(lambda: answers)
        await settle()
        assert len(answers) == 1 and answers[0][0] is None
        reply = backend.client_error(answers[0][1])
        assert isinstance(reply, CommandError) and "internal error" in str(reply)
    run(scenario())
