"""redis-benchmark, Redis's own load generator, completes against resp-kv with no error lines.

Not a performance test (bench/run.py measures that): it proves the commands redis-benchmark
sends, including its start-up probes (CONFIG GET save/appendonly) and MSET with 10 keys, work
under 50 concurrent connections on one node and through a coordinator of a 3-node cluster.
"""

from __future__ import annotations

import re
import subprocess

import pytest

pytestmark = pytest.mark.integration

_ERROR = re.compile(r"error|\bERR\b|WARNING|could not|NOQUORUM|refused|reset", re.IGNORECASE)


def run_benchmark(tools: dict[str, str], port: int, tests: str, n: int) -> list[str]:
    """Run redis-benchmark -q; return its result lines, failing on any error line."""
    result = subprocess.run(
        [tools["redis-benchmark"], "-h", "127.0.0.1", "-p", str(port), "-t", tests, "-n", str(n), "-q"],
        capture_output=True, timeout=240)
    text = (result.stdout + result.stderr).decode(errors="replace")
    # -q redraws a progress line with \r; the final state of each line is after the last \r.
    lines = [line.rsplit("\r", 1)[-1].strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    errors = [line for line in lines if _ERROR.search(line)]
    assert result.returncode == 0, text
    assert not errors, "\n".join(errors)
    return lines


def results_by_test(lines: list[str]) -> dict[str, float]:
    found = {}
    for line in lines:
        match = re.match(r"^(.+?): ([\d.]+) requests per second", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def test_redis_benchmark_single_node(node, redis_tools):
    lines = run_benchmark(redis_tools, node.port(), "set,get,incr,mset,ping", 20000)
    found = results_by_test(lines)
    for name in ("PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET (10 keys)"):
        assert found.get(name, 0) > 0, f"no result for {name}: {lines}"
    assert int(node.client().get("counter:__rand_int__")) == 20000  # every INCR applied once


@pytest.mark.slow
def test_redis_benchmark_through_a_cluster_coordinator(cluster3, redis_tools):
    lines = run_benchmark(redis_tools, cluster3.port(0), "set,get", 20000)
    found = results_by_test(lines)
    assert found.get("SET", 0) > 0 and found.get("GET", 0) > 0, lines
    value = cluster3.client(1).get("key:__rand_int__")       # written through n0, read through n1
    assert value is not None and len(value) == 3, value        # redis-benchmark's default -d 3
