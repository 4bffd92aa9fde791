"""The command surface: one module per family of handlers, and `dispatch` (the table and the
dispatcher). Re-exports what the server and the tests use.

The dispatcher lives in its own module, not here, because it is compiled (resp_kv/native.py)
and a compiled package `__init__` cannot import its package's submodules.
"""

from resp_kv.commands.dispatch import (BATCH_FULL, COMMANDS, Dispatcher, PendingReply,
                                       command_table)
from resp_kv.commands.spec import CommandSpec, Session

__all__ = ["BATCH_FULL", "COMMANDS", "Dispatcher", "PendingReply", "command_table",
           "CommandSpec", "Session"]
