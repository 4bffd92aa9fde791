#!/usr/bin/env python3
"""Run a local resp-kv cluster in the foreground: `make cluster` (or `python scripts/local_cluster.py`).

Three nodes by default on 127.0.0.1, client ports 7001-7003, peer ports 17001-17003, data under
./resp-kv-cluster/nK, N=3 R=2 W=2, each node's output prefixed with its name. Ctrl-C (or SIGTERM)
stops every node with SIGTERM, by pid, and SIGKILLs any that has not exited 15 s later. If one
node dies on its own, the others are stopped and the script exits non-zero.

    redis-cli -p 7001 set greeting hello
    redis-cli -p 7003 get greeting
    redis-cli -p 7002 info cluster

Extra arguments after `--` go to every node, e.g. `make cluster ARGS="-- --fsync always"`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--base-port", type=int, default=7001, help="client port of node 1")
    parser.add_argument("--peer-offset", type=int, default=10000, help="peer port = client port + this")
    parser.add_argument("--data-root", default="./resp-kv-cluster")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--read-quorum", type=int, default=2)
    parser.add_argument("--write-quorum", type=int, default=2)
    parser.add_argument("node_args", nargs=argparse.REMAINDER, help="-- then flags for every node")
    args = parser.parse_args()
    if args.node_args[:1] == ["--"]:
        args.node_args = args.node_args[1:]
    return args


def node_commands(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    ports = [args.base_port + i for i in range(args.nodes)]
    seeds = ",".join(f"127.0.0.1:{p + args.peer_offset}" for p in ports)
    commands = []
    for i, port in enumerate(ports, start=1):
        name = f"n{i}"
        commands.append((name, [
            sys.executable, "-m", "resp_kv", "--bind", "127.0.0.1", "--port", str(port),
            "--peer-port", str(port + args.peer_offset), "--node-id", name,
            "--data-dir", str(Path(args.data_root) / name), "--seeds", seeds,
            "--replicas", str(args.replicas), "--read-quorum", str(args.read_quorum),
            "--write-quorum", str(args.write_quorum), *args.node_args]))
    return commands


def pump(name: str, stream) -> None:
    """Copy one node's output to our stdout, each line prefixed with the node name."""
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"[{name}] {line.decode(errors='replace')}")
        sys.stdout.flush()


def stop_all(procs: dict[str, subprocess.Popen], grace_s: float = 15.0) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[cluster] {name} (pid {proc.pid}) ignored SIGTERM; SIGKILL", flush=True)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        print(f"[cluster] {name} exited with {proc.returncode}", flush=True)


def main() -> int:
    args = parse_args()
    stopping = threading.Event()

    def on_signal(signum, frame) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    procs: dict[str, subprocess.Popen] = {}
    for name, command in node_commands(args):
        Path(command[command.index("--data-dir") + 1]).mkdir(parents=True, exist_ok=True)
        # Own session: a terminal's Ctrl-C reaches only us, and we stop the nodes in order.
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        procs[name] = proc
        threading.Thread(target=pump, args=(name, proc.stdout), daemon=True).start()
        port = command[command.index("--port") + 1]
        print(f"[cluster] {name} pid {proc.pid}: redis-cli -p {port}", flush=True)
    print("[cluster] Ctrl-C stops all nodes", flush=True)
    exit_code = 0
    while not stopping.wait(0.2):
        dead = [name for name, proc in procs.items() if proc.poll() is not None]
        if dead:
            print(f"[cluster] {', '.join(dead)} exited on its own; stopping the others", flush=True)
            exit_code = 1
            break
    stop_all(procs)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
