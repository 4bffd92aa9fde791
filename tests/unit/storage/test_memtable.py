"""Memtable size accounting: live bytes, not bytes ever written."""

from __future__ import annotations

from resp_kv.storage.memtable import ENTRY_OVERHEAD_BYTES, Memtable


def _live_bytes(mem: Memtable) -> int:
    return sum(len(k) + (len(v) if v is not None else 0) + ENTRY_OVERHEAD_BYTES for k, v in mem.data.items())


def test_overwrites_and_tombstones_track_live_bytes() -> None:
    mem = Memtable(0)
    for round_ in range(50):                     # the same 100 keys, rewritten with new sizes
        for i in range(100):
            mem.put(b"k%d" % i, None if (i + round_) % 9 == 0 else b"v" * ((i * round_) % 37))
        assert mem.approx_bytes == _live_bytes(mem)
    assert len(mem) == 100 and list(mem.keys) == sorted(mem.data)


def test_hot_key_set_does_not_grow() -> None:
    mem = Memtable(0)
    for i in range(10_000):
        mem.put(b"key:%d" % (i % 20), b"x" * 100)
    assert mem.approx_bytes == 20 * (len(b"key:0") + 100 + ENTRY_OVERHEAD_BYTES) + 10 * 1
