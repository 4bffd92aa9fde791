"""Write-ahead log: every mutation is appended here before it reaches the memtable.

A log is a sequence of segment files `NNNNNNNN.log`, replayed in number order. A memtable owns
the segments from its `wal_number` up to the next memtable's; they are deleted once it is
safely in an SSTable named by the manifest. A checkpoint (engine.py) is a segment written whole
by the storage thread from a snapshot of the memtable, numbered just below the live segment
that took over at the snapshot, so the older segments it replaces can go.

    checkpoint := segment written to NNNNNNNN.log.tmp, fsynced, then renamed

    segment := record*
    record  := crc32:u32 length:u32 length_crc:u32 body[length]   (big-endian; cf. leveldb)
    body    := op+                                        (every op appended since the last flush)
    op      := kind:u8 key_len:u32 value_len:u32 key[key_len] value[value_len]
    kind    := 1 (PUT) | 2 (DELETE, value_len = 0)

crc32 covers the body; length_crc = crc32(length as u32) guards the length on its own, so a
flipped length bit mid-log is corruption, not a record that "runs past the end". One record per `flush()`, i.e. per event-loop batch: `append_*` only
packs the op into the buffer, and `flush()` checksums the whole buffer in one zlib call and
writes header and buffer with one writev(2). A per-op crc cost about as much as the rest of a put
(bench/storage_stall.py micro). A record is all-or-nothing across a crash, so is `write_batch`.

Recovery (`replay_segment`): the unfinished write of a crash is a short header, a good header
whose body runs past the end of the file, a bad-crc body that ends exactly at the end of the
file, or a zero-filled remainder (a file extended but never written); it is dropped, the file is
truncated to the last good record and a warning is logged. A bad header or body crc anywhere
else, or a body that does not parse, raises CorruptionError naming the file. A torn tail is tolerated at the end of every segment (not
only the newest): a rotated segment is not fsynced at rotation, so a power cut may tear it too.

Threads: `append_*` and `flush` run on the event-loop thread only and take no lock. `sync` may run
on any thread: it holds `_lock` while it fdatasyncs, and the lock only guards closing and
retiring files (rotation, `retire`, `close`), never the loop's append or write. A write and an
fdatasync on the same fd from two threads are safe at the OS level.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

from .env import Env
from .errors import CorruptionError
from .format import KIND_DELETE, KIND_PUT, TMP_SUFFIX, U32, WAL_OP, WAL_RECORD, crc32, wal_name

log = logging.getLogger("resp_kv.storage")

_pack_op: Final = WAL_OP.pack                # local binding: bench put µs (see engine docstring)
_pack_record: Final = WAL_RECORD.pack
_U32: Final = U32
_RECORD_SIZE: Final = WAL_RECORD.size
_OP_SIZE: Final = WAL_OP.size


def encode_ops(ops: list[tuple[bytes, bytes | None]]) -> bytes:
    """Encode (key, value-or-None) pairs as one record body; None is a delete."""
    parts = []
    for key, value in ops:
        if value is None:
            parts.append(_pack_op(KIND_DELETE, len(key), 0) + key)
        else:
            parts.append(_pack_op(KIND_PUT, len(key), len(value)) + key + value)
    return b"".join(parts)


def decode_body(body: bytes, path: Path) -> list[tuple[bytes, bytes | None]]:
    """Decode a record body (crc already checked). Raises CorruptionError if it does not parse."""
    ops, pos, end = [], 0, len(body)
    while pos < end:
        if end - pos < _OP_SIZE:
            raise CorruptionError(path, f"truncated op header in record body at {pos}")
        kind, klen, vlen = WAL_OP.unpack_from(body, pos)
        pos += _OP_SIZE
        if kind not in (KIND_PUT, KIND_DELETE) or pos + klen + vlen > end:
            raise CorruptionError(path, f"bad op (kind {kind}) in record body at {pos}")
        key = body[pos:pos + klen]
        pos += klen
        ops.append((key, body[pos:pos + vlen] if kind == KIND_PUT else None))
        pos += vlen
    if not ops:
        raise CorruptionError(path, "empty record body")
    return ops


def replay_segment(env: Env, path: Path) -> Iterator[tuple[bytes, bytes | None]]:
    """Yield every op of segment `path` in order, truncating a torn tail (see module docstring)."""
    data = env.read_bytes(path)
    pos, end = 0, len(data)
    while pos < end:
        torn = None
        if end - pos < _RECORD_SIZE:
            torn = "short record header"
        else:
            crc, length, length_crc = WAL_RECORD.unpack_from(data, pos)
            stop = pos + _RECORD_SIZE + length
            if crc32(_U32.pack(length)) != length_crc:
                if data.count(0, pos) != end - pos:
                    raise CorruptionError(path, f"bad record header at offset {pos}")
                torn = "zero-filled tail"
            elif stop > end:
                torn = "short record body"
            else:
                body = data[pos + _RECORD_SIZE:stop]
                if crc32(body) != crc:
                    if stop != end:
                        raise CorruptionError(path, f"bad crc in record at offset {pos}")
                    torn = "bad crc in last record"
        if torn is not None:
            log.warning("WAL %s: torn tail at offset %d (%s, %d bytes); truncating",
                        path, pos, torn, end - pos)
            env.truncate(path, pos)
            return
        yield from decode_body(body, path)
        pos = stop


def write_segment(env: Env, directory: Path, number: int,
                  ops: Iterator[tuple[bytes, bytes | None]], ops_per_record: int = 4096) -> int:
    """Write segment `number` whole from `ops` (a checkpoint): to a temporary file, fsynced,
    then renamed into place and the directory synced; return its size. A crash before the
    rename leaves only the temporary file, which recovery deletes."""
    path = directory / wal_name(number)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    size = 0
    with env.open(tmp, "wb") as f:
        batch: list[tuple[bytes, bytes | None]] = []
        for op in ops:
            batch.append(op)
            if len(batch) >= ops_per_record:
                size += _write_record(f, encode_ops(batch))
                batch = []
        if batch:
            size += _write_record(f, encode_ops(batch))
        env.fsync(f)
    env.rename(tmp, path)
    env.sync_dir(directory)
    return size


def _record_header(body: bytes | bytearray) -> bytes:
    """`crc32 length length_crc` of the record holding `body` (the grammar above)."""
    return _pack_record(crc32(body), len(body), crc32(_U32.pack(len(body))))


def _write_record(f: BinaryIO, body: bytes) -> int:
    f.write(_record_header(body))
    f.write(body)
    return _RECORD_SIZE + len(body)


class Wal:
    """The live log: an in-memory buffer, the current segment, and rotated-but-unretired ones."""

    def __init__(self, env: Env, directory: Path, number: int) -> None:
        self._env, self._dir = env, directory
        self._lock = threading.Lock()
        self.buffer = bytearray()       # appended by the loop, written by flush()
        self.number = number            # current segment number
        self._file = self._create(number)
        self._rotated: list[tuple[int, BinaryIO]] = []
        self._dir_dirty = True          # a segment was created since the last sync_dir
        self._segment_bytes: dict[int, int] = {number: 0}   # live segment -> bytes written

    @property
    def bytes_written(self) -> int:
        """Bytes in live segments (stats "wal_bytes"); any thread."""
        return sum(list(self._segment_bytes.values()))    # list(): one atomic copy under the GIL

    @property
    def segment_bytes(self) -> int:
        """Bytes written to the current segment (event-loop thread)."""
        return self._segment_bytes[self.number]

    def _create(self, number: int) -> BinaryIO:
        return self._env.open(self._dir / wal_name(number), "wb")

    # -- event-loop thread -------------------------------------------------------------------
    def append_put(self, key: bytes, value: bytes) -> None:
        # one %-format: compiled, one allocation for the three pieces
        self.buffer += b"%s%s%s" % (_pack_op(KIND_PUT, len(key), len(value)), key, value)

    def append_delete(self, key: bytes) -> None:
        self.buffer += _pack_op(KIND_DELETE, len(key), 0) + key

    def append_batch(self, ops: list[tuple[bytes, bytes | None]]) -> None:
        self.buffer += encode_ops(ops)

    def flush(self) -> int:
        """Write the buffer as one record to the OS in one writev(); return the bytes written."""
        buf = self.buffer
        if not buf:
            return 0
        header = _record_header(buf)
        n = _RECORD_SIZE + len(buf)
        done = os.writev(self._file.fileno(), (header, buf))
        if done < n:                              # short write (huge buffer): finish it
            rest = memoryview(header + buf)
            while done < n:
                done += self._file.write(rest[done:])
            rest.release()
        buf.clear()
        self._segment_bytes[self.number] += n
        return n

    def rotate(self, number: int) -> None:
        """Flush the buffer, then start segment `number`; the old one stays until `retire`."""
        self.flush()
        new = self._create(number)
        with self._lock:
            self._rotated.append((self.number, self._file))
            self._file, self.number = new, number
            self._segment_bytes[number] = 0
            self._dir_dirty = True

    # -- any thread ----------------------------------------------------------------------------
    def sync(self) -> None:
        """fdatasync every live segment (and the directory if a segment was created)."""
        with self._lock:
            for _, f in self._rotated:
                self._env.fsync(f)
            if self._file is not None:
                self._env.fsync(self._file)
            if self._dir_dirty:
                self._dir_dirty = False
                self._env.sync_dir(self._dir)

    def add_sealed(self, number: int, size: int) -> None:
        """Count segment `number`, written whole and fsynced elsewhere (a checkpoint), as live."""
        with self._lock:
            self._segment_bytes[number] = size

    def retire_below(self, number: int) -> None:
        """Close and delete every segment numbered below `number`, rotated or sealed (the
        memtables they backed are in SSTables, or a checkpoint holds what they said)."""
        with self._lock:
            old = [n for n in self._segment_bytes if n < number and n != self.number]
            for n, f in self._rotated:
                if n < number:
                    f.close()
            self._rotated = [(n, f) for n, f in self._rotated if n >= number]
            for n in old:
                del self._segment_bytes[n]
        for n in old:
            path = self._dir / wal_name(n)
            if self._env.exists(path):
                self._env.remove(path)

    def close(self) -> None:
        """Flush and sync everything, then close every segment (files stay for replay)."""
        self.flush()
        self.sync()
        with self._lock:
            for _, f in self._rotated:
                f.close()
            self._rotated.clear()
            self._file.close()
            self._file = None
