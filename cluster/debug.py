"""DEBUG hooks of the replicated store, for fault tests (reachable only with --debug-commands).

Not client commands: the front end's DEBUG handler passes its arguments here unchanged.

    LOCALGET key          this node's own winner value (bulk) or nil; no quorum, no repair
    LOCALVCLOCK key       this node's own [context, [[value, clock, timestamp_ms], ...]]
    PARTITION node...     drop all peer traffic to and from those nodes, on this node only
    HEAL                  undo every PARTITION on this node
    REMOVENODE node       remove a dead node from the ring for good (as CLUSTER FORGET)
    COMPACT               flush and fully compact this node's store now (GC of dead records)

Replies are plain values (bytes, None, int, list); a bad request raises ValueError, whose
message the front end returns as an `ERR` reply.
"""

from __future__ import annotations

import asyncio

from cluster import versioning
from cluster.types import key_token


async def run_debug(cluster, args: list[bytes]) -> object:
    """Run one DEBUG hook on `cluster` (a cluster.service.Cluster)."""
    if not args:
        raise ValueError("wrong number of arguments for 'debug' command")
    verb, rest = args[0].upper(), args[1:]
    if verb == b"LOCALGET" and len(rest) == 1:
        winner = versioning.winner(cluster.replica.read(rest[0], key_token(rest[0])),
                                   cluster.clock.wall_ms())
        return None if winner is None else winner.value
    if verb == b"LOCALVCLOCK" and len(rest) == 1:
        siblings = cluster.replica.read(rest[0], key_token(rest[0]))
        context = versioning.format_context(versioning.join_context(siblings)).encode()
        return [context, [[s.value, versioning.format_clock(s).encode(), s.timestamp_ms]
                          for s in versioning.ordered(siblings)]]
    if verb == b"PARTITION" and rest:
        _network(cluster).partition({node.decode() for node in rest})
        return b"OK"
    if verb == b"HEAL" and not rest:
        if cluster.network is not None:
            cluster.network.heal()
        return b"OK"
    if verb == b"COMPACT" and not rest:
        engine = getattr(cluster.store, "engine", None)
        if engine is None or not hasattr(engine, "compact"):
            raise ValueError("this store cannot compact")
        await asyncio.to_thread(engine.compact)        # flush + full compaction, off the loop
        return b"OK"
    if verb == b"REMOVENODE" and len(rest) == 1:
        await cluster.remove_node(rest[0].decode())
        return b"OK"
    raise ValueError(f"unknown DEBUG subcommand or wrong arguments: {args[0].decode(errors='replace')}")


def _network(cluster):
    if cluster.network is None:
        raise ValueError("this node has no peers")
    return cluster.network
