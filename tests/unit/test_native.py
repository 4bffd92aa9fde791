"""The compiled build (resp_kv/native.py): the suite tests the hot path as it runs in production,
compiled, unless it was installed with RESP_KV_PURE=1; and a stale build is recognised."""

from __future__ import annotations

import importlib
import importlib.machinery
import os
from pathlib import Path

from resp_kv import native

_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _module_name(path: str) -> str:
    name = path[:-3].replace("/", ".")
    return name[:-len(".__init__")] if name.endswith(".__init__") else name


def test_the_hot_modules_run_compiled_unless_installed_pure():
    loaded = {path: importlib.import_module(_module_name(path)).__file__
              for path in native.NATIVE_MODULES}
    if os.environ.get("RESP_KV_PURE") == "1":
        assert native.compiled() == []
        assert all(file.endswith(".py") for file in loaded.values()), loaded
    else:
        assert native.compiled() == list(native.NATIVE_MODULES)
        assert all(file.endswith(_SUFFIX) for file in loaded.values()), loaded
        assert native.stale() == []


def _tree(root: Path, built_at: float, edited: str | None, edited_at: float) -> None:
    """A source checkout of the listed sources plus the group library built at `built_at`."""
    (root / "setup.py").write_text("")
    for path in native.NATIVE_MODULES:
        source = root / path
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("")
        (source.with_name(source.name[:-3] + _SUFFIX)).write_bytes(b"")    # the shim
        os.utime(source, (built_at - 10, built_at - 10))
    package, name = native.GROUP_NAME.split(".")
    library = root / package / (name + "__mypyc" + _SUFFIX)
    library.write_bytes(b"")
    os.utime(library, (built_at, built_at))
    if edited is not None:
        os.utime(root / edited, (edited_at, edited_at))


def test_stale_names_the_sources_edited_after_the_build(tmp_path):
    edited = native.NATIVE_MODULES[3]
    _tree(tmp_path, built_at=1_000_000, edited=edited, edited_at=1_000_100)
    assert native.compiled(tmp_path) == list(native.NATIVE_MODULES)
    assert native.stale(tmp_path) == [edited]


def test_a_build_newer_than_every_source_is_not_stale(tmp_path):
    # the shims are older than the sources: only the group library's time counts
    _tree(tmp_path, built_at=1_000_000, edited=None, edited_at=0)
    for path in native.NATIVE_MODULES:
        shim = tmp_path / path[:-3]
        os.utime(shim.with_name(shim.name + _SUFFIX), (1, 1))
    assert native.stale(tmp_path) == []


def test_an_installed_tree_is_never_stale(tmp_path):
    # pip writes a wheel's files in any order: a source may be newer than the library
    _tree(tmp_path, built_at=1_000_000, edited=native.NATIVE_MODULES[0], edited_at=1_000_100)
    (tmp_path / "setup.py").unlink()
    assert native.compiled(tmp_path) == list(native.NATIVE_MODULES)
    assert native.stale(tmp_path) == []


def test_an_uncompiled_tree_has_nothing_compiled_and_nothing_stale(tmp_path):
    for path in native.NATIVE_MODULES:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    assert native.compiled(tmp_path) == [] and native.stale(tmp_path) == []
