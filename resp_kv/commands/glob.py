"""Redis glob matching: a line-for-line port of `stringmatchlen` (Redis 7.2 `util.c`).

Used by SCAN MATCH, KEYS and CONFIG GET (the latter with `nocase=True`). Not `fnmatch`: Redis
differs in `[^...]` (fnmatch wants `[!...]`), backslash escapes inside and outside classes,
reversed ranges (`[z-a]` = `[a-z]`), an unterminated `[` and `*` crossing any byte.

Grammar (bytes; every other byte matches itself):

    *        any run of bytes, including none
    ?        any one byte
    [...]    one byte in the class; `[^...]` negates; `a-z` is a range (ends may be reversed);
             `\\x` in a class is the literal x; an unterminated class ends at the pattern's end
    \\x      the literal x (a trailing lone backslash matches a backslash)

Patterns with at most two `*` groups are translated once into an equivalent `re` pattern
(cached), which is ~20x faster for KEYS over a large keyspace; others run the interpreter.
Like Redis, patterns nested deeper than 1000 `*` levels never match, and once the rest of a
pattern after a `*` has failed at every position, earlier `*`s stop trying longer matches
(Redis's `skipLongerMatches`), which bounds the work on patterns like `a*a*a*a*b`.
"""

from __future__ import annotations

import functools
import re

__all__ = ["match"]

# tolower() in the C locale folds only ASCII letters, as bytes.lower() does.
_LOWER = bytes(range(256)).lower()
_SAME = bytes(range(256))
_STAR, _QMARK, _LBRACKET, _RBRACKET, _BACKSLASH, _CARET, _DASH = b"*?[]\\^-"


def match(pattern: bytes, string: bytes, nocase: bool = False) -> bool:
    """Return True if `string` matches the Redis glob `pattern`.

    `*` alone matches every string, the empty one included, as KEYS and SCAN treat it (the C
    function itself never matches an empty string against a non-empty pattern).
    """
    if pattern == b"*":
        return True
    if not string:
        return not pattern
    compiled = _compile(pattern, nocase)
    if compiled is not None:
        return compiled.fullmatch(string) is not None
    try:
        return _match(pattern, 0, string, 0, [False], 0, _LOWER if nocase else _SAME)
    except RecursionError:
        return False


_MAX_REGEX_STARS = 2      # more `*` groups could make `re` backtrack polynomially; interpret


@functools.lru_cache(maxsize=256)
def _compile(pattern: bytes, nocase: bool) -> re.Pattern[bytes] | None:
    """Translate a glob into an equivalent regex, or None to use the interpreter.

    Each `[...]` class is evaluated into its exact byte set by the same scan `_match` does (the
    scan never depends on the string), so odd classes (`[a-]`, `[]`, unterminated) stay exact.
    For non-empty strings a full regex match equals `stringmatchlen`: every token but `*`
    consumes exactly one byte, and `*` runs collapse to one `.*`.
    """
    fold = _LOWER if nocase else _SAME
    plen = len(pattern)

    def at(k: int) -> int:
        return pattern[k] if k < plen else 0

    parts: list[bytes] = []
    stars = 0
    p = 0
    while p < plen:
        c = pattern[p]
        if c == _STAR:
            while p < plen and at(p + 1) == _STAR:
                p += 1
            stars += 1
            if stars > _MAX_REGEX_STARS:
                return None
            parts.append(b".*")
        elif c == _QMARK:
            parts.append(b".")
        elif c == _LBRACKET:
            p += 1
            negate = at(p) == _CARET
            if negate:
                p += 1
            members = [False] * 256
            while True:
                remaining = plen - p
                if at(p) == _BACKSLASH and remaining >= 2:
                    p += 1
                    members[pattern[p]] = True
                elif at(p) == _RBRACKET:
                    break
                elif remaining == 0:
                    p -= 1
                    break
                elif remaining >= 3 and pattern[p + 1] == _DASH:
                    start, end = pattern[p], pattern[p + 2]
                    if start > end:
                        start, end = end, start
                    p += 2
                    low, high = fold[start], fold[end]
                    for ch in range(256):
                        if low <= fold[ch] <= high:
                            members[ch] = True
                else:
                    folded = fold[pattern[p]]
                    for ch in range(256):
                        if fold[ch] == folded:
                            members[ch] = True
                p += 1
            if negate:
                members = [not m for m in members]
            parts.append(_byte_class(members))
        else:
            if c == _BACKSLASH and plen - p >= 2:
                p += 1
            folded = fold[pattern[p]]
            parts.append(_byte_class([fold[ch] == folded for ch in range(256)]))
        p += 1
    return re.compile(b"".join(parts), re.DOTALL)


def _byte_class(members: list[bool]) -> bytes:
    chosen = [ch for ch in range(256) if members[ch]]
    if not chosen:
        return b"(?!)"
    if len(chosen) == 1:
        return re.escape(bytes(chosen))
    return b"[" + b"".join(re.escape(bytes([ch])) for ch in chosen) + b"]"


def _match(pat: bytes, p: int, s: bytes, i: int, skip_longer: list[bool], nesting: int,
           fold: bytes) -> bool:
    # `p`/`i` index the pattern/string; reading one past the pattern's end yields NUL, as the C
    # code reads the sds terminator.
    if nesting > 1000:
        return False
    plen, slen = len(pat), len(s)

    def at(k: int) -> int:
        return pat[k] if k < plen else 0

    while p < plen and i < slen:
        c = pat[p]
        if c == _STAR:
            while p < plen and at(p + 1) == _STAR:
                p += 1
            if plen - p == 1:
                return True
            while i < slen:
                if _match(pat, p + 1, s, i, skip_longer, nesting + 1, fold):
                    return True
                if skip_longer[0]:
                    return False
                i += 1
            skip_longer[0] = True
            return False
        elif c == _QMARK:
            i += 1
        elif c == _LBRACKET:
            p += 1
            negate = at(p) == _CARET
            if negate:
                p += 1
            matched = False
            ch = s[i]
            while True:
                remaining = plen - p
                if at(p) == _BACKSLASH and remaining >= 2:
                    p += 1
                    if pat[p] == ch:
                        matched = True
                elif at(p) == _RBRACKET:
                    break
                elif remaining == 0:
                    p -= 1
                    break
                elif remaining >= 3 and pat[p + 1] == _DASH:
                    start, end = pat[p], pat[p + 2]
                    if start > end:
                        start, end = end, start
                    p += 2
                    if fold[start] <= fold[ch] <= fold[end]:
                        matched = True
                elif fold[pat[p]] == fold[ch]:
                    matched = True
                p += 1
            if negate:
                matched = not matched
            if not matched:
                return False
            i += 1
        else:
            if c == _BACKSLASH and plen - p >= 2:
                p += 1
            if fold[pat[p]] != fold[s[i]]:
                return False
            i += 1
        p += 1
        if i == slen:
            while at(p) == _STAR:
                p += 1
            break
    return p == plen and i == slen
