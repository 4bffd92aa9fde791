"""A key's place on the ring: `key_token` (re-exported by cluster/types.py, the vocabulary).

In a module of its own so it can be compiled (resp_kv/native.py): every SET and GET hashes its
key here, on a single node too, and a compiled caller then calls it natively. types.py stays
interpreted: versioning.py builds its `Sibling`s through the dataclass's slot descriptors,
which a compiled (native) class does not offer in the same way.
"""

from __future__ import annotations

from typing import Final

import mmh3

_hash128: Final = mmh3.hash128
_LOW_64: Final = (1 << 64) - 1


def key_token(key: bytes) -> int:
    """Return the key's unsigned 64-bit ring token (mmh3 x64 128, first half: the low 64 bits
    of `hash128`, == `mmh3.hash64(key, signed=False)[0]`). One call with one argument and one
    int, where `hash64(key, signed=False)` parsed a keyword and built a tuple of two ints (2.5x
    the time, interpreted)."""
    return _hash128(key) & _LOW_64
