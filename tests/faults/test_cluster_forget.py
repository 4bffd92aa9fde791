"""CLUSTER FORGET: an operator removes a dead node for good; the ring shrinks on every node."""

from __future__ import annotations

import pytest
import redis

from tests.helpers.harness import ClusterHarness
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.fault, pytest.mark.integration]

FAST = ("--gossip-interval-ms", "200", "--request-timeout-ms", "500")


def _cluster_field(client: redis.Redis, name: str) -> int:
    return int(client.info("cluster")[name])


def test_cluster_forget_removes_a_dead_node_from_every_ring(tmp_path) -> None:
    with ClusterHarness(tmp_path, size=4, n=3, r=2, w=2, extra_args=FAST) as cluster:
        cluster.up()
        victim = cluster.node_id(3)
        cluster.kill(3)
        wait_until(lambda: _cluster_field(cluster.client(0), "cluster_nodes_up") == 3,
                   timeout_s=20, what="node 3 detected down")
        assert _cluster_field(cluster.client(0), "cluster_nodes") == 4   # down != removed

        assert cluster.client(0).execute_command("CLUSTER", "FORGET", victim) == b"OK"

        for i in range(3):
            wait_until(lambda i=i: _cluster_field(cluster.client(i), "cluster_nodes") == 3,
                       timeout_s=20, what=f"node {i} forgot {victim}")
        # With the dead node gone, every key again has N=3 live primaries: writes and reads work.
        for n in range(50):
            assert cluster.client(n % 3).set(f"after-forget-{n}", n) is True
        for n in range(50):
            assert cluster.client((n + 1) % 3).get(f"after-forget-{n}") == str(n).encode()


def test_cluster_forget_refuses_unknown_node_and_other_subcommands_match_redis(tmp_path) -> None:
    with ClusterHarness(tmp_path, size=1) as node:
        node.up()
        client = node.client(0)
        with pytest.raises(redis.ResponseError):
            client.execute_command("CLUSTER", "FORGET", "no-such-node")
        with pytest.raises(redis.ResponseError, match="cluster support disabled"):
            client.execute_command("CLUSTER", "SLOTS")
        assert client.ping() is True
