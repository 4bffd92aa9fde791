"""Two and three Clusters in one event loop over real sockets on 127.0.0.1: seeds join them,
gossip spreads membership, a stopped node is detected down, REMOVENODE takes it out."""

from __future__ import annotations

import asyncio
import socket

from cluster import versioning
from cluster.service import Cluster
from resp_kv.config import ClusterConfig
from tests.helpers.fake_network import MemoryStore
from tests.helpers.wait import until as _until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _nodes(count: int, secret: str | None = "s") -> list[Cluster]:
    ports = [_free_port() for _ in range(count)]
    seeds = tuple(f"127.0.0.1:{port}" for port in ports)
    return [Cluster(ClusterConfig(node_id=f"n{i}", advertise="127.0.0.1", peer_port=port,
                                  seeds=seeds, gossip_interval_ms=50, cluster_secret=secret,
                                  anti_entropy_interval_s=0),
                    MemoryStore(), {}) for i, port in enumerate(ports)]


def test_seeds_join_nodes_and_writes_replicate() -> None:
    async def scenario():
        nodes = _nodes(3)
        for node in nodes:
            await node.start()
        await _until(lambda: all(n.info()["cluster_nodes_up"] == 3 for n in nodes))
        assert not nodes[0].solo and nodes[0].info()["replicas"] == 3
        await nodes[0].put(b"k", b"v")
        assert versioning.winner(await nodes[2].get(b"k"), 0).value == b"v"
        await nodes[2].stop()
        await _until(lambda: nodes[0].info()["cluster_nodes_up"] == 2)
        await nodes[1].put(b"k2", b"v2")              # W=2 of the two live nodes
        await nodes[0].remove_node("n2")
        await _until(lambda: nodes[1].info()["cluster_nodes"] == 2)
        for node in nodes[:2]:
            await node.stop()
    asyncio.run(asyncio.wait_for(scenario(), 20))
