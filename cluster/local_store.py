"""The local-store seam: what the cluster needs from a node's storage (re-exported by types.py).

A native base class, not a `typing.Protocol`: compiled callers (`Replica`, `Cluster`) then call
its methods through the class's vtable, a C call into the real store (`DurableStore`), where a
protocol made each a generic Python call with argument parsing (~350 instructions, callgrind;
three per single-node SET). Interpreted subclasses are allowed so that tests can stand in a
memory store (`tests/helpers/fake_network.py:MemoryStore`); their overrides are called as
Python methods.
"""

from __future__ import annotations

from collections.abc import Iterator

from mypy_extensions import mypyc_attr


@mypyc_attr(allow_interpreted_subclasses=True)
class LocalStore:
    """Ordered bytes -> bytes, the node's storage as the cluster sees it.

    Event-loop thread only. `put`/`delete` are buffered; `durable()` returns once everything
    written before the call is as durable as the node's fsync policy promises. Every method
    must be overridden.
    """

    def get(self, key: bytes, fill: bool = True) -> bytes | None:
        """The value, or None. fill=False: a write's read of the version it replaces (a hint
        for caches, see storage/engine.py)."""
        raise NotImplementedError

    def put(self, key: bytes, value: bytes) -> None:
        raise NotImplementedError

    def delete(self, key: bytes) -> None:
        raise NotImplementedError

    def scan(self, start: bytes = b"", end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Live entries with start <= key < end (None: to the end), ascending."""
        raise NotImplementedError

    async def durable(self) -> None:
        raise NotImplementedError
