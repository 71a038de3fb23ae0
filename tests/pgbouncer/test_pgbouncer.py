"""The stores through PgBouncer pooling by transaction (POSTGRES_PGBOUNCER=transaction): many callers
share three server connections, the package's timeouts hold (from the role), and a pool refuses to
open where they would not; a slice of the store suite (agent tasks: transactions, snapshots, claims)
runs through it unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from coherence_sql.db import DEFAULT_SERVER_SETTINGS, PoolSettings, create_pool
from coherence_sql.errors import CoherenceSQLError, ConfigurationError
from coherence_sql.stores.postgres import PostgresStores, connect
from tests.faults.server import APP_ROLE, PrivateServer
from tests.pgbouncer.bouncer import SERVER_CONNECTIONS, Bouncer
from tests.pgbouncer.conftest import new_bouncer, set_role_timeouts
from tests.stores.conftest import Stores
from tests.stores.records import project, task
from tests.stores.test_agent_tasks import *  # noqa: F403 (the slice: collected here, through PgBouncer)

POOLED = PoolSettings(min_size=1, max_size=12, transaction_pooling=True)


@pytest.fixture(scope="package")
async def pooled_stores(bouncer: Bouncer) -> AsyncIterator[PostgresStores]:
    """One set of stores through PgBouncer for the whole slice."""
    async with connect(bouncer.dsn(), settings=POOLED) as stores:
        yield stores


@pytest.fixture
async def store(pooled_stores: PostgresStores, private_server: PrivateServer, database: str) -> Stores:
    admin = await asyncpg.connect(private_server.admin_dsn(database), timeout=10)
    try:
        await admin.execute("TRUNCATE agent_tasks, projects, project_dependencies, pending_dependencies CASCADE")
    finally:
        await admin.close()
    return Stores("postgres-pgbouncer", pooled_stores.graph, pooled_stores.tasks)


def test_postgres_pgbouncer_selects_transaction_pooling() -> None:
    assert PoolSettings.from_env({"POSTGRES_PGBOUNCER": "transaction"}).transaction_pooling
    assert PoolSettings.from_env({"POSTGRES_PGBOUNCER": "statement"}).transaction_pooling
    assert not PoolSettings.from_env({"POSTGRES_PGBOUNCER": "session"}).transaction_pooling
    assert not PoolSettings.from_env({}).transaction_pooling
    with pytest.raises(ConfigurationError, match="POSTGRES_PGBOUNCER must be one of none, session, transaction"):
        PoolSettings.from_env({"POSTGRES_PGBOUNCER": "yes"})


async def test_the_package_timeouts_and_name_hold_through_pgbouncer(bouncer: Bouncer) -> None:
    pool = await create_pool(bouncer.dsn(), POOLED)
    try:
        shown = {name: await pool.fetchval(f"SHOW {name}") for name in DEFAULT_SERVER_SETTINGS}
    finally:
        await pool.close()
    assert shown == {
        "lock_timeout": "5s",
        "statement_timeout": "1min",
        "idle_in_transaction_session_timeout": "30s",
        "application_name": "coherence_sql",
    }


async def test_without_the_setting_pgbouncer_refuses_the_startup_timeouts(bouncer: Bouncer) -> None:
    with pytest.raises(CoherenceSQLError, match="unsupported startup parameter"):
        await create_pool(bouncer.dsn(), PoolSettings(min_size=1, max_size=2))


async def test_a_pool_refuses_to_open_when_the_role_lacks_the_timeouts(
    private_server: PrivateServer, database: str, bouncer_dir: Path
) -> None:
    await set_role_timeouts(private_server, on=False)
    fresh = new_bouncer(private_server, database, bouncer_dir / "fresh")  # server connections opened from now on
    await asyncio.to_thread(fresh.start)
    try:
        with pytest.raises(ConfigurationError) as refused:
            await create_pool(fresh.dsn(), POOLED)
    finally:
        await asyncio.to_thread(fresh.stop)
        await set_role_timeouts(private_server, on=True)
    message = str(refused.value)
    assert "lock_timeout is 0, not 5s" in message
    assert f"ALTER ROLE {APP_ROLE} SET lock_timeout = '5s'" in message
    assert f"ALTER ROLE {APP_ROLE} SET idle_in_transaction_session_timeout = '30s'" in message
    assert "app-password" not in message


@pytest.mark.slow
async def test_concurrent_callers_share_three_server_connections_and_lose_nothing(
    bouncer: Bouncer, private_server: PrivateServer, database: str
) -> None:
    callers, rounds = 24, 8
    async with connect(bouncer.dsn(), settings=POOLED) as stores:

        async def caller(number: int) -> None:
            task_id = (await stores.tasks.create_task(task(number))).id
            for round_ in range(rounds):
                name = f"bouncer-{number}-{round_}"
                await stores.graph.upsert_project(project(name, version=str(round_)))
                await stores.graph.add_dependencies([("npm", name, "npm", f"bouncer-{number}-0")] if round_ else [])
                found = await stores.graph.get_project("npm", name)
                assert found is not None
                assert found.version == str(round_)
                updated = await stores.tasks.update_task(task_id, progress_pct=round_ * 10)
                assert updated is not None
                assert updated.progress_pct == round_ * 10
                page, _ = await stores.tasks.list_tasks(limit=5)  # a snapshot: one transaction
                assert len(page) >= 1

        await asyncio.gather(*(caller(n) for n in range(callers)))
        assert stores.pool.get_size() > SERVER_CONNECTIONS
        assert await stores.graph.count_dependents("npm", "bouncer-0-0") == rounds - 1
        assert await stores.graph.count_projects() >= callers * rounds
    admin = await asyncpg.connect(private_server.admin_dsn(database), timeout=10)
    try:
        backends = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND datname = $2", APP_ROLE, database
        )
    finally:
        await admin.close()
    assert 1 <= backends <= SERVER_CONNECTIONS
