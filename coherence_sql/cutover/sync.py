"""The cut-over stores for synchronous callers: what a synchronous API wires in.

`SyncCutoverStores.open()` runs `open_cutover_stores` on a loop thread of its own (as
`coherence_sql.stores.sync.SyncStores` does for the plain stores), so the API's synchronous routers
call the dual-writing stores with the API's exact signatures:

    with SyncCutoverStores.open() as stores:     # the plan's variables (CutoverSettings.from_env())
        stores.graph.upsert_project(project)
        payload = stores.store_status().model_dump()
        stores.graph.save("graph_store.json")    # the in-memory graph, in the API's format
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

from coherence_sql.cutover.journal import ReplayReport
from coherence_sql.cutover.service import CutoverStores, open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings, Phase
from coherence_sql.cutover.status import StoreStatus
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore
from coherence_sql.stores.sync import SyncAgentTaskStore, SyncGraphStore, SyncStores

__all__ = ["SyncCutoverStores"]

_T = TypeVar("_T")


class SyncCutoverStores:
    """The cut-over stores behind sync methods: `graph` and `tasks` as `SyncStores` gives them,
    `store_status()`, `reconcile()` and the async `CutoverStores` itself as `cutover`.

    `graph.save(path)` writes the in-memory graph while memory is kept (every phase but phase 3
    with MEMORY_WRITES=false). `close()` (or leaving `with`) closes the cut-over stores on their
    loop (background replay, pool), then stops the loop and joins its thread.
    """

    def __init__(self, stores: SyncStores, cutover: CutoverStores) -> None:
        self._stores = stores
        self.cutover = cutover
        self.graph: SyncGraphStore = stores.graph
        self.tasks: SyncAgentTaskStore = stores.tasks
        memory = cutover.graph.memory
        kept = cutover.core.phase is not Phase.POSTGRES_PRIMARY or cutover.core.settings.memory_writes
        self.graph.saves = memory if kept and isinstance(memory, MemoryGraphStore) else None

    @classmethod
    def open(
        cls,
        settings: CutoverSettings | None = None,
        *,
        memory_graph: MemoryGraphStore | None = None,
        memory_tasks: MemoryAgentTaskStore | None = None,
        reconcile_interval_s: float | None = 5.0,
        drain_on_start: bool = True,
    ) -> SyncCutoverStores:
        """`open_cutover_stores(...)` (same arguments) entered on a new private loop thread."""
        opened: list[CutoverStores] = []

        @asynccontextmanager
        async def cutover_stores() -> AsyncIterator[CutoverStores]:
            async with open_cutover_stores(
                settings,
                memory_graph=memory_graph,
                memory_tasks=memory_tasks,
                reconcile_interval_s=reconcile_interval_s,
                drain_on_start=drain_on_start,
            ) as stores:
                opened.append(stores)
                yield stores

        return cls(SyncStores.from_async(cutover_stores), opened[0])

    def store_status(self) -> StoreStatus:
        """The typed store status (`.model_dump()` is what `GET /api/agent/store-status` serves)."""
        return self._stores.run(self.cutover.store_status())

    def reconcile(self) -> ReplayReport:
        """Replay journaled writes onto PostgreSQL now (the background loop does it every interval)."""
        return self._stores.run(self.cutover.reconcile())

    @property
    def degraded(self) -> bool:
        """PostgreSQL has not been reached since start-up: writes are journaled, reads served by memory."""
        return self.cutover.degraded

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run any coroutine on the stores' loop."""
        return self._stores.run(coro)

    def close(self) -> None:
        self._stores.close()

    @property
    def closed(self) -> bool:
        return self._stores.closed

    def __enter__(self) -> SyncCutoverStores:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
