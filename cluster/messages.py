"""The peer protocol's frames: what nodes say to each other on the peer port. Pure, no I/O.

Not the connection logic (transport.py, peer_server.py). Every frame is one RESP2 value,
parsed with hiredis.Reader on the receiving side (DESIGN.md §5):

    server greeting  := ["HELLO", nonce_hex]                 sent by the server on accept
    auth             := ["AUTH", node_id, proof]             the client's first frame
                        proof = hex HMAC-SHA256(secret, nonce_hex + node_id), "" without a secret
    request          := [verb, request_id, arg*]             request_id: decimal bulk
    response         := [request_id, status, payload]        status "+" ok | "-" error (payload =
                                                             message bulk)
    value            := bulk | int | nil | [value*]

Requests on one connection may be answered out of order (the id pairs them). A sender coalesces
every frame of one event-loop iteration into one socket write (measured: a message per op cost
2.7x the CPU). Verbs (arguments after the id):

    PUT   key siblings hint_for        store siblings (encode_siblings) in the replica, or as a hint
                                       for node `hint_for` when it is non-empty -> "OK"
    MPUT  (key siblings hint_for)+     a PUT per triple, in order, in one request (the
                                       coordinator's replica writes of one event-loop
                                       iteration) -> batched answer, values nil
    GET   key [hint_for]               -> this replica's encoded siblings or nil (merged with
                                       its hint for `hint_for` when that is non-empty)
    MGET  (key hint_for)+              a GET per pair in one request -> batched answer whose
                                       values are the GET answers; once the values would pass
                                       MGET_ANSWER_MAX_BYTES, a larger one's status is
                                       "AnswerAlone: answer alone": ask for it with GET
    FGET  key                          forwarded read, coordinated by the receiver -> siblings|nil
    FPUT  key value|nil expire_ms context|nil     forwarded write (context: VCLOCK text) -> "OK"
    FMUT  key name arg*                forwarded mutation -> the reply, RESP2-encoded (reply.encode)
    SCAN  cursor count                 -> [upto, [token, key, ...]]   live keys from token cursor
    COUNT alive_csv                    -> number of live keys whose first live primary is the receiver
    FLUSH                              delete every data key and hint -> "OK"
    RANGE start end limit              -> [next, [token, key, siblings, ...]] raw records in
                                       [start, end) (streaming a range to a joining node)
    GOSSIP digest                      -> the receiver's digest (membership push-pull)

A batched request's answer (transport.send_item settles each item's waiter from it):

    batched answer := [statuses, values]
    statuses       := "OK"                  every item succeeded
                    | [status*]             one per item: "" succeeded | the error message
    values         := nil | [value*]        one per item (nil for a verb that returns none)

Other verbs are registered by other services (anti-entropy) with PeerServer.register.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from resp_kv.reply import BULK_HEADS, BULK_HEADS_MAX, encode_bulk

# Final: compiled, a C global of this module; plain, every use elsewhere was a module getattr
HELLO: Final = b"HELLO"
AUTH: Final = b"AUTH"
OK: Final = b"OK"
STATUS_OK: Final = b"+"
STATUS_ERROR: Final = b"-"

PUT: Final = b"PUT"
MPUT: Final = b"MPUT"
MGET: Final = b"MGET"
GET: Final = b"GET"
FGET: Final = b"FGET"
FPUT: Final = b"FPUT"
FMUT: Final = b"FMUT"
SCAN: Final = b"SCAN"
COUNT: Final = b"COUNT"
FLUSH: Final = b"FLUSH"
RANGE: Final = b"RANGE"
GOSSIP: Final = b"GOSSIP"

# `$<len>\r\n` for the lengths of keys and of most sibling sets (resp_kv.bulk's table)
_BULK_HEADS: Final = BULK_HEADS
_BULK_HEADS_MAX: Final = BULK_HEADS_MAX

# Before AUTH, a connection may buffer only this much (garbage or a slow-loris stays cheap).
PRE_AUTH_MAX_BYTES = 4096
# After AUTH: the largest frame a peer may send (a 512 MiB value plus its versions).
PEER_MAX_BUFFER_BYTES = 600 * 1024 * 1024
# The values of one MGET answer stay under this: a big value travels in a GET answer of its
# own, so a batch of them never makes a frame over PEER_MAX_BUFFER_BYTES.
MGET_ANSWER_MAX_BYTES = 16 * 1024 * 1024
ANSWER_ALONE = "answer alone"


def answered_alone(error: Exception | None) -> bool:
    """True if an MGET item failed as too big for the batched answer: ask for it with GET."""
    return error is not None and str(error).endswith(ANSWER_ALONE)


def encode_value(value) -> bytes:
    """Encode bytes | str | int | None | list as RESP2 (ints as integers, str as bulk)."""
    if isinstance(value, bytes):        # the common case
        return encode_bulk(value)
    if isinstance(value, (bytearray, memoryview)):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, str):
        raw = value.encode()
        return b"$%d\r\n%s\r\n" % (len(raw), raw)
    if isinstance(value, int):
        if -(1 << 63) <= value < (1 << 63):
            return b":%d\r\n" % value
        raw = b"%d" % value                 # a u64 token: hiredis integers are signed 64-bit
        return b"$%d\r\n%s\r\n" % (len(raw), raw)
    if isinstance(value, (list, tuple)):
        # a loop, not join(map(encode_value, ...)): an MGET answer's values are bytes or None,
        # each a native call here instead of a generic one
        parts = [b"*%d\r\n" % len(value)]
        for item in value:
            if type(item) is bytes:
                parts.append(encode_bulk(item))
            elif item is None:
                parts.append(b"$-1\r\n")
            else:
                parts.append(encode_value(item))
        return b"".join(parts)
    raise TypeError(f"cannot encode {type(value).__name__} in a peer frame")


def encode_request(verb: bytes, request_id: int | bytes, args) -> bytes:
    """Encode one request frame (request_id: an int or its decimal bytes; args: bytes / int /
    None / lists)."""
    rid = request_id if type(request_id) is bytes else b"%d" % request_id
    parts = [b"*%d\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(args) + 2, len(verb), verb, len(rid), rid)]
    for arg in args:
        if type(arg) is bytes:          # the common case, without the generic dispatch
            parts.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
        else:
            parts.append(encode_value(arg))
    return b"".join(parts)


def encode_item(fields: tuple[bytes, ...]) -> bytes:
    """One item of a batched request: its fields as RESP bulk strings, the part of the batch's
    frame (`encode_batch`) it adds. Encoded once per item, however many peers it goes to (a
    replicated SET's item goes to two). One format operation for 2 or 3 fields: compiled,
    with the fields typed bytes and `%b`, one build of the parts (CPyBytes_Build) instead of
    the generic `bytes % tuple` (measured: 2.3x faster per item); length headers from a table
    (no int formatting: two thirds of the per-item cost)."""
    heads, top = _BULK_HEADS, _BULK_HEADS_MAX
    if len(fields) == 3:
        a, b, c = fields
        la, lb, lc = len(a), len(b), len(c)
        if la < top and lb < top and lc < top:
            return b"%b%b\r\n%b%b\r\n%b%b\r\n" % (heads[la], a, heads[lb], b, heads[lc], c)
    elif len(fields) == 2:
        a, b = fields
        la, lb = len(a), len(b)
        if la < top and lb < top:
            return b"%b%b\r\n%b%b\r\n" % (heads[la], a, heads[lb], b)
    return b"".join([encode_bulk(field) for field in fields])


def encode_batch(verb: bytes, request_id: bytes, items: list[bytes], fields: int) -> bytes:
    """Encode one request whose arguments are the `fields` fields of `items` (each encoded by
    `encode_item`), in order."""
    items.insert(0, b"*%d\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        fields + 2, len(verb), verb, len(request_id), request_id))
    return b"".join(items)


def encode_response(request_id: bytes, ok: bool, payload) -> bytes:
    """Encode one response frame."""
    if ok and type(payload) is bytes:     # the common case in one format operation
        return b"*3\r\n$%d\r\n%b\r\n$1\r\n+\r\n$%d\r\n%b\r\n" % (
            len(request_id), request_id, len(payload), payload)
    return (b"*3\r\n$%d\r\n%s\r\n" % (len(request_id), request_id)
            + (b"$1\r\n+\r\n" if ok else b"$1\r\n-\r\n") + encode_value(payload))


def auth_proof(secret: str | None, nonce: bytes, node_id: str) -> bytes:
    """Return the AUTH proof for `nonce` (empty when the cluster has no secret)."""
    if not secret:
        return b""
    return hmac.new(secret.encode(), nonce + node_id.encode(), hashlib.sha256).hexdigest().encode()


def check_proof(secret: str | None, nonce: bytes, node_id: str, proof: bytes) -> bool:
    """Return True if `proof` proves the secret for this connection's nonce."""
    if not secret:
        return True
    return hmac.compare_digest(auth_proof(secret, nonce, node_id), proof)


def to_int(value) -> int:
    """Parse a decimal bulk (or pass an int through); ValueError if malformed."""
    if isinstance(value, int):
        return value
    if not isinstance(value, bytes) or not value or len(value) > 24:
        raise ValueError("bad integer in peer frame")
    return int(value)
