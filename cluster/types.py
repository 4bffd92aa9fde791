"""The cluster's fixed vocabulary: node ids, siblings, the local-store seam, mutations, errors.

Not behaviour: the laws of siblings live in `versioning.py`, placement in `ring.py`.

Words used everywhere in `cluster/` (DESIGN.md §3, §5):
- key, value: `bytes` end to end. A *token* is `key_token(key)`, the key's place on the ring.
- sibling: one concurrent version of a key (`Sibling`); a *tombstone* is a sibling whose value is None.
- actor: who minted a dot, `"<node_id>@<incarnation>"`; the incarnation is created afresh when a
  node starts with an empty data dir, so a node that lost its disk never reuses a dot (kv679).
- preference list: the first N distinct nodes clockwise from the token; *primary* = in it;
  *fallback* = a node outside it holding a write as a *hint* for a down primary.
- coordinator: the node that runs a request's quorum logic; *replica*: a node storing the key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cluster.keytoken import key_token  # noqa: F401 - part of the vocabulary (compiled there)
from cluster.local_store import LocalStore  # noqa: F401 - the local-store seam (compiled there)

NodeId = str
Actor = str
Dot = tuple[Actor, int]
Context = Mapping[Actor, int]


@dataclass(slots=True, eq=True)
class Sibling:
    """One concurrent version of a key: its dot, the context it was written over, its payload.

    `value is None` marks a tombstone. `timestamp_ms` only breaks ties when GET must pick one
    winner; it never decides causality. `expire_at_ms == 0` means no expiry.

    Immutable by convention, not `frozen=True`: a frozen dataclass builds through
    object.__setattr__ and cost 9.2k instructions per construction against 3k (callgrind, SET
    hot path builds two). Never mutate one; derive a new Sibling instead.
    """

    dot: Dot
    context: Context
    value: bytes | None
    timestamp_ms: int
    expire_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class Current:
    """The value a read-modify-write command sees: the live winner of a key's siblings."""

    value: bytes
    expire_at_ms: int  # 0 = no expiry


@dataclass(frozen=True, slots=True)
class Write:
    """What a mutation stores: a value (with expiry, 0 = none) or, with value None, a delete."""

    value: bytes | None
    expire_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """A mutation's result: the reply for the client (opaque to the cluster) and the write, if any.

    `reply` must be encodable by `resp_kv.reply.encode` (RESP2) because a forwarded mutation's
    reply crosses the peer protocol in that form.
    """

    reply: object
    write: Write | None = None


# A pure read-modify-write step, run at the key's coordinator under its per-key lock:
# (current live value or None, command arguments after the key, wall-clock now in ms) -> Outcome.
Mutator = Callable[[Current | None, list[bytes], int], Outcome]


class ClusterError(Exception):
    """Base of the errors the cluster raises to its callers."""


class QuorumNotReached(ClusterError):
    """Fewer than the needed replicas answered. `what` is "read" or "write"."""

    def __init__(self, what: str, acked: int, needed: int) -> None:
        self.what, self.acked, self.needed = what, acked, needed
        super().__init__(f"{what} reached {acked} of {needed} replicas")


class PeerUnavailable(ClusterError):
    """A forwarded request could not reach any live replica of the key."""


class PeerBackingOff(PeerUnavailable):
    """The link to a peer waits out its reconnect backoff after a failure: calls fail at once
    until then (transport.py), though the peer may be back already (it just restarted)."""
