"""resp-kv: a Redis-protocol server on a Dynamo-style, leaderless, replicated LSM store.

Imports nothing, so `cluster` may import `resp_kv.resp` and `resp_kv.reply` cheaply.
"""

__version__ = "0.1.0"
