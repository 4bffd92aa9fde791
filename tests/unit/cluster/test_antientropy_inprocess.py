"""AntiEntropy in process: nodes over in-memory stores, wired by a direct-call fake transport."""

from __future__ import annotations

import asyncio
import random

from cluster import merkle, versioning
from cluster.antientropy import CLEAN_KEY, AntiEntropy, ring_ranges, wire_size
from cluster.clock import Clock
from cluster.repair import BACKOFF_RETRY_S, Repairs
from cluster.replica import Replica, data_key
from cluster.ring import Ring
from cluster.types import PeerBackingOff, Sibling, key_token
from tests.helpers.fake_network import MemoryStore


class FakeClock(Clock):
    def __init__(self) -> None:
        self.now_s = 1000.0

    def monotonic(self) -> float:
        return self.now_s

    def wall_ms(self) -> int:
        return int(self.now_s * 1000)

    async def sleep(self, seconds: float) -> None:
        self.now_s += seconds
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


class Net:
    """Nodes by id; `call` runs the target's handler directly (a partition = a down set)."""

    def __init__(self, names: list[str], n: int) -> None:
        self.ring = Ring(names, vnodes=8)
        self.clock = FakeClock()
        self.down: set[str] = set()
        self.nodes: dict[str, tuple[AntiEntropy, Replica, MemoryStore]] = {}
        self.handlers: dict[str, dict[bytes, object]] = {}
        self.drivers: dict[str, Repairs] = {}
        for name in names:
            self.add(name, n)

    def add(self, name: str, n: int, store: MemoryStore | None = None) -> AntiEntropy:
        store = store or MemoryStore()
        replica = Replica(store)
        handlers: dict[bytes, object] = {}
        self.handlers[name] = handlers

        async def call(node, verb, args, timeout_s, me=name):
            if node in self.down or me in self.down:
                raise ConnectionError(f"{node} unreachable")
            reply = self.handlers[node][verb](me, [bytes(a) for a in args])
            return await reply if asyncio.iscoroutine(reply) else reply

        ae = AntiEntropy(name, store, replica, ring=lambda: self.ring, replicas=n, call=call,
                         clock=self.clock, compactions=lambda: None)
        ae.register(handlers.__setitem__)
        self.nodes[name] = (ae, replica, store)
        self.drivers[name] = Repairs(ae)
        return ae

    def ae(self, name: str) -> AntiEntropy:
        return self.nodes[name][0]

    def repairs(self, name: str) -> Repairs:
        return self.drivers[name]

    def write(self, name: str, key: bytes, value: bytes | None, actor: str | None = None) -> None:
        _, replica, _ = self.nodes[name]
        token = key_token(key)
        local = replica.read(key, token)
        _, merged = versioning.write(local, versioning.join_context(local), actor or f"{name}@1",
                                     value, self.clock.wall_ms())
        replica.store_merged(key, token, local, replica.read_encoded(key, token), merged)

    def owners(self, key: bytes, n: int) -> list[str]:
        return self.ring.preference_list(key_token(key), n)

    def raw(self, name: str, key: bytes) -> bytes | None:
        return self.nodes[name][1].read_encoded(key, key_token(key))

    async def start(self) -> None:
        for ae, _, _ in self.nodes.values():
            ae._set_ready()


def _run(coro):
    return asyncio.run(coro)


def _data(store: MemoryStore) -> dict:
    return {k: v for k, v in store.data.items() if k[:1] == b"d"}


def test_antientropy_moves_only_diverged_keys_and_in_sync_moves_nothing() -> None:
    async def main() -> None:
        net = Net(["a", "b"], n=2)
        await net.start()
        keys = [b"k%d" % i for i in range(2000)]
        for key in keys:
            net.write("a", key, b"v", actor="c@1")
            net.write("b", key, b"v", actor="c@1")
        assert net.ae("a").tree.root == net.ae("b").tree.root
        in_sync = await net.ae("a").exchange("b")
        assert (in_sync.keys_sent, in_sync.keys_received, in_sync.ranges_differing) == (0, 0, 0)
        assert in_sync.bytes_sent + in_sync.bytes_received < 300
        rng = random.Random(7)
        diverged = rng.sample(keys, 30)
        for key in diverged[:10]:
            net.write("a", key, b"new-on-a")
        for key in diverged[10:20]:
            net.write("b", key, b"new-on-b")
        for key in diverged[20:]:
            net.write("a", key, b"conflict-a")
            net.write("b", key, b"conflict-b")
        net.write("a", b"only-a", b"x")
        net.write("b", b"only-b", b"y")
        stats = await net.ae("a").exchange("b")
        assert _data(net.nodes["a"][2]) == _data(net.nodes["b"][2])
        assert net.ae("a").tree.root == net.ae("b").tree.root
        assert stats.keys_sent + stats.keys_received <= 2 * 32
        assert stats.keys_received >= 21 and stats.keys_sent >= 21
        assert len(versioning.decode_siblings(net.raw("a", diverged[25]))) == 2
        again = await net.ae("b").exchange("a")
        assert again.keys_sent + again.keys_received == 0
    _run(main())


def test_antientropy_partial_ranges_sync_every_replica() -> None:
    async def main() -> None:
        names = ["a", "b", "c", "d"]
        net = Net(names, n=2)
        await net.start()
        keys = [b"key-%d" % i for i in range(600)]
        for key in keys:
            first, second = net.owners(key, 2)
            net.write(first, key, b"v1", actor="w@1")
            if key[-1] % 3:
                net.write(second, key, b"v1", actor="w@1")
        shared = net.ae("a").shared_ranges("b")
        full, partial = merkle.segment_coverage(shared)
        assert partial, "4 nodes with 8 vnodes: some segments must be cut by a range boundary"
        for name in names:
            await net.repairs(name).repair()
        for key in keys:
            first, second = net.owners(key, 2)
            assert net.raw(first, key) == net.raw(second, key) is not None
        for name in names:                                 # nothing outside a node's ranges
            for store_key in _data(net.nodes[name][2]):
                token = int.from_bytes(store_key[1:9], "big")
                assert name in net.ring.preference_list(token, 2)
        stats = await net.repairs("a").repair()
        assert stats["keys_sent"] + stats["keys_received"] == 0
        assert stats["peers"] >= 1
    _run(main())


def test_antientropy_delete_while_partitioned_never_comes_back_and_is_collected() -> None:
    async def main() -> None:
        net = Net(["a", "b", "c"], n=3)
        await net.start()
        for name in "abc":
            net.write(name, b"gone", b"v", actor="w@1")
        net.down.add("c")
        for name in "ab":
            net.write(name, b"gone", None, actor="w@1")    # the same delete on a and b
        tombstone = net.raw("a", b"gone")
        value = data_key(key_token(b"gone"), b"gone")
        now = net.clock.wall_ms()
        assert not net.ae("a").compaction_filter(value, tombstone, now)   # c has not synced
        net.clock.advance(1)
        await net.repairs("a").repair()                         # c unreachable: only b synced
        assert not net.ae("a").compaction_filter(value, tombstone, net.clock.wall_ms())
        net.down.clear()
        net.clock.advance(1)
        for name in "abc":
            await net.repairs(name).repair()
        net.clock.advance(1)                               # c got it during the first pass
        for name in "abc":
            await net.repairs(name).repair()
        for name in "abc":
            assert net.raw(name, b"gone") == tombstone
            assert net.ae(name).compaction_filter(value, tombstone, net.clock.wall_ms())
        # a "compacts" the record away; the exchanges then purge it instead of resurrecting.
        net.nodes["a"][2].delete(value)
        net.ae("a").tree.set_leaf(merkle.segment_of(key_token(b"gone")), 0)
        for name in "abc":
            await net.repairs(name).repair()
        for name in "abc":
            assert net.raw(name, b"gone") is None
        assert len({net.ae(name).tree.root for name in "abc"}) == 1
    _run(main())


def test_antientropy_single_node_collects_dead_records_at_once() -> None:
    async def main() -> None:
        net = Net(["solo"], n=3)
        await net.start()
        net.write("solo", b"k", None)
        raw = net.raw("solo", b"k")
        assert net.ae("solo").compaction_filter(data_key(key_token(b"k"), b"k"), raw,
                                                net.clock.wall_ms())
        assert (await net.repairs("solo").repair())["peers"] == 0
    _run(main())


def test_antientropy_live_record_is_never_collected() -> None:
    net = Net(["a"], n=1)
    net.write("a", b"k", b"v")
    assert not net.ae("a").compaction_filter(data_key(key_token(b"k"), b"k"), net.raw("a", b"k"),
                                             net.clock.wall_ms())


def test_antientropy_repair_key_merges_across_replicas() -> None:
    async def main() -> None:
        net = Net(["a", "b", "c"], n=3)
        await net.start()
        net.write("b", b"k", b"only-b")
        stats = await net.repairs("a").repair(b"k")
        assert net.raw("a", b"k") == net.raw("b", b"k") == net.raw("c", b"k") is not None
        assert stats["keys_received"] == 1 and stats["keys_sent"] == 1   # b -> a, a -> c
        again = await net.repairs("c").repair(b"k")
        assert again["keys_sent"] + again["keys_received"] == 0
    _run(main())


def test_antientropy_tree_rebuilds_and_persists() -> None:
    async def main() -> None:
        net = Net(["a"], n=1)
        await net.start()
        for i in range(5000):
            net.write("a", b"k%d" % i, b"v%d" % i)
        for i in range(0, 5000, 3):
            net.write("a", b"k%d" % i, None)
        live_root = net.ae("a").tree.root
        store = net.nodes["a"][2]
        rebuilt = AntiEntropy("a", store, Replica(store), ring=lambda: None, replicas=1,
                              clock=net.clock)
        await rebuilt.start()
        assert rebuilt.state == "building"
        await asyncio.wait_for(rebuilt._ready.wait(), 10)
        assert rebuilt.tree.root == live_root and rebuilt.info()["merkle_tree"] == "ready"
        await rebuilt.stop()
        assert store.get(CLEAN_KEY) == b"1"
        loaded = AntiEntropy("a", store, Replica(store), ring=lambda: None, replicas=1,
                             clock=net.clock)
        await loaded.start()
        assert loaded.state == "ready" and loaded.tree.root == live_root
        assert store.get(CLEAN_KEY) is None                # a crash from here means: rebuild
        await loaded.stop()
    _run(main())


def test_antientropy_writes_during_rebuild_are_not_lost() -> None:
    async def main() -> None:
        store = MemoryStore()
        replica = Replica(store)
        for i in range(20000):
            key = b"k%d" % i
            sib = Sibling(("w@1", 1), {}, b"v", 1)
            replica.apply(key, key_token(key), [sib])
        ae = AntiEntropy("a", store, replica, ring=lambda: None, replicas=1)
        await ae.start()
        for step in range(50):
            await asyncio.sleep(0)
            key = b"k%d" % (step * 397)
            replica.apply(key, key_token(key), [Sibling(("w@1", 2), {"w@1": 1}, b"new", 2)])
        await asyncio.wait_for(ae._ready.wait(), 10)
        scratch = merkle.MerkleTree.from_items(
            (t, k, raw) for t, k, raw in replica.scan_range(0))
        assert ae.tree.levels == scratch.levels
        await ae.stop()
    _run(main())


def test_antientropy_tree_dormant_while_alone_then_rebuilt_at_first_peer() -> None:
    async def main() -> None:
        store = MemoryStore()
        store.put(CLEAN_KEY, b"1")                         # a tree saved by an earlier run
        replica = Replica(store)
        ring: list = [None]
        ae = AntiEntropy("a", store, replica, ring=lambda: ring[0], replicas=2,
                         tree_when_alone=False)
        await ae.start()
        assert ae.state == "dormant" and ae not in replica.listeners
        assert store.get(CLEAN_KEY) is None                # stale from the first write on
        for i in range(3000):
            key = b"k%d" % i
            replica.apply(key, key_token(key), [Sibling(("a@1", 1), {}, b"v%d" % i, 1)])
        assert ae.tree.root == 0 and ae.tree.changes == 0  # no hashing while alone
        await ae.stop()
        assert store.get(CLEAN_KEY) is None                # nothing saved: there is no tree
        ae = AntiEntropy("a", store, replica, ring=lambda: ring[0], replicas=2,
                         tree_when_alone=False)
        await ae.start()
        ring[0] = Ring(["a", "b"], 8)
        ae.peers_changed()
        for i in range(0, 3000, 7):                         # writes while the rebuild runs
            await asyncio.sleep(0)
            key = b"k%d" % i
            replica.apply(key, key_token(key), [Sibling(("a@1", 2), {"a@1": 1}, b"new", 2)])
        await asyncio.wait_for(ae._ready.wait(), 10)
        scratch = merkle.MerkleTree.from_items(
            (t, k, raw) for t, k, raw in replica.scan_range(0))
        assert ae.state == "ready" and ae.tree.levels == scratch.levels
        await ae.stop()
    _run(main())


def test_antientropy_ring_ranges_conversion() -> None:
    top = merkle.TOKEN_LIMIT
    assert ring_ranges([(5, 5)]) == [(0, top)]
    assert ring_ranges([(10, 20)]) == [(11, 21)]
    assert ring_ranges([(top - 10, 3)]) == [(0, 4), (top - 9, top)]
    assert ring_ranges([(top - 1, 3)]) == [(0, 4)]


def test_antientropy_wire_size_matches_resp() -> None:
    assert wire_size([b"AE.ROOT", b"12", b""]) == len(b"*3\r\n$7\r\nAE.ROOT\r\n$2\r\n12\r\n$0\r\n\r\n")
    assert wire_size(None) == len(b"$-1\r\n") and wire_size(42) == len(b":42\r\n")


def test_antientropy_background_round_respects_the_byte_rate_cap() -> None:
    async def main() -> None:
        net = Net(["a", "b"], n=2)
        await net.start()
        for i in range(300):
            net.write("a", b"k%d" % i, b"v" * 100)
        repairs = Repairs(net.ae("a"), alive=lambda: {"a", "b"}, interval_s=0,
                          max_bytes_per_s=10_000)
        before = net.clock.monotonic()
        stats = await repairs.round()
        moved = stats.bytes_sent + stats.bytes_received
        assert stats.keys_sent == 300 and moved > 30_000
        assert net.clock.monotonic() - before >= moved / 10_000 * 0.99
        assert repairs.info()["anti_entropy_rounds"] == 1
    _run(main())


def test_repair_waits_out_a_link_backing_off_then_counts_it_failed() -> None:
    """A peer that just restarted: the link to it still backs off from the lost connection,
    failing calls at once. REPAIR retries for BACKOFF_RETRY_S before it reports the peer
    failed, so a restarted peer is repaired, and one that stays away is still reported."""
    async def main() -> None:
        net = Net(["a", "b"], n=2)
        await net.start()
        net.write("a", b"k", b"v")
        ae_a = net.ae("a")
        calls, until = {"n": 0}, {"s": net.clock.monotonic() + 1.5}
        direct = ae_a._call

        async def backing_off(node, verb, args, timeout_s):
            calls["n"] += 1
            if net.clock.monotonic() < until["s"]:
                raise PeerBackingOff(f"{node} unreachable (backing off)")
            return await direct(node, verb, args, timeout_s)

        ae_a._call = backing_off
        stats = await net.repairs("a").repair()
        assert stats["peers_failed"] == 0 and stats["keys_sent"] == 1 and calls["n"] > 1
        assert net.raw("b", b"k") is not None

        until["s"] = net.clock.monotonic() + BACKOFF_RETRY_S + 10      # stays away
        started = net.clock.monotonic()
        stats = await net.repairs("a").repair()
        assert stats["peers_failed"] == 1
        assert BACKOFF_RETRY_S <= net.clock.monotonic() - started < BACKOFF_RETRY_S + 1
    _run(main())
