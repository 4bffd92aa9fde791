"""Starting and stopping a node: clear exits for a busy port or a data dir already in use,
and SIGTERM shuts down gracefully with exit 0 keeping every acknowledged write."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.helpers.harness import ClusterHarness
from tests.helpers.ports import free_ports

pytestmark = pytest.mark.integration


def _run_node(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resp_kv", "--bind", "127.0.0.1", *args],
                          capture_output=True, text=True, timeout=timeout_s)


def test_node_exits_1_naming_the_address_when_the_port_is_taken(tmp_path) -> None:
    port, peer_port = free_ports(2, "127.0.0.1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = _run_node("--port", str(port), "--peer-port", str(peer_port),
                           "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 1
    assert "cannot start" in result.stderr and str(port) in result.stderr


def test_second_node_on_the_same_data_dir_exits_3_and_the_first_keeps_serving(tmp_path) -> None:
    with ClusterHarness(tmp_path, size=1) as node:
        node.up()
        node.client(0).set("k", "v")
        port, peer_port = free_ports(2, "127.0.0.1")
        result = _run_node("--port", str(port), "--peer-port", str(peer_port),
                           "--data-dir", str(node.data_dir(0)))
        assert result.returncode == 3
        assert "locked by another resp-kv process" in result.stderr
        assert node.client(0).get("k") == b"v"


def test_sigterm_exits_0_and_keeps_every_write(tmp_path) -> None:
    with ClusterHarness(tmp_path, size=1) as node:
        node.up()
        client = node.client(0)
        pipe = client.pipeline(transaction=False)
        for i in range(5000):
            pipe.set(f"key:{i}", i)
        pipe.execute()
        node.stop(0)                                  # SIGTERM; the harness asserts exit 0
        node.start(0)
        node.wait_ready()
        values = node.client(0).mget([f"key:{i}" for i in range(5000)])
        assert values == [str(i).encode() for i in range(5000)]


def test_shutdown_command_stops_the_node_gracefully_like_redis(tmp_path) -> None:
    with ClusterHarness(tmp_path, size=1) as node:
        node.up()
        client = node.client(0)
        client.set("k", "v")
        client.shutdown()            # redis-py: success is the server closing without a reply
        process = node.nodes[0].popen
        assert process.wait(timeout=30) == 0
        node.start(0)
        node.wait_ready()
        assert node.client(0).get("k") == b"v"
