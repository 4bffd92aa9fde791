"""WAL recovery: a torn tail is truncated at every possible offset; corruption elsewhere raises."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from resp_kv.config import StorageConfig
from resp_kv.storage import CorruptionError, LSMStore, OsEnv
from resp_kv.storage.format import WAL_RECORD, wal_name
from resp_kv.storage.wal import Wal, replay_segment

ENV = OsEnv()
OPS = [(b"k%d" % i, b"v" * i) for i in range(6)] + [(b"k1", None)]


def _write_wal(directory: Path) -> tuple[Path, list[int]]:
    """Write OPS then one 2-op batch; return the segment path and the record end offsets."""
    wal = Wal(ENV, directory, 1)
    ends = []
    for key, value in OPS:
        wal.append_delete(key) if value is None else wal.append_put(key, value)
        wal.flush()
        ends.append(wal.bytes_written)
    wal.append_batch([(b"b1", b"x"), (b"b2", None)])
    wal.flush()
    ends.append(wal.bytes_written)
    wal.close()
    return directory / wal_name(1), ends


def _expected(records: int) -> list:
    return (OPS + [(b"b1", b"x"), (b"b2", None)])[: records if records <= len(OPS) else len(OPS) + 2]


def test_wal_replay_round_trips_every_op(tmp_path: Path) -> None:
    path, _ = _write_wal(tmp_path)
    assert list(replay_segment(ENV, path)) == _expected(len(OPS) + 1)


def test_wal_replay_truncates_torn_tail_at_every_offset(tmp_path: Path, caplog) -> None:
    path, ends = _write_wal(tmp_path)
    original = path.read_bytes()
    first = ends[-4]                        # cut anywhere inside the last three records
    for cut in range(first, len(original)):
        path.write_bytes(original[:cut])
        complete = sum(1 for e in ends if e <= cut)
        with caplog.at_level(logging.WARNING, logger="resp_kv.storage"):
            ops = list(replay_segment(ENV, path))
        assert ops == _expected(complete), cut
        assert path.stat().st_size == ends[complete - 1], cut
        if cut != ends[complete - 1]:
            assert "torn tail" in caplog.text
        caplog.clear()


def test_wal_replay_drops_last_record_with_bad_crc(tmp_path: Path) -> None:
    path, ends = _write_wal(tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert list(replay_segment(ENV, path)) == _expected(len(OPS))
    assert path.stat().st_size == ends[-2]


@pytest.mark.parametrize("record", [0, 2, 5])
def test_wal_replay_raises_on_flipped_byte_mid_log(tmp_path: Path, record: int) -> None:
    path, ends = _write_wal(tmp_path)
    data = bytearray(path.read_bytes())
    start = ends[record - 1] if record else 0
    data[start + WAL_RECORD.size] ^= 0x01      # first body byte of that record
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptionError) as info:
        list(replay_segment(ENV, path))
    assert path.name in str(info.value)
    assert path.stat().st_size == len(data)     # never truncates on real corruption


def test_wal_corruption_stops_store_open_naming_the_file(tmp_path: Path) -> None:
    config = StorageConfig(memtable_limit_bytes=1 << 20)
    store = LSMStore.open(tmp_path, config)
    for i in range(50):
        store.put(b"key%d" % i, b"value%d" % i)
        store.wal_flush()
    wal = next(tmp_path.glob("*.log"))
    saved = tmp_path / "saved"
    shutil.copy(wal, saved)
    store.close()
    data = bytearray(saved.read_bytes())
    data[100] ^= 0x40
    wal.write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match=wal.name):
        LSMStore.open(tmp_path, config)


def test_wal_torn_tail_store_reopens_with_prefix(tmp_path: Path) -> None:
    config = StorageConfig(memtable_limit_bytes=1 << 20)
    store = LSMStore.open(tmp_path, config)
    for i in range(20):
        store.put(b"key%02d" % i, b"value%d" % i)
        store.wal_flush()
    wal = next(tmp_path.glob("*.log"))
    store._wal.close()                          # keep the files as a crash would leave them
    store._closed = True
    store._stop = True
    with store._cv:
        store._cv.notify_all()
    store._storage_thread.join()
    with open(wal, "r+b") as f:
        f.truncate(wal.stat().st_size - 3)
    store = LSMStore.open(tmp_path, config)
    assert [k for k, _ in store.scan()] == [b"key%02d" % i for i in range(19)]
    store.close()


def test_wal_replay_raises_on_flipped_length_byte_mid_log(tmp_path: Path) -> None:
    path, ends = _write_wal(tmp_path)
    data = bytearray(path.read_bytes())
    data[ends[2] + 7] ^= 0x01                   # low byte of record 3's length: now "too long"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match=path.name):
        list(replay_segment(ENV, path))


def test_wal_replay_truncates_zero_filled_tail(tmp_path: Path) -> None:
    path, ends = _write_wal(tmp_path)
    path.write_bytes(path.read_bytes() + bytes(4096))    # extended by a crash, never written
    assert list(replay_segment(ENV, path)) == _expected(len(OPS) + 1)
    assert path.stat().st_size == ends[-1]
