"""Merkle anti-entropy with real node processes: wipe, divergence, deletes, background rounds.

Divergence is made precisely by writing to ONE replica through its peer port (the replica PUT
verb, as a peer would), so neither hints nor read repair can be what heals it: only
anti-entropy. Content is compared through `INFO cluster` `merkle_root` (N = cluster size, so
every node replicates every key and equal roots mean equal data) and `DEBUG LOCALGET`.
"""

from __future__ import annotations

import socket

import hiredis
import pytest

from cluster import messages, versioning
from cluster.types import Sibling
from tests.helpers.harness import HOST, ClusterHarness
from tests.helpers.wait import GiveUp, wait_until

pytestmark = pytest.mark.fault


class PeerPort:
    """A minimal peer: AUTH (no secret), then pipelined replica PUTs to one node."""

    def __init__(self, port: int, node_id: str = "ae-test") -> None:
        self.sock = socket.create_connection((HOST, port), timeout=60)
        self.reader = hiredis.Reader()
        self._read()                                       # HELLO nonce
        self.sock.sendall(messages.encode_value([messages.AUTH, node_id.encode(), b""]))
        self.next_id = 0

    def _read(self):
        while (frame := self.reader.gets()) is False:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("peer port closed")
            self.reader.feed(data)
        return frame

    def put_many(self, items: list[tuple[bytes, bytes]], batch: int = 2000) -> None:
        """Store each (key, encoded siblings) in this node's replica; wait for every ack."""
        for i in range(0, len(items), batch):
            chunk = items[i:i + batch]
            frames = []
            for key, encoded in chunk:
                self.next_id += 1
                frames.append(messages.encode_request(messages.PUT, self.next_id,
                                                      [key, encoded, b""]))
            self.sock.sendall(b"".join(frames))
            for _ in chunk:
                _, status, payload = self._read()
                assert status == messages.STATUS_OK, payload

    def close(self) -> None:
        self.sock.close()


def _version(value: bytes, actor: str = "loader@1", counter: int = 1,
             context: dict | None = None) -> bytes:
    return versioning.encode_siblings([Sibling((actor, counter), context or {}, value, 1_000)])


def _load_everywhere(cluster: ClusterHarness, count: int, prefix: str = "k") -> list[bytes]:
    """The same version of `count` keys on every node, written replica by replica."""
    keys = [f"{prefix}{i:07d}".encode() for i in range(count)]
    items = [(key, _version(b"value-" + key)) for key in keys]
    for i in range(cluster.size):
        port = PeerPort(cluster.peer_port(i))
        port.put_many(items)
        port.close()
    return keys


def _diverge(cluster: ClusterHarness, node: int, keys: list[bytes]) -> int:
    """Give `keys` a newer version on one replica only; return the payload bytes written."""
    items = [(key, _version(b"newer-" + key, "diverger@1", 1, {"loader@1": 1})) for key in keys]
    port = PeerPort(cluster.peer_port(node))
    port.put_many(items)
    port.close()
    return sum(len(k) + len(v) for k, v in items)


def _info(cluster: ClusterHarness, i: int) -> dict:
    return cluster.client(i).info("cluster")


def _roots(cluster: ClusterHarness) -> set[str]:
    return {_info(cluster, i)["merkle_root"] for i in range(cluster.size)}


def _repair(cluster: ClusterHarness, i: int, *key: bytes) -> dict:
    reply = cluster.client(i).execute_command("REPAIR", *key)
    if isinstance(reply, list):                            # RESP2 flat pairs (RESP3: a map)
        reply = dict(zip(reply[::2], reply[1::2]))
    return {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in reply.items()}


def _wait_trees_ready(cluster: ClusterHarness) -> None:
    for i in range(cluster.size):
        wait_until(lambda i=i: _info(cluster, i)["merkle_tree"] == "ready", 60,
                   f"n{i} Merkle tree ready")


@pytest.fixture
def cluster(tmp_path):
    with ClusterHarness(tmp_path, size=3, n=3, w=2, r=2, debug_commands=True, extra_args=[
            "--anti-entropy-interval-s", "0", "--hint-max-age-s", "1"]) as harness:
        yield harness.up(timeout_s=30)


def test_wiped_node_gets_identical_content_after_repair(cluster: ClusterHarness) -> None:
    keys = _load_everywhere(cluster, 3000)
    client = cluster.client(0)
    for key in keys[:50]:
        client.delete(key)                                 # tombstones must come back too
    for key in keys[50:100]:
        client.set(key, b"rewritten")
    _wait_trees_ready(cluster)
    cluster.kill(2)
    cluster.wipe(2)
    cluster.start(2)
    cluster.wait_ready(timeout_s=30)
    _wait_trees_ready(cluster)
    stats = _repair(cluster, 2)
    assert stats["peers"] == 2 and stats["peers_failed"] == 0
    wait_until(lambda: len(_roots(cluster)) == 1, 30, "identical Merkle roots on every node")
    node2 = cluster.client(2)
    for key in keys[:120]:
        assert node2.execute_command("DEBUG", "LOCALGET", key) == \
            client.execute_command("DEBUG", "LOCALGET", key)
    again = _repair(cluster, 2)
    assert again["keys_sent"] + again["keys_received"] == 0


@pytest.mark.slow
def test_repair_moves_only_the_diverged_keys(cluster: ClusterHarness) -> None:
    keys = _load_everywhere(cluster, 100_000)
    _wait_trees_ready(cluster)
    assert len(_roots(cluster)) == 1
    in_sync = _repair(cluster, 0)
    assert in_sync["keys_sent"] == in_sync["keys_received"] == 0
    assert in_sync["bytes_sent"] + in_sync["bytes_received"] < 2000
    diverged = keys[::1000]                                # 100 keys, spread over the ring
    payload = _diverge(cluster, 2, diverged)
    stats = _repair(cluster, 0)
    moved = stats["keys_sent"] + stats["keys_received"]
    assert len(diverged) <= moved <= 2 * len(diverged), str(stats)
    total_bytes = stats["bytes_sent"] + stats["bytes_received"]
    tree_overhead = 2 * 64 * 1024                          # two walks down to ~100 leaves
    assert total_bytes <= 4 * payload + tree_overhead, (stats, payload)
    assert len(_roots(cluster)) == 1
    for i in range(3):
        assert cluster.client(i).execute_command("DEBUG", "LOCALGET", diverged[7]) == \
            b"newer-" + diverged[7]


def test_delete_during_partition_never_reappears(cluster: ClusterHarness) -> None:
    keys = _load_everywhere(cluster, 200, prefix="d")
    doomed, survivor = keys[:20], keys[20:]
    for i in (0, 1):
        cluster.client(i).execute_command("DEBUG", "PARTITION", "n2")
    cluster.client(2).execute_command("DEBUG", "PARTITION", "n0", "n1")
    for key in doomed:
        cluster.client(0).delete(key)
    for _ in range(2):                                     # n2 away: the gate must hold
        for i in (0, 1):
            _repair(cluster, i)
            cluster.client(i).execute_command("DEBUG", "COMPACT")
    for i in (0, 1):                                       # compacted, yet still kept
        _, siblings = cluster.client(i).execute_command("DEBUG", "LOCALVCLOCK", doomed[0])
        assert len(siblings) == 1 and siblings[0][0] is None
    for i in range(3):
        cluster.client(i).execute_command("DEBUG", "HEAL")
    # The deletes left hints for n2 on n0 and n1 (10 each). Delivered after the GC below,
    # one would put a tombstone back on n2 alone, and the roots would differ until some
    # later compaction collects it again: that was this test's occasional 30 s timeout.
    wait_until(lambda: all(int(_info(cluster, i)["hints_pending"]) == 0 for i in range(3)),
               30, "hints delivered after the heal")
    _repair(cluster, 2)

    def sweep() -> bool:
        """Sync and compact every node; True once every tombstone is collected (not before
        the gate's wait, --hint-max-age-s plus the request timeout, has passed)."""
        for i in range(3):
            _repair(cluster, i)
            cluster.client(i).execute_command("DEBUG", "COMPACT")
        for i in range(3):                                 # local reads: no read repair
            node = cluster.client(i)
            for key in doomed:
                if node.execute_command("DEBUG", "LOCALGET", key) is not None:
                    raise GiveUp(f"{key!r} came back on n{i}")
            if node.execute_command("DEBUG", "LOCALGET", survivor[0]) != b"value-" + survivor[0]:
                raise GiveUp(f"n{i} lost {survivor[0]!r}")
        return all(cluster.client(i).execute_command("DEBUG", "LOCALVCLOCK", key)[1] == []
                   for i in range(3) for key in doomed)

    wait_until(sweep, 60, "every replica synced and collected the tombstones", interval_s=0.2)
    for i in range(3):
        for key in doomed:
            assert cluster.client(i).get(key) is None
    wait_until(lambda: len(_roots(cluster)) == 1, 30, "identical roots after GC")


def test_a_hint_held_elsewhere_cannot_bring_back_a_collected_delete(tmp_path) -> None:
    """Four nodes, N=3. A value is hinted for n2 on n3 (outside the key's replicas, so no
    exchange among the replicas involves it); n3 is cut off; the key is deleted on all three
    replicas, which then sync and compact. The tombstones must outlive any hint of what they
    deleted: collected only after --hint-max-age-s, and n3's late hint then dropped, not
    delivered. (Collected at once, as before, the hint put the value back on n2.)"""
    hint_age_s = 10.0    # longer than the steps up to the delivery take (~4 s here)
    harness = ClusterHarness(tmp_path, size=4, n=3, w=2, r=2, debug_commands=True, extra_args=[
        "--anti-entropy-interval-s", "0", "--gossip-interval-ms", "200",
        "--request-timeout-ms", "500", "--hint-max-age-s", str(hint_age_s)])
    client = harness.client
    debug = lambda i, *args: client(i).execute_command("DEBUG", *args)   # noqa: E731

    def cut(side: list[int], others: list[int]) -> None:
        for i in side:
            debug(i, "PARTITION", *[f"n{j}" for j in others])
        for j in others:
            debug(j, "PARTITION", *[f"n{i}" for i in side])

    try:
        harness.up(timeout_s=40)
        probes = {f"late-hint:{i}".encode(): b"first" for i in range(60)}
        for key, value in probes.items():
            client(0).set(key, value)
        # Keys whose replicas are n0, n1, n2, so that n3 is the fallback for n2.
        keys = wait_until(lambda: [k for k in probes
                                   if [debug(i, "LOCALGET", k) for i in range(4)]
                                   == [b"first", b"first", b"first", None]]
                          if all(sum(debug(i, "LOCALGET", k) is not None for i in range(4)) == 3
                                 for k in probes) else None,
                          20, "every probe key on exactly three replicas")
        assert keys, "no probe key has n3 outside its replicas"
        cut([2], [0, 1, 3])
        wait_until(lambda: _info(harness, 0)["cluster_nodes_up"] == 3, 20, "n0 sees n2 down")
        for key in keys:
            assert client(0).set(key, b"doomed") is True    # n3 keeps it as a hint for n2
        wait_until(lambda: _info(harness, 3)["hints_pending"] == len(keys), 20,
                   "n3 holds a hint for n2 of every doomed write")
        cut([3], [0, 1])                                   # n3 and its hints: away
        for i in range(3):
            debug(i, "HEAL")
        cut([0, 1, 2], [3])
        assert client(0).delete(*keys) == len(keys)
        for i in range(3):                                 # the tombstone on every replica
            wait_until(lambda i=i: all(debug(i, "LOCALVCLOCK", k)[1][0][0] is None
                                       for k in keys), 20, f"n{i} holds the tombstones")
        wait_until(lambda: all(_info(harness, i)["hints_pending"] == 0 for i in range(3)), 20,
                   "no hint of the delete left on the replicas")

        def collected() -> bool:
            for i in range(3):
                _repair(harness, i)
                debug(i, "COMPACT")
            return all(debug(i, "LOCALVCLOCK", k)[1] == [] for i in range(3) for k in keys)

        wait_until(collected, 60, "the tombstones collected on every replica", interval_s=0.2)
        dropped = _info(harness, 3)["hints_dropped"]
        for i in range(4):
            debug(i, "HEAL")
        wait_until(lambda: _info(harness, 3)["hints_pending"] == 0, 30, "n3's hints handled")
        for i in range(3):
            assert [debug(i, "LOCALGET", k) for k in keys] == [None] * len(keys), f"n{i}"
        for i in range(4):
            assert client(i).mget(keys) == [None] * len(keys)
        assert _info(harness, 3)["hints_dropped"] - dropped == len(keys)
    finally:
        harness.kill_all()


def test_background_anti_entropy_converges_without_repair(tmp_path) -> None:
    harness = ClusterHarness(tmp_path, size=3, n=3, w=2, r=2, debug_commands=True,
                             extra_args=["--anti-entropy-interval-s", "1"])
    try:
        harness.start_all()
        harness.wait_ready(timeout_s=30)
        keys = _load_everywhere(harness, 2000)
        _wait_trees_ready(harness)
        _diverge(harness, 1, keys[::100])
        # Diverged: node 1 differs. (Not "exactly two roots": a background round may already
        # have carried part of the difference to one peer by the time we look.)
        assert len(_roots(harness)) > 1
        wait_until(lambda: len(_roots(harness)) == 1, 60, "background rounds converge")
        for i in range(3):
            assert harness.client(i).execute_command("DEBUG", "LOCALGET", keys[100]) == \
                b"newer-" + keys[100]
        assert all(_info(harness, i)["repair_runs"] == 0 for i in range(3))
        assert any(_info(harness, i)["anti_entropy_rounds"] > 0 for i in range(3))
    finally:
        harness.kill_all()


def test_in_sync_cluster_repair_moves_nothing_and_tree_survives_restart(
        cluster: ClusterHarness) -> None:
    _load_everywhere(cluster, 5000)
    _wait_trees_ready(cluster)
    for i in range(3):
        stats = _repair(cluster, i)
        assert stats["keys_sent"] == stats["keys_received"] == 0
        assert stats["peers"] == 2 and stats["ranges_differing"] == 0
    root = _info(cluster, 1)["merkle_root"]
    cluster.stop(1)                                        # graceful: the leaves are saved
    cluster.start(1)
    cluster.wait_ready(timeout_s=30)
    info = _info(cluster, 1)
    assert info["merkle_tree"] == "ready" and info["merkle_root"] == root
    assert _repair(cluster, 1)["keys_sent"] == 0
    key = b"k0000042"
    single = _repair(cluster, 0, key)
    assert single["keys_sent"] + single["keys_received"] == 0



def test_crashed_node_rebuilds_its_tree_in_the_background_and_exchanges_wait(
        cluster: ClusterHarness) -> None:
    _load_everywhere(cluster, 30_000)
    _wait_trees_ready(cluster)
    root = _info(cluster, 1)["merkle_root"]
    cluster.kill(1)                                        # SIGKILL: no saved leaves
    cluster.start(1)
    cluster.wait_ready(timeout_s=30, nodes=[1])
    states = {_info(cluster, 1)["merkle_tree"]}
    stats = _repair(cluster, 0)                            # waits for n1's tree if building
    states.add(_info(cluster, 1)["merkle_tree"])
    assert stats["peers_failed"] == 0 and stats["keys_sent"] + stats["keys_received"] == 0
    assert states <= {"building", "ready"}
    wait_until(lambda: _info(cluster, 1)["merkle_tree"] == "ready", 60, "n1 tree rebuilt")
    assert _info(cluster, 1)["merkle_root"] == root
    assert "n1" in _info(cluster, 0)["anti_entropy_last_exchange_ms"]   # "n1=<ms>,n2=<ms>"


def test_lone_node_keeps_no_tree_until_a_peer_joins_then_rebuilds_it(tmp_path) -> None:
    """A node with no seeds, alone: no tree (INFO `dormant`). A node joins through it: its tree
    is rebuilt from its data and equals the joiner's, built write by write from the stream."""
    with ClusterHarness(tmp_path / "alone", size=1, n=2, r=1, w=1,
                        extra_args=["--anti-entropy-interval-s", "0"]) as alone:
        alone.up()
        client = alone.client(0)
        for i in range(0, 3000, 500):
            client.mset({f"lone:{j}": f"v{j}" for j in range(i, i + 500)})
        client.delete(*[f"lone:{j}" for j in range(0, 3000, 7)])
        assert _info(alone, 0)["merkle_tree"] == "dormant"
        seeds = f"{HOST}:{alone.peer_port(0)}"
        with ClusterHarness(tmp_path / "joiner", size=1, n=2, r=1, w=1, extra_args=[
                "--seeds", seeds, "--node-id", "joiner",
                "--anti-entropy-interval-s", "0"]) as joiner:
            joiner.up()
            both = (alone, joiner)
            for harness in both:
                wait_until(lambda h=harness: _info(h, 0)["merkle_tree"] == "ready", 60,
                           "Merkle tree ready")
            wait_until(lambda: len({_info(h, 0)["merkle_root"] for h in both}) == 1, 60,
                       "the joiner streamed every key and both trees agree")
            assert int(_info(alone, 0)["merkle_root"], 16) != 0
