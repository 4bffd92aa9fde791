#!/usr/bin/env python3
"""Structural check of docker-compose.yml without Docker and without PyYAML.

`docker compose config` needs the compose plugin (absent here, and no engine runs on our
machines), and PyYAML is not a dependency, so this file carries a reader for the small YAML
subset a compose file needs and then checks what would break a resp-kv cluster:

    document := mapping                       (block style, 2-space or any consistent indent)
    mapping  := (key ":" [scalar | flow-seq] NEWLINE [nested mapping | sequence])*
    sequence := ("-" scalar NEWLINE)*
    flow-seq := "[" scalar ("," scalar)* "]"     on one line
    scalar   := "double quoted" (\\ \" \n \t \r escapes) | 'single quoted' ('' escape) | plain
    comments  "# ..." on their own line or after a space; blank lines ignored

Anchors, aliases, multi-line strings, tags and mappings inside sequences are rejected with a
clear message rather than misread. Checks: top-level keys; every service has build or image;
RESP_KV_* variables are real flags of `resp-kv`; every node binds 0.0.0.0, has a unique node id,
keeps RESP_KV_DATA_DIR on a declared named volume, lists every service in RESP_KV_SEEDS at that
service's peer port; host ports are unique and map to the node's client port; healthchecks are
well formed; replicas/quorums fit the cluster.

Usage: scripts/check_compose.py [docker-compose.yml]   (exit 1 and one line per problem)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = {"name", "version", "services", "volumes", "networks", "configs", "secrets"}
_DURATION = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")
# DESIGN.md §2, used only when resp_kv cannot be imported to ask its own parser.
_DESIGN_FLAGS = ("bind port peer-port advertise node-id data-dir seeds replicas read-quorum "
                 "write-quorum vnodes fsync requirepass cluster-secret gossip-interval-ms "
                 "anti-entropy-interval-s debug-commands").split()


class YamlSubsetError(ValueError):
    pass


# -- the YAML subset ------------------------------------------------------------------------------
def _strip_comment(line: str) -> str:
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        out.append(ch)
    return "".join(out).rstrip()


def parse_scalar(text: str, lineno: int) -> object:
    text = text.strip()
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise YamlSubsetError(f"line {lineno}: unterminated double-quoted string")
        escapes = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r", "/": "/"}
        body, out, i = text[1:-1], [], 0
        while i < len(body):
            if body[i] == "\\":
                if i + 1 >= len(body) or body[i + 1] not in escapes:
                    raise YamlSubsetError(f"line {lineno}: unsupported escape in {text}")
                out.append(escapes[body[i + 1]])
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'"):
            raise YamlSubsetError(f"line {lineno}: unterminated single-quoted string")
        return text[1:-1].replace("''", "'")
    if text[:1] in ("&", "*", "!", "|", ">", "{"):
        raise YamlSubsetError(f"line {lineno}: anchors, aliases, tags, block scalars and flow "
                              f"mappings are outside the supported subset: {text}")
    if text in ("", "~", "null"):
        return None
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def _split_flow(body: str, lineno: int) -> list[object]:
    items, current, quote = [], [], None
    for ch in body:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        if ch == ",":
            items.append("".join(current))
            current = []
            continue
        if ch in "[]{}":
            raise YamlSubsetError(f"line {lineno}: nested flow collections are not supported")
        current.append(ch)
    if quote:
        raise YamlSubsetError(f"line {lineno}: unterminated string in flow sequence")
    if "".join(current).strip():
        items.append("".join(current))
    return [parse_scalar(item, lineno) for item in items]


def _value(text: str, lineno: int) -> object:
    text = text.strip()
    if text.startswith("["):
        if not text.endswith("]"):
            raise YamlSubsetError(f"line {lineno}: a flow sequence must close on its line")
        return _split_flow(text[1:-1], lineno)
    return parse_scalar(text, lineno)


def load_yaml_subset(text: str) -> dict:
    """Parse the subset described in the module docstring into dicts, lists and scalars."""
    lines = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YamlSubsetError(f"line {lineno}: tab in indentation")
        line = _strip_comment(raw)
        if line.strip():
            lines.append((lineno, len(line) - len(line.lstrip()), line.strip()))
    node, pos = _block(lines, 0, 0)
    if pos != len(lines):
        raise YamlSubsetError(f"line {lines[pos][0]}: unexpected indentation")
    if not isinstance(node, dict):
        raise YamlSubsetError("the document must be a mapping")
    return node


def _block(lines, pos: int, indent: int):
    if pos >= len(lines):
        return None, pos
    if lines[pos][2].startswith("- ") or lines[pos][2] == "-":
        return _sequence(lines, pos, lines[pos][1])
    return _mapping(lines, pos, lines[pos][1])


def _sequence(lines, pos: int, indent: int):
    items = []
    while pos < len(lines) and lines[pos][1] == indent and lines[pos][2].startswith("-"):
        lineno, _, content = lines[pos]
        item = content[1:].strip()
        if re.match(r"^[^\"'\[][^:]*:(\s|$)", item):
            raise YamlSubsetError(f"line {lineno}: mappings inside sequences are not supported")
        items.append(_value(item, lineno))
        pos += 1
    return items, pos


_KEY = re.compile(r"^(?P<key>\"[^\"]*\"|'[^']*'|[^\s\"'#][^:]*?):(?:\s+(?P<rest>.*))?$")


def _mapping(lines, pos: int, indent: int):
    result: dict = {}
    while pos < len(lines) and lines[pos][1] == indent:
        lineno, _, content = lines[pos]
        match = _KEY.match(content)
        if not match:
            raise YamlSubsetError(f"line {lineno}: expected 'key: value', got {content!r}")
        key = str(parse_scalar(match["key"], lineno))
        if key in result:
            raise YamlSubsetError(f"line {lineno}: duplicate key {key!r}")
        rest = match["rest"]
        pos += 1
        if rest is not None and rest.strip():
            result[key] = _value(rest, lineno)
        elif pos < len(lines) and (lines[pos][1] > indent or (
                lines[pos][1] == indent and lines[pos][2].startswith("-"))):
            result[key], pos = _block(lines, pos, lines[pos][1])
        else:
            result[key] = None
    if pos < len(lines) and lines[pos][1] > indent:
        raise YamlSubsetError(f"line {lines[pos][0]}: unexpected indentation")
    return result, pos


# -- the checks -----------------------------------------------------------------------------------
def known_env_vars() -> set[str]:
    """RESP_KV_<FLAG> for every flag `resp-kv --help` knows (DESIGN.md §2 if it cannot be imported)."""
    try:
        sys.path.insert(0, str(REPO_ROOT))
        from resp_kv.__main__ import build_parser

        flags = [opt[2:] for action in build_parser()._actions for opt in action.option_strings
                 if opt.startswith("--") and opt not in ("--help", "--version")]
    except Exception:  # noqa: BLE001 - the node may not import yet; the contract list will do
        flags = list(_DESIGN_FLAGS)
    return {"RESP_KV_" + flag.upper().replace("-", "_") for flag in flags}


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in str(item) else (item, "") for item in map(str, env))
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def check_compose(doc: dict) -> list[str]:
    """Return one message per problem (empty when the file is fine)."""
    problems = [f"unknown top-level key {k!r}" for k in doc if k not in TOP_LEVEL and not k.startswith("x-")]
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        return problems + ["no services"]
    declared_volumes = set((doc.get("volumes") or {}).keys())
    known = known_env_vars()
    node_ids, host_ports, peer_of = {}, {}, {}
    for name, svc in services.items():
        env = _environment(svc)
        port = env.get("RESP_KV_PORT", "6379")
        peer_of[name] = env.get("RESP_KV_PEER_PORT") or str(int(port) + 10000)
    for name, svc in services.items():
        where = f"services.{name}"
        if not isinstance(svc, dict):
            problems.append(f"{where}: not a mapping")
            continue
        if "build" not in svc and "image" not in svc:
            problems.append(f"{where}: needs build or image")
        env = _environment(svc)
        problems += [f"{where}: {var} is not a resp-kv flag" for var in env
                     if var.startswith("RESP_KV_") and var not in known]
        if env.get("RESP_KV_BIND") != "0.0.0.0":
            problems.append(f"{where}: RESP_KV_BIND must be 0.0.0.0 inside a container")
        node_id = env.get("RESP_KV_NODE_ID", name)
        if node_id in node_ids:
            problems.append(f"{where}: node id {node_id!r} also used by {node_ids[node_id]}")
        node_ids[node_id] = name
        seeds = [s.strip() for s in env.get("RESP_KV_SEEDS", "").split(",") if s.strip()]
        for other, peer_port in peer_of.items():
            if f"{other}:{peer_port}" not in seeds:
                problems.append(f"{where}: RESP_KV_SEEDS lacks {other}:{peer_port}")
        problems += [f"{where}: seed {s!r} is not a service:peer-port" for s in seeds
                     if s.rsplit(":", 1)[0] not in services]
        mounts = {}
        for volume in svc.get("volumes") or []:
            source, _, target = str(volume).partition(":")
            mounts[target.split(":")[0]] = source
            if not source.startswith((".", "/")) and source not in declared_volumes:
                problems.append(f"{where}: volume {source!r} is not declared under top-level volumes")
        data_dir = env.get("RESP_KV_DATA_DIR", "/data")
        if data_dir not in mounts:
            problems.append(f"{where}: data dir {data_dir} is not on a volume")
        for mapping in svc.get("ports") or []:
            parts = str(mapping).split(":")
            if len(parts) < 2:
                problems.append(f"{where}: port {mapping!r} publishes no fixed host port")
                continue
            host, container = parts[-2], parts[-1].split("/")[0]
            if host in host_ports:
                problems.append(f"{where}: host port {host} also used by {host_ports[host]}")
            host_ports[host] = name
            if container not in (env.get("RESP_KV_PORT", "6379"), peer_of[name]):
                problems.append(f"{where}: port {mapping!r} maps to no resp-kv port")
        problems += _check_healthcheck(where, svc.get("healthcheck"))
        problems += _check_quorums(where, env, len(services))
    return problems


def _check_healthcheck(where: str, health: object) -> list[str]:
    if not isinstance(health, dict):
        return [f"{where}: no healthcheck"]
    problems = []
    test = health.get("test")
    if not (isinstance(test, str) or (isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL", "NONE"))):
        problems.append(f"{where}: healthcheck.test must be a string or [CMD|CMD-SHELL, ...]")
    for key in ("interval", "timeout", "start_period", "start_interval"):
        if key in health and not _DURATION.match(str(health[key])):
            problems.append(f"{where}: healthcheck.{key} {health[key]!r} is not a duration")
    if "retries" in health and not isinstance(health["retries"], int):
        problems.append(f"{where}: healthcheck.retries must be an integer")
    return problems


def _check_quorums(where: str, env: dict[str, str], size: int) -> list[str]:
    try:
        n = int(env.get("RESP_KV_REPLICAS", "3"))
        r = int(env.get("RESP_KV_READ_QUORUM", "2"))
        w = int(env.get("RESP_KV_WRITE_QUORUM", "2"))
    except ValueError:
        return [f"{where}: replicas and quorums must be integers"]
    problems = []
    if not (1 <= r <= n and 1 <= w <= n):
        problems.append(f"{where}: need 1 <= R, W <= N (N={n} R={r} W={w})")
    if n > size:
        problems.append(f"{where}: N={n} exceeds the {size} nodes defined")
    return problems


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else REPO_ROOT / "docker-compose.yml")
    try:
        problems = check_compose(load_yaml_subset(path.read_text()))
    except (OSError, YamlSubsetError) as error:
        problems = [str(error)]
    for problem in problems:
        print(f"{path}: {problem}")
    if not problems:
        print(f"{path}: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
