"""The seam between client commands and the replicated store.

`Backend` is what `commands/` may call; `ClusterBackend` implements it over `cluster.service.Cluster`
and turns cluster faults into client errors (`QuorumNotReached` -> `-NOQUORUM ...`). Command
unit tests use a dict fake of `Backend`; integration tests use the real thing. There is no
standalone backend: a single node is a cluster of one (DESIGN.md §1).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from cluster import versioning
from cluster.types import Current, PeerUnavailable, QuorumNotReached
from resp_kv.errors import CommandError, NoQuorum

log = logging.getLogger("resp_kv.backend")

# VCLOCK reply entry: (value or None for a tombstone, clock "a:3,b:1", timestamp_ms)
VersionView = tuple[bytes | None, bytes, int]


class Backend(Protocol):
    """What command handlers may ask of the store. Keys and values are bytes."""

    async def get(self, key: bytes) -> Current | None:
        """Return the key's live winner (not a tombstone, not expired), or None."""

    async def get_many(self, keys: list[bytes]) -> list[Current | None]: ...

    async def put(self, key: bytes, value: bytes, expire_at_ms: int = 0,
                  context: bytes | None = None) -> None:
        """Blind write. `context` (VCLOCK text) supersedes exactly what it covers; None = the
        coordinator's local versions. Raises CommandError for a malformed context."""

    async def put_many(self, items: list[tuple[bytes, bytes]]) -> None: ...

    def get_value_now(self, key: bytes) -> bytes | None | object:
        """GET's answer (the live value or None) if it needs no waiting, else NOT_NOW."""

    def get_started(self, key: bytes,
                    on_done: Callable[[bytes | None, Exception | None], None]) -> bool:
        """GET driven by callbacks, when `get_value_now` said NOT_NOW: True if started (then
        `on_done(live value or None, None)` or `on_done(None, error)`, once), False if it
        must go through `get()`. The error is the store's: `client_error` makes the reply."""

    def put_now(self, key: bytes, value: bytes) -> bool:
        """A plain blind put done at once if it needs no waiting (then True), else False."""

    def put_started(self, key: bytes, value: bytes,
                    on_done: Callable[[Exception | None], None]) -> bool:
        """A plain blind put driven by callbacks: True if started (then `on_done(None)` on
        success or `on_done(error)`, once), False if it must go through `put()`."""

    def client_error(self, error: Exception) -> CommandError:
        """The reply for an error a `*_started` callback reported."""

    async def mutate(self, key: bytes, mutator: str, args: list[bytes]) -> object:
        """Run the named read-modify-write at the key's coordinator; return its reply."""

    async def vclock(self, key: bytes) -> tuple[bytes, list[VersionView]]: ...

    async def scan(self, cursor: int, count: int) -> tuple[int, list[bytes]]:
        """Return (next cursor, live keys) cluster-wide; cursor 0 starts and ends a scan."""

    async def dbsize(self) -> int: ...
    async def flushall(self) -> None: ...
    async def repair(self, key: bytes | None) -> dict[str, int]: ...

    def info(self) -> dict[str, dict[str, object]]:
        """INFO sections owned by the store: 'storage', 'cluster', 'keyspace' -> field: value."""

    async def remove_node(self, node_id: str) -> None:
        """Remove a dead node from the ring for good (CLUSTER FORGET); ValueError if refused."""

    async def debug(self, args: list[bytes]) -> object:
        """DEBUG fault hooks (only with --debug-commands): LOCALGET, PARTITION, HEAL, ..."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# What the cluster raises when replicas do not answer; `_client_error` makes it -NOQUORUM.
_CLUSTER_ERRORS = (QuorumNotReached, PeerUnavailable)


def _client_error(error: Exception) -> NoQuorum:
    text = str(error)
    if isinstance(error, QuorumNotReached) and error.what == "write":
        text += "; the value may be stored on the replicas that answered"
    return NoQuorum(text)


class ClusterBackend:
    """`Backend` over the cluster facade; the only place cluster errors become client errors."""

    def __init__(self, cluster, local_info) -> None:
        self._cluster = cluster
        self._local_info = local_info   # () -> dict of storage INFO fields
        # The cluster's own methods, no frame of ours (every GET, every SET); what their
        # callbacks report as errors becomes a reply through `client_error`, off the hot path.
        self.get_value_now = cluster.value_now
        self.put_now = cluster.put_now
        self.get_started = cluster.get_started
        self.put_started = cluster.put_started

    async def get(self, key: bytes) -> Current | None:
        cluster = self._cluster
        if cluster.solo:            # one node: synchronous, one coroutine layer less per GET
            return cluster.read_current(key, _now_ms())
        try:
            return await self._cluster.get_current(key, _now_ms())
        except _CLUSTER_ERRORS as error:
            raise _client_error(error) from None

    def client_error(self, error: Exception) -> CommandError:
        if isinstance(error, _CLUSTER_ERRORS):
            return _client_error(error)
        log.error("replicated command failed: %r", error)   # a bug: what the async path says
        return CommandError("internal error")

    async def get_many(self, keys: list[bytes]) -> list[Current | None]:
        try:
            return await self._cluster.get_many_current(keys, _now_ms())
        except _CLUSTER_ERRORS as error:
            raise _client_error(error) from None

    async def put(self, key: bytes, value: bytes, expire_at_ms: int = 0,
                  context: bytes | None = None) -> None:
        if context is None:
            cluster = self._cluster
            if cluster.solo:        # one node: synchronous, one coroutine layer less per SET
                cluster.blind_write(key, value, expire_at_ms)
                return
        parsed = None
        if context is not None:
            try:
                parsed = versioning.parse_context(context)
            except ValueError:
                raise CommandError("invalid VCLOCK context") from None
        try:
            await self._cluster.put(key, value, expire_at_ms, parsed)
        except _CLUSTER_ERRORS as error:
            raise _client_error(error) from None

    async def put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        try:
            await self._cluster.put_many(items)
        except _CLUSTER_ERRORS as error:
            raise _client_error(error) from None

    async def mutate(self, key: bytes, mutator: str, args: list[bytes]) -> object:
        try:
            reply = await self._cluster.mutate(key, mutator, args)
        except _CLUSTER_ERRORS as error:
            raise _client_error(error) from None
        if isinstance(reply, Exception) and not isinstance(reply, CommandError):
            # A forwarded mutation's error arrives as hiredis.ReplyError("PREFIX message").
            prefix, _, message = str(reply).partition(" ")
            return CommandError(message, prefix=prefix)
        return reply

    async def vclock(self, key: bytes) -> tuple[bytes, list[tuple[bytes | None, bytes, int]]]:
        try:
            siblings = await self._cluster.get(key)
        except _CLUSTER_ERRORS as error:
            raise _client_error(error) from None
        context = versioning.format_context(versioning.join_context(siblings))
        views = [(s.value, versioning.format_clock(s).encode(), s.timestamp_ms)
                 for s in versioning.ordered(siblings)]
        return context.encode(), views

    async def scan(self, cursor: int, count: int) -> tuple[int, list[bytes]]:
        return await self._cluster.scan(cursor, count)

    async def dbsize(self) -> int:
        return await self._cluster.dbsize()

    async def flushall(self) -> None:
        try:
            await self._cluster.flushall()
        except _CLUSTER_ERRORS as error:
            raise _client_error(error) from None

    async def repair(self, key: bytes | None) -> dict[str, int]:
        try:
            return await self._cluster.repair(key)
        except _CLUSTER_ERRORS as error:
            raise _client_error(error) from None

    def info(self) -> dict[str, dict[str, object]]:
        cluster_info: Mapping[str, object] = self._cluster.info()
        keyspace = {}
        keys = cluster_info.get("local_keys", 0)
        if keys:
            keyspace["db0"] = f"keys={keys},expires={cluster_info.get('local_expires', 0)},avg_ttl=0"
        public = {k: v for k, v in cluster_info.items() if not k.startswith("local_")}
        return {"storage": dict(self._local_info()), "cluster": public, "keyspace": keyspace}

    async def remove_node(self, node_id: str) -> None:
        await self._cluster.remove_node(node_id)

    async def debug(self, args: list[bytes]) -> object:
        return await self._cluster.debug(args)
