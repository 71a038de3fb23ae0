"""The sync facade's own promises: one private loop, many caller threads, typed errors, clean close.

Store behaviour through the facade is covered by the shared suite (the sync-* store kinds).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from coherence_sql.errors import (
    DatabaseUnavailableError,
    DuplicateError,
    InvalidValueError,
    QueryCancelledError,
    SnapshotError,
    StoreClosedError,
)
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore
from coherence_sql.stores.sync import SyncStores
from coherence_sql.transfer.snapshot import Snapshot, load_snapshot, restore_snapshot
from tests.stores.records import T0, asset, contributor, project, task


def test_typed_errors_reach_the_sync_caller_unchanged() -> None:
    with SyncStores.memory() as stores:
        stores.graph.create_contributor(contributor(1))
        with pytest.raises(DuplicateError, match="a contributor with this id already exists"):
            stores.graph.create_contributor(contributor(1))


def test_many_threads_write_at_once_without_losing_a_write() -> None:
    with SyncStores.memory() as stores:
        owner = stores.graph.create_contributor(contributor(1)).id
        code = stores.graph.create_asset(asset(1)).id

        def work(n: int) -> None:
            for i in range(25):
                stores.graph.create_contribution(owner, code, Decimal("0.01"), 0.5, {"n": n, "i": i}, id=uuid4())

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(work, range(16)))
        funded = stores.graph.get_asset(code)
        assert funded is not None
        assert funded.total_cost == Decimal("4.00")
        assert len(stores.graph.get_asset_contributions(code)) == 400


def test_every_call_runs_on_the_one_private_loop_thread() -> None:
    seen: set[str] = set()

    class Recording(MemoryGraphStore):
        async def count_projects(self) -> int:
            seen.add(threading.current_thread().name)
            return await super().count_projects()

    stores = SyncStores.from_async(lambda: _stores_of(Recording()))
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda _: stores.graph.count_projects(), range(20)))
    finally:
        stores.close()
    assert seen == {"coherence-sql-sync"}


def test_calls_after_close_raise_store_closed() -> None:
    stores = SyncStores.memory()
    stores.close()
    stores.close()  # idempotent
    assert stores.closed
    with pytest.raises(StoreClosedError, match="closed"):
        stores.graph.count_projects()


def test_close_exits_the_async_stores_on_their_loop_and_joins_the_thread() -> None:
    events: list[tuple[str, str]] = []

    @asynccontextmanager
    async def tracked() -> AsyncIterator[Any]:
        events.append(("enter", threading.current_thread().name))
        yield _Pair()
        events.append(("exit", threading.current_thread().name))

    before = set(threading.enumerate())
    with SyncStores.from_async(tracked) as stores:
        stores.graph.upsert_project(project("a"))
    assert events == [("enter", "coherence-sql-sync"), ("exit", "coherence-sql-sync")]
    assert set(threading.enumerate()) == before


def test_close_waits_for_calls_in_flight() -> None:
    class Slow(MemoryGraphStore):
        async def count_projects(self) -> int:
            await asyncio.sleep(0.2)
            return 7

    stores = SyncStores.from_async(lambda: _stores_of(Slow()))
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(stores.graph.count_projects)
        time.sleep(0.05)
        stores.close()
        assert pending.result(timeout=5) == 7


def test_a_failure_while_opening_is_raised_and_stops_the_loop() -> None:
    @asynccontextmanager
    async def unreachable() -> AsyncIterator[Any]:
        raise DatabaseUnavailableError("cannot connect to postgresql://x")
        yield  # pragma: no cover

    before = set(threading.enumerate())
    with pytest.raises(DatabaseUnavailableError, match="cannot connect"):
        SyncStores.from_async(unreachable)
    assert set(threading.enumerate()) == before


def test_cancelled_query_error_keeps_its_type_across_threads() -> None:
    class Cancelled(MemoryGraphStore):
        async def count_projects(self) -> int:
            raise QueryCancelledError("count_projects: cancelled before PostgreSQL answered")

    with SyncStores.from_async(lambda: _stores_of(Cancelled())) as stores:
        with pytest.raises(QueryCancelledError, match="cancelled before PostgreSQL answered"):
            stores.graph.count_projects()
        assert stores.graph.search("x") == []  # the loop survives


def test_calling_the_facade_from_its_own_loop_is_refused() -> None:
    with SyncStores.memory() as stores:

        async def reenter() -> int:
            return stores.graph.count_projects()

        with pytest.raises(RuntimeError, match="its own event loop"):
            stores.run(reenter())


def test_run_executes_any_coroutine_on_the_stores_loop() -> None:
    with SyncStores.memory() as stores:
        graph = stores.graph.store
        assert isinstance(graph, MemoryGraphStore)
        snapshot = Snapshot(projects=[project("react")], contributors=[contributor(1, created_at=T0)])
        stores.run(restore_snapshot(snapshot, graph))
        assert stores.graph.count_projects() == 1
        assert [c.name for c in stores.graph.list_contributors()] == ["Contributor 1"]


def test_agent_tasks_have_the_apis_clear_store_name() -> None:
    with SyncStores.memory() as stores:
        stores.tasks.create_task(task(1))
        stores.tasks.clear_store()
        assert stores.tasks.get_task_count() == {"total": 0, "by_status": {}}


@dataclass(frozen=True)
class _Pair:
    graph: MemoryGraphStore = field(default_factory=MemoryGraphStore)
    tasks: MemoryAgentTaskStore = field(default_factory=MemoryAgentTaskStore)


@asynccontextmanager
async def _stores_of(graph: MemoryGraphStore) -> AsyncIterator[_Pair]:
    yield _Pair(graph=graph)


# -- save(path): the API's InMemoryGraphStore.save() ---------------------------------------------


def test_save_writes_the_graph_in_the_apis_format_and_it_loads_back(tmp_path: Path) -> None:
    target = tmp_path / "logs" / "graph_store.json"  # a missing directory is made, as the API's makedirs
    with SyncStores.memory() as stores:
        stores.graph.upsert_project(project("react"))
        stores.graph.upsert_project(project("left-pad"))
        stores.graph.add_dependency("npm", "React", "npm", "left-pad")
        ada = stores.graph.create_contributor(contributor(1))
        stores.tasks.create_task(task(1))
        stores.graph.save(target)
        saved = stores.graph.store
        assert isinstance(saved, MemoryGraphStore)

    data = json.loads(target.read_text(encoding="utf-8"))
    assert list(data) == [
        "projects", "edges", "contributors", "assets", "contributions",
        "github_contributors", "github_organizations", "github_contributes_to",
    ]  # fmt: skip
    assert data["edges"] == [[["npm", "react"], ["npm", "left-pad"]]]
    loaded = load_snapshot(target)
    assert loaded.projects == saved.all_projects()
    assert [p.dependency_count for p in loaded.projects] == [1, 0]
    assert loaded.contributors == [ada]
    assert loaded.agent_tasks is None  # the graph store saves the graph only, as the API's does


def test_save_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "graph_store.json"
    target.write_text("an older file", encoding="utf-8")
    with SyncStores.memory() as stores:
        stores.graph.upsert_project(project("react"))
        stores.graph.save(str(target))
    assert [p.name for p in load_snapshot(target).projects] == ["react"]
    assert [p.name for p in tmp_path.iterdir()] == ["graph_store.json"]  # no temp file left behind


def test_save_refuses_a_path_that_is_not_one_and_a_file_it_cannot_write(tmp_path: Path) -> None:
    with SyncStores.memory() as stores:
        with pytest.raises(InvalidValueError, match=r"path must be a str or os\.PathLike, got int"):
            stores.graph.save(3)  # type: ignore[arg-type]
        with pytest.raises(SnapshotError, match="could not write the graph snapshot to"):
            stores.graph.save(tmp_path)  # a directory
        with pytest.raises(SnapshotError, match="could not write the graph snapshot to"):
            stores.graph.save(tmp_path / "bad\x00name.json")
    with pytest.raises(StoreClosedError):
        stores.graph.save(tmp_path / "after-close.json")


def test_a_postgres_graph_store_has_nothing_in_memory_to_save(clean_dsn: str, tmp_path: Path) -> None:
    with SyncStores.open(clean_dsn) as stores, pytest.raises(SnapshotError, match="does not hold its graph in memory"):
        stores.graph.save(tmp_path / "graph_store.json")
    assert not (tmp_path / "graph_store.json").exists()
