"""Dotted version vectors: the laws of a key's siblings, and their byte format.

A key's state is a set of `Sibling`s (cluster/types.py). Each sibling carries one *dot*
(actor, counter) that minted it and the *context* (actor -> counter) its writer had seen.
A sibling is superseded exactly when some context covers its dot (context[actor] >= counter),
so a write over an old context never discards a version it has not seen, and interleaved
read-modify-write cycles do not multiply siblings (the vector-clock "sibling explosion" that
Riak fixed with DVVs). Following Preguiça, Baquero et al., "Dotted Version Vectors: Logical
Clocks for Optimistic Replication" (2010), and riak_kv's `riak_dt_dvv`/`dvvset`.

Actors are "node_id@incarnation" strings (types.py); the incarnation is fresh for an empty data
dir, so a node that lost its disk never re-mints a dot (riak kv679). Versions are never pruned.

Not here: storage, quorum, clocks. Callers pass `now_ms` and `timestamp_ms` in.

Byte format of a sibling set (big-endian; `# on-disk: never change`)::

    set       := VERSION:u8 n_siblings:u16 actors_len:u16 sibling{n_siblings} actors[actors_len]
    actors    := the set's distinct actor names, UTF-8, sorted, joined by ","  (index = position)
    sibling   := head ctx_actor:u16{n_ctx} ctx_counter:u64{n_ctx} value[value_len]
    head      := flags:u8 n_ctx:u16 dot_actor:u16 dot_counter:u64 timestamp_ms:u64
                 expire_at_ms:u64 value_len:u32
    flags     := bit 0 set = tombstone (value is None, value_len = 0); other bits zero
    ctx_actor[i], ctx_counter[i] is the i-th context entry; entries sorted by actor name

VERSION is 1. The actor table comes last so that a one-sibling set (the common case) is one
fixed-layout struct for a given context size, packed and unpacked in one call.
`encode_siblings` is canonical (siblings sorted by dot, actors and context entries sorted),
so equal sets encode to equal bytes and `digest` is order-independent. Answers read straight
from these bytes without decoding (the hot paths) are in cluster/encoded.py.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import mmh3

from cluster.types import Actor, Context, Current, Sibling

__all__ = [
    "sync", "write", "covers", "join_context", "winner", "ordered", "is_dead",
    "format_clock", "format_context", "parse_context",
    "encode_siblings", "decode_siblings", "digest", "FORMAT_VERSION",
]

FORMAT_VERSION = 1                               # on-disk: never change
_SET = struct.Struct(">BHH")                     # on-disk: never change
_HEAD = struct.Struct(">BHHQQQI")                # on-disk: never change
_FLAG_TOMBSTONE = 1                              # on-disk: never change
_MAX_U64 = (1 << 64) - 1
_CTX_STRUCTS: dict[int, struct.Struct] = {}      # n_ctx -> the ctx_actor/ctx_counter arrays
_SIB_STRUCTS: dict[int, struct.Struct] = {}      # n_ctx -> head + ctx arrays, for encoding
_ONE_STRUCTS: dict[int, struct.Struct] = {}      # n_ctx -> a whole one-sibling set but actors
# A node sees few distinct actor sets, so cache their decoded tables (keyed by the raw
# "a,b,c" bytes) and their one-sibling encoding plans (keyed by (dot actor, *context actors)).
_ACTOR_CACHE: dict[bytes, list[str]] = {}
_ENCODE_PLANS: dict[tuple[str, ...], tuple] = {}
_CACHE_MAX = 4096


# --- laws -------------------------------------------------------------------------------------

def covers(context: Context, sibling: Sibling) -> bool:
    """Return True if `context` has seen `sibling`'s dot."""
    actor, counter = sibling.dot
    return context.get(actor, 0) >= counter


def sync(a: Iterable[Sibling], b: Iterable[Sibling]) -> list[Sibling]:
    """Merge two replicas' sibling sets.

    Each dot is kept once; a sibling whose dot another sibling's context covers is dropped.
    Commutative, associative and idempotent as a set operation (result order: by dot).
    """
    if type(a) is list and type(b) is list and len(a) == 1 and len(b) == 1 \
            and a[0].dot != b[0].dot:
        # Hot (every replica write: stored set + incoming sibling); same result as below.
        x, y = a[0], b[0]
        (xa, xc), (ya, yc) = x.dot, y.dot
        x_gone, y_gone = y.context.get(xa, 0) >= xc, x.context.get(ya, 0) >= yc
        if x_gone or y_gone:
            return [s for s, gone in ((x, x_gone), (y, y_gone)) if not gone]
        return [x, y] if x.dot < y.dot else [y, x]
    by_dot: dict = {}
    for s in (*a, *b):
        old = by_dot.get(s.dot)
        if old is None or (old is not s and old != s and _same_dot_key(s) > _same_dot_key(old)):
            by_dot[s.dot] = s
    if len(by_dot) <= 1:
        return list(by_dot.values())
    seen: dict[Actor, int] = {}                  # join of all contexts (not dots)
    for s in by_dot.values():
        for actor, counter in s.context.items():
            if counter > seen.get(actor, 0):
                seen[actor] = counter
    survivors = []
    for s in by_dot.values():
        actor, counter = s.dot
        if seen.get(actor, 0) >= counter and any(
                o is not s and o.context.get(actor, 0) >= counter for o in by_dot.values()):
            continue
        survivors.append(s)
    survivors.sort(key=_dot_key)
    return survivors


def _same_dot_key(s: Sibling) -> tuple:
    """Deterministic pick between two different payloads under one dot (never in a healthy
    cluster: dots are unique). Keeps sync commutative even then."""
    return (s.timestamp_ms, s.expire_at_ms, s.value is not None, s.value or b"",
            sorted(s.context.items()))


def _dot_key(s: Sibling) -> tuple[str, int]:
    return s.dot


def write(local: Iterable[Sibling], context: Context, actor: Actor, value: bytes | None,
          timestamp_ms: int, expire_at_ms: int = 0) -> tuple[Sibling, list[Sibling]]:
    """Mint a write at coordinator `actor` over `context`.

    Return (new sibling, survivors): survivors are the `local` siblings `context` does not
    cover, plus the new sibling. The new dot's counter is one past anything `actor` has
    minted that is visible here: `context`, `local`'s dots, and `local`'s contexts. (The last
    matters: if (a,3) was superseded by a sibling with context {a:3}, a write over a stale
    context must not re-mint (a,1), which that context would silently discard.)
    """
    local = list(local)
    counter = context.get(actor, 0)
    for s in local:
        if s.dot[0] == actor and s.dot[1] > counter:
            counter = s.dot[1]
        seen = s.context.get(actor, 0)
        if seen > counter:
            counter = seen
    new = Sibling((actor, counter + 1), {a: c for a, c in context.items() if c > 0},
                  value, timestamp_ms, expire_at_ms)
    survivors = [s for s in local if not covers(context, s)]
    survivors.append(new)
    return new, survivors


def join_context(siblings: Iterable[Sibling]) -> dict[Actor, int]:
    """Return the context that covers every sibling (each context and each dot)."""
    joined: dict[Actor, int] = {}
    for s in siblings:
        for actor, counter in s.context.items():
            if counter > joined.get(actor, 0):
                joined[actor] = counter
        actor, counter = s.dot
        if counter > joined.get(actor, 0):
            joined[actor] = counter
    return joined


def _winner_key(s: Sibling) -> tuple[int, str, int]:
    return (s.timestamp_ms, s.dot[0], s.dot[1])


def winner(siblings: Iterable[Sibling], now_ms: int) -> Current | None:
    """Return the live winner: max by (timestamp_ms, actor, counter), the same on every node.

    None when there are no siblings, or the winner is a tombstone or expired
    (expire_at_ms != 0 and <= now_ms).
    """
    best = max(siblings, key=_winner_key, default=None)
    if best is None or best.value is None:
        return None
    if best.expire_at_ms and best.expire_at_ms <= now_ms:
        return None
    return Current(best.value, best.expire_at_ms)


def ordered(siblings: Iterable[Sibling]) -> list[Sibling]:
    """Return the siblings in a deterministic order (by dot)."""
    return sorted(siblings, key=_dot_key)


def is_dead(siblings: Iterable[Sibling], now_ms: int) -> bool:
    """Return True if no sibling is live (all tombstones or expired; True for none)."""
    for s in siblings:
        if s.value is not None and not (s.expire_at_ms and s.expire_at_ms <= now_ms):
            return False
    return True


# --- text forms (VCLOCK) ----------------------------------------------------------------------

def format_context(context: Context) -> str:
    """Return "actor:counter" pairs sorted by actor, comma-joined ("" for an empty context)."""
    return ",".join(f"{a}:{c}" for a, c in sorted(context.items()) if c > 0)


def format_clock(sibling: Sibling) -> str:
    """Return the sibling's version vector (context ∪ dot) as `format_context` text."""
    clock = dict(sibling.context)
    actor, counter = sibling.dot
    if counter > clock.get(actor, 0):
        clock[actor] = counter
    return format_context(clock)


def parse_context(text: bytes | str) -> dict[Actor, int]:
    """Parse `format_context` text. Raises ValueError if malformed; "" gives {}."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("context is not UTF-8") from None
    if text == "":
        return {}
    context: dict[Actor, int] = {}
    for pair in text.split(","):
        actor, sep, digits = pair.rpartition(":")
        if not sep or not actor or actor != actor.strip() or not digits.isascii() \
                or not digits.isdigit():
            raise ValueError(f"malformed context entry {pair!r}")
        counter = int(digits)
        if not 0 < counter <= _MAX_U64 or actor in context:
            raise ValueError(f"malformed context entry {pair!r}")
        context[actor] = counter
    return context


# --- bytes (on disk and on the wire) ------------------------------------------------------------

def _ctx_struct(n: int) -> struct.Struct:
    st = _CTX_STRUCTS.get(n)
    if st is None:
        st = _CTX_STRUCTS[n] = struct.Struct(f">{n}H{n}Q")
    return st


def _sibling_struct(n: int) -> struct.Struct:
    st = _SIB_STRUCTS.get(n)
    if st is None:
        st = _SIB_STRUCTS[n] = struct.Struct(f">BHHQQQI{n}H{n}Q")
    return st


def _one_struct(n: int) -> struct.Struct:
    """Set header + the single sibling's head and context arrays."""
    st = _ONE_STRUCTS.get(n)
    if st is None:
        st = _ONE_STRUCTS[n] = struct.Struct(f">BHHBHHQQQI{n}H{n}Q")
    return st


def encode_siblings(siblings: Iterable[Sibling]) -> bytes:
    """Encode a sibling set canonically (module docstring grammar). Raises ValueError if a
    field does not fit (counter or time beyond u64, value over 4 GiB, over 65535 actors) or
    an actor name is empty or contains ","."""
    if type(siblings) is not list:
        siblings = list(siblings)
    try:
        if len(siblings) == 1:
            return _encode_one(siblings[0])
        return _encode_many(siblings)
    except struct.error as error:
        raise ValueError(f"cannot encode siblings: {error}") from None


def _encode_one(s: Sibling) -> bytes:
    """Fast path: one sibling (a key without conflicts). Hot: every replica write."""
    dot_actor, dot_counter = s.dot
    return _encode_fields(dot_actor, dot_counter, s.context, s.value, s.timestamp_ms,
                          s.expire_at_ms)


def _encode_fields(dot_actor: Actor, dot_counter: int, context: Context, value: bytes | None,
                   timestamp_ms: int, expire_at_ms: int) -> bytes:
    """`_encode_one` from the fields, so a writer need not build a Sibling first."""
    shape = (dot_actor, *context)
    plan = _ENCODE_PLANS.get(shape)
    if plan is None:
        plan = _encode_plan(shape)
    st, blob_len, dot_index, indexes, keys, blob = plan
    if value is None:
        return st.pack(FORMAT_VERSION, 1, blob_len, _FLAG_TOMBSTONE, len(keys), dot_index,
                       dot_counter, timestamp_ms, expire_at_ms, 0,
                       *indexes, *[context[k] for k in keys]) + blob
    return b"".join((st.pack(FORMAT_VERSION, 1, blob_len, 0, len(keys), dot_index, dot_counter,
                             timestamp_ms, expire_at_ms, len(value),
                             *indexes, *[context[k] for k in keys]), value, blob))


def _encode_plan(shape: tuple[str, ...]) -> tuple:
    """Precompute what a one-sibling set with this (dot actor, context actors) shape needs."""
    dot_actor, keys = shape[0], sorted(shape[1:])
    actors = _check_actors(sorted({dot_actor, *keys}))
    index = {a: i for i, a in enumerate(actors)}
    blob = ",".join(actors).encode()
    plan = (_one_struct(len(keys)), len(blob), index[dot_actor],
            tuple(index[k] for k in keys), tuple(keys), blob)
    if len(_ENCODE_PLANS) >= _CACHE_MAX:
        _ENCODE_PLANS.clear()
    _ENCODE_PLANS[shape] = plan
    return plan


def _check_actors(actors: list[str]) -> list[str]:
    for actor in actors:
        if not actor or "," in actor:
            raise ValueError(f"cannot encode actor {actor!r}: empty or contains ','")
    return actors


def _encode_many(siblings: list[Sibling]) -> bytes:
    siblings = sorted(siblings, key=_dot_key)
    names = set()
    for s in siblings:
        names.add(s.dot[0])
        names.update(s.context)
    actors = _check_actors(sorted(names))
    index = {a: i for i, a in enumerate(actors)}
    blob = ",".join(actors).encode()
    parts = [_SET.pack(FORMAT_VERSION, len(siblings), len(blob))]
    for s in siblings:
        value, keys = s.value, sorted(s.context)
        parts.append(_sibling_struct(len(keys)).pack(
            0 if value is not None else _FLAG_TOMBSTONE, len(keys), index[s.dot[0]], s.dot[1],
            s.timestamp_ms, s.expire_at_ms, len(value) if value is not None else 0,
            *[index[k] for k in keys], *[s.context[k] for k in keys]))
        if value:
            parts.append(value)
    parts.append(blob)
    return b"".join(parts)


# Build a Sibling without the frozen dataclass __init__ (one object.__setattr__ per field):
# decode is on every read and write path, and this halves its cost (measured with timeit).
_new_object = object.__new__
_set_dot, _set_context, _set_value, _set_ts, _set_exp = (
    Sibling.dot.__set__, Sibling.context.__set__, Sibling.value.__set__,
    Sibling.timestamp_ms.__set__, Sibling.expire_at_ms.__set__)


def decode_siblings(data: bytes) -> list[Sibling]:
    """Decode `encode_siblings` bytes. Raises ValueError if malformed or of another version.

    Hot: every read and every replica write. The one-sibling case is inlined (one struct,
    tuple indexing, no helper calls beyond the slot setters): measured with timeit.
    """
    if type(data) is not bytes:
        data = bytes(data)                       # memoryview/bytearray: slices must hash
    try:
        # bytes 1-2: n_siblings; bytes 6-7: the first sibling's n_ctx
        if len(data) < 8 or data[1] != 0 or data[2] != 1 or data[6] != 0:
            return _decode_many(data)
        n_ctx = data[7]
        st = _ONE_STRUCTS.get(n_ctx) or _one_struct(n_ctx)
        f = st.unpack_from(data, 0)
        # f: version n_siblings actors_len flags n_ctx dot_actor dot_counter ts exp value_len ctx
        pos = st.size
        end = pos + f[9]
        if f[0] != FORMAT_VERSION or end + f[2] != len(data):
            raise ValueError(f"bad sibling set header (version {f[0]})")
        blob = data[end:]
        actors = _ACTOR_CACHE.get(blob) or _decode_actors(blob)
        if f[3] == 0:
            value = data[pos:end]
        elif f[3] == _FLAG_TOMBSTONE and pos == end:
            value = None
        else:
            raise ValueError(f"bad sibling flags {f[3]} / value_len {f[9]}")
        if n_ctx == 1:
            context = {actors[f[10]]: f[11]}
        elif n_ctx == 2:
            context = {actors[f[10]]: f[12], actors[f[11]]: f[13]}
        elif n_ctx == 0:
            context = {}
        else:
            context = {actors[f[10 + i]]: f[10 + n_ctx + i] for i in range(n_ctx)}
        s = _new_object(Sibling)
        _set_dot(s, (actors[f[5]], f[6]))
        _set_context(s, context)
        _set_value(s, value)
        _set_ts(s, f[7])
        _set_exp(s, f[8])
        return [s]
    except (struct.error, IndexError) as error:
        raise ValueError(f"malformed sibling set: {error}") from None


def _decode_many(data: bytes) -> list[Sibling]:
    version, count, blob_len = _SET.unpack_from(data, 0)
    if version != FORMAT_VERSION:
        raise ValueError(f"unknown sibling format version {version}")
    limit = len(data) - blob_len                 # the actor table is the tail
    if limit < 5:
        raise ValueError("sibling set shorter than its actor table")
    blob = data[limit:]
    actors = _ACTOR_CACHE.get(blob)
    if actors is None:
        actors = _decode_actors(blob)
    pos, out = 5, []                             # 5 = _SET.size
    for _ in range(count):
        flags, n_ctx, dot_actor, dot_counter, ts, exp, value_len = _HEAD.unpack_from(data, pos)
        pos += 33                                # 33 = _HEAD.size
        ctx_struct = _ctx_struct(n_ctx)
        flat = ctx_struct.unpack_from(data, pos)
        pos += ctx_struct.size
        context = {actors[flat[i]]: flat[i + n_ctx] for i in range(n_ctx)}
        if flags == 0:
            end = pos + value_len
            if end > limit:
                raise ValueError("truncated sibling value")
            value = data[pos:end]
            pos = end
        elif flags == _FLAG_TOMBSTONE and value_len == 0:
            value = None
        else:
            raise ValueError(f"bad sibling flags {flags} / value_len {value_len}")
        s = _new_object(Sibling)
        _set_dot(s, (actors[dot_actor], dot_counter))
        _set_context(s, context)
        _set_value(s, value)
        _set_ts(s, ts)
        _set_exp(s, exp)
        out.append(s)
    if pos != limit:
        raise ValueError("sibling set length does not match its header")
    return out


def _decode_actors(blob: bytes) -> list[str]:
    try:
        actors = blob.decode("utf-8").split(",") if blob else []
    except UnicodeDecodeError:
        raise ValueError("actor table is not UTF-8") from None
    if len(_ACTOR_CACHE) >= _CACHE_MAX:
        _ACTOR_CACHE.clear()
    _ACTOR_CACHE[bytes(blob)] = actors
    return actors


def digest(siblings: Iterable[Sibling]) -> bytes:
    """Return a 16-byte hash of the set, independent of order (mmh3 x64 128 of the canonical
    encoding), for anti-entropy comparisons."""
    return mmh3.hash_bytes(encode_siblings(siblings))
