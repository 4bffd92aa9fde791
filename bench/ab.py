#!/usr/bin/env python3
"""A/B of two builds of resp-kv as 3-node clusters, alternated under the same redis-benchmark load.

    git worktree add /tmp/base <rev> && (cd /tmp/base && /work/main/.venv/bin/python setup.py -q build_ext --inplace)
    .venv/bin/python bench/ab.py /tmp/base . [--rounds 5] [--modes set:16:150000,get:1:50000]

Why: CPU time on this 2-core machine swings by tens of percent from minute to minute, so a change
is judged against its base in the same minutes: both clusters run at once, and every round runs
each mode on A then B (B then A in odd rounds). Reported: the median over rounds of CPU
microseconds per request summed over the three processes, and per process (node 0 coordinates:
redis-benchmark talks to it).

Each tree's nodes run with that tree as their working directory (`python -m resp_kv` puts it
first on sys.path; PYTHONPATH alone loses to it) and PYTHONPATH; the script checks in
/proc/PID/maps that every node mapped its own tree's compiled library, since an A/B of one build
against itself reads as "no change" and proves nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import run as bench  # noqa: E402

from tests.helpers import harness as harness_module  # noqa: E402
from tests.helpers.harness import ClusterHarness  # noqa: E402

DEFAULT_MODES = "set:16:150000,get:16:200000,set:1:40000,get:1:50000"


def start_cluster(tree: Path, workdir: Path, name: str) -> bench.Server:
    harness = ClusterHarness(workdir / name, size=3, n=3, r=2, w=2, fsync="everysec",
                             debug_commands=False, env={"PYTHONPATH": str(tree)})
    harness_module.REPO_ROOT = tree           # NodeProcess.start reads it: the nodes' cwd
    harness.start_all()
    harness.wait_ready(timeout_s=60)
    for i in range(3):
        with open(f"/proc/{harness.pid(i)}/maps") as f:
            libs = {line.split()[-1] for line in f if "_native__mypyc" in line}
        if not libs or not all(lib.startswith(str(tree) + "/") for lib in libs):
            harness.kill_all()
            raise SystemExit(f"{name}: node {i} runs {sorted(libs) or 'no compiled library'}, "
                             f"not {tree}")

    def stop() -> None:
        harness.kill_all()
    return bench.Server(name, harness.port(0), [harness.pid(i) for i in range(3)], stop)


def cpu_ticks(pid: int) -> int:
    return bench.cpu_ticks([pid])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="the base tree (built)")
    parser.add_argument("b", type=Path, help="the changed tree (built)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--modes", default=DEFAULT_MODES, help="test:pipeline:requests,...")
    args = parser.parse_args()
    modes = [(t, int(p), int(n)) for t, p, n in (m.split(":") for m in args.modes.split(","))]
    trees = {"A": args.a.resolve(), "B": args.b.resolve()}
    per_request: dict[tuple, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="resp-kv-ab-") as tmp:
        servers: dict[str, bench.Server] = {}
        try:
            for name, tree in trees.items():
                servers[name] = start_cluster(tree, Path(tmp), name)
            for server in servers.values():
                bench.redis_benchmark(server, "set", 16, 200_000)      # keys for the GETs
            for round_no in range(args.rounds):
                for test, pipeline, n in modes:
                    for name in ("A", "B") if round_no % 2 == 0 else ("B", "A"):
                        server = servers[name]
                        before = [cpu_ticks(pid) for pid in server.pids]
                        run = bench.redis_benchmark(server, test, pipeline, n)
                        after = [cpu_ticks(pid) for pid in server.pids]
                        per_request.setdefault((test, pipeline, name, "sum"), []).append(
                            run["cpu_us_per_req"])
                        for i, (b, a) in enumerate(zip(before, after)):
                            per_request.setdefault((test, pipeline, name, i), []).append(
                                (a - b) * 1e6 / bench.CLK_TCK / n)
                print(f"round {round_no + 1} done", flush=True)
        finally:
            bench.stop_servers(list(servers.values()))
    print(f"\nA = {trees['A']}\nB = {trees['B']}\n")
    print("| mode | process | A us/req | B us/req | B/A | A rounds | B rounds |")
    print("|---|---|---:|---:|---:|---|---|")
    for test, pipeline, _ in modes:
        for part in ("sum", 0, 1, 2):
            a = per_request[(test, pipeline, "A", part)]
            b = per_request[(test, pipeline, "B", part)]
            label = "all three" if part == "sum" else f"node {part}"
            print(f"| {test.upper()} -P {pipeline} | {label} | {statistics.median(a):.2f} | "
                  f"{statistics.median(b):.2f} | {statistics.median(b) / statistics.median(a):.3f} "
                  f"| {' '.join(f'{v:.1f}' for v in a)} | {' '.join(f'{v:.1f}' for v in b)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
