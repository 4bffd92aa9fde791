"""Redis glob (resp_kv/commands/glob.py): cases from Redis's util.c tests and keyspace.tcl."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resp_kv.commands.glob import match


@pytest.mark.parametrize("pattern, string, expected", [
    (b"*", b"", True),
    (b"*", b"anything", True),
    (b"", b"", True),
    (b"", b"a", False),
    (b"a", b"", False),
    (b"foo*", b"foo", True),
    (b"foo*", b"foobar", True),
    (b"foo*", b"fo", False),
    (b"*bar", b"foobar", True),
    (b"f*b*r", b"foobar", True),
    (b"f**r", b"foobar", True),
    (b"f?o", b"foo", True),
    (b"f?o", b"fo", False),
    (b"h[ae]llo", b"hello", True),
    (b"h[ae]llo", b"hallo", True),
    (b"h[ae]llo", b"hillo", False),
    (b"h[^e]llo", b"hallo", True),
    (b"h[^e]llo", b"hello", False),
    (b"h[a-b]llo", b"hbllo", True),
    (b"h[a-b]llo", b"hcllo", False),
    (b"h[b-a]llo", b"hallo", True),             # reversed range
    (b"h[^a-c]llo", b"hdllo", True),
    (b"h[^a-c]llo", b"hbllo", False),
    (b"[\\]]", b"]", True),                     # escaped ] inside a class
    (b"[\\^]", b"^", True),
    (b"[!a]", b"!", True),                      # ! is not negation in Redis (fnmatch differs)
    (b"[!a]", b"b", False),
    (b"\\*", b"*", True),
    (b"\\*", b"a", False),
    (b"a\\?", b"a?", True),
    (b"a\\?", b"ab", False),
    (b"\\", b"\\", True),                       # lone trailing backslash is literal
    (b"[abc", b"a", True),                      # unterminated class ends at the pattern end
    (b"[abc", b"d", False),
    (b"[a-", b"-", True),
    (b"*[a]", b"ba", True),
    (b"a*", b"a\x00b", True),                   # binary safe
    (b"*\x00*", b"x\x00y", True),
    (b"a*a*a*a*a*a*a*a*b", b"a" * 40, False),   # skipLongerMatches keeps this cheap
    (b"*a", b"", False),
    (b"a**", b"a", True),
])
def test_glob_redis_cases(pattern, string, expected):
    assert match(pattern, string) is expected


def test_glob_nocase():
    assert match(b"MaxMemory*", b"maxmemory-policy", nocase=True)
    assert match(b"[A-Z]x", b"qX", nocase=True)
    assert not match(b"MaxMemory*", b"maxmemory-policy")


@given(st.binary(max_size=20))
def test_glob_literal_pattern_matches_only_itself(s):
    literal = b"".join(b"\\" + bytes([c]) for c in s)
    assert match(literal, s)
    assert not match(literal, s + b"x")


@given(st.binary(max_size=12), st.binary(max_size=12))
def test_glob_star_prefix(prefix, rest):
    escaped = b"".join(b"\\" + bytes([c]) for c in prefix)
    assert match(escaped + b"*", prefix + rest)


@pytest.mark.parametrize("pattern, string", [
    (b"[a-]x", b"]x"),            # `a-]` is a range ']'..'a' in Redis, and the class runs on
    (b"[]", b"x"),                # an empty class never matches
    (b"[^]", b"x"),               # ... and negated matches any byte
    (b"[", b"["),                 # an unterminated empty class never matches
    (b"[^", b"q"),
])
def test_glob_odd_classes_agree_between_regex_and_interpreter(pattern, string):
    from resp_kv.commands.glob import _LOWER, _SAME, _match
    for nocase in (False, True):
        interpreted = _match(pattern, 0, string, 0, [False], 0, _LOWER if nocase else _SAME)
        assert match(pattern, string, nocase) is interpreted


@given(st.text(alphabet="ab*?[]^-\\A", max_size=8), st.binary(min_size=1, max_size=8),
       st.booleans())
def test_glob_regex_path_equals_interpreter(pattern, string, nocase):
    from resp_kv.commands.glob import _LOWER, _SAME, _match
    raw = pattern.encode()
    if raw == b"*":
        return
    interpreted = _match(raw, 0, string, 0, [False], 0, _LOWER if nocase else _SAME)
    assert match(raw, string, nocase) is interpreted
