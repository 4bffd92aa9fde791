"""Command line: flags (or RESP_KV_* environment variables) -> Config -> Node.

Every flag `--some-flag` may also be given as `RESP_KV_SOME_FLAG` (DESIGN.md §2); a flag on the
command line wins over the environment. uvloop is chosen here and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import socket
import sys
from pathlib import Path

from resp_kv import __version__
from resp_kv.config import FSYNC_POLICIES, ClusterConfig, Config, ServerConfig, StorageConfig

_NODE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
_SIZE = re.compile(r"^(\d+)\s*([kmg]b?|b)?$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2,
               "g": 1024**3, "gb": 1024**3}


def _size(text: str) -> int:
    """Parse a Redis-style size: 512mb, 64k, 1048576."""
    match = _SIZE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}")
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * _SIZE_UNITS[unit]


def _flag(parser: argparse.ArgumentParser, name: str, default, help_text: str, **kwargs) -> None:
    """Add `--name`, whose default comes from RESP_KV_NAME when set."""
    env_name = "RESP_KV_" + name.upper().replace("-", "_")
    env_value = os.environ.get(env_name)
    if kwargs.get("action") == "store_true":
        default = env_value.lower() in ("1", "true", "yes", "on") if env_value else default
    elif env_value is not None:
        convert = kwargs.get("type", str)
        try:
            default = convert(env_value)
        except (ValueError, argparse.ArgumentTypeError) as error:
            parser.error(f"{env_name}={env_value!r}: {error}")
    parser.add_argument(f"--{name}", default=default,
                        help=f"{help_text} [env {env_name}; default: %(default)s]", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resp-kv",
        description="A Redis-protocol server on a Dynamo-style leaderless replicated LSM store.")
    parser.add_argument("--version", action="version", version=f"resp-kv {__version__}")
    _flag(parser, "bind", "127.0.0.1", "client and peer listen address")
    _flag(parser, "port", 6379, "client (RESP) port", type=int)
    _flag(parser, "peer-port", None, "internal peer protocol port (default: port + 10000)", type=int)
    _flag(parser, "advertise", None, "address other nodes use to reach this one (default: bind)")
    _flag(parser, "node-id", None, "stable node name (default: derived from advertise and port)")
    _flag(parser, "data-dir", "./resp-kv-data", "all persistent state of this node")
    _flag(parser, "seeds", "", "comma-separated host:peerport of nodes to join")
    _flag(parser, "replicas", 3, "N, replicas per key", type=int)
    _flag(parser, "read-quorum", 2, "R, replies a read waits for", type=int)
    _flag(parser, "write-quorum", 2, "W, acks a write waits for", type=int)
    _flag(parser, "vnodes", 64, "virtual nodes per node on the ring", type=int)
    _flag(parser, "fsync", "everysec", "WAL fsync policy", choices=FSYNC_POLICIES)
    _flag(parser, "requirepass", None, "client password (AUTH / HELLO AUTH)")
    _flag(parser, "cluster-secret", None, "shared secret peers must prove on the peer port")
    _flag(parser, "gossip-interval-ms", 1000, "gossip period", type=int)
    _flag(parser, "anti-entropy-interval-s", 600.0, "background Merkle repair period; 0 = only on REPAIR",
          type=float)
    _flag(parser, "debug-commands", False, "enable the DEBUG fault hooks used by tests", action="store_true")
    _flag(parser, "phi-threshold", 8.0, "phi-accrual suspicion threshold", type=float)
    _flag(parser, "request-timeout-ms", 2000, "one peer call's timeout before sloppy quorum steps in", type=int)
    _flag(parser, "hint-max-age-s", 3 * 3600.0,
          "a hint older than this is dropped, not delivered; deletes are kept at least this long",
          type=float)
    _flag(parser, "proto-max-bulk-len", 512 * 1024 * 1024, "largest bulk string a client may send",
          type=_size)
    _flag(parser, "client-query-buffer-limit", 1024 * 1024 * 1024,
          "largest unparsed input buffered per client", type=_size)
    _flag(parser, "memtable-limit", 32 * 1024 * 1024, "memtable size that triggers a flush", type=_size)
    _flag(parser, "log-level", "INFO", "logging level")
    return parser


def config_from_args(argv: list[str] | None = None) -> tuple[Config, str]:
    """Parse flags and environment into (Config, log level); exits with usage on bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    peer_port = args.peer_port if args.peer_port is not None else args.port + 10000
    advertise = args.advertise or args.bind
    if advertise in ("0.0.0.0", "::", ""):
        # Peers cannot dial a wildcard; the host name is what a container or host resolves to.
        advertise = socket.gethostname()
    node_id = args.node_id or f"{advertise}-{args.port}"
    if not _NODE_ID.match(node_id):
        parser.error(f"--node-id {node_id!r}: use letters, digits, '-', '_' and '.' only")
    for name in ("port", "peer_port"):
        value = peer_port if name == "peer_port" else args.port
        if not 0 < value < 65536:
            parser.error(f"--{name.replace('_', '-')} {value}: not a TCP port")
    if not (1 <= args.read_quorum <= args.replicas and 1 <= args.write_quorum <= args.replicas):
        parser.error("need 1 <= read-quorum, write-quorum <= replicas")
    if args.vnodes < 1:
        parser.error("--vnodes must be at least 1")
    if not args.hint_max_age_s >= 0:
        parser.error("--hint-max-age-s must be a number of seconds >= 0")
    seeds = tuple(s.strip() for s in args.seeds.split(",") if s.strip())
    return Config(
        server=ServerConfig(
            bind=args.bind, port=args.port, requirepass=args.requirepass or None,
            debug_commands=args.debug_commands, proto_max_bulk_len=args.proto_max_bulk_len,
            client_query_buffer_limit=args.client_query_buffer_limit),
        storage=StorageConfig(data_dir=Path(args.data_dir), fsync=args.fsync,
                              memtable_limit_bytes=args.memtable_limit),
        cluster=ClusterConfig(
            node_id=node_id, bind=args.bind, advertise=advertise, client_port=args.port, peer_port=peer_port,
            seeds=seeds, replicas=args.replicas, read_quorum=args.read_quorum,
            write_quorum=args.write_quorum, vnodes=args.vnodes,
            cluster_secret=args.cluster_secret or None, gossip_interval_ms=args.gossip_interval_ms,
            phi_threshold=args.phi_threshold, anti_entropy_interval_s=args.anti_entropy_interval_s,
            request_timeout_s=args.request_timeout_ms / 1000.0, hint_max_age_s=args.hint_max_age_s),
    ), args.log_level


def main(argv: list[str] | None = None) -> int:
    config, log_level = config_from_args(argv)
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
    except ImportError:  # pure asyncio still works; uvloop is a speed-up, not a requirement
        uvloop = None
    from resp_kv import native
    from resp_kv.node import Node  # after logging: node imports the whole stack

    compiled, stale = native.compiled(), native.stale()
    logging.getLogger("resp_kv").info(
        "hot path: %d of %d modules compiled with mypyc", len(compiled), len(native.NATIVE_MODULES))
    if stale:
        logging.getLogger("resp_kv").warning(
            "compiled modules older than their sources (running the OLD code; rebuild with "
            "`make`): %s", ", ".join(stale))

    node = Node(config)
    if uvloop is not None:
        return uvloop.run(node.run())
    return asyncio.run(node.run())


if __name__ == "__main__":
    sys.exit(main())
