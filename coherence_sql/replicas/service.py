"""Opening the read router: the replicas' pools, the health loop, and the router the stores get.

`routed_reads(primary)` is what `stores.postgres.connect()` uses: with DATABASE_REPLICA_URLS set it
yields a `ReadRouter` (typed as the pool the stores take), else the primary pool itself, unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final, cast

from coherence_sql.db import Pool, PoolSettings
from coherence_sql.replicas.health import check_replica, open_replica_pool, sample_primary, stop, watch
from coherence_sql.replicas.metrics import track_router
from coherence_sql.replicas.router import ReadRouter, Replica
from coherence_sql.replicas.settings import ReplicaSettings

__all__ = ["open_read_router", "routed_reads"]

_CLOSE_TIMEOUT_S: Final = 10.0


@asynccontextmanager
async def open_read_router(
    primary: Pool, settings: ReplicaSettings, pool_settings: PoolSettings | None = None
) -> AsyncIterator[ReadRouter]:
    """A router over `primary` (left open: its owner closes it) and a pool per replica (closed
    here). A replica that cannot be reached now starts out of rotation; nothing fails for it."""
    chosen = pool_settings or PoolSettings.from_env()
    replicas = [Replica(name=f"replica-{n}", url=url) for n, url in enumerate(settings.urls, start=1)]
    router = ReadRouter(primary, replicas, settings)
    track_router(router)
    tasks: list[asyncio.Task[None]] = []
    try:
        # The pools and one round of checks before the first caller: the replicas that are well
        # serve at once (opening is bounded by the pool's acquire timeout; one that fails is retried).
        await asyncio.gather(*(open_replica_pool(r, chosen) for r in replicas))
        await sample_primary(router)
        await asyncio.gather(*(check_replica(router, r) for r in replicas))
        tasks = watch(router, chosen)
        yield router
    finally:
        await stop(router, tasks)
        await asyncio.gather(*(_close(r) for r in replicas))


async def _close(replica: Replica) -> None:
    pool, replica.pool = replica.pool, None
    replica.in_rotation = False
    if pool is None:
        return
    try:
        async with asyncio.timeout(_CLOSE_TIMEOUT_S):
            await pool.close()
    except asyncio.CancelledError:
        pool.terminate()
        raise
    except Exception:
        pool.terminate()


@asynccontextmanager
async def routed_reads(primary: Pool, pool_settings: PoolSettings | None = None) -> AsyncIterator[Pool]:
    """What the stores should run on: a router when DATABASE_REPLICA_URLS names replicas, else `primary`."""
    settings = ReplicaSettings.from_env()
    if not settings.enabled:
        yield primary
        return
    async with open_read_router(primary, settings, pool_settings) as router:
        # The stores take an asyncpg pool; the router offers every call they make on one.
        yield cast(Pool, router)
