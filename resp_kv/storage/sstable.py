"""Sorted string tables: immutable files of sorted (key, value-or-tombstone) entries.

    table   := block* bloom_section index_section footer
    block   := n:u32 key_end:u32{n} value_end:u32{n} kind:u8{n} key_area value_area crc32:u32
               (crc over everything before it)
    key_area   := key{n}     key j = key_area[key_end[j-1] : key_end[j]]     (key_end[-1] = 0)
    value_area := value{n}   value j likewise with value_end; kind 1 = PUT, 2 = DELETE
                             (a tombstone: empty value)
    bloom_section := bloom crc32:u32                      (bloom: see bloom.py)
    index_section := n:u32 entry{n} crc32:u32
    entry   := offset:u64 size:u32 key_len:u32 first_key[key_len]   (size includes block crc)
    footer  := bloom_offset:u64 bloom_size:u32 index_offset:u64 index_size:u32 entries:u64
               version:u32 crc32:u32 magic:u64            (48 bytes; crc over the first 36)

All integers big-endian. Blocks hold about `block_size_bytes` each; the sparse index keeps the
first key of every block in memory, so a lookup is: bloom -> bisect index -> one pread -> bisect
in the decoded block. The end-offset tables let a block decode with one unpack and one
slicing comprehension per area, with no branch per entry (bench/storage_stall.py "get sstable"). Every block crc is checked on every read (a bad one raises CorruptionError
naming the file): never serve wrong data. Decoded blocks read by `get` go to a BlockCache
(block_cache.py), shared by all tables of a store; `items` (scans, compaction) bypasses it.
The bloom filter comes first: most probes of a table are for keys it lacks (the key lives in an
older table, or a write checks for siblings of a new key), and a negative costs about one probe.
A store hashes the key once per lookup and passes the hash to every table (`get_hashed`).
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from pathlib import Path

from .block_cache import BlockCache, new_cache_id
from .bloom import Bloom, build_bloom, key_hash
from .env import Env
from .errors import CorruptionError
from .format import (KIND_DELETE, KIND_PUT, SST_ENDS, SST_FOOTER, SST_INDEX_ENTRY, SST_MAGIC,
                     SST_VERSION, U32, crc32)

MISSING = object()                 # "this table says nothing about the key" (not a tombstone)
_PRIVATE_CACHE_BYTES = 1024 * 1024     # a reader opened without a shared cache
_WRITE_CHUNK_BYTES = 256 * 1024
_PUT = bytes([KIND_PUT])


class SSTableWriter:
    """Stream sorted entries into a new table file. Requires: keys strictly ascending."""

    def __init__(self, env: Env, path: Path, block_size: int, bits_per_key: int,
                 tick: Callable[[], None] | None = None) -> None:
        self._env, self.path, self._tick = env, path, tick
        self._block_size, self._bits_per_key = block_size, bits_per_key
        self._file = env.open(path, "wb")
        self._out = bytearray()
        self._offset = 0
        # The open block: its entries (a None value is a tombstone) and their size estimate.
        self._keys: list[bytes] = []
        self._values: list[bytes | None] = []
        self._block_bytes = 0
        self._index: list[tuple[int, int, bytes]] = []
        self._h1, self._h2 = array("q"), array("q")   # not tuples: no GC-tracked garbage
        self.entries = 0

    def add(self, key: bytes, value: bytes | None) -> None:
        # Per entry only what decides the block boundary; the block's tables (ends, kinds,
        # hashes) are built in bulk when it closes (writer_micro: add 1.5 -> 1.3 us per entry).
        self._keys.append(key)
        self._values.append(value)
        self._block_bytes += len(key) + (len(value) if value is not None else 0) + 9
        if self._block_bytes >= self._block_size:
            self._finish_block()

    def _finish_block(self) -> None:
        keys, values = self._keys, self._values
        n = len(keys)
        if None in values:                       # tombstones: kind 2, an empty value
            kinds = bytes([KIND_DELETE if v is None else KIND_PUT for v in values])
            values = [b"" if v is None else v for v in values]
        else:
            kinds = _PUT * n
        ends = struct.pack(SST_ENDS % (2 * n), *accumulate(map(len, keys)),
                           *accumulate(map(len, values)))
        block = b"".join((U32.pack(n), ends, kinds, *keys, *values))
        block += U32.pack(crc32(block))
        self._index.append((self._offset, len(block), keys[0]))
        self._emit(block)
        for h1, h2 in map(key_hash, keys):
            self._h1.append(h1)
            self._h2.append(h2)
        self.entries += n
        self._keys, self._values, self._block_bytes = [], [], 0

    def _emit(self, data: bytes) -> None:
        self._out += data
        self._offset += len(data)
        if len(self._out) >= _WRITE_CHUNK_BYTES:
            self._file.write(self._out)
            self._out.clear()

    def finish(self) -> int:
        """Write bloom, index and footer, fsync and close; return the file size."""
        if self._keys:
            self._finish_block()
        bloom = build_bloom(zip(self._h1, self._h2), len(self._h1), self._bits_per_key, self._tick)
        bloom_off, bloom_section = self._offset, bloom + U32.pack(crc32(bloom))
        self._emit(bloom_section)
        index = bytearray(U32.pack(len(self._index)))
        for off, size, first in self._index:
            index += SST_INDEX_ENTRY.pack(off, size, len(first)) + first
        index += U32.pack(crc32(index))
        index_off = self._offset
        self._emit(bytes(index))
        head = SST_FOOTER.pack(bloom_off, len(bloom_section), index_off, len(index),
                               self.entries, SST_VERSION, 0, SST_MAGIC)[:36]
        self._emit(SST_FOOTER.pack(bloom_off, len(bloom_section), index_off, len(index),
                                   self.entries, SST_VERSION, crc32(head), SST_MAGIC))
        self._file.write(self._out)
        self._out.clear()
        self._env.fsync(self._file)
        self._file.close()
        return self._offset

    def abandon(self) -> None:
        """Close and delete a half-written table."""
        self._file.close()
        if self._env.exists(self.path):
            self._env.remove(self.path)


def write_table(env: Env, path: Path, entries: Iterable[tuple[bytes, bytes | None]],
                block_size: int, bits_per_key: int,
                tick: Callable[[], None] | None = None) -> tuple[int, int]:
    """Write `entries` (sorted) to `path`; return (file size, entry count).

    `tick` is called per key while the bloom filter is built (background-thread pacing).
    """
    writer = SSTableWriter(env, path, block_size, bits_per_key, tick)
    try:
        for key, value in entries:
            writer.add(key, value)
        return writer.finish(), writer.entries
    except BaseException:
        writer.abandon()
        raise


class SSTableReader:
    """An open table. `get` is for the event-loop thread; `items` may run on any thread."""

    def __init__(self, env: Env, path: Path, cache: BlockCache | None = None) -> None:
        self._env, self.path = env, path
        self._file = env.open(path, "rb")
        try:
            self.size = env.size(path)
            self._load()
        except BaseException:
            self._file.close()
            raise
        self.cache = cache if cache is not None else BlockCache(_PRIVATE_CACHE_BYTES)
        self.cache_id = new_cache_id()
        self._cache_get, self._cache_touch = self.cache.lookup_parts()
        self.bloom_negatives = 0

    def _corrupt(self, detail: str) -> CorruptionError:
        return CorruptionError(self.path, detail)

    def _load(self) -> None:
        if self.size < SST_FOOTER.size:
            raise self._corrupt(f"file too short for a footer ({self.size} bytes)")
        raw = self._env.pread(self._file, SST_FOOTER.size, self.size - SST_FOOTER.size)
        bloom_off, bloom_size, index_off, index_size, entries, version, crc, magic = SST_FOOTER.unpack(raw)
        if magic != SST_MAGIC:
            raise self._corrupt("bad magic in footer")
        if crc32(raw[:36]) != crc:
            raise self._corrupt("bad footer crc")
        if version != SST_VERSION:
            raise self._corrupt(f"unsupported table format version {version}")
        if bloom_off + bloom_size > index_off or index_off + index_size > self.size - SST_FOOTER.size:
            raise self._corrupt("footer offsets out of range")
        self.entries = entries
        try:
            self._bloom = Bloom(self._section(bloom_off, bloom_size, "bloom"))
        except ValueError as exc:
            raise self._corrupt(str(exc)) from None
        self._parse_index(self._section(index_off, index_size, "index"))

    def _section(self, offset: int, size: int, what: str) -> bytes:
        raw = self._env.pread(self._file, size, offset)
        if len(raw) != size or size < 4 or crc32(raw[:-4]) != U32.unpack_from(raw, size - 4)[0]:
            raise self._corrupt(f"bad {what} crc at offset {offset}")
        return raw[:-4]

    def _parse_index(self, raw: bytes) -> None:
        (n,) = U32.unpack_from(raw, 0)
        pos, self._offsets, self._sizes, self._first_keys = 4, [], [], []
        for _ in range(n):
            off, size, klen = SST_INDEX_ENTRY.unpack_from(raw, pos)
            pos += SST_INDEX_ENTRY.size
            self._offsets.append(off)
            self._sizes.append(size)
            self._first_keys.append(raw[pos:pos + klen])
            pos += klen

    def _read_block(self, i: int) -> _Block:
        offset, size = self._offsets[i], self._sizes[i]
        raw = self._env.pread(self._file, size, offset)
        if len(raw) != size or crc32(memoryview(raw)[:-4]) != U32.unpack_from(raw, size - 4)[0]:
            raise self._corrupt(f"bad block crc at offset {offset}")
        try:
            return _Block(raw)
        except (struct.error, ValueError) as exc:
            raise self._corrupt(f"block at offset {offset} does not parse: {exc}") from None

    def get(self, key: bytes) -> bytes | None | object:
        """Return the value, None for a tombstone, or MISSING if this table lacks the key."""
        h1, h2 = key_hash(key)
        return self.get_hashed(key, h1, h2)

    def get_hashed(self, key: bytes, h1: int, h2: int) -> bytes | None | object:
        """`get` for a key whose `key_hash` is (h1, h2) (a store hashes once per lookup)."""
        if not self._bloom.may_contain_hashed(h1, h2):
            self.bloom_negatives += 1
            return MISSING
        i = bisect_right(self._first_keys, key) - 1
        if i < 0:
            return MISSING
        cache_key = (self.cache_id, i)
        block = self._cache_get(cache_key)            # BlockCache.lookup, inlined (hot path)
        if block is None:
            block = self._read_block(i)
            self.cache.insert(cache_key, block)
        else:
            try:
                self._cache_touch(cache_key)
            except KeyError:                          # evicted meanwhile by another thread
                pass
        keys = block.keys
        j = bisect_left(keys, key)
        if j < len(keys) and keys[j] == key:
            if block.kinds[j] == KIND_DELETE:         # _Block.value, inlined
                return None
            ends = block.value_ends
            return block.value_area[ends[j - 1] if j else 0:ends[j]]
        return MISSING

    def items(self, start: bytes = b"", end: bytes | None = None) -> Iterator[tuple[bytes, bytes | None]]:
        """Yield (key, value-or-None) for start <= key < end, ascending (tombstones included)."""
        i = max(0, bisect_right(self._first_keys, start) - 1)
        for b in range(i, len(self._offsets)):
            if end is not None and self._first_keys[b] >= end:
                return
            block = self._read_block(b)
            keys, values = block.keys, block.values()
            lo = bisect_left(keys, start) if b == i else 0
            hi = len(keys) if end is None else bisect_left(keys, end)
            yield from zip(keys[lo:hi], values[lo:hi])
            if hi < len(keys):
                return

    def retire(self) -> None:
        """Drop this table's cached blocks for good (compaction replaced it)."""
        self.cache.evict_table(self.cache_id)

    def close(self) -> None:
        self._file.close()

    def __del__(self) -> None:          # a table retired by compaction closes when unreferenced
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()


class _Block:
    """A decoded block: keys eagerly (for bisect), values on demand. `charge` estimates its
    memory for the BlockCache: the raw bytes plus, per entry, a key object and list slot
    (33 + 8) and an end offset int and tuple slot (28 + 8)."""

    __slots__ = ("keys", "value_area", "value_ends", "kinds", "charge")

    def __init__(self, raw: bytes) -> None:
        (n,) = U32.unpack_from(raw, 0)
        ends = struct.unpack_from(SST_ENDS % (2 * n), raw, 4)
        key_ends, value_ends = ends[:n], ends[n:]
        kinds_at = 4 + 8 * n
        key_at = kinds_at + n
        value_at = key_at + (key_ends[-1] if n else 0)
        if value_at + (value_ends[-1] if n else 0) != len(raw) - 4:
            raise ValueError("lengths do not add up")
        key_area = raw[key_at:value_at]
        self.keys = [key_area[a:b] for a, b in zip((0, *key_ends[:-1]), key_ends)]
        self.value_area = raw[value_at:-4]
        self.value_ends = value_ends
        self.kinds = raw[kinds_at:key_at]
        self.charge = len(raw) + 80 * n + 200

    def value(self, j: int) -> bytes | None:
        if self.kinds[j] == KIND_DELETE:
            return None
        return self.value_area[self.value_ends[j - 1] if j else 0:self.value_ends[j]]

    def values(self) -> list[bytes | None]:
        ends = self.value_ends
        area = self.value_area
        values: list[bytes | None] = [area[a:b] for a, b in zip((0, *ends[:-1]), ends)]
        if KIND_DELETE in self.kinds:
            for j, kind in enumerate(self.kinds):
                if kind == KIND_DELETE:
                    values[j] = None
        return values
