"""Node-wide state of the client server: identity, start time, counters and the client registry.

Not per-connection state (`commands.spec.Session`) and not the store's statistics (those come
from `Backend.info()`). Event-loop thread only: counters are plain ints bumped inline, which is
what INFO `stats` and `clients` report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resp_kv.commands.spec import Session
    from resp_kv.config import Config


class ServerState:
    """Counters, identity and connected clients of one node's RESP server."""

    def __init__(self, config: "Config") -> None:
        self.config = config
        self.run_id = os.urandom(20).hex()
        self.started_at = time.time()
        self.started_monotonic = time.monotonic()
        self.clients: dict[int, "Session"] = {}       # client id -> session (CLIENT LIST)
        self.client_created: dict[int, float] = {}    # client id -> monotonic connect time
        self.config_overrides: dict[str, str] = {}    # CONFIG SET values (remembered only)
        # SHUTDOWN calls this (node.py sets it to its stop event's set); None = refused.
        self.shutdown_hook: Callable[[], None] | None = None
        self._ops_sample: tuple[float, int] | None = None   # INFO instantaneous_ops_per_sec
        self.reset_stats()

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: zero the counters, keep the clients."""
        self.total_commands_processed = 0
        self.total_connections_received = 0
        self.rejected_connections = 0
        self.keyspace_hits = 0
        self.keyspace_misses = 0
        self.total_net_input_bytes = 0
        self.total_net_output_bytes = 0
        self.total_error_replies = 0
        self.unexpected_errors = 0
        self.last_save_time = int(self.started_at)

    @property
    def connected_clients(self) -> int:
        return len(self.clients)

    @property
    def uptime_s(self) -> int:
        return int(time.monotonic() - self.started_monotonic)

    def client_connected(self, session: "Session") -> None:
        self.total_connections_received += 1
        self.clients[session.client_id] = session
        self.client_created[session.client_id] = time.monotonic()

    def client_disconnected(self, session: "Session") -> None:
        self.clients.pop(session.client_id, None)
        self.client_created.pop(session.client_id, None)

    def client_age_s(self, client_id: int) -> int:
        created = self.client_created.get(client_id)
        return 0 if created is None else int(time.monotonic() - created)
