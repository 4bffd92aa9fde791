"""FakeBackend: an in-memory `resp_kv.backend.Backend` for command and server unit tests.

A dict of key -> `cluster.types.Current`; read-modify-writes run the real mutators of
`resp_kv.commands.mutations.MUTATORS` against it, so replies are the real ones. Not a model of
replication: VCLOCK returns one fixed-looking version per key. Every method completes without
suspending unless `suspend` is set, which makes each call yield to the event loop once (to
exercise the server's slow path) and the synchronous `*_now` methods decline.
"""

from __future__ import annotations

import asyncio
import time

from cluster.types import Current
from resp_kv.commands.mutations import MUTATORS
from resp_kv.errors import CommandError
from resp_kv.reply import NOT_NOW


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FakeBackend:
    """Dict-backed Backend. `suspend=True` makes every call yield to the loop once."""

    def __init__(self, suspend: bool = False) -> None:
        self.data: dict[bytes, Current] = {}
        self.suspend = suspend
        self.flushes = 0
        self.info_fields: dict[str, dict[str, object]] = {
            "storage": {"fsync_policy": "everysec", "wal_bytes": 0, "memtable_keys": 0,
                        "memtable_bytes": 0, "sstables": 0, "sstable_bytes": 0, "flushes": 0,
                        "compactions": 0, "bloom_negatives": 0,
                        "row_cache_bytes": 0, "row_cache_hits": 0},
            "cluster": {"node_id": "fake", "cluster_nodes": 1, "cluster_nodes_up": 1,
                        "replicas": 1, "read_quorum": 1, "write_quorum": 1},
        }

    async def _maybe_suspend(self) -> None:
        if self.suspend:
            await asyncio.sleep(0)

    def _live(self, key: bytes) -> Current | None:
        current = self.data.get(key)
        if current is not None and current.expire_at_ms and current.expire_at_ms <= _now_ms():
            del self.data[key]
            return None
        return current

    async def get(self, key: bytes) -> Current | None:
        await self._maybe_suspend()
        return self._live(key)

    def get_value_now(self, key: bytes) -> bytes | None | object:
        if self.suspend:
            return NOT_NOW
        current = self._live(key)
        return current.value if current is not None else None

    def get_started(self, key: bytes, on_done) -> bool:
        if not self.suspend:
            return False                  # get_value_now has answered already
        loop = asyncio.get_running_loop()   # suspending: complete from a later loop pass

        def finish() -> None:
            current = self._live(key)
            on_done(current.value if current is not None else None, None)
        loop.call_soon(finish)
        return True

    def put_now(self, key: bytes, value: bytes) -> bool:
        if self.suspend:
            return False
        self.data[key] = Current(value, 0)
        return True

    def put_started(self, key: bytes, value: bytes, on_done) -> bool:
        if not self.suspend:
            return False                  # put_now has answered already
        loop = asyncio.get_running_loop()   # suspending: complete from a later loop pass

        def finish() -> None:
            self.data[key] = Current(value, 0)
            on_done(None)
        loop.call_soon(finish)
        return True

    def client_error(self, error: Exception) -> CommandError:
        return error if isinstance(error, CommandError) else CommandError(str(error))

    async def get_many(self, keys: list[bytes]) -> list[Current | None]:
        await self._maybe_suspend()
        return [self._live(key) for key in keys]

    async def put(self, key: bytes, value: bytes, expire_at_ms: int = 0,
                  context: bytes | None = None) -> None:
        await self._maybe_suspend()
        self.data[key] = Current(value, expire_at_ms)

    async def put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        await self._maybe_suspend()
        for key, value in items:
            self.data[key] = Current(value, 0)

    async def mutate(self, key: bytes, mutator: str, args: list[bytes]) -> object:
        await self._maybe_suspend()
        outcome = MUTATORS[mutator](self._live(key), list(args), _now_ms())
        if outcome.write is not None:
            if outcome.write.value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = Current(outcome.write.value, outcome.write.expire_at_ms)
        return outcome.reply

    async def vclock(self, key: bytes) -> tuple[bytes, list[tuple[bytes | None, bytes, int]]]:
        current = self._live(key)
        if current is None:
            return b"", []
        return b"fake:1", [(current.value, b"fake:1", 0)]

    async def scan(self, cursor: int, count: int) -> tuple[int, list[bytes]]:
        live = sorted(k for k in list(self.data) if self._live(k) is not None)
        page = live[cursor:cursor + count]
        following = cursor + count
        return (following if following < len(live) else 0), page

    async def dbsize(self) -> int:
        await self._maybe_suspend()
        return sum(1 for k in list(self.data) if self._live(k) is not None)

    async def flushall(self) -> None:
        await self._maybe_suspend()
        self.flushes += 1
        self.data.clear()

    async def repair(self, key: bytes | None) -> dict[str, int]:
        return {"peers": 0, "ranges_compared": 0, "ranges_differing": 0, "keys_sent": 0,
                "keys_received": 0, "bytes_sent": 0, "bytes_received": 0, "duration_ms": 0}

    def info(self) -> dict[str, dict[str, object]]:
        keyspace = {}
        if self.data:
            keyspace["db0"] = f"keys={len(self.data)},expires=0,avg_ttl=0"
        return {**self.info_fields, "keyspace": keyspace}

    async def debug(self, args: list[bytes]) -> object:
        return b"fake"
