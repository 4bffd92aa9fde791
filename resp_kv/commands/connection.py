"""Connection commands: PING ECHO QUIT HELLO AUTH SELECT CLIENT RESET.

Not the socket: QUIT only sets `session.closing`, and `server.py` closes after the reply.
There is one user, `default`, whose password is `--requirepass` (none = `nopass`, as Redis).
Wording follows Redis 7.2 `networking.c` and `acl.c`.
"""

from __future__ import annotations

import hmac

from resp_kv.commands.spec import CommandSpec, Session
from resp_kv.errors import CommandError, NotAnInteger, SyntaxErr, UnknownSubcommand, WrongPass
from resp_kv.reply import OK, PONG, Map, SimpleString

__all__ = ["SPECS", "client_info_line"]

REDIS_VERSION = "7.2.0"
RESET = SimpleString("RESET")


async def ping(session: Session, args: list[bytes]) -> object:
    if len(args) > 1:
        raise CommandError("wrong number of arguments for 'ping' command")
    return args[0] if args else PONG


async def echo(session: Session, args: list[bytes]) -> object:
    return args[0]


async def quit_(session: Session, args: list[bytes]) -> object:
    session.closing = True
    return OK


def _password_ok(session: Session, user: bytes, password: bytes) -> bool:
    required = session.config.server.requirepass if session.config is not None else None
    if user != b"default":
        return False
    if required is None:
        return True                      # the default user is `nopass`
    return hmac.compare_digest(password, required.encode())


async def auth(session: Session, args: list[bytes]) -> object:
    if len(args) > 2:
        raise SyntaxErr()
    required = session.config.server.requirepass if session.config is not None else None
    if len(args) == 1:
        if required is None:
            raise CommandError("AUTH <password> called without any password configured for "
                               "the default user. Are you sure your configuration is correct?")
        user, password = b"default", args[0]
    else:
        user, password = args
    if not _password_ok(session, user, password):
        raise WrongPass()
    session.authenticated = True
    return OK


def _valid_name(name: bytes) -> bool:
    return all(33 <= byte <= 126 for byte in name)


def _set_name(session: Session, name: bytes) -> None:
    if not _valid_name(name):
        raise CommandError("Client names cannot contain spaces, newlines or special characters.")
    session.name = name


async def hello(session: Session, args: list[bytes]) -> object:
    protocol = session.protocol
    if args:
        try:
            protocol = int(args[0])
        except ValueError:
            raise CommandError("Protocol version is not an integer or out of range") from None
        if protocol not in (2, 3):
            raise CommandError("unsupported protocol version", prefix="NOPROTO")
    credentials, name = None, None
    i = 1
    while i < len(args):
        option, remaining = args[i].upper(), len(args) - i - 1
        if option == b"AUTH" and remaining >= 2:
            credentials = (args[i + 1], args[i + 2])
            i += 3
        elif option == b"SETNAME" and remaining >= 1:
            name = args[i + 1]
            i += 2
        else:
            raise CommandError(f"Syntax error in HELLO option '{args[i].decode(errors='replace')}'")
    required = session.config.server.requirepass if session.config is not None else None
    if credentials is None and required is not None and not session.authenticated:
        raise CommandError("HELLO must be called with the client already authenticated, "
                           "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
                           "authenticate the client and select the RESP protocol version at "
                           "the same time", prefix="NOAUTH")
    if credentials is not None:
        if not _password_ok(session, *credentials):
            raise WrongPass()
        session.authenticated = True
    if name is not None:
        _set_name(session, name)
    session.protocol = protocol
    return Map({
        b"server": b"redis", b"version": REDIS_VERSION.encode(), b"proto": protocol,
        b"id": session.client_id, b"mode": b"standalone", b"role": b"master", b"modules": [],
    })


async def select(session: Session, args: list[bytes]) -> object:
    try:
        index = int(args[0])
    except ValueError:
        raise NotAnInteger() from None
    if index != 0:
        raise CommandError("DB index is out of range")
    return OK


async def reset(session: Session, args: list[bytes]) -> object:
    session.protocol = 2
    session.name = b""
    session.authenticated = (session.config is None
                             or session.config.server.requirepass is None)
    return RESET


def client_info_line(session: Session) -> bytes:
    """One CLIENT LIST / CLIENT INFO line (Redis `catClientInfoString` fields)."""
    state = session.server
    age = state.client_age_s(session.client_id) if state is not None else 0
    port = session.config.server.port if session.config is not None else 0
    command = session.last_command.lower().decode(errors="replace") or "NULL"
    return (
        f"id={session.client_id} addr={session.address} laddr=:{port} fd=-1 "
        f"name={session.name.decode(errors='replace')} age={age} idle=0 flags=N db=0 sub=0 "
        f"psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 "
        f"oll=0 omem=0 tot-mem=0 events=r cmd={command} user=default redir=-1 "
        f"resp={session.protocol} lib-name={session.lib_name.decode(errors='replace')} "
        f"lib-ver={session.lib_version.decode(errors='replace')}"
    ).encode()


_CLIENT_HELP = [
    SimpleString(line) for line in (
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME", "    Return the name of the current connection.",
        "ID", "    Return the ID of the current connection.",
        "INFO", "    Return information about the current client connection.",
        "LIST [TYPE <normal|master|replica|pubsub>] [ID <id> [<id> ...]]",
        "    Return information about client connections.",
        "SETINFO <option> <value>", "    Set client meta attr. Options are:",
        "    * LIB-NAME: the client lib name.", "    * LIB-VER: the client lib version.",
        "SETNAME <name>", "    Assign the name <name> to the current connection.",
        "HELP", "    Print this help.",
    )
]


def _client_arity(sub: bytes) -> CommandError:
    return CommandError(f"wrong number of arguments for 'client|{sub.lower().decode(errors='replace')}' command")


async def client(session: Session, args: list[bytes]) -> object:
    sub = args[0].upper()
    rest = args[1:]
    if sub == b"ID" and not rest:
        return session.client_id
    if sub == b"GETNAME" and not rest:
        return session.name or None
    if sub == b"SETNAME":
        if len(rest) != 1:
            raise _client_arity(args[0])
        _set_name(session, rest[0])
        return OK
    if sub == b"SETINFO":
        if len(rest) != 2:
            raise _client_arity(args[0])
        attribute, value = rest[0].upper(), rest[1]
        if attribute not in (b"LIB-NAME", b"LIB-VER"):
            raise CommandError(f"Unrecognized option '{rest[0].decode(errors='replace')}'")
        if not _valid_name(value):
            raise CommandError(f"{attribute.decode()} cannot contain spaces, newlines or special "
                               "characters.")
        if attribute == b"LIB-NAME":
            session.lib_name = value
        else:
            session.lib_version = value
        return OK
    if sub == b"INFO" and not rest:
        return client_info_line(session) + b"\n"
    if sub == b"LIST":
        return _client_list(session, rest)
    if sub == b"HELP" and not rest:
        return _CLIENT_HELP
    if sub in (b"ID", b"GETNAME", b"INFO", b"HELP"):
        raise _client_arity(args[0])
    raise UnknownSubcommand(b"CLIENT", args[0])


def _client_list(session: Session, args: list[bytes]) -> bytes:
    sessions = list(session.server.clients.values()) if session.server is not None else [session]
    if args:
        option = args[0].upper()
        if option == b"TYPE" and len(args) == 2:
            kind = args[1].lower()
            if kind not in (b"normal", b"master", b"replica", b"slave", b"pubsub"):
                raise CommandError(f"Unknown client type '{args[1].decode(errors='replace')}'")
            if kind != b"normal":
                sessions = []
        elif option == b"ID" and len(args) >= 2:
            wanted = set()
            for text in args[1:]:
                try:
                    wanted.add(int(text))
                except ValueError:
                    raise CommandError("Invalid client ID") from None
            sessions = [s for s in sessions if s.client_id in wanted]
        else:
            raise SyntaxErr()
    return b"".join(client_info_line(s) + b"\n" for s in sessions)


def _spec(name: str, arity: int, handler, flags: tuple[str, ...], summary: str,
          since: str, subcommands: tuple[CommandSpec, ...] = ()) -> CommandSpec:
    return CommandSpec(name=name.encode(), arity=arity, handler=handler, flags=flags,
                       group="connection", summary=summary, since=since,
                       subcommands=subcommands)


def _sub(name: str, arity: int, flags: tuple[str, ...], summary: str, since: str) -> CommandSpec:
    return _spec("CLIENT|" + name, arity, client, flags, summary, since)


_CLIENT_SUBCOMMANDS = (
    _sub("GETNAME", 2, ("noscript", "loading", "stale"),
         "Returns the name of the connection.", "2.6.9"),
    _sub("HELP", 2, ("loading", "stale"), "Returns helpful text about the different subcommands.",
         "5.0.0"),
    _sub("ID", 2, ("noscript", "loading", "stale"), "Returns the unique client ID of the connection.",
         "5.0.0"),
    _sub("INFO", 2, ("noscript", "loading", "stale"),
         "Returns information about the connection.", "6.2.0"),
    _sub("LIST", -2, ("admin", "noscript", "loading", "stale"),
         "Lists open connections.", "2.4.0"),
    _sub("SETINFO", 4, ("noscript", "loading", "stale"),
         "Sets information specific to the client or connection.", "7.2.0"),
    _sub("SETNAME", 3, ("noscript", "loading", "stale"), "Sets the connection name.", "2.6.9"),
)


_STALE = ("noscript", "loading", "stale", "fast")

SPECS: tuple[CommandSpec, ...] = (
    _spec("PING", -1, ping, _STALE, "Returns the server's liveliness response.", "1.0.0"),
    _spec("ECHO", 2, echo, _STALE, "Returns the given string.", "1.0.0"),
    _spec("QUIT", -1, quit_, ("allow_busy", "noscript", "loading", "stale", "fast", "no_auth"),
          "Closes the connection.", "1.0.0"),
    _spec("HELLO", -1, hello, ("noscript", "loading", "stale", "fast", "no_auth", "allow_busy"),
          "Handshakes with the Redis server.", "6.0.0"),
    _spec("AUTH", -2, auth, ("noscript", "loading", "stale", "fast", "no_auth", "allow_busy"),
          "Authenticates the connection.", "1.0.0"),
    _spec("SELECT", 2, select, ("loading", "stale", "fast"),
          "Changes the selected database.", "1.0.0"),
    _spec("CLIENT", -2, client, ("noscript", "loading", "stale"),
          "A container for client connection commands.", "2.4.0", _CLIENT_SUBCOMMANDS),
    _spec("RESET", 1, reset, ("noscript", "loading", "stale", "fast", "no_auth", "allow_busy"),
          "Resets the connection.", "6.2.0"),
)
