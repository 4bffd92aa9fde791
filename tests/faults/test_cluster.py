"""Faults across real nodes: N=3, W=2, R=2 under kill -9, SIGSTOP, partitions and lost disks.

DESIGN.md §5 and §7. Every check is observed from outside: redis-py through any node, one
replica's own copy through `DEBUG LOCALGET` / `DEBUG LOCALVCLOCK`, partitions through
`DEBUG PARTITION` / `DEBUG HEAL`, and counters through `INFO cluster`. Nothing sleeps: every
eventual property is polled with `wait_until`. Gossip runs every 200 ms and a peer call times out
after 500 ms so failure detection and sloppy quorum kick in quickly.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
import redis

from tests.helpers.harness import HOST, ClusterHarness
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.fault

FAST = ["--gossip-interval-ms", "200", "--request-timeout-ms", "500"]


class Cluster:
    """A started ClusterHarness plus one cached RESP2 client per node."""

    def __init__(self, harness: ClusterHarness) -> None:
        self.h = harness
        self._clients: dict[int, redis.Redis] = {}

    def c(self, i: int) -> redis.Redis:
        if i not in self._clients:
            self._clients[i] = self.h.client(i, protocol=2, socket_timeout=10)
        return self._clients[i]

    def localget(self, i: int, key) -> bytes | None:
        return self.c(i).execute_command("DEBUG", "LOCALGET", key)

    def localvclock(self, i: int, key) -> list:
        return self.c(i).execute_command("DEBUG", "LOCALVCLOCK", key)

    def vclock(self, i: int, key) -> list:
        return self.c(i).execute_command("VCLOCK", key)

    def info(self, i: int) -> dict:
        return self.c(i).info("cluster")

    def total(self, field: str, nodes) -> int:
        return sum(int(self.info(i)[field]) for i in nodes)

    def partition(self, side_a: list[int], side_b: list[int]) -> None:
        """Cut every link between the two sides, on both ends of each link."""
        for i in side_a:
            assert self.c(i).execute_command("DEBUG", "PARTITION", *[f"n{j}" for j in side_b]) in (b"OK", "OK")
        for j in side_b:
            assert self.c(j).execute_command("DEBUG", "PARTITION", *[f"n{i}" for i in side_a]) in (b"OK", "OK")

    def heal(self, nodes) -> None:
        for i in nodes:
            assert self.c(i).execute_command("DEBUG", "HEAL") in (b"OK", "OK")

    def nodes_up(self, i: int) -> int:
        return int(self.info(i)["cluster_nodes_up"])


@pytest.fixture
def make_cluster(tmp_path: Path):
    """make_cluster(size, start=None, **harness_kwargs) -> Cluster; all killed by pid at teardown."""
    made: list[ClusterHarness] = []

    def make(size: int, start: list[int] | None = None, n: int = 3, r: int = 2, w: int = 2,
             extra: list[str] = ()) -> Cluster:
        harness = ClusterHarness(tmp_path / f"cluster{len(made)}", size=size, n=n, r=r, w=w,
                                 extra_args=[*FAST, *extra])
        made.append(harness)
        for i in (range(size) if start is None else start):
            harness.start(i)
        harness.wait_ready(timeout_s=40)
        return Cluster(harness)

    yield make
    for harness in made:
        harness.kill_all()


def _mset_each(client: redis.Redis, items: dict) -> None:
    """SET every key (one command each, so each write is acknowledged on its own)."""
    pipe = client.pipeline(transaction=False)
    for key, value in items.items():
        pipe.set(key, value)
    replies = pipe.execute()
    assert all(reply is True for reply in replies), replies


def _read_all(client: redis.Redis, expected: dict) -> None:
    keys = list(expected)
    got = client.mget(keys)
    wrong = [(k, expected[k], g) for k, g in zip(keys, got) if g != expected[k]]
    assert not wrong, f"{len(wrong)} of {len(keys)} keys wrong, first {wrong[:3]}"


def _poll_local(cluster: Cluster, i: int, expected: dict, what: str, timeout_s: float = 30) -> None:
    def converged() -> bool:
        return all(cluster.localget(i, k) == v for k, v in expected.items())
    try:
        wait_until(converged, timeout_s, what)
    except AssertionError:
        stale = {k: cluster.localget(i, k) for k, v in expected.items() if cluster.localget(i, k) != v}
        raise AssertionError(f"{what}: n{i} still differs on {len(stale)} keys, e.g. "
                             f"{list(stale.items())[:3]}") from None


def _actors(clock: bytes) -> dict[str, int]:
    """'n1@abc:3,n2@def:1' -> {'n1@abc': 3, 'n2@def': 1}."""
    pairs = [pair.rsplit(":", 1) for pair in clock.decode().split(",") if pair]
    return {actor: int(counter) for actor, counter in pairs}


# --- kill -9 of any one node -------------------------------------------------------------------

@pytest.mark.parametrize("victim", [0, 1, 2])
def test_acknowledged_writes_survive_kill_of_any_node_and_hints_reach_it(make_cluster, victim: int) -> None:
    cluster = make_cluster(3)
    writer, other = (victim + 1) % 3, (victim + 2) % 3
    before = {f"before:{i}".encode(): f"v{i}".encode() for i in range(200)}
    _mset_each(cluster.c(writer), before)

    cluster.h.kill(victim)
    _read_all(cluster.c(writer), before)                 # readable while it is down, via both others
    _read_all(cluster.c(other), before)
    during = {f"during:{i}".encode(): f"d{i}".encode() for i in range(100)}
    during.update({f"before:{i}".encode(): f"overwritten{i}".encode() for i in range(0, 200, 4)})
    _mset_each(cluster.c(writer), during)                # writes keep succeeding with one node down
    expected = {**before, **during}
    _read_all(cluster.c(other), expected)
    wait_until(lambda: int(cluster.info(writer)["hints_pending"]) > 0, 10, "a hint kept for the dead replica")

    cluster.h.start(victim)
    cluster.h.wait_ready(timeout_s=40)
    _poll_local(cluster, victim, during, "hints delivered to the returning node")
    wait_until(lambda: cluster.total("hints_delivered", range(3)) > 0, 10, "hints_delivered counted")
    for i in range(3):
        _read_all(cluster.c(i), expected)                # and readable after it returns, via any node


def test_quorum_failure_is_a_noquorum_reply_and_the_connection_stays_open(make_cluster) -> None:
    """DESIGN.md §5: with both peers of a 3-node cluster killed, a client GET and SET get
    `-NOQUORUM <what> reached 1 of 2 replicas` (writes: "may be stored"), on the quick paths
    (the peers still look alive) and on the general ones (detected down), and the same
    connection goes on serving."""
    cluster = make_cluster(3)
    client = cluster.c(0)
    assert client.set("k", "v") is True
    cluster.h.kill(1)
    cluster.h.kill(2)

    def expect_noquorum() -> None:
        with pytest.raises(redis.ResponseError) as write:
            client.set("k", "v2")
        assert str(write.value).startswith("NOQUORUM write reached 1 of 2 replicas; "
                                           "the value may be stored"), write.value
        with pytest.raises(redis.ResponseError) as read:
            client.get("k")
        assert str(read.value) == "NOQUORUM read reached 1 of 2 replicas", read.value
        assert client.ping() is True

    expect_noquorum()                                     # before the detector notices
    wait_until(lambda: cluster.nodes_up(0) == 1, 20, "both peers detected down")
    expect_noquorum()


# --- read repair ---------------------------------------------------------------------------------

def test_read_repair_fixes_a_stale_replica(make_cluster) -> None:
    cluster = make_cluster(3)
    keys = [f"rr:{i}".encode() for i in range(20)]
    _mset_each(cluster.c(0), {k: b"old" for k in keys})
    _poll_local(cluster, 2, {k: b"old" for k in keys}, "n2 holds the first version")

    cluster.partition([0, 1], [2])
    _mset_each(cluster.c(0), {k: b"new" for k in keys})  # W=2 on n0, n1; n2 misses it
    assert all(cluster.localget(2, k) == b"old" for k in keys), "n2 should be stale now"

    # Reconnect n1 <-> n2 only: the coordinator n0 (which holds the hints for n2) stays cut off
    # from n2, so only a read through n1 can repair n2.
    cluster.heal([1, 2])
    assert cluster.c(2).execute_command("DEBUG", "PARTITION", "n0") in (b"OK", "OK")
    assert cluster.c(0).execute_command("DEBUG", "PARTITION", "n2") in (b"OK", "OK")
    wait_until(lambda: cluster.nodes_up(1) == 3, 20, "n1 to see n2 up again")
    repairs_before = int(cluster.info(1)["read_repairs"])
    for key in keys:
        assert cluster.c(1).get(key) == b"new"

    def repaired_by_reads() -> bool:
        """Read the keys n2 still has stale through n1 again; done when none is left."""
        stale = [k for k in keys if cluster.localget(2, k) != b"new"]
        for key in stale:
            assert cluster.c(1).get(key) == b"new"
        return not stale

    wait_until(repaired_by_reads, 20, "reads through n1 repairing the stale replica n2")
    assert int(cluster.info(1)["read_repairs"]) > repairs_before
    cluster.heal([0, 1, 2])
    for i in range(3):
        assert cluster.c(i).mget(keys) == [b"new"] * len(keys)


# --- a hung node ------------------------------------------------------------------------------------

def test_sigstopped_node_is_detected_down_and_recovers(make_cluster) -> None:
    cluster = make_cluster(3)
    cluster.h.pause(2)
    try:
        wait_until(lambda: cluster.nodes_up(0) == 2 and cluster.nodes_up(1) == 2, 30,
                   "n0 and n1 to detect the paused n2 as down")
        items = {f"paused:{i}".encode(): f"p{i}".encode() for i in range(50)}
        _mset_each(cluster.c(0), items)
        _mset_each(cluster.c(1), {k: v + b"!" for k, v in items.items()})
        expected = {k: v + b"!" for k, v in items.items()}
        _read_all(cluster.c(0), expected)
    finally:
        cluster.h.resume(2)
    wait_until(lambda: all(cluster.nodes_up(i) == 3 for i in range(3)), 30, "every node sees all 3 up")
    _poll_local(cluster, 2, expected, "the resumed node catching up")
    _read_all(cluster.c(2), expected)


# --- partitions make siblings ------------------------------------------------------------------------

def _sibling_values(reply: list) -> list:
    context, siblings = reply
    return sorted((s[0] for s in siblings), key=lambda v: (v is None, v))


def test_partition_produces_siblings_that_a_joined_context_resolves(make_cluster) -> None:
    cluster = make_cluster(3, r=1, w=1)
    key = b"contested"
    cluster.partition([0, 1], [2])
    assert cluster.c(0).set(key, b"left") is True        # W=1: both sides accept a write
    assert cluster.c(2).set(key, b"right") is True
    cluster.heal([0, 1, 2])
    cluster.c(0).execute_command("REPAIR", key)
    for i in range(3):
        wait_until(lambda i=i: _sibling_values(cluster.localvclock(i, key)) == [b"left", b"right"], 30,
                   f"n{i} to hold both siblings")
    for i in range(3):
        assert _sibling_values(cluster.vclock(i, key)) == [b"left", b"right"]
    context, siblings = cluster.vclock(0, key)
    assert len({s[1] for s in siblings}) == 2, "concurrent siblings must carry different clocks"
    winners = {cluster.c(i).get(key) for i in range(3)}
    assert len(winners) == 1, f"nodes disagree on the winner: {winners}"
    newest = max(siblings, key=lambda s: s[2])
    if sum(s[2] == newest[2] for s in siblings) == 1:
        assert winners == {newest[0]}, f"GET must return the newest sibling: {siblings}"
    assert cluster.total("conflicts_detected", range(3)) > 0

    assert cluster.c(1).execute_command("SET", key, b"merged", "VCLOCK", context) in (True, b"OK", "OK")
    for i in range(3):
        wait_until(lambda i=i: _sibling_values(cluster.localvclock(i, key)) == [b"merged"], 30,
                   f"n{i} to resolve the siblings")
        assert cluster.c(i).get(key) == b"merged"


def test_stale_contexts_make_siblings_across_nodes(make_cluster) -> None:
    cluster = make_cluster(3)
    key = b"rmw"
    cluster.c(0).set(key, b"base")
    context, _ = cluster.vclock(1, key)
    cluster.c(1).execute_command("SET", key, b"from-n1", "VCLOCK", context)
    cluster.c(2).execute_command("SET", key, b"from-n2", "VCLOCK", context)   # did not see from-n1
    for i in range(3):
        assert _sibling_values(cluster.vclock(i, key)) == [b"from-n1", b"from-n2"]
    assert len({cluster.c(i).get(key) for i in range(3)}) == 1


# --- deletes stay deleted ----------------------------------------------------------------------------

def test_delete_does_not_come_back_through_hints_or_read_repair(make_cluster) -> None:
    cluster = make_cluster(3)
    keys = [f"del:{i}".encode() for i in range(10)]
    _mset_each(cluster.c(0), {k: b"alive" for k in keys})
    for i in range(3):
        _poll_local(cluster, i, {k: b"alive" for k in keys}, "every replica holds the value")

    cluster.partition([0, 1], [2])
    assert cluster.c(0).delete(*keys) == len(keys)
    assert all(cluster.localget(2, k) == b"alive" for k in keys), "n2 should still hold the value"
    cluster.heal([0, 1, 2])
    wait_until(lambda: all(cluster.nodes_up(i) == 3 for i in range(3)), 30, "cluster whole again")

    for key in keys:                                      # a read through the stale node: still gone
        assert cluster.c(2).get(key) is None
    _poll_local(cluster, 2, {k: None for k in keys}, "the tombstone reaching n2")
    for i in range(3):
        cluster.c(i).execute_command("REPAIR")
    for i in range(3):
        assert cluster.c(i).mget(keys) == [None] * len(keys)
        assert cluster.c(i).exists(*keys) == 0
        assert not [k for k in cluster.c(i).keys("del:*")]

    cluster.h.kill(2)                                     # and a restart does not resurrect it
    cluster.h.start(2)
    cluster.h.wait_ready(timeout_s=40)
    for i in range(3):
        assert cluster.c(i).mget(keys) == [None] * len(keys)
        assert all(cluster.localget(i, k) is None for k in keys)


# --- a lost disk (kv679) -----------------------------------------------------------------------------

def test_wiped_node_rejoins_without_data_loss_and_mints_fresh_dots(make_cluster) -> None:
    cluster = make_cluster(3)
    data = {f"kept:{i}".encode(): f"k{i}".encode() for i in range(100)}
    _mset_each(cluster.c(0), data)
    assert cluster.c(1).set(b"x", b"old") is True         # coordinated by n1: a dot of n1's actor
    _, siblings = cluster.vclock(1, b"x")
    old_actors = [a for a in _actors(siblings[0][1]) if a.split("@")[0] == "n1"]
    assert old_actors, f"n1 did not mint the dot of its own write: {siblings}"
    for i in range(3):
        _poll_local(cluster, i, {b"x": b"old"}, "the first x on every replica")

    cluster.h.kill(1)
    cluster.h.wipe(1)
    cluster.h.start(1)
    cluster.h.wait_ready(timeout_s=40)

    assert cluster.c(1).set(b"x", b"new") is True         # n1 writes again, from an empty disk
    for i in range(3):
        _, siblings = cluster.vclock(i, b"x")
        new = [s for s in siblings if s[0] == b"new"]
        assert new, f"n{i} lost the write of the wiped node (kv679): {siblings}"
        fresh = [a for a in _actors(new[0][1]) if a.split("@")[0] == "n1" and a not in old_actors]
        assert fresh, f"the wiped node reused its old actor {old_actors}: {new[0][1]!r}"
        assert cluster.c(i).get(b"x") == b"new"
    for i in range(3):
        _poll_local(cluster, i, {b"x": b"new"}, "the new x on every replica")

    for i in range(3):
        _read_all(cluster.c(i), data)                      # nobody's data was lost
    cluster.c(1).execute_command("REPAIR")
    _poll_local(cluster, 1, data, "anti-entropy refilling the wiped node", timeout_s=30)
    assert int(cluster.info(1)["repair_runs"]) >= 1


# --- bigger than N: forwarding and joining ----------------------------------------------------------

def test_five_nodes_key_outside_the_contacted_node_is_forwarded(make_cluster) -> None:
    cluster = make_cluster(5)
    items = {f"fwd:{i}".encode(): f"f{i}".encode() for i in range(40)}
    _mset_each(cluster.c(0), items)

    def holders(key: bytes, value: bytes) -> set[int]:
        return {i for i in range(5) if cluster.localget(i, key) == value}

    def placed_on_three(key: bytes, value: bytes) -> set[int] | None:
        nodes = holders(key, value)
        return nodes if len(nodes) == 3 else None

    placed = {key: wait_until(lambda k=key, v=value: placed_on_three(k, v), 20,
                              f"{key!r} stored on exactly N=3 nodes")
              for key, value in items.items()}
    elsewhere = [k for k in items if 0 not in placed[k]]
    assert elsewhere, "no key has a preference list without n0 (40 keys, 5 nodes, N=3?)"
    for i in range(5):
        _read_all(cluster.c(i), items)                      # every node serves every key

    for key in elsewhere:
        assert cluster.c(0).set(key, b"updated-via-n0") is True
        assert cluster.c(0).get(key) == b"updated-via-n0"
        for i in placed[key]:
            wait_until(lambda i=i, k=key: cluster.localget(i, k) == b"updated-via-n0", 10,
                       f"n{i} (a replica of {key!r}) to get the forwarded write")
        assert cluster.localget(0, key) is None, "n0 is not a replica: it must not store the key"
    counter = elsewhere[0]
    cluster.c(0).set(counter, 41)
    assert cluster.c(0).incr(counter) == 42
    assert cluster.c(3).get(counter) == b"42"
    assert cluster.c(0).delete(counter) == 1
    assert all(cluster.c(i).get(counter) is None for i in range(5))


def test_node_joining_a_running_cluster_gets_data_and_reads_stay_correct(make_cluster) -> None:
    cluster = make_cluster(4, start=[0, 1, 2])
    items = {f"join:{i}".encode(): f"j{i}".encode() for i in range(300)}
    _mset_each(cluster.c(0), items)

    cluster.h.start(3)
    cluster.h.wait_ready(timeout_s=40)
    for i in range(4):
        _read_all(cluster.c(i), items)
    # With 4 nodes and N=3 the newcomer is a primary for about 3/4 of the keys; its share is
    # streamed to it (DESIGN.md §5), so its own store fills up without any client traffic.
    wait_until(lambda: sum(cluster.localget(3, k) == v for k, v in items.items()) >= len(items) // 2,
               40, "the joining node to receive its ranges' data")
    more = {f"after-join:{i}".encode(): f"a{i}".encode() for i in range(100)}
    _mset_each(cluster.c(3), more)
    for i in range(4):
        _read_all(cluster.c(i), {**items, **more})


def _repair_fields(reply) -> dict:
    if isinstance(reply, dict):
        return {k.decode() if isinstance(k, bytes) else k: v for k, v in reply.items()}
    return {k.decode(): v for k, v in zip(reply[::2], reply[1::2])}


def test_after_a_partition_heals_repair_makes_every_replica_identical(make_cluster) -> None:
    cluster = make_cluster(3, r=1, w=1)
    cluster.partition([0, 1], [2])
    left = {f"left:{i}".encode(): f"l{i}".encode() for i in range(40)}
    right = {f"right:{i}".encode(): f"r{i}".encode() for i in range(40)}
    both = {f"both:{i}".encode(): None for i in range(10)}
    _mset_each(cluster.c(0), left)
    _mset_each(cluster.c(2), right)
    _mset_each(cluster.c(1), {k: b"from-left" for k in both})
    _mset_each(cluster.c(2), {k: b"from-right" for k in both})
    cluster.heal([0, 1, 2])
    wait_until(lambda: all(cluster.nodes_up(i) == 3 for i in range(3)), 30, "cluster whole again")

    reports = [_repair_fields(cluster.c(i).execute_command("REPAIR")) for i in range(3)]
    for report in reports:
        for field in ("peers", "ranges_compared", "ranges_differing", "keys_sent", "keys_received",
                      "bytes_sent", "bytes_received", "duration_ms"):
            assert int(report[field]) >= 0, (field, report)
        assert int(report["peers"]) == 2, report
    keys = [*left, *right, *both]

    def identical() -> bool:
        return all(cluster.localvclock(0, k)[1] == cluster.localvclock(i, k)[1] for k in keys for i in (1, 2))

    wait_until(identical, 30, "every replica of every key identical after REPAIR")
    for i in range(3):
        _read_all(cluster.c(i), {**left, **right})
        for key in both:
            assert _sibling_values(cluster.localvclock(i, key)) == [b"from-left", b"from-right"]


def test_delete_does_not_come_back_when_hints_arrive_in_any_order(make_cluster) -> None:
    """The value and the delete are both hinted for n2, by different coordinators."""
    cluster = make_cluster(3)
    keys = [f"hinted-del:{i}".encode() for i in range(10)]
    cluster.partition([0, 1], [2])
    _mset_each(cluster.c(0), {k: b"doomed" for k in keys})       # n0 keeps a hint of the value
    assert cluster.c(1).delete(*keys) == len(keys)               # n1 keeps a hint of the delete
    wait_until(lambda: int(cluster.info(0)["hints_pending"]) > 0 and int(cluster.info(1)["hints_pending"]) > 0,
               10, "hints for n2 kept on n0 (the value) and n1 (the delete)")
    cluster.heal([0, 1, 2])
    wait_until(lambda: cluster.total("hints_pending", range(3)) == 0, 30, "every hint delivered")
    for i in range(3):
        assert cluster.c(i).mget(keys) == [None] * len(keys)
        assert all(cluster.localget(i, k) is None for k in keys), f"a hint resurrected a key on n{i}"
        assert cluster.c(i).exists(*keys) == 0


def test_kill_9_mid_load_loses_no_acknowledged_write(make_cluster) -> None:
    """Writers on every node; one node is SIGKILLed while they run (its own clients included)."""
    cluster = make_cluster(3)
    victim = 1
    acked: list[tuple[bytes, bytes]] = []
    stop = threading.Event()

    def writer(node: int, tid: int) -> None:
        client = redis.Redis(host=HOST, port=cluster.h.port(node), socket_timeout=10, protocol=2)
        i = 0
        try:
            while not stop.is_set():
                key, value = f"load:{node}:{tid}:{i}".encode(), f"v{i}".encode() * 10
                if client.set(key, value) is True:
                    acked.append((key, value))
                i += 1
        except (redis.ConnectionError, redis.TimeoutError):
            pass                                          # its node died (victim's clients)
        except redis.ResponseError as error:             # e.g. NOQUORUM: not acknowledged, fine
            assert "NOQUORUM" in str(error), error
        finally:
            client.close()

    threads = [threading.Thread(target=writer, args=(node, t), daemon=True) for node in range(3) for t in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(acked) >= 600, 60, "600 acknowledged writes before the kill")
        cluster.h.kill(victim)
        mark = len(acked)
        wait_until(lambda: len(acked) >= mark + 600, 60, "600 more acknowledged writes after the kill")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    expected = dict(acked)
    for i in (0, 2):
        _read_all(cluster.c(i), expected)
    cluster.h.start(victim)
    cluster.h.wait_ready(timeout_s=40)
    _read_all(cluster.c(victim), expected)


# --- the peer port is closed to strangers ------------------------------------------------------------

def _closed_by_server(sock: socket.socket, timeout_s: float = 10.0) -> bool:
    sock.settimeout(timeout_s)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def test_cluster_secret_keeps_out_peers_without_the_proof(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster(3, extra=["--cluster-secret", "s3cret"])   # ready: peers proved it
    assert cluster.c(0).set(b"guarded", b"v") is True
    assert cluster.c(2).get(b"guarded") == b"v"

    for frames in ([b"AUTH", b"n1", b"00" * 32], [b"PUT", b"1", b"guarded", b"evil"], b"garbage\r\n"):
        sock = socket.create_connection((HOST, cluster.h.peer_port(0)), timeout=10)
        try:
            greeting = sock.recv(4096)
            assert greeting.startswith(b"*2\r\n$5\r\nHELLO\r\n"), greeting
            if isinstance(frames, list):
                payload = b"*%d\r\n" % len(frames) + b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in frames)
            else:
                payload = frames
            sock.sendall(payload)
            assert _closed_by_server(sock), "the peer port kept a connection that did not prove the secret"
        finally:
            sock.close()

    seeds = ",".join(f"{HOST}:{cluster.h.peer_port(i)}" for i in range(3))
    intruder = ClusterHarness(tmp_path / "intruder", size=1, extra_args=[
        *FAST, "--cluster-secret", "wrong", "--seeds", seeds, "--node-id", "intruder"])
    try:
        intruder.start_all()
        intruder.wait_ready(timeout_s=30)
        def refused() -> bool:
            return any("cluster secret" in line and "intruder" in line
                       for i in range(3) for line in cluster.h.log(i).splitlines())
        wait_until(refused, 30, "a cluster node to log that it refused the intruder's proof")
        for i in range(3):
            assert int(cluster.info(i)["cluster_nodes"]) == 3, cluster.info(i)
        assert int(intruder.client(0).info("cluster")["cluster_nodes_up"]) == 1
        assert cluster.c(1).get(b"guarded") == b"v"
    finally:
        intruder.kill_all()
