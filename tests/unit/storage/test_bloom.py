"""Bloom filter: no false negatives, and a measured false-positive rate near the theory."""

from __future__ import annotations

import pytest

from resp_kv.storage.bloom import Bloom, build_bloom, expected_fp_rate, key_hash


@pytest.mark.parametrize("bits_per_key", [5, 10, 16])
def test_bloom_false_positive_rate_near_theoretical(bits_per_key: int) -> None:
    n, probes = 10_000, 60_000
    keys = [b"member:%d" % i for i in range(n)]
    bloom = Bloom(build_bloom([key_hash(k) for k in keys], n, bits_per_key))
    assert all(bloom.may_contain(k) for k in keys)
    false_positives = sum(bloom.may_contain(b"absent:%d" % i) for i in range(probes))
    measured, expected = false_positives / probes, expected_fp_rate(n, bits_per_key)
    assert expected * 0.6 <= measured <= expected * 1.4, (measured, expected)


def test_bloom_empty_filter_rejects_everything() -> None:
    bloom = Bloom(build_bloom([], 0, 10))
    assert not any(bloom.may_contain(b"k%d" % i) for i in range(100))


def test_bloom_rejects_inconsistent_encoding() -> None:
    with pytest.raises(ValueError):
        Bloom(build_bloom([key_hash(b"a")], 1, 10)[:-1])
