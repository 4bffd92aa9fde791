"""Errors a client sees as RESP error replies, each with Redis's exact prefix and wording.

Not for storage faults (`storage.errors`) or cluster faults (`cluster.types`): those are mapped
to client errors in `backend.py` or stop the node. Wording follows Redis 7.2 `server.c`,
`networking.c` and `t_string.c`, because clients and test suites match on it.
"""

from __future__ import annotations


class CommandError(Exception):
    """An error reply: `-<prefix> <message>`. The connection stays open."""

    prefix = "ERR"

    def __init__(self, message: str, prefix: str | None = None) -> None:
        super().__init__(message)
        if prefix is not None:
            self.prefix = prefix

    @property
    def line(self) -> str:
        """The whole error line without '-' and CRLF, e.g. 'ERR syntax error'."""
        return f"{self.prefix} {self}"


class WrongArity(CommandError):
    def __init__(self, command: bytes | str) -> None:
        name = command.decode(errors="replace") if isinstance(command, bytes) else command
        super().__init__(f"wrong number of arguments for '{name.lower()}' command")


class UnknownCommand(CommandError):
    def __init__(self, args: list[bytes]) -> None:
        # As server.c: each argument as "'%.*s' " while the list stays under 128 characters.
        rest = ""
        for arg in args[1:]:
            room = 128 - len(rest)
            if room <= 0:
                break
            rest += f"'{arg.decode(errors='replace')[:room]}' "
        name = args[0].decode(errors="replace")[:128]
        super().__init__(f"unknown command '{name}', with args beginning with: {rest}")


class UnknownSubcommand(CommandError):
    def __init__(self, command: bytes, sub: bytes) -> None:
        super().__init__(
            f"unknown subcommand '{sub.decode(errors='replace')}'. "
            f"Try {command.decode(errors='replace').upper()} HELP."
        )


class SyntaxErr(CommandError):
    def __init__(self) -> None:
        super().__init__("syntax error")


class NotAnInteger(CommandError):
    def __init__(self) -> None:
        super().__init__("value is not an integer or out of range")


class NotAFloat(CommandError):
    def __init__(self) -> None:
        super().__init__("value is not a valid float")


class NoAuth(CommandError):
    def __init__(self) -> None:
        super().__init__("Authentication required.", prefix="NOAUTH")


class WrongPass(CommandError):
    def __init__(self) -> None:
        super().__init__("invalid username-password pair or user is disabled.", prefix="WRONGPASS")


class NoQuorum(CommandError):
    def __init__(self, message: str) -> None:
        super().__init__(message, prefix="NOQUORUM")
