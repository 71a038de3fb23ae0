"""The whole migration path on a realistic dataset, as the runbook walks it, with a rollback from
each phase; PostgreSQL verifies equal to memory (or memory to PostgreSQL) at every step.

memory only → dual-write under a concurrent workload, snapshot taken after it began, backfill
while writers run → rollback 1 and back → 10% → rollback 2 and back → 50% → 100% reads →
PostgreSQL primary → rollback 3 (export, load into memory, verify).
"""

from __future__ import annotations

import asyncio
import zlib
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from pathlib import Path

from coherence_sql.cutover.service import CutoverStores, open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.models import Project
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.rollback import export_snapshot
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import Snapshot, restore_snapshot
from coherence_sql.transfer.verify import verify_memory
from tests.cutover.workload import Workload

WRITERS = 3


async def run_writers(stores: CutoverStores, phase: str, steps: int) -> None:
    """`phase` is three characters: the names (and so emails and task ids) stay unique."""
    assert len(phase) == 3
    loads = [
        Workload(stores.graph, stores.tasks, seed=zlib.crc32(f"{phase}{i}".encode()), name=f"{phase}{i}")
        for i in range(WRITERS)
    ]

    async def writer(load: Workload) -> None:
        for _ in range(steps):
            await load.step()
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(load) for load in loads))


async def settle_and_verify(stores: CutoverStores, graph: MemoryGraphStore, tasks: MemoryAgentTaskStore) -> None:
    """Wait for shadow reads and the journal, then demand zero differences."""
    await stores.core.shadow.drain()
    for _ in range(20):
        if (await stores.reconcile()).complete:
            break
        await asyncio.sleep(0.1)
    assert stores.postgres is not None
    report = await verify_memory(stores.postgres.pool, graph, tasks)
    assert report.ok, report.differences[:20]
    assert stores.core.shadow.stats.mismatched == 0
    assert stores.core.stats.dead_lettered == 0


async def test_the_migration_path_with_a_rollback_from_each_phase(clean_dsn: str, tmp_path: Path) -> None:
    graph, tasks = MemoryGraphStore(), MemoryAgentTaskStore()
    await restore_snapshot(
        sample_snapshot(projects=300, edges=900, contributors=60, assets=40, contributions=600, tasks=80, seed=11),
        graph,
        tasks,
    )
    dual = CutoverSettings(dual_write=True, journal_path=tmp_path / "journal.jsonl", database_url=clean_dsn)

    def opened(
        settings: CutoverSettings, g: MemoryGraphStore = graph, t: MemoryAgentTaskStore = tasks
    ) -> AbstractAsyncContextManager[CutoverStores]:
        return open_cutover_stores(settings, memory_graph=g, memory_tasks=t, reconcile_interval_s=0.05)

    # Memory only: the API as it is today.
    async with opened(CutoverSettings()) as stores:
        await run_writers(stores, "mem", 20)

    # Phase 1: dual-write; the snapshot is taken after it began and loaded while writers run.
    async with opened(dual) as stores:
        assert stores.postgres is not None

        async def backfill_once_writing() -> None:
            await asyncio.sleep(0.05)
            await backfill(stores.postgres.pool, Snapshot.of(graph, tasks), jobs=1)  # type: ignore[union-attr]

        await asyncio.gather(run_writers(stores, "dw1", 30), backfill_once_writing())
        await settle_and_verify(stores, graph, tasks)
        assert await stores.postgres.graph.count_projects() == await graph.count_projects() > 300
        assert stores.core.stats.postgres_ok > 0

    # Rollback from phase 1: DUAL_WRITE_MODE=false. PostgreSQL stops receiving writes...
    async with opened(CutoverSettings()) as stores:
        await stores.graph.upsert_project(Project(ecosystem="npm", name="after-rollback", version="1", description=""))
    # ...so going forward again starts with a catch-up backfill of a fresh snapshot.
    async with opened(dual) as stores:
        assert stores.postgres is not None
        assert await stores.postgres.graph.get_project("npm", "after-rollback") is None
        await backfill(stores.postgres.pool, Snapshot.of(graph, tasks), jobs=1)
        await settle_and_verify(stores, graph, tasks)

    # Phase 2: reads move 10% → (rollback to 0%) → 50% → 100%, shadow-compared all the way.
    for round_, percent in enumerate((10, 0, 50, 100)):
        settings = replace(dual, read_from_postgres_percent=percent, shadow_compare_percent=50)
        async with opened(settings) as stores:
            await run_writers(stores, f"rd{round_}", 15)
            for project in (await stores.graph.search("core", limit=50))[:30]:
                await stores.graph.get_project(project.ecosystem, project.name)
            if percent == 0:
                assert stores.core.stats.reads_postgres == 0
            else:
                assert stores.core.stats.reads_postgres > 0
            await settle_and_verify(stores, graph, tasks)

    # Phase 3: PostgreSQL primary, memory still written for rollback.
    primary = replace(dual, read_from_postgres_percent=100, postgres_primary=True)
    async with opened(primary) as stores:
        await run_writers(stores, "pri", 20)
        await settle_and_verify(stores, graph, tasks)
        assert stores.postgres is not None
        exported = await export_snapshot(stores.postgres.pool)

    # Rollback from phase 3: PostgreSQL's export becomes the in-memory state; nothing differs.
    restored_graph, restored_tasks = MemoryGraphStore(), MemoryAgentTaskStore()
    await restore_snapshot(exported, restored_graph, restored_tasks)
    async with opened(dual, restored_graph, restored_tasks) as stores:
        await settle_and_verify(stores, restored_graph, restored_tasks)
        assert await restored_graph.count_projects() == await graph.count_projects()
