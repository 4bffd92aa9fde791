"""The composition root: the one place that builds every part of a node and wires them together.

Start order: lock the data dir -> open the LSM engine (replays the WAL) -> the cluster (peer
port, gossip, hints, anti-entropy) -> the client server. Shutdown is the reverse and is what
SIGTERM/SIGINT trigger: stop accepting clients and finish in-flight commands -> stop the
cluster's background work -> flush and close the engine -> exit 0 (uvicorn `Server.shutdown`,
mini-redis `shutdown.rs`).

Storage corruption found while starting (opening the engine, or the cluster's first reads)
stops the node with a message naming the file and exit status 2; nothing is served from a store
that failed its checks. A port that cannot be bound exits 1, a data dir locked by another
process 3.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import os
import signal

from cluster.service import Cluster
from resp_kv.backend import ClusterBackend
from resp_kv.commands.mutations import MUTATORS
from resp_kv.config import Config
from resp_kv.durability import DurableStore
from resp_kv.server import RespServer
from resp_kv.server_state import ServerState
from resp_kv.storage.engine import LSMStore
from resp_kv.storage.errors import CorruptionError

log = logging.getLogger("resp_kv.node")

# Cyclic-GC policy for a server: every request allocates short-lived futures, closures and
# lists, and the default gen0 threshold (700) runs a collection every few requests. Measured on
# a 3-node cluster (redis-benchmark -P 16, coordinator user CPU per request): GET 128 -> 61 us,
# SET 136 -> 110 us with thresholds (100_000, 50, 1000). Cycles are still collected, just in
# larger batches; startup objects are frozen out of every later sweep.
GC_THRESHOLDS = (100_000, 50, 1000)

EXIT_CANNOT_LISTEN = 1
EXIT_CORRUPTION = 2
EXIT_IN_USE = 3


class DataDirInUse(Exception):
    """Another live process holds this data dir: two nodes on one store would corrupt it."""


def _lock_data_dir(data_dir) -> int:
    """Create the data dir and hold an exclusive flock on its LOCK file for the process lifetime."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirInUse(f"data dir {data_dir} is locked by another resp-kv process") from None
    return fd


class Node:
    """One resp-kv node. `await run()` serves until SIGTERM/SIGINT, then shuts down in order."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._stop = asyncio.Event()

    async def run(self) -> int:
        config = self.config
        data_dir = config.storage.data_dir
        try:
            lock_fd = _lock_data_dir(data_dir)
        except DataDirInUse as error:
            log.error("%s", error)
            return EXIT_IN_USE
        try:
            engine = LSMStore.open(data_dir / "lsm", config.storage)
        except CorruptionError as error:
            log.critical("storage corruption, refusing to serve: %s", error)
            os.close(lock_fd)
            return EXIT_CORRUPTION
        store = DurableStore(engine, config.storage.fsync)
        cluster = Cluster(config.cluster, store, MUTATORS)
        engine.set_compaction_filter(cluster.compaction_filter)
        state = ServerState(config)
        state.shutdown_hook = self._stop.set      # SHUTDOWN: the same graceful path as SIGTERM
        server = RespServer(config, ClusterBackend(cluster, engine.stats), state,
                            durable=store)
        background: set[asyncio.Task] = set()
        try:
            try:
                await cluster.start()       # reads the store (key counts, hints, Merkle leaves)
                await server.start()
            except CorruptionError as error:
                log.critical("storage corruption, refusing to serve: %s", error)
                return EXIT_CORRUPTION
            except OSError as error:        # a port in use, an address we cannot bind
                log.error("cannot start: %s", error)
                return EXIT_CANNOT_LISTEN
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
            syncer = asyncio.create_task(store.run_everysec(self._stop), name="wal-everysec")
            background.add(syncer)
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
            log.info("resp-kv node %s ready: clients on %s:%d, peers on %s:%d, data in %s",
                     config.cluster.node_id, config.server.bind, config.server.port,
                     config.server.bind, config.cluster.peer_port, data_dir)
            await self._stop.wait()
            log.info("shutting down")
        finally:
            self._stop.set()
            # Each step runs even if an earlier one failed (a half-started node still closes
            # its files and releases the data dir): the order is the contract, not all-or-none.
            for step in (server.stop, cluster.stop, *[lambda t=t: t for t in background]):
                try:
                    await step()
                except Exception:
                    log.exception("shutdown step %s failed", getattr(step, "__qualname__", step))
            try:
                store.close()
            except Exception:
                log.exception("closing the store failed")
            os.close(lock_fd)
        log.info("bye")
        return 0
