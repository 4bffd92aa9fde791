"""Cluster administration: `CLUSTER FORGET <node-id>` removes a dead node from the ring for good.

resp-kv is not Redis Cluster (INFO says `cluster_enabled:0`), so every other CLUSTER subcommand
answers as a Redis with cluster support disabled does; cluster-aware clients then use plain
commands against any node. A down node stays in the ring (its ranges do not move) until an
operator forgets it; forgetting is gossiped, and the node can only come back by starting afresh
with a new incarnation.
"""

from __future__ import annotations

from resp_kv.commands.spec import CommandSpec, Session
from resp_kv.errors import CommandError, WrongArity
from resp_kv.reply import OK

__all__ = ["SPECS"]

_HELP = [
    b"CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"FORGET <node-id>",
    b"    Remove a node that is down from the ring for good (resp-kv).",
    b"HELP",
    b"    Print this help.",
]


async def cluster(session: Session, args: list[bytes]) -> object:
    sub = args[0].upper()
    if sub == b"HELP":
        return list(_HELP)
    if sub == b"FORGET":
        if len(args) != 2:
            raise WrongArity(b"cluster|forget")
        try:
            await session.backend.remove_node(args[1].decode(errors="replace"))
        except ValueError as error:
            raise CommandError(str(error)) from None
        return OK
    raise CommandError("This instance has cluster support disabled")


SPECS: list[CommandSpec] = [
    CommandSpec(name=b"CLUSTER", arity=-2, handler=cluster, flags=("admin",), group="cluster",
                summary="resp-kv: CLUSTER FORGET removes a dead node; other subcommands answer "
                        "as a Redis with cluster support disabled.", since="3.0.0"),
]
