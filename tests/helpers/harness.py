"""Real resp-kv processes on loopback for integration tests, fault tests and benchmarks.

`ClusterHarness` starts `size` processes of `sys.executable -m resp_kv`, each with its own free
client and peer port, node id `n0`, `n1`, ..., data dir `<tmp_path>/nK` and log file
`<tmp_path>/nK.log` (stdout and stderr, appended across restarts). Every node gets the same
`--seeds` list (all peer ports, its own included) so any node can join through any other; a
single node gets no seeds. Nodes are controlled only by pid (SIGKILL, SIGTERM, SIGSTOP, SIGCONT)
and every process still running is SIGKILLed at teardown, at interpreter exit at the latest.

Not a mock: nothing here knows how the node works inside; readiness is observed from outside
(PING, then `INFO cluster` field `cluster_nodes_up`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Mapping

import redis

from .ports import free_ports
from .wait import GiveUp, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
# Strong references on purpose: a harness whose fixture failed half-way must still have its
# processes killed at exit (a WeakSet let a collected harness orphan its nodes).
_live: "set[ClusterHarness]" = set()


class NodeProcess:
    """One resp-kv process: its fixed command line, ports and files, and the current Popen (if any)."""

    def __init__(self, index: int, port: int, peer_port: int, data_dir: Path, log_path: Path,
                 args: list[str], env: Mapping[str, str]) -> None:
        self.index, self.port, self.peer_port = index, port, peer_port
        self.node_id = f"n{index}"
        self.data_dir, self.log_path = data_dir, log_path
        self.args, self.env = args, dict(env)
        self.popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.node_id} was never started")
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        """Start the process with the same arguments and data dir as before."""
        if self.running:
            raise RuntimeError(f"{self.node_id} is already running (pid {self.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start: {' '.join(self.args)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=self.env, cwd=REPO_ROOT,
                                          start_new_session=True)

    def signal(self, signum: int) -> None:
        if not self.running:
            raise RuntimeError(f"{self.node_id} is not running")
        os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL by pid and reap; a no-op if the process has already exited."""
        if self.popen is None or self.popen.poll() is not None:
            return
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "(no log)"
        return data[-max_bytes:].decode(errors="replace")


class ClusterHarness:
    """`size` real nodes with replication N=n, R=r, W=w; see the module docstring."""

    def __init__(self, tmp_path: Path, size: int = 1, n: int = 3, r: int = 2, w: int = 2,
                 fsync: str = "everysec", debug_commands: bool = True, extra_args: Iterable[str] = (),
                 env: Mapping[str, str] | None = None) -> None:
        self.tmp_path, self.size = Path(tmp_path), size
        self.n, self.r, self.w = n, r, w
        ports = free_ports(2 * size, HOST)
        client_ports, peer_ports = ports[:size], ports[size:]
        seeds = ",".join(f"{HOST}:{p}" for p in peer_ports) if size > 1 else ""
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("RESP_KV_")}
        base_env["PYTHONUNBUFFERED"] = "1"
        base_env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + ([base_env["PYTHONPATH"]] if base_env.get("PYTHONPATH") else []))
        base_env.update(env or {})
        self.nodes: list[NodeProcess] = []
        for i in range(size):
            data_dir = self.tmp_path / f"n{i}"
            args = [sys.executable, "-m", "resp_kv", "--bind", HOST, "--port", str(client_ports[i]),
                    "--peer-port", str(peer_ports[i]), "--node-id", f"n{i}", "--data-dir", str(data_dir),
                    "--replicas", str(n), "--read-quorum", str(r), "--write-quorum", str(w),
                    "--fsync", fsync]
            if seeds:
                args += ["--seeds", seeds]
            if debug_commands:
                args.append("--debug-commands")
            args += list(extra_args)
            self.nodes.append(NodeProcess(i, client_ports[i], peer_ports[i], data_dir,
                                          self.tmp_path / f"n{i}.log", args, base_env))
        self._clients: list[redis.Redis] = []
        _live.add(self)

    # -- lifecycle ---------------------------------------------------------------------------
    def start_all(self) -> "ClusterHarness":
        _live.add(self)
        for node in self.nodes:
            node.start()
        return self

    def up(self, timeout_s: float = 30.0) -> "ClusterHarness":
        """Start every node and wait until all are ready; use inside `with ClusterHarness(...)`
        so a failed start still kills what did start."""
        self.start_all()
        self.wait_ready(timeout_s=timeout_s)
        return self

    def start(self, i: int) -> None:
        """(Re)start node i with the same arguments and data dir."""
        _live.add(self)
        self.nodes[i].start()

    def kill(self, i: int) -> None:
        """SIGKILL node i by pid (no graceful shutdown) and reap it."""
        self.nodes[i].kill()

    def stop(self, i: int, timeout_s: float = 30.0) -> None:
        """SIGTERM node i, wait for it, and assert it shut down cleanly (exit code 0)."""
        node = self.nodes[i]
        node.signal(signal.SIGTERM)
        node.signal(signal.SIGCONT)     # a paused node would hold SIGTERM pending forever
        try:
            code = node.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            node.kill()
            raise AssertionError(f"{node.node_id} did not exit within {timeout_s}s of SIGTERM\n"
                                 f"{node.log_tail()}") from None
        assert code == 0, f"{node.node_id} exited with {code} after SIGTERM\n{node.log_tail()}"

    def pause(self, i: int) -> None:
        """SIGSTOP node i: it keeps its sockets but answers nothing (a hung node)."""
        self.nodes[i].signal(signal.SIGSTOP)

    def resume(self, i: int) -> None:
        self.nodes[i].signal(signal.SIGCONT)

    def wipe(self, i: int) -> None:
        """Delete node i's data dir (the node must not be running): a lost disk."""
        if self.nodes[i].running:
            raise RuntimeError(f"wipe({i}): stop or kill the node first")
        shutil.rmtree(self.nodes[i].data_dir, ignore_errors=True)

    def kill_all(self) -> None:
        """SIGKILL every running node by pid and close every client; safe to call twice."""
        for client in self._clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - teardown must go on
                pass
        self._clients.clear()
        for node in self.nodes:
            try:
                if node.running:
                    os.kill(node.pid, signal.SIGCONT)   # a paused node still dies of SIGKILL; be tidy
                node.kill()
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        _live.discard(self)

    def __enter__(self) -> "ClusterHarness":
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()

    # -- readiness and clients ----------------------------------------------------------------
    def _ping(self, i: int) -> bool:
        node = self.nodes[i]
        if node.popen is not None and node.popen.poll() is not None:
            raise GiveUp(f"{node.node_id} exited with {node.popen.returncode}\n{node.log_tail()}")
        with redis.Redis(host=HOST, port=node.port, socket_timeout=2, socket_connect_timeout=2) as c:
            return c.ping() is True

    def _nodes_up(self, i: int) -> int:
        with redis.Redis(host=HOST, port=self.nodes[i].port, socket_timeout=5) as c:
            return int(c.info("cluster").get("cluster_nodes_up", 0))

    def wait_ready(self, timeout_s: float = 20.0, nodes: Iterable[int] | None = None) -> None:
        """PING each running node until PONG; with more than one node, also wait until each
        node's `INFO cluster` reports `cluster_nodes_up` equal to the number of running nodes."""
        indexes = [i for i in (range(self.size) if nodes is None else nodes) if self.nodes[i].running]
        for i in indexes:
            self._wait(lambda i=i: self._ping(i), timeout_s, f"PONG from n{i}")
        if self.size > 1:
            up = sum(node.running for node in self.nodes)
            for i in indexes:
                self._wait(lambda i=i: self._nodes_up(i) == up, timeout_s,
                           f"n{i} INFO cluster_nodes_up == {up}")

    def _wait(self, predicate, timeout_s: float, what: str) -> None:
        try:
            wait_until(predicate, timeout_s, what, interval_s=0.05)
        except GiveUp:
            raise
        except AssertionError as error:
            logs = "\n".join(f"--- n{n.index} log tail:\n{n.log_tail(2000)}" for n in self.nodes)
            raise AssertionError(f"{error}\n{logs}") from None

    def client(self, i: int = 0, **kw) -> redis.Redis:
        """A redis-py client for node i (closed at teardown); keyword args go to redis.Redis."""
        kw.setdefault("socket_timeout", 15)
        kw.setdefault("socket_connect_timeout", 5)
        c = redis.Redis(host=HOST, port=self.nodes[i].port, **kw)
        self._clients.append(c)
        return c

    # -- facts ---------------------------------------------------------------------------------
    def port(self, i: int = 0) -> int:
        return self.nodes[i].port

    def peer_port(self, i: int = 0) -> int:
        return self.nodes[i].peer_port

    def data_dir(self, i: int = 0) -> Path:
        return self.nodes[i].data_dir

    def log(self, i: int = 0) -> str:
        """Node i's whole log (stdout and stderr, all starts)."""
        return self.nodes[i].log_path.read_text(errors="replace")

    def pid(self, i: int = 0) -> int:
        return self.nodes[i].pid

    def node_id(self, i: int = 0) -> str:
        return self.nodes[i].node_id

    # -- placement (mirrors the nodes' ring: same node ids, same --vnodes) -----------------------
    def _ring(self):
        from cluster.ring import Ring   # lazily: the harness itself needs only redis-py

        args = self.nodes[0].args
        vnodes = int(args[len(args) - 1 - args[::-1].index("--vnodes") + 1]) if "--vnodes" in args else 64
        return Ring([node.node_id for node in self.nodes], vnodes)

    def preference_list(self, key: bytes | str) -> list[int]:
        """Indexes of the nodes that replicate `key` (first = primary), as the nodes compute it."""
        from cluster.types import key_token

        key = key.encode() if isinstance(key, str) else key
        ids = self._ring().preference_list(key_token(key), min(self.n, self.size))
        return [int(node_id[1:]) for node_id in ids]

    def key_with_primary(self, i: int, prefix: str = "key") -> bytes:
        """A key whose first replica is node i."""
        return self.keys_where(lambda prefs: prefs[0] == i, prefix)

    def key_not_on(self, i: int, prefix: str = "key") -> bytes:
        """A key that node i does not replicate (needs more nodes than N)."""
        return self.keys_where(lambda prefs: i not in prefs, prefix)

    def keys_where(self, accept, prefix: str = "key", limit: int = 100_000) -> bytes:
        for j in range(limit):
            key = f"{prefix}:{j}".encode()
            if accept(self.preference_list(key)):
                return key
        raise ValueError(f"no key among {limit} candidates satisfies the condition")


@atexit.register
def _kill_leftovers() -> None:
    for harness in list(_live):
        harness.kill_all()
