"""Pipelines through a cluster node: commands that wait for quorum run concurrently, yet every
reply comes back in order and a command sees every earlier command of its pipeline on its key."""

from __future__ import annotations

import random

import pytest

from tests.helpers.harness import ClusterHarness

pytestmark = [pytest.mark.fault, pytest.mark.integration]


def test_pipelined_quorum_commands_keep_order_and_read_your_writes(tmp_path) -> None:
    with ClusterHarness(tmp_path, size=3, n=3, r=2, w=2) as cluster:
        cluster.up()
        rng = random.Random(7)
        model: dict[str, int] = {}
        pipe = cluster.client(1).pipeline(transaction=False)
        expected: list[object] = []
        for _ in range(3000):                   # few keys, so commands on one key interleave
            key = f"k{rng.randrange(40)}"
            op = rng.choice(("set", "incr", "get", "del", "exists", "dbsize"))
            if op == "set":
                value = rng.randrange(1000)
                pipe.set(key, value)
                model[key] = value
                expected.append(True)
            elif op == "incr":
                pipe.incr(key)
                model[key] = model.get(key, 0) + 1
                expected.append(model[key])
            elif op == "get":
                pipe.get(key)
                expected.append(None if key not in model else str(model[key]).encode())
            elif op == "del":
                pipe.delete(key)
                expected.append(1 if model.pop(key, None) is not None else 0)
            elif op == "exists":
                pipe.exists(key)
                expected.append(1 if key in model else 0)
            else:
                pipe.dbsize()                   # keyless: orders against everything before it
                expected.append(len(model))
        assert pipe.execute() == expected
        # Every node agrees afterwards (W=2 plus background delivery to the third replica).
        for i in range(3):
            client = cluster.client(i)
            assert {k: int(v) for k, v in zip(model, client.mget(list(model)))} == model
