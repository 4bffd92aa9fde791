"""Node configuration: frozen dataclasses built once by the CLI and handed down by node.py.

Not a parser: `__main__` turns flags and `RESP_KV_*` environment variables into a `Config`.
Units are in the names (`_s`, `_ms`, `_bytes`) so a reader never guesses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FSYNC_POLICIES = ("always", "everysec", "no")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The client-facing RESP server and its protective limits (Redis names in comments)."""

    bind: str = "127.0.0.1"
    port: int = 6379
    requirepass: str | None = None
    debug_commands: bool = False
    proto_max_bulk_len: int = 512 * 1024 * 1024          # proto-max-bulk-len
    max_multibulk_len: int = 1024 * 1024                 # Redis: "invalid multibulk length"
    max_inline_len: int = 64 * 1024                      # PROTO_INLINE_MAX_SIZE
    client_query_buffer_limit: int = 1024 * 1024 * 1024  # client-query-buffer-limit
    pipeline_high_water: int = 1024                      # queued commands before pause_reading
    shutdown_drain_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """The per-node LSM engine."""

    data_dir: Path = Path("./resp-kv-data")
    fsync: str = "everysec"
    memtable_limit_bytes: int = 32 * 1024 * 1024
    # The active WAL segment past this also freezes the memtable: overwrites keep the memtable
    # small while the segment (and the replay after a crash) would grow without bound.
    wal_limit_bytes: int = 128 * 1024 * 1024
    block_size_bytes: int = 4096
    bloom_bits_per_key: int = 10
    l0_compaction_trigger: int = 4
    block_cache_bytes: int = 64 * 1024 * 1024   # decoded SSTable blocks, shared by all tables (LRU)
    # Answers the SSTables gave to point reads, per key (RocksDB's row cache): a hot key read
    # from a table costs a dict lookup instead of bloom probes and a block search. 0 = off.
    row_cache_bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Replication, membership and repair settings (DESIGN.md §2, §5)."""

    node_id: str = "127.0.0.1-6379"
    bind: str = "127.0.0.1"                 # peer listen address (the same --bind as clients)
    advertise: str = "127.0.0.1"
    client_port: int = 6379
    peer_port: int = 16379
    seeds: tuple[str, ...] = ()
    replicas: int = 3                       # N
    read_quorum: int = 2                    # R
    write_quorum: int = 2                   # W
    vnodes: int = 64
    cluster_secret: str | None = None
    gossip_interval_ms: int = 1000
    phi_threshold: float = 8.0
    anti_entropy_interval_s: float = 600.0  # 0 = only on REPAIR
    request_timeout_s: float = 2.0          # one peer call, before sloppy quorum takes over
    hint_max_bytes: int = 256 * 1024 * 1024
    hint_max_age_s: float = 3 * 3600.0      # also the least time a dead record is kept (gcgate.py)
    tombstone_grace_s: float = 0.0          # extra wait after a verified sync before GC (issue 4)


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
