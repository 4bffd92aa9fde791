"""The replicated backend: a Dynamo-style, leaderless store behind resp_kv (DESIGN.md §5).

Knows nothing of client commands. Pure cores (no sockets, no clock, no asyncio): `types`
(vocabulary), `versioning` (dotted version vectors), `ring` (placement), `quorum`,
`membership`, `failure` (phi accrual), `merkle`. I/O shells build on them; `service.Cluster`
is the facade `resp_kv` calls. Importing this package imports nothing.
"""
