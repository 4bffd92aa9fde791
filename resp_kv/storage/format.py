"""Shared on-disk vocabulary: record kinds, struct layouts, magic numbers, file names, crc.

The store's directory:

    directory := MANIFEST wal_segment* table* [MANIFEST.tmp]
    wal_segment := NNNNNNNN.log      (see wal.py; NNNNNNNN = file number, 8+ decimal digits)
    table       := NNNNNNNN.sst      (see sstable.py, bloom.py)
    MANIFEST    := see manifest.py   (MANIFEST.tmp: a manifest being written; deleted at open)
    kind        := 1 (PUT) | 2 (DELETE)           (u8, shared by WAL ops and SSTable entries)

File numbers come from one counter (manifest `next_file`), so every file name is unique for the
life of the directory. Every constant marked `# on-disk: never change` is part of a grammar in
wal.py, sstable.py, bloom.py or manifest.py; changing one makes existing data dirs unreadable.
All integers are big-endian. Checksums are zlib crc32 (IEEE), stored as u32.
"""

from __future__ import annotations

import struct
import zlib

crc32 = zlib.crc32

KIND_PUT = 1                                   # on-disk: never change
KIND_DELETE = 2                                # on-disk: never change

U32 = struct.Struct(">I")                      # on-disk: never change
WAL_RECORD = struct.Struct(">III")             # crc32, length, length crc on-disk: never change
WAL_OP = struct.Struct(">BII")                 # kind, key_len, value_len on-disk: never change

SST_MAGIC = 0x5245_5350_4B56_5354              # "RESPKVST" on-disk: never change
SST_VERSION = 1                                # on-disk: never change
SST_ENDS = ">%dI"                              # block end-offset tables  on-disk: never change
SST_INDEX_ENTRY = struct.Struct(">QII")        # offset, size, key_len    on-disk: never change
SST_FOOTER = struct.Struct(">QIQIQIIQ")        # see sstable.py           on-disk: never change

MANIFEST_MAGIC = 0x5245_5350_4B56_4D46         # "RESPKVMF" on-disk: never change
MANIFEST_VERSION = 1                           # on-disk: never change
MANIFEST_HEADER = struct.Struct(">QIII")       # magic, version, len, crc on-disk: never change
MANIFEST_STATE = struct.Struct(">QQI")         # next_file, log_number, n on-disk: never change
MANIFEST_TABLE = struct.Struct(">QBQQ")        # file_no, level, size, keys on-disk: never change

BLOOM_HEADER = struct.Struct(">BI")            # hash count k, bit count m on-disk: never change

MANIFEST_NAME = "MANIFEST"                     # on-disk: never change
WAL_SUFFIX = ".log"                            # on-disk: never change
SST_SUFFIX = ".sst"                            # on-disk: never change
TMP_SUFFIX = ".tmp"                            # on-disk: never change


def wal_name(number: int) -> str:
    return f"{number:08d}{WAL_SUFFIX}"


def sst_name(number: int) -> str:
    return f"{number:08d}{SST_SUFFIX}"


def parse_number(name: str, suffix: str) -> int | None:
    """Return the file number of `NNNNNNNN<suffix>`, or None for any other name."""
    if not name.endswith(suffix):
        return None
    stem = name[: -len(suffix)]
    return int(stem) if stem.isdigit() else None
