"""A real node's row cache: repeated GETs of flushed keys are answered from it (INFO storage
row_cache_hits), and no overwrite, delete, expiry or compaction is ever hidden by it."""

from __future__ import annotations

import pytest

from tests.helpers.harness import ClusterHarness
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration


def _hits(client) -> int:
    return int(client.info("storage")["row_cache_hits"])


def test_flushed_keys_are_read_from_the_row_cache_and_never_go_stale(tmp_path) -> None:
    with ClusterHarness(tmp_path, size=1) as node:
        node.up()
        client = node.client(0)
        for i in range(50):
            client.set(f"k{i}", f"v{i}")
        client.set("soon-gone", "v", px=3000)
        assert client.execute_command("DEBUG", "COMPACT") in (b"OK", "OK", True)  # into a table

        assert client.get("soon-gone") == b"v"             # cached while live
        before = _hits(client)
        for _ in range(2):
            assert [client.get(f"k{i}") for i in range(50)] == [b"v%d" % i for i in range(50)]
        assert _hits(client) >= before + 50                  # the second pass hit the cache
        assert int(client.info("storage")["row_cache_bytes"]) > 0

        client.set("k0", "new")
        client.delete("k1")
        assert client.get("k0") == b"new" and client.get("k1") is None
        assert client.execute_command("DEBUG", "COMPACT") in (b"OK", "OK", True)
        assert client.get("k0") == b"new" and client.get("k1") is None
        assert client.get("k0") == b"new" and client.exists("k1") == 0

        # A cached record still expires: expiry is read from it at every GET.
        wait_until(lambda: client.get("soon-gone") is None, timeout_s=10, what="key to expire")
        assert client.get("soon-gone") is None and client.exists("soon-gone") == 0
