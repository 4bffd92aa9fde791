"""The command line: DESIGN.md §2 flags, their RESP_KV_* environment twins, and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from resp_kv.__main__ import build_parser, config_from_args


def test_cli_defaults_match_design() -> None:
    config, level = config_from_args([])
    assert (config.server.bind, config.server.port) == ("127.0.0.1", 6379)
    assert config.cluster.peer_port == 16379
    assert config.cluster.node_id == "127.0.0.1-6379"
    assert config.storage.data_dir == Path("./resp-kv-data")
    assert (config.cluster.replicas, config.cluster.read_quorum, config.cluster.write_quorum) == (3, 2, 2)
    assert config.cluster.vnodes == 64 and config.storage.fsync == "everysec"
    assert config.server.requirepass is None and config.server.debug_commands is False
    assert config.server.proto_max_bulk_len == 512 * 1024 * 1024
    assert config.cluster.hint_max_age_s == 3 * 3600.0
    assert level == "INFO"


def test_cli_env_vars_configure_every_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESP_KV_PORT", "7000")
    monkeypatch.setenv("RESP_KV_FSYNC", "always")
    monkeypatch.setenv("RESP_KV_SEEDS", "a:17000, b:17001")
    monkeypatch.setenv("RESP_KV_DEBUG_COMMANDS", "yes")
    monkeypatch.setenv("RESP_KV_PROTO_MAX_BULK_LEN", "1mb")
    monkeypatch.setenv("RESP_KV_HINT_MAX_AGE_S", "90")
    config, _ = config_from_args([])
    assert config.server.port == 7000 and config.cluster.peer_port == 17000
    assert config.storage.fsync == "always"
    assert config.cluster.seeds == ("a:17000", "b:17001")
    assert config.server.debug_commands is True
    assert config.server.proto_max_bulk_len == 1024 * 1024
    assert config.cluster.hint_max_age_s == 90.0


def test_cli_flag_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESP_KV_PORT", "7000")
    config, _ = config_from_args(["--port", "7100"])
    assert config.server.port == 7100


def test_cli_every_design_flag_is_listed_in_help() -> None:
    text = build_parser().format_help()
    for flag in ("--bind", "--port", "--peer-port", "--advertise", "--node-id", "--data-dir", "--seeds",
                 "--replicas", "--read-quorum", "--write-quorum", "--vnodes", "--fsync", "--requirepass",
                 "--cluster-secret", "--gossip-interval-ms", "--anti-entropy-interval-s", "--debug-commands"):
        assert flag in text


@pytest.mark.parametrize("argv", [["--node-id", "bad id"], ["--read-quorum", "4"], ["--port", "70000"],
                                  ["--fsync", "sometimes"], ["--vnodes", "0"],
                                  ["--hint-max-age-s", "-1"], ["--hint-max-age-s", "nan"]])
def test_cli_rejects_bad_settings(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        config_from_args(argv)
    assert exited.value.code == 2


def test_cli_wildcard_bind_advertises_the_host_name() -> None:
    import socket
    config, _ = config_from_args(["--bind", "0.0.0.0"])
    assert config.cluster.bind == "0.0.0.0"
    assert config.cluster.advertise == socket.gethostname()
    assert config.cluster.node_id == f"{socket.gethostname()}-6379"
