"""A slice of the shared store suite (projects, edges, search), run on the PostgreSQL stores over
the read router: through replicas, every behaviour is what it is on the primary alone; and
`stores.postgres.connect()` runs the stores on the router exactly when DATABASE_REPLICA_URLS is set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import asyncpg
import pytest

from coherence_sql.db import Pool
from coherence_sql.replicas import ReadRouter
from coherence_sql.schema import HISTORY_TABLE
from coherence_sql.stores.postgres import PostgresAgentTaskStore, PostgresGraphStore, connect
from tests.replicas.cluster import ReplicaCluster
from tests.replicas.conftest import routed
from tests.stores.conftest import Stores
from tests.stores.test_projects import *  # noqa: F403 (the slice: collected here, on the router)


@pytest.fixture(scope="package")
async def _truncate_sql(cluster: ReplicaCluster) -> str:
    conn = await asyncpg.connect(cluster.primary_dsn())
    try:
        rows = await conn.fetch(
            "SELECT quote_ident(tablename) AS t FROM pg_tables WHERE schemaname = 'public' AND tablename <> $1",
            HISTORY_TABLE,
        )
    finally:
        await conn.close()
    return f"TRUNCATE {', '.join(sorted(r['t'] for r in rows))} RESTART IDENTITY CASCADE"


@pytest.fixture(scope="package")
async def slice_router(cluster: ReplicaCluster) -> AsyncIterator[ReadRouter]:
    """One router for the whole slice (opening pools per test would cost more than the tests)."""
    async with routed(cluster) as router:
        yield router


@pytest.fixture
async def store(slice_router: ReadRouter, _truncate_sql: str) -> Stores:
    # Emptied through the router: a write like any other, so no read sees the rows it removed.
    await slice_router.execute(_truncate_sql)
    pool = cast(Pool, slice_router)
    return Stores("postgres-replicas", PostgresGraphStore(pool), PostgresAgentTaskStore(pool))


async def test_connect_runs_the_stores_on_the_router_only_with_replica_urls(
    cluster: ReplicaCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connect(cluster.primary_dsn()) as stores:
        assert stores.graph._pool is stores.pool  # no replicas: the primary pool, as before
    monkeypatch.setenv("DATABASE_REPLICA_URLS", ",".join(cluster.replica_dsns()))
    monkeypatch.setenv("REPLICA_CHECK_INTERVAL_MS", "20")
    async with connect(cluster.primary_dsn()) as stores:
        router = stores.graph._pool
        assert isinstance(router, ReadRouter)
        assert stores.tasks._pool is router
        assert router.primary is stores.pool
        assert [r.in_rotation for r in router.replicas] == [True, True]
        assert await stores.graph.count_projects() >= 0
        assert sum(r.reads for r in router.replicas) == 1
    assert [r.pool for r in router.replicas] == [None, None]  # closed with the stores
