"""Expired keys read as missing at once and are purged from storage by compaction; on a single
node (no other replica to wait for) tombstones go too. Observed on the node's own record with
DEBUG LOCALVCLOCK, which shows stored siblings whether or not they are live."""

from __future__ import annotations

import pytest

from tests.helpers.harness import ClusterHarness
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration


def _stored_siblings(client, key: str) -> list:
    context, siblings = client.execute_command("DEBUG", "LOCALVCLOCK", key)
    return siblings


def test_expired_values_and_tombstones_are_purged_by_compaction(tmp_path) -> None:
    with ClusterHarness(tmp_path, size=1) as node:
        node.up()
        client = node.client(0)
        client.set("short-lived", "v", px=100)
        client.set("deleted", "v")
        client.delete("deleted")
        client.set("kept", "v")
        client.set("kept-with-ttl", "v", ex=3600)

        wait_until(lambda: client.get("short-lived") is None, timeout_s=10, what="key to expire")
        assert client.exists("short-lived") == 0 and client.pttl("short-lived") == -2
        # Before compaction the expired value and the tombstone are still stored.
        assert _stored_siblings(client, "short-lived") != []
        assert _stored_siblings(client, "deleted") != []

        assert client.execute_command("DEBUG", "COMPACT") in (b"OK", "OK", True)

        assert _stored_siblings(client, "short-lived") == []
        assert _stored_siblings(client, "deleted") == []
        assert client.get("kept") == b"v"
        assert client.get("kept-with-ttl") == b"v" and client.ttl("kept-with-ttl") > 3500
        assert client.dbsize() == 2
