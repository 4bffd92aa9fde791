"""Keep the import arrows of DESIGN.md §1 honest by walking every module's imports with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(package: str) -> dict[str, set[str]]:
    """Map each module file of `package` to the top-level-qualified modules it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_layering_cluster_imports_only_resp_from_resp_kv() -> None:
    offenders = {
        path: sorted(n for n in names if n.startswith("resp_kv") and n not in ("resp_kv.resp", "resp_kv.reply", "resp_kv"))
        for path, names in _imports("cluster").items()
    }
    assert {p: n for p, n in offenders.items() if n} == {}


def test_layering_storage_imports_nothing_outside_storage() -> None:
    offenders = {
        path: sorted(n for n in names if n.startswith(("resp_kv", "cluster"))
                     and not n.startswith("resp_kv.storage") and n != "resp_kv.config")
        for path, names in _imports("resp_kv/storage").items()
    }
    assert {p: n for p, n in offenders.items() if n} == {}


def test_layering_commands_never_reach_into_cluster_internals() -> None:
    allowed = ("cluster.types",)
    offenders = {
        path: sorted(n for n in names if n.startswith("cluster") and n not in allowed)
        for path, names in _imports("resp_kv/commands").items()
    }
    assert {p: n for p, n in offenders.items() if n} == {}
