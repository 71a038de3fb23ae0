"""One primary and two streaming replicas for the replica suite, started once for the package
(about 5 s) and destroyed at its end; each test opens its own router over them.

The routers check every 20 ms with a lag limit of 1 s, so rotation changes show within a test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from coherence_sql.db import PoolSettings, create_pool
from coherence_sql.replicas import ReadRouter, ReplicaSettings, open_read_router
from coherence_sql.schema import migrate
from tests.replicas.cluster import ReplicaCluster

CHECK_INTERVAL_S = 0.02
MAX_LAG_S = 1.0
POOL = PoolSettings(min_size=1, max_size=8, acquire_timeout_s=5.0)


@pytest.fixture(scope="package")
def _cluster() -> Iterator[ReplicaCluster]:
    cluster = ReplicaCluster(replica_count=2)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="package")
async def cluster(_cluster: ReplicaCluster) -> ReplicaCluster:
    """The cluster, its database migrated on the primary (the replicas replay the schema)."""
    await migrate(_cluster.primary_dsn())
    await asyncio.to_thread(_cluster.wait_until_streaming)
    return _cluster


@pytest.fixture
async def healthy(cluster: ReplicaCluster) -> AsyncIterator[ReplicaCluster]:
    """The cluster with every replica running and replaying, before and after the test."""
    await asyncio.to_thread(_heal, cluster)
    yield cluster
    await asyncio.to_thread(_heal, cluster)


def _heal(cluster: ReplicaCluster) -> None:
    for index, replica in enumerate(cluster.replicas):
        if not replica.status().running:
            cluster.start_replica(index)
        asyncio.run(_resume(cluster, index))
    cluster.wait_until_streaming()


async def _resume(cluster: ReplicaCluster, index: int) -> None:
    conn = await asyncpg.connect(cluster.replicas[index].uri(), timeout=10)
    try:
        await conn.execute("SELECT pg_wal_replay_resume()")
        await conn.execute("ALTER SYSTEM RESET recovery_min_apply_delay")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


@asynccontextmanager
async def routed(
    cluster: ReplicaCluster,
    *,
    max_lag_s: float = MAX_LAG_S,
    check_interval_s: float = CHECK_INTERVAL_S,
    pool: PoolSettings = POOL,
) -> AsyncIterator[ReadRouter]:
    """A primary pool and a router over both replicas (closed at the end)."""
    urls = tuple(cluster.replica_dsns())
    settings = ReplicaSettings(urls=urls, max_lag_s=max_lag_s, check_interval_s=check_interval_s)
    primary = await create_pool(cluster.primary_dsn(), pool)
    try:
        async with open_read_router(primary, settings, pool) as router:
            yield router
    finally:
        await primary.close()
