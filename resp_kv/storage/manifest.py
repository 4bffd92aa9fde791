"""The manifest: which SSTables make up the store, in what order, and which WAL is still needed.

The whole state is small, so it is rewritten in full on every change and switched atomically:
write `MANIFEST.tmp`, fsync it, rename it over `MANIFEST`, fsync the directory. A reader sees
the old manifest or the new one, never a mix (the rename is the commit point).

    manifest := magic:u64 version:u32 length:u32 crc32:u32 body[length]   (crc over body)
    body     := next_file:u64 log_number:u64 n:u32 table{n}               (big-endian)
    table    := file_no:u64 level:u8 size:u64 entries:u64

Tables are listed newest first. `log_number` is the oldest WAL segment not yet in an SSTable:
replay starts there, and older segments are garbage. `next_file` is above every file number the
manifest knows (WAL segments created later are found by listing the directory). A missing
manifest means an empty store; a manifest that fails any check raises CorruptionError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .env import Env
from .errors import CorruptionError
from .format import (MANIFEST_HEADER, MANIFEST_MAGIC, MANIFEST_NAME, MANIFEST_STATE,
                     MANIFEST_TABLE, MANIFEST_VERSION, TMP_SUFFIX, crc32)


@dataclass(frozen=True, slots=True)
class TableMeta:
    file_no: int
    level: int
    size: int
    entries: int


@dataclass(frozen=True, slots=True)
class ManifestState:
    next_file: int = 1
    log_number: int = 0
    tables: tuple[TableMeta, ...] = field(default_factory=tuple)    # newest first


def encode_manifest(state: ManifestState) -> bytes:
    body = bytearray(MANIFEST_STATE.pack(state.next_file, state.log_number, len(state.tables)))
    for t in state.tables:
        body += MANIFEST_TABLE.pack(t.file_no, t.level, t.size, t.entries)
    return MANIFEST_HEADER.pack(MANIFEST_MAGIC, MANIFEST_VERSION, len(body), crc32(body)) + body


def decode_manifest(raw: bytes, path: Path) -> ManifestState:
    if len(raw) < MANIFEST_HEADER.size:
        raise CorruptionError(path, "file too short for a header")
    magic, version, length, crc = MANIFEST_HEADER.unpack_from(raw, 0)
    if magic != MANIFEST_MAGIC:
        raise CorruptionError(path, "bad magic")
    if version != MANIFEST_VERSION:
        raise CorruptionError(path, f"unsupported manifest version {version}")
    body = raw[MANIFEST_HEADER.size:]
    if len(body) != length or crc32(body) != crc:
        raise CorruptionError(path, "bad crc or length")
    next_file, log_number, n = MANIFEST_STATE.unpack_from(body, 0)
    if len(body) != MANIFEST_STATE.size + n * MANIFEST_TABLE.size:
        raise CorruptionError(path, "table count does not match length")
    tables = tuple(TableMeta(*MANIFEST_TABLE.unpack_from(body, MANIFEST_STATE.size + i * MANIFEST_TABLE.size))
                   for i in range(n))
    return ManifestState(next_file, log_number, tables)


def load_manifest(env: Env, directory: Path) -> ManifestState:
    path = directory / MANIFEST_NAME
    if not env.exists(path):
        return ManifestState()
    return decode_manifest(env.read_bytes(path), path)


def store_manifest(env: Env, directory: Path, state: ManifestState) -> None:
    """Atomically replace the manifest with `state` (durable when this returns)."""
    final = directory / MANIFEST_NAME
    tmp = directory / (MANIFEST_NAME + TMP_SUFFIX)
    f = env.open(tmp, "wb")
    try:
        f.write(encode_manifest(state))
        env.fsync(f)
    finally:
        f.close()
    env.rename(tmp, final)
    env.sync_dir(directory)
