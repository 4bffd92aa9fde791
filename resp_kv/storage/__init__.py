"""The LSM storage engine: ordered bytes -> bytes with a WAL, memtables, SSTables and compaction.

Synchronous and generic: it knows nothing of RESP, versions or clusters, and imports nothing
outside this package but the stdlib, sortedcontainers, mmh3 and `resp_kv.config`.
"""

from .engine import LSMStore
from .env import Env, OsEnv
from .errors import CorruptionError, StorageClosed, StorageError

__all__ = ["LSMStore", "Env", "OsEnv", "CorruptionError", "StorageClosed", "StorageError"]
