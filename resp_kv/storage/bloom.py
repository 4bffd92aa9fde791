"""Bloom filter over an SSTable's keys: "definitely absent" answers spare a block read.

    bloom := k:u8 m:u32 bits[ceil(m / 8)]            (big-endian header; bit i is
                                                      byte i >> 3, mask 1 << (i & 7))

Positions use double hashing (Kirsch & Mitzenmacher, "Less hashing, same performance"):
h1, h2 = mmh3.hash64(key): the two halves of MurmurHash3_x64_128 with seed 0, as SIGNED 64-bit
integers (mmh3's default); position j is (h1 + j * h2) mod m for j in 0..k-1, with the
mathematical (non-negative) modulo, as Python's % computes it. k = round(bits_per_key * ln 2),
clamped to 1..30.
Expected false-positive rate: (1 - e^(-k n / m))^k, about 0.8% at 10 bits per key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import mmh3

from .format import BLOOM_HEADER

_hash64 = mmh3.hash64


def _hashes(key: bytes) -> tuple[int, int]:
    return _hash64(key)                  # on-disk: never change (see docstring)


def hash_count(bits_per_key: int) -> int:
    return max(1, min(30, round(bits_per_key * math.log(2))))


def expected_fp_rate(n: int, bits_per_key: int) -> float:
    m = max(64, n * bits_per_key)
    k = hash_count(bits_per_key)
    return (1 - math.exp(-k * n / m)) ** k


def build_bloom(key_hashes: Iterable[tuple[int, int]], n: int, bits_per_key: int,
                tick: Callable[[], None] | None = None) -> bytes:
    """Encode a filter for `n` keys given by `key_hash(key)`; see the grammar above.

    `tick`, if given, is called once per key (the background thread's GIL pacing).
    """
    m = max(64, n * bits_per_key)
    k = hash_count(bits_per_key)
    bits = bytearray((m + 7) // 8)
    rounds = range(k)
    for h1, h2 in key_hashes:
        pos, step = h1 % m, h2 % m
        for _ in rounds:
            bits[pos >> 3] |= 1 << (pos & 7)
            pos += step
            if pos >= m:
                pos -= m
        if tick is not None:
            tick()
    return BLOOM_HEADER.pack(k, m) + bits


key_hash = _hashes


class Bloom:
    """A decoded filter. Immutable; safe to share between threads."""

    __slots__ = ("_k", "_m", "_bits", "_rounds")

    def __init__(self, encoded: bytes) -> None:
        self._k, self._m = BLOOM_HEADER.unpack_from(encoded, 0)
        self._rounds = range(self._k)
        self._bits = encoded[BLOOM_HEADER.size:]
        if self._m == 0 or len(self._bits) != (self._m + 7) // 8:
            raise ValueError("bloom bit count does not match its length")

    def may_contain(self, key: bytes) -> bool:
        h1, h2 = _hash64(key)
        return self.may_contain_hashed(h1, h2)

    def may_contain_hashed(self, h1: int, h2: int) -> bool:
        """`may_contain` for a key whose `key_hash` is (h1, h2): hash once, probe many tables."""
        m, bits = self._m, self._bits
        pos, step = h1 % m, h2 % m          # then small-int adds: same positions, no bigints
        for _ in self._rounds:
            if not bits[pos >> 3] & (1 << (pos & 7)):
                return False
            pos += step
            if pos >= m:
                pos -= m
        return True
