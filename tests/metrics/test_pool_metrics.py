"""Pool gauges are the pool's own figures, read at scrape time; waits and timeouts are recorded
per acquire under the pool's name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from coherence_sql.db import PoolSettings, create_pool, init_connection
from coherence_sql.errors import PoolTimeoutError
from coherence_sql.pool import BoundedPool
from tests.metrics.scrape import scrape, value

GAUGES = ("size", "max_size", "in_use", "idle", "waiting")


def gauges(pool: str) -> dict[str, float | None]:
    _, samples = scrape()
    return {name: value(samples, f"coherence_sql_pool_{name}", pool=pool) for name in GAUGES}


@pytest.fixture
async def named_pool(clean_dsn: str) -> AsyncIterator[BoundedPool]:
    """A pool of at most 2, named as a replica's would be, waiting at most 0.2 s for a connection."""
    pool = BoundedPool(
        clean_dsn,
        name="replica-metrics-test",
        acquire_timeout_s=0.2,
        min_size=1,
        max_size=2,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        setup=None,
        init=init_connection,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
    )
    await pool
    try:
        yield pool
    finally:
        await pool.close()


async def test_the_primary_pool_gauges_match_the_pool(clean_dsn: str) -> None:
    pool = await create_pool(clean_dsn, PoolSettings(min_size=2, max_size=4))
    try:
        assert isinstance(pool, BoundedPool)
        assert pool.name == "primary"
        async with pool.acquire():
            figures = gauges("primary")
            # Other "primary" pools of this test session may be open too: the figures add up.
            assert figures["max_size"] is not None
            assert figures["max_size"] >= 4
            assert figures["in_use"] is not None
            assert figures["in_use"] >= 1
            size = figures["size"]
            assert size is not None
            assert size == figures["in_use"] + (figures["idle"] or 0)
    finally:
        await pool.close()


async def test_a_named_pool_reports_size_in_use_idle_and_who_waits(named_pool: BoundedPool) -> None:
    assert gauges("replica-metrics-test") == {"size": 1, "max_size": 2, "in_use": 0, "idle": 1, "waiting": 0}
    async with named_pool.acquire(), named_pool.acquire():
        assert gauges("replica-metrics-test") == {"size": 2, "max_size": 2, "in_use": 2, "idle": 0, "waiting": 0}
        waiter = asyncio.create_task(named_pool.fetchval("SELECT 1"))
        await asyncio.sleep(0.05)
        assert gauges("replica-metrics-test")["waiting"] == 1
        with pytest.raises(PoolTimeoutError):
            await waiter
    assert gauges("replica-metrics-test")["waiting"] == 0


async def test_acquire_waits_are_timed_and_timeouts_counted(named_pool: BoundedPool) -> None:
    _, before = scrape()
    count = value(before, "coherence_sql_pool_acquire_duration_seconds_count", pool="replica-metrics-test") or 0
    timeouts = value(before, "coherence_sql_pool_timeouts_total", pool="replica-metrics-test") or 0
    async with named_pool.acquire(), named_pool.acquire():
        with pytest.raises(PoolTimeoutError, match=r"no PostgreSQL connection within 0\.2s"):
            await named_pool.acquire()
    _, after = scrape()
    # Two acquires that got a connection are timed; the one that ran out is counted as a timeout.
    assert value(after, "coherence_sql_pool_acquire_duration_seconds_count", pool="replica-metrics-test") == count + 2
    assert value(after, "coherence_sql_pool_timeouts_total", pool="replica-metrics-test") == timeouts + 1


async def test_a_closed_pool_leaves_the_gauges(clean_dsn: str) -> None:
    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=1))
    assert isinstance(pool, BoundedPool)
    pool.name = "closing-metrics-test"  # a name of its own, so no other open pool adds to it
    await pool.close()
    assert gauges("closing-metrics-test") == dict.fromkeys(GAUGES)
    names, _ = scrape()
    assert {f"coherence_sql_pool_{name}" for name in GAUGES} <= names


async def test_a_pool_renamed_after_create_pool_reports_under_its_new_name(clean_dsn: str) -> None:
    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=1))
    assert isinstance(pool, BoundedPool)
    try:
        pool.name = "replica-renamed-test"  # as a replica's pool is named
        async with pool.acquire():
            assert gauges("replica-renamed-test")["in_use"] == 1
        _, samples = scrape()
        assert value(samples, "coherence_sql_pool_acquire_duration_seconds_count", pool="replica-renamed-test") == 1
    finally:
        await pool.close()
