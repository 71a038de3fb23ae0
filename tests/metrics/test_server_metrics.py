"""The server collector against the test database: size, the data directory's volume, no
replication lag without replicas; a server that does not answer is `server_up 0`, never an error."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest
from prometheus_client import CollectorRegistry

from coherence_sql.db import PoolSettings, create_pool
from coherence_sql.metrics import ServerCollector, register_server
from coherence_sql.sql import metrics as metrics_sql
from tests.metrics.scrape import labelled, scrape, value

FAMILIES = {
    "coherence_sql_server_up",
    "coherence_sql_server_database_size_bytes",
    "coherence_sql_server_volume_size_bytes",
    "coherence_sql_server_volume_available_bytes",
    "coherence_sql_server_replication_lag_seconds",
    "coherence_sql_server_replay_delay_seconds",
}


def collected(collector: ServerCollector) -> tuple[set[str], dict[str, float | None]]:
    registry = CollectorRegistry()
    registry.register(collector)
    names, samples = scrape(registry)
    return names, {name: value(samples, name) for name in FAMILIES} | {
        "lags": float(len(labelled(samples, "coherence_sql_server_replication_lag_seconds")))
    }


async def test_a_primary_without_replicas(clean_dsn: str) -> None:
    names, figures = await asyncio.to_thread(collected, ServerCollector(clean_dsn, data_directory_local=False))
    assert names == FAMILIES
    assert figures["coherence_sql_server_up"] == 1
    size = figures["coherence_sql_server_database_size_bytes"]
    assert size is not None
    assert size > 1_000_000
    assert figures["lags"] == 0  # the family is there, with no replica in it
    assert figures["coherence_sql_server_replay_delay_seconds"] is None  # not a replica
    assert figures["coherence_sql_server_volume_size_bytes"] is None  # told it is remote


async def test_the_local_volume_is_the_data_directorys(clean_dsn: str, conn: object) -> None:
    state = await metrics_sql.server_state(conn)  # type: ignore[arg-type]
    assert state is not None
    if state.data_directory is None:
        pytest.skip("the test role may not read data_directory (needs superuser or pg_read_all_settings)")
    expected = os.statvfs(state.data_directory)
    _, figures = await asyncio.to_thread(collected, ServerCollector(clean_dsn, data_directory_local=True))
    assert figures["coherence_sql_server_volume_size_bytes"] == expected.f_blocks * expected.f_frsize
    available = figures["coherence_sql_server_volume_available_bytes"]
    assert available is not None
    assert 0 < available <= expected.f_blocks * expected.f_frsize


async def test_an_unreachable_server_is_down_and_its_password_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    dsn = "postgresql://watcher:s3cret-pw@127.0.0.1:1/nothing"
    with caplog.at_level(logging.WARNING, logger="coherence_sql.metrics.server"):
        names, figures = await asyncio.to_thread(collected, ServerCollector(dsn, timeout_s=2.0))
    assert names == FAMILIES
    assert figures["coherence_sql_server_up"] == 0
    assert figures["coherence_sql_server_database_size_bytes"] is None
    assert "cannot connect to postgresql://watcher:***@127.0.0.1:1/nothing" in caplog.text
    assert "s3cret-pw" not in caplog.text


async def test_over_a_pool_on_its_own_loop_a_scrape_never_blocks_and_serves_the_last_reading(clean_dsn: str) -> None:
    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=2))
    registry = CollectorRegistry()
    try:
        register_server(pool, data_directory_local=False, registry=registry)
        # On the pool's loop (the API's /metrics): no reading yet, the first one starts.
        assert value(scrape(registry)[1], "coherence_sql_server_up") is None
        for _ in range(100):
            await asyncio.sleep(0.02)
            if value(scrape(registry)[1], "coherence_sql_server_up") == 1:
                break
        assert value(scrape(registry)[1], "coherence_sql_server_up") == 1
        # From another thread the scrape runs on the pool's loop and waits for it.
        _, samples = await asyncio.to_thread(scrape, registry)
        assert value(samples, "coherence_sql_server_up") == 1
        size = value(samples, "coherence_sql_server_database_size_bytes")
        assert size is not None
        assert size > 0
    finally:
        await pool.close()
