#!/usr/bin/env python3
"""resp-kv against a real redis-server, in one run, with redis-benchmark as the load generator.

Servers (all on loopback, all started and stopped here by pid):

    redis-aof   redis-server --appendonly yes --appendfsync everysec --save ""   (the reference)
    redis-mem   redis-server --appendonly no --save ""                        (pure memory)
    resp-kv     one node, --fsync everysec
    resp-kv-3   three nodes, N=3 W=2 R=2, --fsync everysec; load through node 0, CPU of all three

Method: for each round (3 by default), for each pipeline depth (-P 1, -P 16), for each test
(SET, GET), every server in turn (interleaved, so drifting machine load hits all of them alike):
`redis-benchmark -t TEST -c 50 -d 100 -r 100000 -P DEPTH -n N --csv`. N is calibrated per
server/test/depth by a warm-up run so each measured run lasts about --seconds. Around every run
we read utime+stime of each server process from /proc/PID/stat: CPU microseconds per request =
delta CPU / N. Reported: medians over the rounds of rps, p50, p99 and CPU/request.

Memory: fresh servers, 1M SETs of 100-byte values (`mem:%07d`) sent by `redis-cli --pipe`;
DBSIZE checked; then VmRSS from /proc/PID/status of each server process. The 3-node cluster is
loaded too only with --cluster-memory (each key is written to all three nodes: slow).

Targets, as ratios (redis-aof CPU per request / resp-kv CPU per request; higher is better):
single node SET and GET >= 0.7 at -P1 and >= 0.5 at -P16; 3-node cluster >= 0.4 at -P1 and
>= 0.3 at -P16; resp-kv RSS for 1M keys <= 2x redis-aof's.

Output: a markdown table on stdout and bench/results/bench-<utc time>.json.
Usage: bench/run.py [--quick] [--rounds 3] [--seconds 2.5] [--keys 1000000] [--no-cluster]
                    [--no-memory] [--cluster-memory] [--warmup 5000] [--out bench/results]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import redis  # noqa: E402

from tests.helpers.harness import ClusterHarness  # noqa: E402
from tests.helpers.ports import free_port  # noqa: E402
from tests.helpers.wait import wait_until  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
TESTS = ("set", "get")
PIPELINES = (1, 16)
CLIENTS, DATA_BYTES, KEYSPACE = 50, 100, 100_000
REFERENCE = "redis-aof"
TARGETS = {  # (server, pipeline) -> minimum of reference CPU/request over resp-kv CPU/request
    ("resp-kv", 1): 0.7, ("resp-kv", 16): 0.5, ("resp-kv-3", 1): 0.4, ("resp-kv-3", 16): 0.3}
RSS_TARGET = 2.0  # resp-kv RSS / redis-aof RSS, at most


# -- servers -------------------------------------------------------------------------------------
@dataclass
class Server:
    """A running server: the port redis-benchmark talks to and the pids whose CPU we count."""

    name: str
    port: int
    pids: list[int]
    stop: object = field(repr=False)   # callable: stops every process by pid


def stop_process(proc: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM `proc` by its pid; SIGKILL if it has not exited within `timeout_s`."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def start_redis(name: str, workdir: Path, aof: bool) -> Server:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        sys.exit("redis-server not found: `make bench` installs Debian's redis-server")
    port = free_port()
    data = workdir / name
    data.mkdir(parents=True, exist_ok=True)
    args = [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(data),
            "--daemonize", "no", "--appendonly", "yes" if aof else "no"]
    if aof:
        args += ["--appendfsync", "everysec"]
    log = open(data / "redis.log", "wb")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)

    def stop() -> None:
        stop_process(proc)
        log.close()

    def pong() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {(data / 'redis.log').read_text()}")
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) as client:
            return client.ping()

    try:
        wait_until(pong, 20, f"{name} PONG")
    except BaseException:
        stop()
        raise
    return Server(name, port, [proc.pid], stop)


def start_resp_kv(name: str, workdir: Path, size: int) -> Server:
    harness = ClusterHarness(workdir / name, size=size, n=3, r=2, w=2, fsync="everysec",
                             debug_commands=False)

    def stop() -> None:
        try:
            for i in range(size):
                if harness.nodes[i].running:
                    harness.stop(i)
        finally:
            harness.kill_all()

    try:
        harness.start_all()
        harness.wait_ready(timeout_s=60)
    except BaseException:
        stop()
        raise
    return Server(name, harness.port(0), [harness.pid(i) for i in range(size)], stop)


def start_servers(workdir: Path, with_cluster: bool) -> list[Server]:
    servers: list[Server] = []
    try:
        servers.append(start_redis("redis-aof", workdir, aof=True))
        servers.append(start_redis("redis-mem", workdir, aof=False))
        servers.append(start_resp_kv("resp-kv", workdir, size=1))
        if with_cluster:
            servers.append(start_resp_kv("resp-kv-3", workdir, size=3))
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: list[Server]) -> None:
    for server in servers:
        try:
            server.stop()
        except Exception as error:  # noqa: BLE001 - keep stopping the others
            print(f"warning: stopping {server.name}: {error}", file=sys.stderr)


# -- measurement ---------------------------------------------------------------------------------
def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of all the processes, in clock ticks (all threads included)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])   # fields 14 and 15 of proc(5)
    return total


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def redis_benchmark(server: Server, test: str, pipeline: int, requests: int) -> dict:
    """One redis-benchmark run; returns rps, latencies and CPU microseconds per request."""
    args = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(server.port), "-t", test,
            "-c", str(CLIENTS), "-d", str(DATA_BYTES), "-r", str(KEYSPACE), "-P", str(pipeline),
            "-n", str(requests), "--csv"]
    before, started = cpu_ticks(server.pids), time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    elapsed_s, after = time.monotonic() - started, cpu_ticks(server.pids)
    csv_text = result.stdout[result.stdout.find('"test"'):] if '"test"' in result.stdout else ""
    rows = [row for row in csv.DictReader(io.StringIO(csv_text)) if row.get("test")]
    if result.returncode != 0 or len(rows) != 1:
        raise RuntimeError(f"redis-benchmark {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    row = rows[0]
    return {
        "server": server.name, "test": test.upper(), "pipeline": pipeline, "requests": requests,
        "elapsed_s": round(elapsed_s, 3), "rps": float(row["rps"]),
        "avg_ms": float(row["avg_latency_ms"]), "p50_ms": float(row["p50_latency_ms"]),
        "p99_ms": float(row["p99_latency_ms"]), "max_ms": float(row["max_latency_ms"]),
        "cpu_us_per_req": (after - before) * 1e6 / CLK_TCK / requests,
    }


def calibrate(servers: list[Server], seconds: float, warmup_n: int) -> dict[tuple, int]:
    """Warm every server up and pick -n per (server, test, pipeline) for runs of ~`seconds`."""
    sizes = {}
    for pipeline in PIPELINES:
        for test in TESTS:
            for server in servers:
                rps = redis_benchmark(server, test, pipeline, warmup_n)["rps"]
                sizes[(server.name, test, pipeline)] = max(warmup_n, int(rps * seconds) // 1000 * 1000)
                print(f"  warm-up {server.name:10} {test.upper():4} -P{pipeline:<3} {rps:>10.0f} rps",
                      flush=True)
    return sizes


def run_rounds(servers: list[Server], sizes: dict[tuple, int], rounds: int) -> list[dict]:
    runs = []
    for round_no in range(1, rounds + 1):
        for pipeline in PIPELINES:
            for test in TESTS:
                for server in servers:
                    run = redis_benchmark(server, test, pipeline, sizes[(server.name, test, pipeline)])
                    run["round"] = round_no
                    runs.append(run)
                    print(f"  round {round_no} {server.name:10} {run['test']:4} -P{pipeline:<3}"
                          f"{run['rps']:>10.0f} rps  p50 {run['p50_ms']:.3f}  p99 {run['p99_ms']:.3f} ms"
                          f"  {run['cpu_us_per_req']:.2f} us/req", flush=True)
    return runs


def summarize(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["server"], run["test"], run["pipeline"]), []).append(run)
    return [{"server": s, "test": t, "pipeline": p, "rounds": len(rs),
             **{k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")}}
            for (s, t, p), rs in groups.items()]


# -- memory --------------------------------------------------------------------------------------
def write_load_file(path: Path, keys: int) -> None:
    value = b"v" * DATA_BYTES
    with open(path, "wb") as f:
        for start in range(0, keys, 10_000):
            f.write(b"".join(b"*3\r\n$3\r\nSET\r\n$11\r\nmem:%07d\r\n$%d\r\n%s\r\n" % (i, DATA_BYTES, value)
                             for i in range(start, min(keys, start + 10_000))))


def measure_rss(workdir: Path, keys: int, with_cluster: bool) -> list[dict]:
    load_file = workdir / "load.resp"
    write_load_file(load_file, keys)
    servers = start_servers(workdir / "rss", with_cluster)
    # The cluster writes every key on 3 nodes through one coordinator: opt-in (--cluster-memory).
    results = []
    try:
        for server in servers:
            empty = [rss_bytes(pid) for pid in server.pids]
            started = time.monotonic()
            with open(load_file, "rb") as stdin:
                pipe = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(server.port), "--pipe"],
                                      stdin=stdin, capture_output=True, text=True, timeout=900)
            load_s = time.monotonic() - started
            if pipe.returncode != 0 or f"errors: 0, replies: {keys}" not in pipe.stdout:
                raise RuntimeError(f"loading {server.name} failed: {pipe.stdout} {pipe.stderr}")
            with redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=60) as client:
                dbsize = client.dbsize()
            loaded = [rss_bytes(pid) for pid in server.pids]
            if dbsize != keys:
                print(f"  WARNING: {server.name} DBSIZE {dbsize} after {keys} acknowledged SETs", flush=True)
            results.append({"server": server.name, "keys": keys, "dbsize": dbsize, "load_s": round(load_s, 2),
                            "rss_empty_bytes": empty, "rss_bytes": loaded, "rss_max_bytes": max(loaded)})
            print(f"  {server.name:10} {keys} keys in {load_s:.1f}s, dbsize {dbsize}, "
                  f"RSS {', '.join(f'{r / 2**20:.0f}' for r in loaded)} MiB", flush=True)
    finally:
        stop_servers(servers)
    return results


# -- report --------------------------------------------------------------------------------------
def ratios(summary: list[dict], memory: list[dict]) -> list[dict]:
    by = {(s["server"], s["test"], s["pipeline"]): s for s in summary}
    out = []
    for (server, pipeline), target in TARGETS.items():
        for test in ("SET", "GET"):
            ref, ours = by.get((REFERENCE, test, pipeline)), by.get((server, test, pipeline))
            if not ref or not ours:
                continue
            value = ref["cpu_us_per_req"] / ours["cpu_us_per_req"] if ours["cpu_us_per_req"] else float("inf")
            out.append({"metric": f"CPU/req {REFERENCE}/{server} {test} -P{pipeline}", "value": value,
                        "target": f">= {target}", "ok": value >= target,
                        "rps_ratio": ours["rps"] / ref["rps"]})
    mem = {m["server"]: m for m in memory}
    if REFERENCE in mem:
        for server in ("resp-kv", "resp-kv-3"):
            if server in mem:
                value = mem[server]["rss_max_bytes"] / mem[REFERENCE]["rss_max_bytes"]
                out.append({"metric": f"RSS {server}/{REFERENCE} ({mem[server]['keys']} keys"
                                      f"{', largest node' if server == 'resp-kv-3' else ''})",
                            "value": value, "target": f"<= {RSS_TARGET}" if server == "resp-kv" else "(info)",
                            "ok": value <= RSS_TARGET if server == "resp-kv" else None})
    return out


def markdown(summary: list[dict], memory: list[dict], checks: list[dict]) -> str:
    lines = ["| server | test | -P | rps | p50 ms | p99 ms | CPU us/req |", "|---|---|---:|---:|---:|---:|---:|"]
    for s in sorted(summary, key=lambda s: (s["pipeline"], s["test"] != "SET", s["server"])):
        lines.append(f"| {s['server']} | {s['test']} | {s['pipeline']} | {s['rps']:,.0f} | {s['p50_ms']:.3f} "
                     f"| {s['p99_ms']:.3f} | {s['cpu_us_per_req']:.2f} |")
    if memory:
        lines += ["", "| server | keys | load s | RSS MiB (per process) |", "|---|---:|---:|---|"]
        for m in memory:
            lines.append(f"| {m['server']} | {m['keys']:,} | {m['load_s']} | "
                         f"{', '.join(f'{r / 2**20:.0f}' for r in m['rss_bytes'])} |")
    lines += ["", "| ratio | value | target | met | rps resp-kv/redis |", "|---|---:|---|---|---:|"]
    for c in checks:
        met = {True: "yes", False: "**no**", None: ""}[c["ok"]]
        rps = f"{c['rps_ratio']:.2f}" if "rps_ratio" in c else ""
        lines.append(f"| {c['metric']} | {c['value']:.2f} | {c['target']} | {met} | {rps} |")
    return "\n".join(lines)


def versions() -> dict:
    def first_line(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"
    return {"redis-server": first_line("redis-server", "--version"),
            "redis-benchmark": first_line("redis-benchmark", "--version"),
            "python": platform.python_version(), "cpus": os.cpu_count(), "kernel": platform.release()}


def main() -> int:
    parser = argparse.ArgumentParser(description="resp-kv vs redis-server benchmark (see module docstring)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, short runs, 100k keys")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.5, help="target length of one measured run")
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys loaded for the RSS measurement")
    parser.add_argument("--no-cluster", action="store_true", help="skip the 3-node cluster")
    parser.add_argument("--no-memory", action="store_true", help="skip the RSS measurement")
    parser.add_argument("--cluster-memory", action="store_true",
                        help="also load the 3-node cluster for RSS (slow: every key goes to 3 nodes)")
    parser.add_argument("--warmup", type=int, default=5_000, help="requests in each calibration run")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.keys = 1, 0.5, min(args.keys, 100_000)
    for tool in ("redis-server", "redis-benchmark", "redis-cli"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: `make bench` installs Debian's redis-tools and redis-server")
    started = time.time()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="resp-kv-bench-") as tmp:
        workdir = Path(tmp)
        print("throughput and CPU:", flush=True)
        servers = start_servers(workdir / "cpu", not args.no_cluster)
        try:
            sizes = calibrate(servers, args.seconds, warmup_n=min(args.warmup, 2_000) if args.quick else args.warmup)
            runs = run_rounds(servers, sizes, args.rounds)
        finally:
            stop_servers(servers)
        memory = []
        if not args.no_memory:
            print("memory:", flush=True)
            memory = measure_rss(workdir, args.keys, args.cluster_memory and not args.no_cluster)
    summary = summarize(runs)
    checks = ratios(summary, memory)
    table = markdown(summary, memory, checks)
    report = {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1), "quick": args.quick, "rounds": args.rounds,
        "clients": CLIENTS, "data_bytes": DATA_BYTES, "keyspace": KEYSPACE,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "versions": versions(),
        "summary": summary, "ratios": checks, "memory": memory, "runs": runs, "markdown": table,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bench-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(started))}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table)
    print(f"\n{report['duration_s']}s; load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}; "
          f"JSON: {out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
