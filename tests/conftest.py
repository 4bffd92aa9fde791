"""Shared fixtures: real resp-kv nodes (`node`, `cluster3`), the Redis tools, and a per-test timeout.

Import helpers as `from tests.helpers.harness import ClusterHarness` and
`from tests.helpers.wait import wait_until` (the repo root is put on sys.path here).

Per-test timeout without a plugin: SIGALRM fires after RESP_KV_TEST_TIMEOUT_S seconds (default
300; 0 disables), dumps every thread's stack and fails the test; the fixtures' teardown then
kills the node processes by pid as usual.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from resp_kv import native  # noqa: E402
from tests.helpers.harness import ClusterHarness  # noqa: E402

# A source edited after its module was compiled would be tested as the old compiled code.
if native.stale():
    raise pytest.UsageError("compiled modules older than their sources: "
                            + ", ".join(native.stale()) + " (run `make test`)")

REDIS_TOOLS = ("redis-cli", "redis-benchmark")
_TIMEOUT_S = float(os.environ.get("RESP_KV_TEST_TIMEOUT_S", "300"))


class DeadlineExceeded(Exception):
    """Raised in the main thread when a test runs past RESP_KV_TEST_TIMEOUT_S."""


def _on_alarm(signum, frame) -> None:
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    raise DeadlineExceeded(f"test exceeded {_TIMEOUT_S:g}s (RESP_KV_TEST_TIMEOUT_S)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    armed = _TIMEOUT_S > 0 and hasattr(signal, "SIGALRM")
    if armed:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, _TIMEOUT_S)
    try:
        yield
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ClusterHarness]:
    """One resp-kv node (a cluster of one), ready; use node.client(), node.port(), node.kill(0)..."""
    with ClusterHarness(tmp_path, size=1) as harness:
        yield harness.up(timeout_s=20)


@pytest.fixture(scope="module")
def kv(tmp_path_factory) -> Iterator[ClusterHarness]:
    """One resp-kv node shared by a whole test module (for tests that do not restart it)."""
    with ClusterHarness(tmp_path_factory.mktemp("node"), size=1) as harness:
        yield harness.up(timeout_s=30)


@pytest.fixture
def cluster3(tmp_path: Path) -> Iterator[ClusterHarness]:
    """Three resp-kv nodes, N=3 R=2 W=2, every node seeing the other two up."""
    with ClusterHarness(tmp_path, size=3, n=3, r=2, w=2) as harness:
        yield harness.up(timeout_s=30)


@pytest.fixture(scope="session")
def redis_tools() -> dict[str, str]:
    """Paths of redis-cli and redis-benchmark. `make test` installs them; missing is an error."""
    paths = {tool: shutil.which(tool) for tool in REDIS_TOOLS}
    missing = [tool for tool, path in paths.items() if path is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not on PATH: run `make test` (it installs Debian "
                    f"redis-tools) or `apt-get install redis-tools`", pytrace=False)
    return paths  # type: ignore[return-value]
