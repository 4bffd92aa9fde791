"""Pure read-modify-write steps for the string and key commands (the `Mutator`s of cluster/types.py).

Each mutator is `(current, args, now_ms) -> Outcome`: `current` is the key's live winner (or None),
`args` are byte strings prepared by the command handler (never the raw client arguments, so the
handler has already validated options), `now_ms` is the coordinator's wall clock. A mutator runs
at the key's coordinator under the per-key lock, possibly on another node, so it must be a pure
function of its inputs: no I/O, no clock of its own. Errors are *returned* as
`Outcome(reply=CommandError(...))`, never raised, because a forwarded mutation's reply crosses the
peer protocol RESP-encoded.

Not here: option parsing and relative-to-absolute time conversion (strings.py, keys.py).

Argument grammar per mutator (all numbers are ASCII decimal integers):

    set          value expire_at_ms flag*      flag := NX | XX | GET | KEEPTTL
                 -> OK | nil | old value (GET)        expire_at_ms 0 = no expiry
    setnx        value                         -> 1 | 0
    getset       value                         -> old value | nil   (clears the TTL)
    getdel                                     -> value | nil
    del                                        -> 1 | 0   (writes a tombstone only if live)
    expire       when_ms issued_ms flag*       flag := NX | XX | GT | LT   -> 1 | 0
    persist                                    -> 1 | 0
    incrby       delta                         -> new integer (keeps the TTL)
    incrbyfloat  delta                         -> new value as bulk string (keeps the TTL)
    append       suffix                        -> new length (keeps the TTL)

Time decision: relative TTLs (SET EX/PX, EXPIRE, PEXPIRE) are resolved to an absolute unix time in
ms by the handler on the node the client talks to, before `mutate`; the coordinator only compares
absolute times, so its clock moves a relative TTL by at most the skew between the two nodes.
`expire` also carries `issued_ms`, the handler's clock: the key is deleted when `when_ms` is not
after either clock (Redis's "non-positive TTL deletes the key"), so `EXPIRE k 0` deletes even if
the coordinator's clock lags the handler's.

Semantics follow Redis 7.2 `t_string.c` and `expire.c`; INCRBYFLOAT emulates the x86 80-bit
`long double` arithmetic and `ld2string(..., LD_STR_HUMAN)` (`%.17Lf`, trailing zeros stripped)
exactly, in exact integer arithmetic, so `INCRBYFLOAT k 0.1` on `10.5` replies `10.6` as Redis does.
"""

from __future__ import annotations

import re

from cluster.types import Current, Mutator, Outcome, Write
from resp_kv.errors import CommandError, NotAFloat, NotAnInteger
from resp_kv.reply import OK

__all__ = [
    "MUTATORS", "LLONG_MAX", "LLONG_MIN", "parse_ll", "parse_long_double", "format_long_double",
    "set_", "setnx", "getset", "getdel", "del_", "expire", "persist", "incrby", "incrbyfloat",
    "append",
]

LLONG_MAX = 2**63 - 1
LLONG_MIN = -(2**63)

_CANONICAL_INT = re.compile(rb"-?[1-9][0-9]{0,19}|0")


def parse_ll(text: bytes) -> int | None:
    """Parse a canonical signed 64-bit integer as Redis `string2ll` does, else None.

    No sign '+', no leading zeros, no spaces, no "-0".
    """
    if _CANONICAL_INT.fullmatch(text) is None:
        return None
    value = int(text)
    if value < LLONG_MIN or value > LLONG_MAX:
        return None
    return value


def _live(current: Current | None, now_ms: int) -> Current | None:
    if current is not None and current.expire_at_ms and current.expire_at_ms <= now_ms:
        return None
    return current


# -- SET family ---------------------------------------------------------------------------------

def set_(current: Current | None, args: list[bytes], now_ms: int) -> Outcome:
    """SET with NX/XX/GET/KEEPTTL; `args[1]` is the absolute expiry (0 = none)."""
    value, expire_at_ms, flags = args[0], int(args[1]), set(args[2:])
    current = _live(current, now_ms)
    old = current.value if current is not None else None
    get = b"GET" in flags
    if (b"NX" in flags and current is not None) or (b"XX" in flags and current is None):
        return Outcome(reply=old if get else None)
    if b"KEEPTTL" in flags and current is not None and not expire_at_ms:
        expire_at_ms = current.expire_at_ms
    return Outcome(reply=old if get else OK, write=Write(value, expire_at_ms))


def setnx(current: Current | None, args: list[bytes], now_ms: int) -> Outcome:
    """SETNX: 1 and write if the key is missing, else 0."""
    if _live(current, now_ms) is not None:
        return Outcome(reply=0)
    return Outcome(reply=1, write=Write(args[0], 0))


def getset(current: Current | None, args: list[bytes], now_ms: int) -> Outcome:
    """GETSET: reply the old value; the new value has no TTL."""
    current = _live(current, now_ms)
    return Outcome(reply=current.value if current else None, write=Write(args[0], 0))


def getdel(current: Current | None, args: list[bytes], now_ms: int) -> Outcome:
    """GETDEL: reply the value and delete the key."""
    current = _live(current, now_ms)
    if current is None:
        return Outcome(reply=None)
    return Outcome(reply=current.value, write=Write(None))


def del_(current: Current | None, args: list[bytes], now_ms: int) -> Outcome:
    """DEL of one key: 1 and a tombstone if live, else 0 and no write."""
    if _live(current, now_ms) is None:
        return Outcome(reply=0)
    return Outcome(reply=1, write=Write(None))


# -- expiry -------------------------------------------------------------------------------------

def expire(current: Current | None, args: list[bytes], now_ms: int) -> Outcome:
    """EXPIRE family at an absolute time with Redis 7 NX|XX|GT|LT (flags already validated)."""
    when, issued_ms, flags = int(args[0]), int(args[1]), set(args[2:])
    current = _live(current, now_ms)
    if current is None:
        return Outcome(reply=0)
    existing = current.expire_at_ms or -1          # -1 = no expiry, as Redis getExpire
    if b"NX" in flags and existing != -1:
        return Outcome(reply=0)
    if b"XX" in flags and existing == -1:
        return Outcome(reply=0)
    if b"GT" in flags and (existing == -1 or when <= existing):
        return Outcome(reply=0)
    if b"LT" in flags and existing != -1 and when >= existing:
        return Outcome(reply=0)
    if when <= max(now_ms, issued_ms):
        return Outcome(reply=1, write=Write(None))
    return Outcome(reply=1, write=Write(current.value, when))


def persist(current: Current | None, args: list[bytes], now_ms: int) -> Outcome:
    """PERSIST: 1 if a TTL was removed, else 0."""
    current = _live(current, now_ms)
    if current is None or not current.expire_at_ms:
        return Outcome(reply=0)
    return Outcome(reply=1, write=Write(current.value, 0))


# -- counters and APPEND ------------------------------------------------------------------------

def incrby(current: Current | None, args: list[bytes], now_ms: int) -> Outcome:
    """INCR/DECR/INCRBY/DECRBY: add a signed 64-bit delta; keeps the TTL."""
    delta = parse_ll(args[0])
    if delta is None:
        return Outcome(reply=NotAnInteger())
    current = _live(current, now_ms)
    old = 0
    if current is not None:
        parsed = parse_ll(current.value)
        if parsed is None:
            return Outcome(reply=NotAnInteger())
        old = parsed
    new = old + delta
    if new < LLONG_MIN or new > LLONG_MAX:
        return Outcome(reply=CommandError("increment or decrement would overflow"))
    expire_at_ms = current.expire_at_ms if current is not None else 0
    return Outcome(reply=new, write=Write(str(new).encode(), expire_at_ms))


def incrbyfloat(current: Current | None, args: list[bytes], now_ms: int) -> Outcome:
    """INCRBYFLOAT: long double addition, `%.17Lf` formatting; keeps the TTL."""
    current = _live(current, now_ms)
    old = parse_long_double(current.value) if current is not None else _ZERO
    delta = parse_long_double(args[0])
    if old is None or delta is None:
        return Outcome(reply=NotAFloat())
    new = _add_long_double(old, delta)
    if new is None:
        return Outcome(reply=CommandError("increment would produce NaN or Infinity"))
    text = format_long_double(new)
    expire_at_ms = current.expire_at_ms if current is not None else 0
    return Outcome(reply=text, write=Write(text, expire_at_ms))


def append(current: Current | None, args: list[bytes], now_ms: int) -> Outcome:
    """APPEND: reply the new length; keeps the TTL."""
    current = _live(current, now_ms)
    if current is None:
        return Outcome(reply=len(args[0]), write=Write(args[0], 0))
    value = current.value + args[0]
    return Outcome(reply=len(value), write=Write(value, current.expire_at_ms))


# -- x86 long double emulation ------------------------------------------------------------------
# A finite long double is (mant, exp2) = mant * 2**exp2 with |mant| < 2**64, already rounded to
# 64 significant bits (the x87 extended format); infinities are Python floats. Integer
# arithmetic only: exact, and ~10x faster than fractions.Fraction.

_MAX_LONG_DOUBLE_CHARS = 5 * 1024          # Redis util.h MAX_LONG_DOUBLE_CHARS
_LD_MANT_BITS = 64
_LD_MIN_EXP = -16382                       # exponent of the smallest normal, 2**-16382
_LD_MAX_EXP = 16383                        # 2**16384 and above overflow to infinity
_DECIMAL = re.compile(rb"([+-]?)(?:(\d+)(?:\.(\d*))?|\.(\d+))(?:[eE]([+-]?\d+))?")
_HEX = re.compile(rb"([+-]?)0[xX](?:([0-9a-fA-F]+)(?:\.([0-9a-fA-F]*))?|\.([0-9a-fA-F]+))"
                  rb"(?:[pP]([+-]?\d+))?")
_INF = re.compile(rb"([+-]?)(?:inf|infinity)", re.IGNORECASE)
_ZERO = (0, 0)

LongDouble = tuple[int, int] | float


def _digits_to_int(digits: bytes, base: int) -> int:
    """int(digits, base) without Python's 4300-digit str->int limit."""
    if len(digits) <= 4000:
        return int(digits, base)
    value = 0
    for start in range(0, len(digits), 4000):
        chunk = digits[start:start + 4000]
        value = value * base ** len(chunk) + int(chunk, base)
    return value


def _round_ratio(negative: bool, n: int, d: int) -> LongDouble:
    """Round n/d (n, d > 0) to the nearest long double, ties to even; overflow -> inf."""
    e = n.bit_length() - d.bit_length()
    if (n << max(0, -e)) < (d << max(0, e)):
        e -= 1                                  # now 2**e <= n/d < 2**(e+1)
    shift = max(e, _LD_MIN_EXP) - (_LD_MANT_BITS - 1)
    num, den = (n << -shift, d) if shift < 0 else (n, d << shift)
    mant, rem = divmod(num, den)
    if 2 * rem > den or (2 * rem == den and mant & 1):
        mant += 1
    if mant == 0:
        return _ZERO                            # underflow below the smallest subnormal
    if mant.bit_length() + shift > _LD_MAX_EXP + 1:
        return float("-inf") if negative else float("inf")
    return (-mant if negative else mant), shift


def _round_scaled(m: int, e: int) -> LongDouble:
    """Round the exact value m * 2**e to a long double."""
    if m == 0:
        return _ZERO
    negative, n = m < 0, abs(m)
    top = e + n.bit_length() - 1               # n * 2**e is in [2**top, 2**(top+1))
    ulp = max(top, _LD_MIN_EXP) - (_LD_MANT_BITS - 1)
    if ulp > e:
        drop = ulp - e
        mant, rem = n >> drop, n & ((1 << drop) - 1)
        half = 1 << (drop - 1)
        if rem > half or (rem == half and mant & 1):
            mant += 1
        if mant == 0:
            return _ZERO
        n, e = mant, ulp
    if n.bit_length() + e > _LD_MAX_EXP + 1:
        return float("-inf") if negative else float("inf")
    return (-n if negative else n), e


def parse_long_double(text: bytes) -> LongDouble | None:
    """Parse as Redis `string2ld` (strtold, whole string, no leading space, no NaN, no ERANGE)."""
    if not text or len(text) >= _MAX_LONG_DOUBLE_CHARS:
        return None
    match = _DECIMAL.fullmatch(text)
    hexa = False
    if match is None:
        match = _INF.fullmatch(text)
        if match:
            return float("-inf") if match.group(1) == b"-" else float("inf")
        match = _HEX.fullmatch(text)
        hexa = True
        if match is None:
            return None
    sign, whole, frac, only_frac, exp_text = match.groups()
    if only_frac is not None:
        whole, frac = b"", only_frac
    frac = frac or b""
    digits = (whole or b"") + frac
    mantissa = _digits_to_int(digits, 16 if hexa else 10) if digits else 0
    if mantissa == 0:
        return _ZERO
    exponent = 0
    if exp_text:
        significant = exp_text.lstrip(b"+-").lstrip(b"0")
        if len(significant) > 9:
            return None                         # astronomically large exponent: ERANGE
        exponent = int(exp_text)
    negative = sign == b"-"
    if hexa:
        exponent -= 4 * len(frac)
        magnitude = mantissa.bit_length() + exponent           # in bits
        if magnitude > 16400 or magnitude < -16500:
            return None
        result = _round_scaled(-mantissa if negative else mantissa, exponent)
    else:
        exponent -= len(frac)
        magnitude = len(digits.lstrip(b"0")) + exponent       # in decimal digits
        if magnitude > 4940 or magnitude < -4970:
            return None
        if exponent >= 0:
            result = _round_ratio(negative, mantissa * 10**exponent, 1)
        else:
            result = _round_ratio(negative, mantissa, 10**-exponent)
    if result == _ZERO or isinstance(result, float):
        return None                             # underflow to zero or overflow: ERANGE
    return result


def _add_long_double(a: LongDouble, b: LongDouble) -> LongDouble | None:
    """a + b in long double; None for NaN or an infinite result."""
    if isinstance(a, float) or isinstance(b, float):
        return None
    (ma, ea), (mb, eb) = a, b
    e = min(ea, eb)
    result = _round_scaled((ma << (ea - e)) + (mb << (eb - e)), e)
    return None if isinstance(result, float) else result


_STR_CHUNK = 10**4000
_TEN17 = 10**17


def _int_to_str(value: int) -> str:
    """str(value) for value >= 0 without Python's 4300-digit int->str limit."""
    if value < _STR_CHUNK:
        return str(value)
    chunks = []
    while value:
        value, chunk = divmod(value, _STR_CHUNK)
        chunks.append(chunk)
    return str(chunks[-1]) + "".join(str(c).zfill(4000) for c in reversed(chunks[:-1]))


def format_long_double(value: tuple[int, int]) -> bytes:
    """Format like `ld2string(LD_STR_HUMAN)`: `%.17Lf`, trailing zeros and '.' stripped, -0 -> 0."""
    m, e = value
    negative, n = m < 0, abs(m)
    if e >= 0:
        whole = (n << e) * _TEN17
    else:
        den = 1 << -e
        whole, rem = divmod(n * _TEN17, den)
        if 2 * rem > den or (2 * rem == den and whole & 1):
            whole += 1
    integer, fraction = divmod(whole, _TEN17)
    text = _int_to_str(integer)
    decimals = str(fraction).zfill(17).rstrip("0")
    if decimals:
        text += "." + decimals
    if negative and text != "0":
        text = "-" + text
    return text.encode()


def _guarded(mutator: Mutator) -> Mutator:
    """Return `mutator` that replies `ERR syntax error` to malformed args instead of raising.

    Handlers always send well-formed args; this only protects a coordinator from a bad peer.
    """
    def run(current: Current | None, args: list[bytes], now_ms: int) -> Outcome:
        try:
            return mutator(current, args, now_ms)
        except (ValueError, IndexError):
            return Outcome(reply=CommandError("syntax error"))
    run.__name__ = run.__qualname__ = mutator.__name__
    run.__doc__ = mutator.__doc__
    return run


MUTATORS: dict[str, Mutator] = {name: _guarded(mutator) for name, mutator in {
    "set": set_,
    "setnx": setnx,
    "getset": getset,
    "getdel": getdel,
    "del": del_,
    "expire": expire,
    "persist": persist,
    "incrby": incrby,
    "incrbyfloat": incrbyfloat,
    "append": append,
}.items()}
