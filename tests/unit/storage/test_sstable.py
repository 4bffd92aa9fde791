"""SSTable round trip, checksum enforcement and bloom negatives."""

from __future__ import annotations

from pathlib import Path

import pytest

from resp_kv.storage import CorruptionError, OsEnv
from resp_kv.storage.format import SST_FOOTER
from resp_kv.storage.sstable import MISSING, SSTableReader, write_table

ENV = OsEnv()
ENTRIES = [(b"key%05d" % i, None if i % 7 == 0 else b"value-%d" % i * (i % 5)) for i in range(0, 6000, 2)]


def _table(tmp_path: Path, block_size: int = 512) -> Path:
    path = tmp_path / "00000001.sst"
    size, count = write_table(ENV, path, ENTRIES, block_size, 10)
    assert size == path.stat().st_size and count == len(ENTRIES)
    return path


def test_sstable_round_trip_items_and_get(tmp_path: Path) -> None:
    reader = SSTableReader(ENV, _table(tmp_path))
    assert list(reader.items()) == ENTRIES
    for key, value in ENTRIES[::37]:
        assert reader.get(key) == value
    assert reader.get(b"key00001") is MISSING        # between two keys
    assert reader.get(b"a") is MISSING and reader.get(b"z") is MISSING
    reader.close()


def test_sstable_items_respects_range(tmp_path: Path) -> None:
    reader = SSTableReader(ENV, _table(tmp_path))
    got = list(reader.items(b"key01001", b"key02000"))
    assert got == [e for e in ENTRIES if b"key01001" <= e[0] < b"key02000"]
    assert list(reader.items(b"zzz")) == []
    reader.close()


def test_sstable_empty_table(tmp_path: Path) -> None:
    path = tmp_path / "00000002.sst"
    write_table(ENV, path, [], 4096, 10)
    reader = SSTableReader(ENV, path)
    assert list(reader.items()) == [] and reader.get(b"x") is MISSING
    reader.close()


def test_sstable_counts_bloom_negatives(tmp_path: Path) -> None:
    reader = SSTableReader(ENV, _table(tmp_path))
    for i in range(1000):
        reader.get(b"absent%d" % i)
    assert 950 <= reader.bloom_negatives <= 1000
    reader.close()


def test_sstable_flipped_block_byte_raises_naming_file(tmp_path: Path) -> None:
    path = _table(tmp_path)
    data = bytearray(path.read_bytes())
    data[40] ^= 0x10                                  # inside the first data block
    path.write_bytes(bytes(data))
    reader = SSTableReader(ENV, path)                 # footer, index and bloom are intact
    with pytest.raises(CorruptionError, match=path.name):
        reader.get(ENTRIES[1][0])
    with pytest.raises(CorruptionError, match=path.name):
        list(reader.items())
    reader.close()


@pytest.mark.parametrize("from_end", [1, 10, SST_FOOTER.size - 2, SST_FOOTER.size + 3, SST_FOOTER.size + 40])
def test_sstable_flipped_footer_index_or_bloom_byte_raises_on_open(tmp_path: Path, from_end: int) -> None:
    path = _table(tmp_path)
    data = bytearray(path.read_bytes())
    data[-from_end] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match=path.name):
        SSTableReader(ENV, path)


def test_sstable_truncated_file_raises(tmp_path: Path) -> None:
    path = _table(tmp_path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CorruptionError, match=path.name):
        SSTableReader(ENV, path)
