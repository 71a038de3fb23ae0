"""Reads past one machine: streaming replicas behind a read router, with read-your-writes.

    async with connect() as stores:        # DATABASE_REPLICA_URLS set: reads may go to replicas
        with read_your_writes():           # one caller (an API request): it sees its own writes
            await stores.graph.upsert_project(project)
            await stores.graph.get_project("npm", "react")   # a replica only once it replayed the write

- `settings`: DATABASE_REPLICA_URLS, REPLICA_MAX_LAG_S, REPLICA_CHECK_INTERVAL_MS.
- `statements`: which SQL a replica may run (read-only, classified once per text).
- `positions`: WAL positions: the caller's, the primary's samples, a replica's delay.
- `router`: the pool-like router the stores run on. `health`: the loop that keeps the rotation.
- `metrics`: the replica families. `service`: opening all of it (`routed_reads`, `open_read_router`).
"""

from coherence_sql.replicas.positions import read_your_writes
from coherence_sql.replicas.router import ReadRouter, Replica
from coherence_sql.replicas.service import open_read_router, routed_reads
from coherence_sql.replicas.settings import ReplicaSettings
from coherence_sql.replicas.statements import is_read_only

__all__ = [
    "ReadRouter",
    "Replica",
    "ReplicaSettings",
    "is_read_only",
    "open_read_router",
    "read_your_writes",
    "routed_reads",
]
