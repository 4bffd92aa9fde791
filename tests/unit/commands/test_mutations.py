"""Pure mutators (resp_kv/commands/mutations.py): replies, writes and Redis error texts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.types import Current, Outcome, Write
from resp_kv.commands.mutations import (
    LLONG_MAX, LLONG_MIN, MUTATORS, format_long_double, parse_ll, parse_long_double,
)
from resp_kv.errors import CommandError
from resp_kv.reply import OK

NOW = 1_700_000_000_000


def run(name: str, current: Current | None, *args: bytes, now: int = NOW) -> Outcome:
    return MUTATORS[name](current, list(args), now)


def error_line(outcome: Outcome) -> str:
    assert isinstance(outcome.reply, CommandError), outcome
    assert outcome.write is None
    return outcome.reply.line


def live(value: bytes, ttl_at: int = 0) -> Current:
    return Current(value, ttl_at)


# -- SET ----------------------------------------------------------------------------------------

def test_mutations_set_plain_overwrites_and_clears_ttl():
    assert run("set", live(b"old", NOW + 5000), b"new", b"0") == Outcome(OK, Write(b"new", 0))


def test_mutations_set_nx_xx():
    assert run("set", None, b"v", b"0", b"NX") == Outcome(OK, Write(b"v", 0))
    assert run("set", live(b"x"), b"v", b"0", b"NX") == Outcome(None)
    assert run("set", None, b"v", b"0", b"XX") == Outcome(None)
    assert run("set", live(b"x"), b"v", b"0", b"XX") == Outcome(OK, Write(b"v", 0))


def test_mutations_set_get_replies_old_value_even_when_aborted():
    assert run("set", live(b"x"), b"v", b"0", b"GET") == Outcome(b"x", Write(b"v", 0))
    assert run("set", None, b"v", b"0", b"GET") == Outcome(None, Write(b"v", 0))
    assert run("set", live(b"x"), b"v", b"0", b"GET", b"NX") == Outcome(b"x")
    assert run("set", None, b"v", b"0", b"GET", b"XX") == Outcome(None)


def test_mutations_set_keepttl_and_expiry():
    assert run("set", live(b"x", NOW + 10), b"v", b"0", b"KEEPTTL") == Outcome(OK, Write(b"v", NOW + 10))
    assert run("set", None, b"v", b"0", b"KEEPTTL") == Outcome(OK, Write(b"v", 0))
    assert run("set", live(b"x", NOW + 10), b"v", str(NOW + 99).encode(), b"XX") == \
        Outcome(OK, Write(b"v", NOW + 99))


def test_mutations_expired_current_counts_as_missing():
    expired = live(b"x", NOW)
    assert run("set", expired, b"v", b"0", b"NX") == Outcome(OK, Write(b"v", 0))
    assert run("del", expired) == Outcome(0)
    assert run("incrby", expired, b"5") == Outcome(5, Write(b"5", 0))


def test_mutations_setnx_getset_getdel_del():
    assert run("setnx", None, b"v") == Outcome(1, Write(b"v", 0))
    assert run("setnx", live(b"x"), b"v") == Outcome(0)
    assert run("getset", live(b"x", NOW + 9), b"v") == Outcome(b"x", Write(b"v", 0))
    assert run("getset", None, b"v") == Outcome(None, Write(b"v", 0))
    assert run("getdel", live(b"x")) == Outcome(b"x", Write(None))
    assert run("getdel", None) == Outcome(None)
    assert run("del", live(b"x")) == Outcome(1, Write(None))
    assert run("del", None) == Outcome(0)


# -- EXPIRE -------------------------------------------------------------------------------------

def expire(current, when, *flags, issued=NOW):
    return run("expire", current, str(when).encode(), str(issued).encode(), *flags)


def test_mutations_expire_sets_or_deletes():
    assert expire(None, NOW + 1000) == Outcome(0)
    assert expire(live(b"v"), NOW + 1000) == Outcome(1, Write(b"v", NOW + 1000))
    assert expire(live(b"v"), NOW) == Outcome(1, Write(None))
    assert expire(live(b"v"), -5) == Outcome(1, Write(None))


def test_mutations_expire_uses_the_later_of_both_clocks_for_deletion():
    # The handler said "now" (issued) is later than the coordinator's clock: still a delete.
    assert expire(live(b"v"), NOW + 10, issued=NOW + 10) == Outcome(1, Write(None))


@pytest.mark.parametrize("existing", [0, NOW + 5000])
@pytest.mark.parametrize("when", [NOW + 1000, NOW + 5000, NOW + 9000])
@pytest.mark.parametrize("flag", [None, b"NX", b"XX", b"GT", b"LT"])
def test_mutations_expire_option_matrix(existing, when, flag):
    current = live(b"v", existing)
    outcome = expire(current, when, *([flag] if flag else []))
    has_ttl = existing != 0
    expected_ok = {
        None: True,
        b"NX": not has_ttl,
        b"XX": has_ttl,
        b"GT": has_ttl and when > existing,
        b"LT": (not has_ttl) or when < existing,
    }[flag]
    if expected_ok:
        assert outcome == Outcome(1, Write(b"v", when))
    else:
        assert outcome == Outcome(0)


def test_mutations_expire_combined_xx_gt():
    assert expire(live(b"v", NOW + 10), NOW + 20, b"GT", b"XX") == Outcome(1, Write(b"v", NOW + 20))
    assert expire(live(b"v"), NOW + 20, b"LT", b"XX") == Outcome(0)


def test_mutations_persist():
    assert run("persist", live(b"v", NOW + 10)) == Outcome(1, Write(b"v", 0))
    assert run("persist", live(b"v")) == Outcome(0)
    assert run("persist", None) == Outcome(0)


# -- INCRBY -------------------------------------------------------------------------------------

def test_mutations_incrby_basic_and_keeps_ttl():
    assert run("incrby", None, b"1") == Outcome(1, Write(b"1", 0))
    assert run("incrby", live(b"10", NOW + 50), b"-15") == Outcome(-5, Write(b"-5", NOW + 50))


@pytest.mark.parametrize("value", [b"", b" 1", b"1 ", b"+1", b"01", b"-0", b"1.0", b"abc",
                                   b"9223372036854775808", b"-9223372036854775809", b"1e3"])
def test_mutations_incrby_rejects_non_canonical_values(value):
    assert error_line(run("incrby", live(value), b"1")) == "ERR value is not an integer or out of range"


def test_mutations_incrby_overflow():
    assert error_line(run("incrby", live(str(LLONG_MAX).encode()), b"1")) == \
        "ERR increment or decrement would overflow"
    assert error_line(run("incrby", live(str(LLONG_MIN).encode()), b"-1")) == \
        "ERR increment or decrement would overflow"


_i64 = st.integers(LLONG_MIN, LLONG_MAX)


@given(_i64, _i64)
def test_mutations_incrby_matches_python_int(old, delta):
    outcome = run("incrby", live(str(old).encode()), str(delta).encode())
    new = old + delta
    if LLONG_MIN <= new <= LLONG_MAX:
        assert outcome == Outcome(new, Write(str(new).encode(), 0))
    else:
        assert error_line(outcome) == "ERR increment or decrement would overflow"


@given(st.integers())
def test_mutations_parse_ll_roundtrips_in_range(n):
    assert parse_ll(str(n).encode()) == (n if LLONG_MIN <= n <= LLONG_MAX else None)


# -- INCRBYFLOAT --------------------------------------------------------------------------------

@pytest.mark.parametrize("old, delta, expected", [
    (None, b"10.5", b"10.5"),
    (b"10.5", b"0.1", b"10.6"),                 # long double, not double: Redis's doc example
    (b"5.0e3", b"2.0e2", b"5200"),
    (b"3.0e3", b"0", b"3000"),
    (b"0.1", b"0.2", b"0.3"),
    (b"1", b"-1", b"0"),
    (b"-1", b"0.5", b"-0.5"),
    (b"17179869184", b"1.5", b"17179869185.5"),
    (b"0x10", b"1", b"17"),
    (b"1", b".5", b"1.5"),
    (b"1", b"+5.", b"6"),
    (None, b"-1e-30", b"0"),                    # %.17Lf rounds to -0, printed as 0
    (b"1", b"1e-4940", b"1"),                   # a subnormal long double is accepted
    (b"0x1p-16445", b"0", b"0"),                # the smallest subnormal
])
def test_mutations_incrbyfloat_formats_like_redis(old, delta, expected):
    current = live(old, NOW + 7) if old is not None else None
    outcome = run("incrbyfloat", current, delta)
    assert outcome == Outcome(expected, Write(expected, NOW + 7 if old is not None else 0))


@pytest.mark.parametrize("old, delta", [
    (b"abc", b"1"), (b"1", b"abc"), (b" 1", b"1"), (b"1", b"1 "), (b"1", b""), (b"1", b"nan"),
    (b"1", b"1e"), (b"1", b"1e99999"), (b"1", b"1e-99999"), (b"1", b"0x"), (b"1", b"1" * 5120),
    (b"1", b"1e-4960"), (b"1", b"1.2e4932"), (b"1", b"0x1p16384"),      # ERANGE in strtold
])
def test_mutations_incrbyfloat_rejects_invalid_floats(old, delta):
    assert error_line(run("incrbyfloat", live(old), delta)) == "ERR value is not a valid float"


@pytest.mark.parametrize("old, delta", [(b"0", b"inf"), (b"0", b"+inf"), (b"inf", b"-inf"),
                                        (b"1e4932", b"1e4932")])
def test_mutations_incrbyfloat_nan_or_infinity(old, delta):
    assert error_line(run("incrbyfloat", live(old), delta)) == \
        "ERR increment would produce NaN or Infinity"


def test_mutations_long_double_format_strips_trailing_zeros():
    assert format_long_double(parse_long_double(b"1.5000")) == b"1.5"
    assert format_long_double(parse_long_double(b"-100")) == b"-100"
    assert format_long_double(parse_long_double(b"1e-17")) == b"0.00000000000000001"


# -- APPEND -------------------------------------------------------------------------------------

@given(st.binary(max_size=64), st.lists(st.binary(max_size=32), max_size=6))
def test_mutations_append_lengths(first, suffixes):
    current = None
    expected = b""
    for chunk in [first, *suffixes]:
        outcome = run("append", current, chunk)
        expected += chunk
        assert outcome.reply == len(expected)
        assert outcome.write == Write(expected, 0)
        current = live(outcome.write.value)


def test_mutations_append_keeps_ttl():
    assert run("append", live(b"ab", NOW + 3), b"c") == Outcome(3, Write(b"abc", NOW + 3))


@given(st.sampled_from(sorted(MUTATORS)),
       st.one_of(st.none(), st.builds(Current, st.binary(max_size=24), st.integers(0, 2 * NOW))),
       st.lists(st.binary(max_size=24), max_size=5))
def test_mutations_never_raise_on_malformed_args(name, current, args):
    outcome = MUTATORS[name](current, args, NOW)
    assert isinstance(outcome, Outcome)


def test_mutations_malformed_args_are_a_syntax_error():
    assert error_line(run("set", None, b"v", b"soon")) == "ERR syntax error"
    assert error_line(run("getset", None)) == "ERR syntax error"
