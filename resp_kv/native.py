"""Which modules are compiled with mypyc, and whether the compiled build matches the sources.

The hot path (parse, dispatch, the single-node read and write, WAL append, memtable) is ordinary
Python that `setup.py` also compiles with mypyc into C extension modules when the package is
built (`pip install`, `make`); Python then imports the `.so` beside each `.py`. The same sources
run interpreted when built with RESP_KV_PURE=1 (for py-spy, which cannot see inside compiled
frames). Measured (bench/README.md): 26-34 % fewer instructions per GET and SET compiled as
they were, 39-43 % fewer again once written for the compiler (below).

What compiling asks of these modules (mypyc enforces annotations at run time and compiles
classes to fixed layouts): annotations that hold (a `reply: object` where any reply passes),
attributes declared in the class (not added from outside), no lambda default arguments, no
slot-descriptor tricks. What makes compiled code faster still (each found in callgrind):
`Final` on module-level constants and aliases, and on names imported from interpreted modules
(C globals instead of a module-dict lookup per use); precise types on attributes holding
compiled objects (native attribute access and calls); functions of compiled modules called by
name, not through an alias or a bound method (a generic call with argument parsing); `type(x)`
rather than `x.__class__` (a generic getattr); `bytes[i]` rather than `struct` (which boxes
every field); bytes built by one `%`-format of values typed `bytes` (one allocation); a seam
that tests fake as a native base class allowing interpreted subclasses (`mypyc_attr`), not a
`typing.Protocol` (a call through a protocol is generic, through the class a vtable call;
the fakes subclass it, and their overrides are still called). The
modules do not pass `mypy` cleanly (Optional attributes, mostly); `setup.py` compiles them with
errors ignored, and the test suite runs against the compiled build.

A checkout whose `.py` is newer than its `.so` would silently run the old compiled code:
`stale()` names such modules; the node logs them at start and the test suite refuses to run.

Imports nothing of the package: `setup.py` reads NATIVE_MODULES from this file.
"""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

# Paths relative to the project root. Every module on the per-request path of a single node,
# and of a replicated GET/SET on its coordinator and its replicas (coordinator to peer server).
NATIVE_MODULES = (
    "resp_kv/resp.py",
    "resp_kv/canonical.py",
    "resp_kv/bulk.py",
    "resp_kv/started.py",
    "resp_kv/server.py",
    "resp_kv/commands/dispatch.py",
    "resp_kv/commands/spec.py",
    "resp_kv/commands/strings.py",
    "resp_kv/durability.py",
    "resp_kv/server_state.py",
    "resp_kv/storage/engine.py",
    "resp_kv/storage/wal.py",
    "resp_kv/storage/memtable.py",
    "cluster/service.py",
    "cluster/local_store.py",
    "cluster/encoded.py",
    "cluster/replica.py",
    "cluster/clock.py",
    "cluster/keytoken.py",
    "cluster/coordinator.py",
    "cluster/inflight.py",
    "cluster/quorum.py",
    "cluster/ring.py",
    "cluster/transport.py",
    "cluster/peer_server.py",
    "cluster/messages.py",
    "cluster/network.py",
    "cluster/merkle.py",
    "cluster/merkle_keeper.py",
    "cluster/antientropy.py",
)

# The shared library of the compiled group (mypyc's `group_name`), inside the package so an
# editable install finds it.
GROUP_NAME = "resp_kv._native"

_ROOT = Path(__file__).resolve().parents[1]


def _extension(source: Path) -> Path | None:
    """The compiled module beside `source`, if there is one."""
    stem = source.name[:-3]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_name(stem + suffix)
        if candidate.exists():
            return candidate
    return None


def compiled(root: Path = _ROOT) -> list[str]:
    """The NATIVE_MODULES that have a compiled module beside their source (under `root`, the
    project's root)."""
    return [m for m in NATIVE_MODULES if _extension(root / m) is not None]


def stale(root: Path = _ROOT) -> list[str]:
    """The NATIVE_MODULES whose source changed after the group was compiled (an edited
    checkout not rebuilt: run `make`, or build with RESP_KV_PURE=1 to run the sources). The
    compiled code of every module is in the group's library; the `.so` beside each source is a
    shim that is rebuilt only when the module's interface changes, so the library's time is
    the one to compare. Only a source checkout (`setup.py` at its root) is checked: in an
    installed wheel the files' times are when pip wrote them, in any order."""
    if not (root / "setup.py").exists():
        return []
    package, name = GROUP_NAME.split(".")
    library = _extension(root / package / (name + "__mypyc.py"))
    if library is None:
        return []
    built = library.stat().st_mtime
    return [m for m in NATIVE_MODULES if (root / m).stat().st_mtime > built]
