"""Answers read straight from a sibling set's canonical bytes (cluster/versioning.py's format),
for the hot paths that would otherwise decode, compute and re-encode.

Each function equals a composition of `versioning` functions over the decoded set, and a
hypothesis test holds it to that (tests/unit/cluster/test_encoded.py). They handle the common
one-sibling set and defer to the decoding path for everything else:

    value_of_encoded(d, clock)    winner(decode(d), clock()).value     every single-node GET
    winner_of_encoded(d, now)     winner(decode(d), now)               MGET, GET with options
    is_dead_encoded(d, now)       is_dead(decode(d), now)              GC gate, every replica write
    lives_on_encoded(d)           not is_dead(decode(d), t) for every t  (its cheap pre-check)
    is_one_sibling_encoded(d)     len(decode(d)) == 1                  a quick read's gate
    overwrite_encoded(d, a, ...)  encode(write(decode(d), join, a, ...))  every plain SET
    replaces_encoded(old, new)    is sync(decode(old), decode(new)) == decode(new)?  replica PUT

Not here: the format itself, its laws, encode/decode (versioning.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from cluster.types import Actor, Current
from cluster.versioning import (
    _ACTOR_CACHE, _FLAG_TOMBSTONE, _ONE_STRUCTS, FORMAT_VERSION, _decode_actors, _encode_fields,
    _one_struct, decode_siblings, is_dead, winner,
)

__all__ = ["value_of_encoded", "winner_of_encoded", "is_dead_encoded", "lives_on_encoded",
           "is_one_sibling_encoded", "overwrite_encoded", "replaces_encoded"]

# A one-sibling set's fixed head (versioning's grammar), read by index: the offsets of its fields
# version 0, n_siblings 1, actors_len 3, flags 5, n_ctx 6, dot_actor 8, dot_counter 10,
# timestamp_ms 18, expire_at_ms 26, value_len 34; then n_ctx context entries of 10 bytes.
# (Compiled, `data[i]` is a load; `struct.unpack_from` boxed every field: ~2.3k instructions
# of a 13.9k GET at -P 16, callgrind.)
_HEAD_SIZE: Final = 38
_HEAD_ONE_CTX: Final = 48                   # ... with one context entry: ctx_actor 38, counter 40
_ONE: Final = b"\x00\x01"                   # a u16 1: one sibling
_NO_EXPIRY: Final = bytes(8)                # a one-sibling set's expire_at_ms of 0
# versioning's constants as C globals of this compiled module (theirs are module-dict lookups)
_VERSION: Final = FORMAT_VERSION
_TOMBSTONE: Final = _FLAG_TOMBSTONE
# Pieces of a one-sibling set with one context entry (`_overwrite_own`)
_ONE_HEAD_START: Final = bytes((FORMAT_VERSION, 0, 1))             # version, n_siblings 1
_LIVE_ONE_CTX: Final = bytes((0, 0, 1, 0, 0))                      # flags, n_ctx 1, dot_actor 0
_TOMBSTONE_ONE_CTX: Final = bytes((_FLAG_TOMBSTONE, 0, 1, 0, 0))
_CTX0: Final = bytes(2)                                            # ctx_actor 0
# ... and of one with no context (`_fresh_own`)
_LIVE_NO_CTX: Final = bytes(5)                                     # flags, n_ctx 0, dot_actor 0
_TOMBSTONE_NO_CTX: Final = bytes((_FLAG_TOMBSTONE, 0, 0, 0, 0))
_FIRST_DOT: Final = (1).to_bytes(8, "big")                         # dot_counter 1


def value_of_encoded(data: bytes, wall_ms: Callable[[], int]) -> bytes | None:
    """`winner_of_encoded(data, wall_ms()).value` (None when no live winner), without the
    Current, and reading the clock only for a value that expires. Hot: every single-node GET."""
    start, end, flags, expire_at_ms = _one_head(data)
    if start >= 0:
        if flags & _TOMBSTONE or (expire_at_ms and expire_at_ms <= wall_ms()):
            return None
        return data[start:end]
    current = winner(decode_siblings(data), wall_ms())
    return current.value if current is not None else None


def _u16(data: bytes, at: int) -> int:
    return data[at] << 8 | data[at + 1]


def _u32(data: bytes, at: int) -> int:
    return data[at] << 24 | data[at + 1] << 16 | data[at + 2] << 8 | data[at + 3]


def _u64(data: bytes, at: int) -> int:
    """The big-endian u64 at `at` (two halves, so that counters and times below 2**62 never
    leave mypyc's fast tagged ints)."""
    return ((data[at] << 24 | data[at + 1] << 16 | data[at + 2] << 8 | data[at + 3]) << 32
            | data[at + 4] << 24 | data[at + 5] << 16 | data[at + 6] << 8 | data[at + 7])


def _one_head(data: bytes) -> tuple[int, int, int, int]:
    """(value start, value end, flags, expire_at_ms) of a one-sibling set; start -1 for several
    siblings (a plain tuple, not an Optional one: compiled, it is returned in registers).
    Raises ValueError if the lengths disagree, like `decode_siblings`."""
    if len(data) < _HEAD_SIZE or data[0] != _VERSION or _u16(data, 1) != 1:
        return -1, -1, 0, 0
    start = _HEAD_SIZE + 10 * _u16(data, 6)              # ctx: u16 actor + u64 counter
    end = start + _u32(data, 34)
    if end + _u16(data, 3) != len(data):
        raise ValueError("bad sibling set header")
    return start, end, data[5], _u64(data, 26)


def winner_of_encoded(data: bytes, now_ms: int) -> Current | None:
    """`winner(decode_siblings(data), now_ms)`, without building Siblings for a one-sibling set
    (the Current built through its slots, as `decode_siblings` builds Siblings).
    Raises ValueError if malformed, like `decode_siblings`."""
    start, end, flags, expire_at_ms = _one_head(data)
    if start < 0:
        return winner(decode_siblings(data), now_ms)
    if flags & _FLAG_TOMBSTONE or (expire_at_ms and expire_at_ms <= now_ms):
        return None
    return Current(data[start:end], expire_at_ms)


def is_one_sibling_encoded(data: bytes) -> bool:
    """True if `data` holds exactly one sibling (its set header's count; not validated)."""
    return data[1:3] == _ONE


def lives_on_encoded(data: bytes) -> bool:
    """True if `data` is one live sibling without an expiry: `is_dead_encoded` is False now and
    at any later time. Three byte comparisons, no call: asked on every replica write before
    the clock and `is_dead_encoded` (False also means "cannot tell")."""
    return data[1:3] == _ONE and data[5:6] == b"\x00" and data[26:34] == _NO_EXPIRY


def is_dead_encoded(data: bytes, now_ms: int) -> bool:
    """`is_dead(decode_siblings(data), now_ms)` without decoding a one-sibling set (every
    replica write of a node with peers asks, for the GC gate)."""
    start, _, flags, expire_at_ms = _one_head(data)
    if start < 0:
        return is_dead(decode_siblings(data), now_ms)
    return bool(flags & _FLAG_TOMBSTONE) or 0 < expire_at_ms <= now_ms


def overwrite_encoded(data: bytes | None, actor: Actor, value: bytes | None, timestamp_ms: int,
                      expire_at_ms: int = 0) -> tuple[bytes, int, int] | None:
    """A blind write over the stored set `data` (None = absent), straight from its bytes.

    Return (new encoding, old flags, old expire_at_ms): the new set is the one sibling that
    `write(decode_siblings(data), join_context(...), actor, ...)` mints (its context covers
    the old sibling, so it replaces it), and the old sibling's flags (0 = value, else
    tombstone) and expiry let the caller account liveness without decoding. With no old set
    the flags are -1. Return None when `data` holds several siblings (use `write`).
    Hot: every single-node SET (bench/hotpath.py: building Siblings was a fifth of a SET).
    Raises ValueError if `data` is malformed (like `decode_siblings`) or a counter or time does
    not fit (like `encode_siblings`).
    """
    try:
        if data is None:
            fresh = _fresh_own(actor, value, timestamp_ms, expire_at_ms)
            if fresh is None:                        # not an actor name: encode raises
                fresh = _encode_fields(actor, 1, {}, value, timestamp_ms, expire_at_ms)
            return fresh, -1, 0
        # `_one_sibling`, inlined and without its checks for a replica's untrusted input: a
        # call and those checks were 1.3 us of a 2.7 us write (timeit); decode errors raise.
        if len(data) < 8 or data[1] != 0 or data[2] != 1 or data[6] != 0:
            return None                              # several siblings: the slow path
        n_ctx = data[7]
        if n_ctx <= 1:
            own = _overwrite_own(data, n_ctx, actor, value, timestamp_ms, expire_at_ms)
            if own is not None:
                return own
        st = _ONE_STRUCTS.get(n_ctx) or _one_struct(n_ctx)
        f = st.unpack_from(data, 0)
        # f: version n_siblings actors_len flags n_ctx dot_actor dot_counter ts exp value_len ctx
        if f[0] != FORMAT_VERSION or st.size + f[9] + f[2] != len(data):
            raise ValueError(f"bad sibling set header (version {f[0]})")
        blob = data[len(data) - f[2]:]
        actors = _ACTOR_CACHE.get(blob) or _decode_actors(blob)
        try:
            joined = {actors[f[10 + i]]: f[10 + n_ctx + i] for i in range(n_ctx)}  # old context
            dot_actor, dot_counter = actors[f[5]], f[6]
        except IndexError as error:
            raise ValueError(f"malformed sibling set: {error}") from None
        if dot_counter > joined.get(dot_actor, 0):   # join_context: the context and the dot
            joined[dot_actor] = dot_counter
        counter = joined.get(actor, 0) + 1
        return (_encode_fields(actor, counter, joined, value, timestamp_ms, expire_at_ms),
                f[3], f[8])
    except (struct.error, OverflowError) as error:  # truncated, or a field beyond its width
        raise ValueError(f"malformed sibling set or unencodable field: {error}") from None


# actor -> its one-actor table (the actors bytes of a set only it wrote); a node asks for its
# own actor only, so this stays tiny (cleared past _OWN_TABLES_MAX, like versioning's caches)
_OWN_TABLES: Final[dict[str, bytes]] = {}
_OWN_TABLES_MAX: Final = 64


def _own_table(actor: Actor) -> bytes | None:
    """The actor table of a set only `actor` wrote; None for a name that is not an actor
    (with a ",", which `encode_siblings` refuses: the general path raises for it)."""
    table = _OWN_TABLES.get(actor)
    if table is None:
        if "," in actor:
            return None
        if len(_OWN_TABLES) >= _OWN_TABLES_MAX:
            _OWN_TABLES.clear()
        table = _OWN_TABLES[actor] = actor.encode()
    return table


class _Stamp:
    """The last timestamp encoded, and its bytes: the SETs of one millisecond (dozens under
    load) share one `to_bytes` (~340 instructions each, callgrind). Event-loop thread only,
    like every writer here (the two fields are set one after the other)."""

    def __init__(self) -> None:
        self.ms = -1
        self.data = b""


_LAST_STAMP: Final = _Stamp()


def _stamp(ms: int) -> bytes:
    """`ms.to_bytes(8, "big")`, from the last call's if the same."""
    last = _LAST_STAMP
    if ms != last.ms:
        last.data = ms.to_bytes(8, "big")
        last.ms = ms
    return last.data


def _fresh_own(actor: Actor, value: bytes | None, timestamp_ms: int,
               expire_at_ms: int) -> bytes | None:
    """`overwrite_encoded` over no stored set (every new key): the one sibling of dot
    (actor, 1) and an empty context, joined from pieces like `_overwrite_own` (the general
    encoder is interpreted: ~1/3 of a new key's SET, py-spy). None for a name that is not an
    actor. Raises OverflowError if a field does not fit."""
    table = _own_table(actor)
    if not table:
        return None
    return b"%s%s%s%s%s%s%s%s%s" % (
        _ONE_HEAD_START, len(table).to_bytes(2, "big"),    # version, n_siblings 1, actors_len
        _LIVE_NO_CTX if value is not None else _TOMBSTONE_NO_CTX,
        _FIRST_DOT, _stamp(timestamp_ms),
        _NO_EXPIRY if expire_at_ms == 0 else expire_at_ms.to_bytes(8, "big"),
        (len(value) if value is not None else 0).to_bytes(4, "big"),
        value if value is not None else b"", table)


def _overwrite_own(data: bytes, n_ctx: int, actor: Actor, value: bytes | None,
                   timestamp_ms: int, expire_at_ms: int) -> tuple[bytes, int, int] | None:
    """`overwrite_encoded` of a one-sibling set with at most one context entry that only
    `actor` ever wrote (every key of a single node): the join is one counter, and the new set
    reuses the old actor table. The header is read by index (`_HEAD_SIZE`; the context's
    counter at 40), and the new one is joined from pieces, reusing the old bytes of what
    did not change (the actors_len; the value_len of a value of the same size; the seen
    counter, which becomes the context's): compiled, loads and two `to_bytes`, where
    `unpack_from` and `pack` boxed twelve ints each way (callgrind: ~5k instructions of a 28k
    SET at -P 16). None: another actor is in the table (the caller decodes the context).
    Raises ValueError if the lengths disagree, OverflowError if a field does not fit."""
    size, head = len(data), _HEAD_SIZE + 10 * n_ctx
    if size < head:
        raise ValueError("truncated sibling set")
    actors_len, old_len = _u16(data, 3), _u32(data, 34)
    if data[0] != _VERSION or head + old_len + actors_len != size:
        raise ValueError(f"bad sibling set header (version {data[0]})")
    blob = data[size - actors_len:]
    if blob != _own_table(actor):
        return None
    seen, seen_at = _u64(data, 10), 10                  # the join: one counter, the greater
    if n_ctx and (ctx_counter := _u64(data, 40)) > seen:  # of the dot's and the context's
        seen, seen_at = ctx_counter, 40
    value_len = len(value) if value is not None else 0
    # A %-format of bytes compiles to one allocation and a memcpy per piece (mypyc's
    # CPyBytes_Build); b"".join of a tuple went through the buffer protocol per piece.
    new = b"%s%s%s%s%s%s%s%s%s%s%s" % (
        _ONE_HEAD_START, data[3:5],                     # version, n_siblings 1, actors_len
        _LIVE_ONE_CTX if value is not None else _TOMBSTONE_ONE_CTX,
        (seen + 1).to_bytes(8, "big"),                  # the dot: (actor, seen + 1)
        _stamp(timestamp_ms),
        _NO_EXPIRY if expire_at_ms == 0 else expire_at_ms.to_bytes(8, "big"),
        data[34:38] if value_len == old_len else value_len.to_bytes(4, "big"),
        _CTX0, data[seen_at:seen_at + 8],               # the context: {actor: seen}
        value if value is not None else b"", blob)
    return new, data[5], _u64(data, 26)                 # old flags, old expire_at_ms


def _one_sibling(data: bytes) -> tuple[tuple, list[str]] | None:
    """(unpacked fields, actor table) of a well-formed one-sibling set, else None (several
    siblings, 256+ context entries, or malformed: the caller takes the decoding path)."""
    if len(data) < 8 or data[1] != 0 or data[2] != 1 or data[6] != 0:
        return None
    n_ctx = data[7]
    st = _ONE_STRUCTS.get(n_ctx) or _one_struct(n_ctx)
    try:
        f = st.unpack_from(data, 0)
    except struct.error:
        return None
    # f: version n_siblings actors_len flags n_ctx dot_actor dot_counter ts exp value_len ctx
    if f[0] != FORMAT_VERSION or st.size + f[9] + f[2] != len(data):
        return None
    if f[3] != 0 and (f[3] != _FLAG_TOMBSTONE or f[9]):
        return None                             # what decode_siblings rejects
    blob = data[len(data) - f[2]:]
    try:
        actors = _ACTOR_CACHE.get(blob) or _decode_actors(blob)
    except ValueError:
        return None
    if f[5] >= len(actors) or (n_ctx and max(f[10:10 + n_ctx]) >= len(actors)):
        return None
    return f, actors


def replaces_encoded(old: bytes | None, new: bytes) -> tuple[int, int, int, int] | None:
    """Decide `sync(decode(old), decode(new)) == decode(new)` from the bytes, for the common
    replica write: one stored sibling (or none) superseded by one incoming sibling whose
    context covers it. Return (old flags, old expire_at_ms, new flags, new expire_at_ms),
    old flags -1 when `old` is None (as `overwrite_encoded`); None when it cannot tell at
    once (siblings, a concurrent or obsolete write, the same dot): then merge the decoded sets.
    """
    # Both shortcuts read the heads by index at their fixed offsets (`_HEAD_SIZE`), as
    # `_one_head` does: compiled, loads, where `unpack_from` boxed twelve fields of each set
    # into a tuple (perf: this function was ~20% of a replica's CPU). A length is checked
    # before any index is read, so neither raises: anything they do not take goes the general
    # way, as before.
    if old is not None:
        # One sibling with a one-entry context over the same, or over a key's first write (no
        # context yet): the replica write of a key that one node coordinates (every replica
        # write of the benchmark). n_siblings (bytes 1-2) and n_ctx (6-7) are u16s of 1, or
        # 0 for the stored set's n_ctx.
        if (len(new) >= _HEAD_ONE_CTX and len(old) >= _HEAD_SIZE
                and new[1] == 0 and new[2] == 1 and new[6] == 0 and new[7] == 1
                and old[1] == 0 and old[2] == 1 and old[6] == 0
                and ((old_has_context := old[7] == 1) or old[7] == 0)
                and (len(old) >= _HEAD_ONE_CTX or not old_has_context)):
            # With every actor index 0 in both sets the general checks below reduce to three
            # counter comparisons; the incoming set's header is validated as `_one_sibling`
            # would, the stored one is our own. Line counts: 46 -> ~12 per write.
            size, value_len, flags = _u16(new, 3), _u32(new, 34), new[5]   # size: actors_len
            if (new[0] == _VERSION and _HEAD_ONE_CTX + value_len + size == len(new)
                    and (flags == 0 or (flags == _TOMBSTONE and not value_len))
                    # dot_actor (8-9) and ctx_actor (38-39) of each: every index 0
                    and not (new[8] | new[9] | new[38] | new[39] | old[8] | old[9]
                             or (old_has_context and old[38] | old[39]))
                    and size and size == _u16(old, 3)
                    and new[-size:] == old[-size:]):
                # The same actor table as our stored set, every index 0: both sides name the
                # same actor whatever the table holds, so it needs no decoding. (It used to be
                # checked for a comma with `b"," not in`, which costs ~1.8k instructions:
                # bytes.__contains__ first tries its argument as an int and formats a
                # TypeError.)
                new_counter, old_counter = _u64(new, 10), _u64(old, 10)   # the dots
                if (new_counter == old_counter or _u64(new, 40) < old_counter
                        or (old_has_context and _u64(old, 40) >= new_counter)):
                    return None             # the same dot, concurrent, or obsolete here
                return old[5], _u64(old, 26), flags, _u64(new, 26)
    elif (len(new) >= _HEAD_SIZE and new[1] == 0 and new[2] == 1 and new[6] == 0
            and new[7] == 0):
        # A key's first write (one sibling, empty context): nothing to compare, only the
        # incoming set to validate as `_one_sibling` does. An actor table is valid once it is
        # in the decode cache; any other goes the general way.
        size, value_len, flags = _u16(new, 3), _u32(new, 34), new[5]       # size: actors_len
        if (new[0] == _VERSION and _HEAD_SIZE + value_len + size == len(new)
                and (flags == 0 or (flags == _TOMBSTONE and not value_len))
                and size and (actors := _ACTOR_CACHE.get(new[-size:])) is not None
                and _u16(new, 8) < len(actors)):                            # dot_actor
            return -1, 0, flags, _u64(new, 26)
    return _replaces_general(old, new)


def _replaces_general(old: bytes | None, new: bytes) -> tuple[int, int, int, int] | None:
    """`replaces_encoded` for any shape (its contexts searched entry by entry)."""
    incoming = _one_sibling(new)
    if incoming is None:
        return None
    fn, actors_n = incoming
    if old is None:
        return -1, 0, fn[3], fn[8]
    stored = _one_sibling(old)
    if stored is None:
        return None
    fo, actors_o = stored
    old_actor, old_counter = actors_o[fo[5]], fo[6]
    new_actor, new_counter = actors_n[fn[5]], fn[6]
    if old_actor == new_actor and old_counter == new_counter:
        return None
    n_new, seen_old = fn[4], 0
    for i in range(n_new):                      # does the incoming context cover the old dot?
        if actors_n[fn[10 + i]] == old_actor:
            seen_old = fn[10 + n_new + i]
            break
    if seen_old < old_counter:
        return None                             # concurrent: both survive
    n_old = fo[4]
    for i in range(n_old):                      # is the incoming dot already obsolete here?
        if actors_o[fo[10 + i]] == new_actor:
            if fo[10 + n_old + i] >= new_counter:
                return None
            break
    return fo[3], fo[8], fn[3], fn[8]
