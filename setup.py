"""Build hook: compile the hot modules (resp_kv/native.py) with mypyc; pyproject.toml has the rest.

Why mypyc: the per-request path is a few hundred lines of Python per command whose cost is the
bytecode loop and the objects it makes; compiled, the same sources take 26-34 % fewer
instructions per GET and SET (bench/README.md), with no second implementation to keep in step.
mypyc is part of mypy (python/mypy), well kept, and needs only a C compiler and the Python headers, which
Debian's python3 image and this project's machines have.

RESP_KV_PURE=1 builds without it (interpreted sources: py-spy sees every frame).
RESP_KV_MYPYC_OPT=0 compiles without C optimisation: a faster build while iterating.
"""

from __future__ import annotations

import os
import runpy
import tempfile
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent

if os.environ.get("RESP_KV_PURE") == "1":
    setup()
else:
    from mypyc.build import mypycify

    native = runpy.run_path(str(ROOT / "resp_kv" / "native.py"))
    # The modules compile with mypy's errors ignored (see resp_kv/native.py); mypy has no
    # command-line flag for that, hence a config file.
    config = Path(tempfile.mkdtemp(prefix="resp-kv-mypyc-")) / "mypy.ini"
    config.write_text("[mypy]\nignore_missing_imports = True\nignore_errors = True\n")
    setup(ext_modules=mypycify(["--config-file", str(config), *native["NATIVE_MODULES"]],
                               group_name=native["GROUP_NAME"],
                               opt_level=os.environ.get("RESP_KV_MYPYC_OPT", "3")))
