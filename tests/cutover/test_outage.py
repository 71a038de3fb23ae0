"""PostgreSQL goes away in the middle of dual-writing: no caller write fails, nothing is lost.

The test owns its server (the session's is shared), stops it while several writers are busy,
keeps writing, starts it again and reconciles; then both sides read back the same everywhere.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from coherence_sql.cutover.journal import WriteJournal
from coherence_sql.cutover.service import CutoverStores, open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.embedded import EmbeddedPostgres, scratch_parent
from coherence_sql.schema import migrate
from tests.cutover.workload import Workload, differences

WRITERS = 4


@pytest.fixture
def own_server() -> EmbeddedPostgres:
    data_dir = Path(tempfile.mkdtemp(prefix="coherence-sql-outage-", dir=scratch_parent())) / "pg"
    server = EmbeddedPostgres(data_dir, durable=False)
    try:
        yield server  # type: ignore[misc]
    finally:
        server.destroy()
        shutil.rmtree(data_dir.parent, ignore_errors=True)


async def reconcile_until_complete(stores: CutoverStores) -> None:
    # The pool's connections died with the server; the first replay may meet one of them.
    for _ in range(5):
        report = await stores.reconcile()
        if report.complete:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"journal did not drain: {report}")


async def test_an_outage_mid_dual_write_loses_nothing(own_server: EmbeddedPostgres, tmp_path: Path) -> None:
    dsn = own_server.start()
    await migrate(dsn)
    settings = CutoverSettings(dual_write=True, journal_path=tmp_path / "journal.jsonl", database_url=dsn)
    async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
        workloads = [Workload(stores.graph, stores.tasks, seed=i, name=f"w{i}") for i in range(WRITERS)]
        failures: list[BaseException] = []
        down = asyncio.Event()
        busy = asyncio.Event()  # set once the writers are well under way

        async def writer(load: Workload) -> None:
            for _ in range(60):
                try:
                    await load.step()
                except Exception as exc:  # a caller's failed write is exactly what must not happen
                    failures.append(exc)
                if sum(w.counter for w in workloads) >= 60:
                    busy.set()
                await asyncio.sleep(0)

        async def operator() -> None:
            await busy.wait()
            await asyncio.to_thread(own_server.stop)
            down.set()

        await asyncio.gather(operator(), *(writer(w) for w in workloads))
        assert down.is_set()
        assert failures == []
        outage = (await stores.store_status()).model_dump()
        assert outage["postgres"]["reachable"] is False
        assert stores.core.stats.postgres_failed >= 1
        assert stores.core.stats.journaled > 0
        assert outage["journal"]["pending"] == stores.core.stats.journaled

        # Writes made while PostgreSQL is down keep succeeding and keep queueing in order.
        for load in workloads:
            for _ in range(15):
                await load.step()
        assert stores.core.journal is not None
        assert stores.core.journal.pending() == stores.core.stats.journaled

        await asyncio.to_thread(own_server.start)
        await reconcile_until_complete(stores)
        assert stores.core.journal.pending() == 0
        assert stores.postgres is not None
        for load in workloads:
            found = await differences(
                stores.graph.memory, stores.tasks.memory, stores.postgres.graph, stores.postgres.tasks, load.touched
            )
            assert found == []


async def test_reconcile_command_replays_a_journal_from_another_process(
    own_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    dsn = own_server.start()
    await migrate(dsn)
    journal_path = tmp_path / "journal.jsonl"
    settings = CutoverSettings(dual_write=True, journal_path=journal_path, database_url=dsn)
    async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
        await asyncio.to_thread(own_server.stop)
        load = Workload(stores.graph, stores.tasks, seed=99)
        for _ in range(40):
            await load.step()
        pending = WriteJournal(journal_path).pending()
        assert pending == stores.core.stats.journaled >= 40  # every write queued
        await asyncio.to_thread(own_server.start)
        result = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "coherence_sql.cli",
                "--database-url",
                dsn,
                "reconcile",
                "--journal",
                str(journal_path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert f"({pending} pending)" in result.stdout
        assert '"remaining": 0' in result.stdout
        assert not WriteJournal(journal_path).active()
        assert stores.postgres is not None
        await stores.postgres.pool.expire_connections()  # they died with the server
        found = await differences(
            stores.graph.memory, stores.tasks.memory, stores.postgres.graph, stores.postgres.tasks, load.touched
        )
        assert found == []
