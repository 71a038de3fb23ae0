"""Phases 1-2 start while PostgreSQL is down: the stores open degraded (writes journaled, reads
from memory), and once the server is back the background replay drains the journal by itself.

Down is either stopped (connections refused at once) or frozen by SIGSTOP (connections hang): the
start may wait for the pool's acquire bound, never longer.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from coherence_sql.cutover.service import open_cutover_stores
from tests.cutover.workload import Workload
from tests.faults.server import PrivateServer
from tests.faults.traffic import (
    BUDGET_S,
    MARGIN_S,
    CallLog,
    Timed,
    assert_nothing_lost,
    dual_write_settings,
)

WRITES = 120
DRAIN_TIMEOUT_S = 20.0  # the replay runs every 0.2 s; a reconnect may take a few of those
ACQUIRE_BOUND_S = 1  # POSTGRES_POOL_TIMEOUT here: how long the start may wait for a hung server


@pytest.mark.parametrize("down", ["stopped", "frozen"])
async def test_the_stores_start_while_postgres_is_down_and_drain_when_it_is_back(
    down: str, server: PrivateServer, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTGRES_POOL_TIMEOUT", str(ACQUIRE_BOUND_S))
    if down == "stopped":
        await asyncio.to_thread(server.stop)
    else:
        server.freeze()
    settings = dual_write_settings(server.app_dsn(database), tmp_path / "journal.jsonl")
    opened_at = time.perf_counter()
    async with open_cutover_stores(settings, reconcile_interval_s=0.2) as stores:
        opening_s = time.perf_counter() - opened_at
        log = CallLog()
        graph, tasks = Timed(stores.graph, log), Timed(stores.tasks, log)
        # Names stay short: the workload cuts task ids at 21 characters.
        loads = [Workload(graph, tasks, seed=70 + i, name=f"d{i}") for i in range(2)]
        for _ in range(WRITES // len(loads)):
            for load in loads:
                await load.step()
                eco, name = sorted(load.touched.projects)[0]
                await graph.get_project(eco, name)  # half of these are routed to PostgreSQL
                await tasks.list_tasks(limit=5)
        assert log.failures == []
        assert log.slowest[1] < BUDGET_S + MARGIN_S, log.over(BUDGET_S + MARGIN_S)[:5]
        stats = stores.core.stats
        assert stats.reads_postgres == 0
        assert stats.reads_memory >= 2 * WRITES
        assert stores.core.journal is not None
        journaled = stores.core.journal.pending()
        assert journaled == stats.journaled >= WRITES  # every write waits for PostgreSQL, in order
        status = (await stores.store_status()).model_dump()
        assert status["postgres"]["reachable"] is False
        assert status["degraded"] is True
        assert status["journal"]["pending"] == journaled

        if down == "stopped":
            await asyncio.to_thread(server.start)
        else:
            server.thaw()
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while stores.core.journal.pending():
            assert time.monotonic() < deadline, f"{stores.core.journal.pending()} still journaled"
            await asyncio.sleep(0.1)
        status = (await stores.store_status()).model_dump()
        assert status["postgres"]["reachable"] is True
        assert status["degraded"] is False
        assert status["journal"]["pending"] == 0
        assert status["dead_letters"]["count"] == 0
        await assert_nothing_lost(stores, loads, server.admin_dsn(database))
    assert opening_s < ACQUIRE_BOUND_S + MARGIN_S  # the API's start is not held by the missing server
