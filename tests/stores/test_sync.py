"""The sync facade's own promises: one private loop, many caller threads, typed errors, clean close.

Store behaviour through the facade is covered by the shared suite (the sync-* store kinds).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from coherence_sql.errors import DatabaseUnavailableError, DuplicateError, QueryCancelledError, StoreClosedError
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore
from coherence_sql.stores.sync import SyncStores
from coherence_sql.transfer.snapshot import Snapshot, restore_snapshot
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
        assert stores.graph.get_asset(code).total_cost == Decimal("4.00")
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
