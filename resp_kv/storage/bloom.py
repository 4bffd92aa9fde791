"""Bloom filter over an SSTable's keys: "definitely absent" answers spare a block read.

    bloom := k:u8 m:u32 bits[ceil(m / 8)]            (big-endian header; bit i is
                                                      byte i >> 3, mask 1 << (i & 7))

Positions use double hashing (Kirsch & Mitzenmacher, "Less hashing, same performance"):
h1, h2 = mmh3.hash64(key, 0, True, False): the two unsigned 64-bit halves of
MurmurHash3_x64_128 with seed 0 (positional arguments: x64arch=True, signed=False); position j is
(h1 + j * h2) mod m for j in 0..k-1. k = round(bits_per_key * ln 2), clamped to 1..30.
Expected false-positive rate: (1 - e^(-k n / m))^k, about 0.8% at 10 bits per key.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mmh3

from .format import BLOOM_HEADER

_SEED = 0                                            # on-disk: never change
_hash64 = mmh3.hash64


def _hashes(key: bytes) -> tuple[int, int]:
    return _hash64(key, _SEED, True, False)        # on-disk: never change (see docstring)


def hash_count(bits_per_key: int) -> int:
    return max(1, min(30, round(bits_per_key * math.log(2))))


def expected_fp_rate(n: int, bits_per_key: int) -> float:
    m = max(64, n * bits_per_key)
    k = hash_count(bits_per_key)
    return (1 - math.exp(-k * n / m)) ** k


def build_bloom(key_hashes: list[tuple[int, int]], bits_per_key: int,
                tick: Callable[[], None] | None = None) -> bytes:
    """Encode a filter for keys given by `key_hash(key)`; see the grammar above.

    `tick`, if given, is called once per key (the background thread's GIL pacing).
    """
    m = max(64, len(key_hashes) * bits_per_key)
    k = hash_count(bits_per_key)
    bits = bytearray((m + 7) // 8)
    for h1, h2 in key_hashes:
        for _ in range(k):
            pos = h1 % m
            bits[pos >> 3] |= 1 << (pos & 7)
            h1 += h2
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
        h1, h2 = _hash64(key, _SEED, True, False)
        m, bits = self._m, self._bits
        for _ in self._rounds:
            pos = h1 % m
            if not bits[pos >> 3] & (1 << (pos & 7)):
                return False
            h1 += h2
        return True
