"""Instructions per request of a live server under redis-benchmark, counted by callgrind.

    .venv/bin/python bench/callgrind_live.py set 1                 # one resp-kv node, SET -P 1
    .venv/bin/python bench/callgrind_live.py get 1 --cluster       # 3 nodes, node 0 counted
    .venv/bin/python bench/callgrind_live.py set 1 --cluster --node 1   # ... a replica counted
    .venv/bin/python bench/callgrind_live.py set 1 --redis         # redis-server (AOF everysec)

Why: CPU time on this shared 2-core machine swings by tens of percent from run to run (the
reference redis-server's too), while instruction counts repeat. `bench/hotpath.py` counts the
command path in process; this counts everything a real process does for a request (uvloop,
the kernel interface, the per-iteration WAL write and reply release, a cluster's peer traffic),
under the same redis-benchmark load as `bench/run.py`: `-c 50 -d 100 -r 100000`.

Method: the counted process runs under `valgrind --tool=callgrind` (the others natively);
after a warm-up (`--warmup` SETs at -P 16, so that most GETs hit and most SETs overwrite) the
counters are zeroed (`callgrind_control -z`), `-n` requests run, the counts are dumped
(`callgrind_control -d`) and divided by `-n`. The dump is kept for `callgrind_annotate`
(its path is printed). Valgrind slows the process ~50x, so a loop iteration serves more
clients than it would natively: per-iteration costs (a WAL write, a peer batch) are spread a
little thinner than in `bench/run.py`. User-space instructions only: the kernel's share is not
counted (compare CPU time for that).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.harness import ClusterHarness  # noqa: E402
from tests.helpers.ports import free_port  # noqa: E402


def _redis_benchmark(port: int, test: str, pipeline: int, n: int) -> None:
    subprocess.run(["redis-benchmark", "-p", str(port), "-t", test, "-c", "50", "-d", "100",
                    "-r", "100000", "-P", str(pipeline), "-n", str(n), "-q"],
                   check=True, capture_output=True)


def _wait_ping(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                          text=True).stdout.strip() == "PONG":
            return
        time.sleep(0.2)
    raise SystemExit(f"no PONG on port {port} within {timeout_s} s")


def _total(dump: str) -> int:
    out = subprocess.run(["callgrind_annotate", dump], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "PROGRAM TOTALS" in line:
            return int(line.split()[0].replace(",", ""))
    raise SystemExit(f"no totals in {dump}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test", choices=("set", "get"))
    parser.add_argument("pipeline", type=int)
    parser.add_argument("-n", type=int, default=10_000, help="requests counted")
    parser.add_argument("--warmup", type=int, default=400_000, help="SETs at -P 16 before")
    parser.add_argument("--cluster", action="store_true", help="3 nodes, N=3 W=2 R=2")
    parser.add_argument("--node", type=int, default=0, help="which cluster node to count")
    parser.add_argument("--redis", action="store_true", help="count redis-server instead")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "redis-benchmark"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (apt-get install valgrind redis-tools)")

    work = Path(tempfile.mkdtemp(prefix="callgrind-live-"))
    dump = str(work / "callgrind.out")
    grind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}"]
    harness = process = None
    try:
        if args.cluster:
            harness = ClusterHarness(work / "cluster", size=3, n=3, r=2, w=2, fsync="everysec",
                                     debug_commands=False)
            harness.nodes[args.node].args = grind + harness.nodes[args.node].args
            harness.start_all()
            harness.wait_ready(timeout_s=300)
            port, pid = harness.port(0), harness.pid(args.node)
        else:
            port = free_port()
            if args.redis:
                command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir",
                           str(work), "--appendonly", "yes", "--appendfsync", "everysec",
                           "--save", ""]
            else:
                command = [sys.executable, "-m", "resp_kv", "--port", str(port), "--peer-port",
                           str(free_port()), "--bind", "127.0.0.1", "--data-dir",
                           str(work / "data"), "--fsync", "everysec"]
            process = subprocess.Popen(grind + command, cwd=ROOT, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            pid = process.pid
            _wait_ping(port, 300)
        _redis_benchmark(port, "set", 16, args.warmup)
        subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
        _redis_benchmark(port, args.test, args.pipeline, args.n)
        subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    finally:
        if harness is not None:
            harness.kill_all()
        if process is not None:
            process.kill()
            process.wait()
    dumps = sorted(glob.glob(dump + ".*"), key=os.path.getmtime)   # the -d dump: out.<pid>.1
    counted = dumps[-1] if dumps else dump
    who = "redis-server" if args.redis else (f"cluster node {args.node}" if args.cluster
                                             else "resp-kv")
    print(f"{who} {args.test.upper()} -P {args.pipeline}: "
          f"{_total(counted) // args.n} instructions per request ({counted})")


if __name__ == "__main__":
    main()
