"""The cut-over stores behind the sync facade: what a synchronous API wires in.

`SyncCutoverStores.open()` runs `open_cutover_stores` on its own loop thread: writes from many threads
reach both stores, `store_status()` is the typed payload, and `graph.save()` writes the in-memory graph
while memory is kept.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.cutover.status import StoreStatus
from coherence_sql.cutover.sync import SyncCutoverStores
from coherence_sql.errors import SnapshotError, StoreClosedError
from coherence_sql.stores.memory import MemoryGraphStore
from coherence_sql.stores.postgres import connect
from coherence_sql.transfer.snapshot import load_snapshot
from tests.stores.records import project, task


def dual_write(dsn: str, journal: Path, *, primary: bool = False, memory_writes: bool = True) -> CutoverSettings:
    return CutoverSettings(
        dual_write=True,
        postgres_primary=primary,
        memory_writes=memory_writes,
        journal_path=journal,
        database_url=dsn,
        postgres_budget_s=30.0,  # a slow shared machine must not journal a healthy write
    )


def test_writes_from_many_threads_reach_memory_and_postgres(clean_dsn: str, tmp_path: Path) -> None:
    with SyncCutoverStores.open(dual_write(clean_dsn, tmp_path / "journal.jsonl"), reconcile_interval_s=None) as stores:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda n: stores.tasks.create_task(task(n)), range(40)))
        assert stores.tasks.get_task_count()["total"] == 40
        status = stores.store_status()
        assert isinstance(status, StoreStatus)
        assert status.phase == "dual-write"
        assert (status.writes.memory_ok, status.writes.postgres_ok, status.writes.journaled) == (40, 40, 0)
        assert not stores.degraded
        assert stores.reconcile().complete

    async def in_postgres() -> int:
        async with connect(clean_dsn) as postgres:
            return (await postgres.tasks.get_task_count())["total"]  # type: ignore[no-any-return]

    assert asyncio.run(in_postgres()) == 40
    assert stores.closed
    with pytest.raises(StoreClosedError):
        stores.store_status()


def test_memory_mode_needs_no_database_and_saves_the_graph(tmp_path: Path) -> None:
    memory = MemoryGraphStore()
    with SyncCutoverStores.open(CutoverSettings(), memory_graph=memory, reconcile_interval_s=None) as stores:
        stores.graph.upsert_project(project("react"))
        stores.graph.save(tmp_path / "graph_store.json")
        assert stores.cutover.graph.memory is memory
        assert stores.store_status().model_dump()["postgres"] == {"configured": False}
    assert [p.name for p in load_snapshot(tmp_path / "graph_store.json").projects] == ["react"]


def test_calls_run_on_the_facades_own_loop_thread(tmp_path: Path) -> None:
    seen: list[str] = []

    async def where() -> str:
        return threading.current_thread().name

    with SyncCutoverStores.open(CutoverSettings(), reconcile_interval_s=None) as stores:
        seen.append(stores.run(where()))
    assert seen == ["coherence-sql-sync"]
    assert threading.current_thread().name != seen[0]


def test_phase_three_saves_memory_while_it_is_kept(clean_dsn: str, tmp_path: Path) -> None:
    settings = dual_write(clean_dsn, tmp_path / "journal.jsonl", primary=True)
    with SyncCutoverStores.open(settings, reconcile_interval_s=None) as stores:
        stores.graph.upsert_project(project("react"))
        stores.graph.save(tmp_path / "graph_store.json")
        assert stores.store_status().source_of_truth == "postgres"
    assert [p.name for p in load_snapshot(tmp_path / "graph_store.json").projects] == ["react"]


def test_phase_three_without_memory_writes_has_no_graph_in_memory_to_save(clean_dsn: str, tmp_path: Path) -> None:
    settings = dual_write(clean_dsn, tmp_path / "journal.jsonl", primary=True, memory_writes=False)
    with SyncCutoverStores.open(settings, reconcile_interval_s=None) as stores:
        stores.graph.upsert_project(project("react"))
        with pytest.raises(SnapshotError, match="does not hold its graph in memory"):
            stores.graph.save(tmp_path / "graph_store.json")
    assert not (tmp_path / "graph_store.json").exists()
