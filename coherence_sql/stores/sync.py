"""Synchronous stores for the API's synchronous callers, with the API's exact signatures.

Each `SyncStores` owns one daemon thread running one event loop; the async stores are built on
that loop and every sync call runs its coroutine there (`run_coroutine_threadsafe(...).result()`),
so any number of threads may call at once and typed errors reach the caller unchanged.

    with SyncStores.open(dsn) as stores:      # or SyncStores.memory()
        stores.graph.upsert_project(project)
        stores.graph.save("graph_store.json")  # memory-backed stores, as the API's InMemoryGraphStore.save()

The cut-over stores get the same facade from `coherence_sql.cutover.sync.SyncCutoverStores.open()`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast
from uuid import UUID

from coherence_sql.errors import CoherenceSQLError, InvalidValueError, SnapshotError, StoreClosedError
from coherence_sql.models import (
    AgentTaskRecord,
    Asset,
    Contribution,
    Contributor,
    GitHubContributor,
    GitHubOrganization,
    Project,
    ProjectSummary,
    TaskStatus,
    TaskType,
)
from coherence_sql.stores.memory import MemoryGraphStore, memory_stores
from coherence_sql.stores.protocol import AgentTaskStore, DependencyEdge, GraphStore

if TYPE_CHECKING:  # transfer sits above stores: its snapshot writer is imported only by `save`
    from coherence_sql.transfer.snapshot import Snapshot

_T = TypeVar("_T")


class AsyncStores(Protocol):
    """What `postgres.connect(dsn)` and `memory_stores()` yield."""

    @property
    def graph(self) -> GraphStore: ...

    @property
    def tasks(self) -> AgentTaskStore: ...


@dataclass(frozen=True)
class _Outcome(Generic[_T]):
    value: _T | None = None
    error: CoherenceSQLError | None = None


async def _capture(coro: Coroutine[Any, Any, _T]) -> _Outcome[_T]:
    # QueryCancelledError is also a CancelledError, which would cancel the cross-thread future and
    # lose its type; carried as a value, every typed error reaches the caller as raised.
    try:
        return _Outcome(value=await coro)
    except CoherenceSQLError as exc:
        return _Outcome(error=exc)


class LoopThread:
    """One daemon thread running one event loop; coroutines from any thread run there in turn."""

    def __init__(self, name: str = "coherence-sql-sync") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._state = threading.Condition()
        self._calls = 0
        self._closed = False
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run `coro` on the loop and wait for it; its exceptions are raised here."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync store was called from its own event loop (it would wait forever)")
        with self._state:
            if self._closed:
                coro.close()
                raise StoreClosedError("the store is closed")
            self._calls += 1
        try:
            outcome = asyncio.run_coroutine_threadsafe(_capture(coro), self._loop).result()
        finally:
            with self._state:
                self._calls -= 1
                self._state.notify_all()
        if outcome.error is not None:
            raise outcome.error
        return cast(_T, outcome.value)

    def close(self, last: Callable[[], Coroutine[Any, Any, Any]] | None = None) -> None:
        """Refuse new calls, let running ones finish, run `last` on the loop, stop and join. Idempotent."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("a sync store cannot be closed from its own event loop")
        with self._state:
            if self._closed:
                return
            self._closed = True
            self._state.wait_for(lambda: self._calls == 0)
        try:
            if last is not None:
                asyncio.run_coroutine_threadsafe(last(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    @property
    def closed(self) -> bool:
        return self._closed


class SyncGraphStore:
    """`GraphStore` for synchronous callers: the API's GraphStore methods (client-contract §2.2),
    and `save(path)` as the API's InMemoryGraphStore has it."""

    def __init__(self, store: GraphStore, runner: LoopThread) -> None:
        self.store = store
        self._run = runner.run
        # The in-memory graph `save` writes: the store itself when it is one; the cut-over facade
        # sets its memory store here while memory is kept.
        self.saves: MemoryGraphStore | None = store if isinstance(store, MemoryGraphStore) else None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the graph to `path` in the API's persistence format (client-contract §2.5: its keys
        in its order, no agent_tasks), atomically; `coherence_sql.transfer.snapshot.load_snapshot`
        and the backfill read it back. SnapshotError when the graph is not held in memory (a
        PostgreSQL store keeps every write already: `coherence-sql rollback --phase 3` exports it)
        or the file cannot be written."""
        if not isinstance(path, str | os.PathLike):
            raise InvalidValueError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        graph = self.saves
        if graph is None:
            raise SnapshotError(
                "this graph store does not hold its graph in memory (PostgreSQL keeps every write; "
                "`coherence-sql rollback --phase 3` exports it as a snapshot)"
            )
        from coherence_sql.transfer.snapshot import write_snapshot  # deferred: see the TYPE_CHECKING import

        snapshot = self._run(_snapshot_of(graph))  # read on the loop that owns the store
        try:
            write_snapshot(path, snapshot)  # written here, so other callers' calls go on meanwhile
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"could not write the graph snapshot to {os.fsdecode(path)!r}: {exc}") from None

    # -- projects and the dependency graph ---------------------------------------------------
    def get_project(self, ecosystem: str, name: str) -> Project | None:
        return self._run(self.store.get_project(ecosystem, name))

    def search(self, query: str, limit: int = 20) -> list[ProjectSummary]:
        return self._run(self.store.search(query, limit))

    def upsert_project(self, project: Project) -> None:
        self._run(self.store.upsert_project(project))

    def add_dependency(self, from_eco: str, from_name: str, to_eco: str, to_name: str) -> None:
        self._run(self.store.add_dependency(from_eco, from_name, to_eco, to_name))

    def count_projects(self) -> int:
        return self._run(self.store.count_projects())

    def count_dependents(self, ecosystem: str, name: str) -> int:
        return self._run(self.store.count_dependents(ecosystem, name))

    def upsert_projects(self, projects: Sequence[Project]) -> None:
        self._run(self.store.upsert_projects(projects))

    def add_dependencies(self, edges: Sequence[DependencyEdge]) -> None:
        self._run(self.store.add_dependencies(edges))

    # -- contributors, assets, contributions ---------------------------------------------------
    def get_contributor(self, contributor_id: UUID) -> Contributor | None:
        return self._run(self.store.get_contributor(contributor_id))

    def create_contributor(self, contributor: Contributor) -> Contributor:
        return self._run(self.store.create_contributor(contributor))

    def list_contributors(self, limit: int = 100) -> list[Contributor]:
        return self._run(self.store.list_contributors(limit))

    def find_contributor_by_email(self, email: str) -> Contributor | None:
        return self._run(self.store.find_contributor_by_email(email))

    def get_asset(self, asset_id: UUID) -> Asset | None:
        return self._run(self.store.get_asset(asset_id))

    def create_asset(self, asset: Asset) -> Asset:
        return self._run(self.store.create_asset(asset))

    def list_assets(self, limit: int = 100) -> list[Asset]:
        return self._run(self.store.list_assets(limit))

    def create_contribution(
        self,
        contributor_id: UUID,
        asset_id: UUID,
        cost_amount: Decimal,
        coherence_score: float,
        metadata: dict[str, Any],
        *,
        id: UUID | None = None,
        timestamp: datetime | None = None,
    ) -> Contribution:
        return self._run(
            self.store.create_contribution(
                contributor_id, asset_id, cost_amount, coherence_score, metadata, id=id, timestamp=timestamp
            )
        )

    def get_contribution(self, contribution_id: UUID) -> Contribution | None:
        return self._run(self.store.get_contribution(contribution_id))

    def list_contributions(self, limit: int = 100) -> list[Contribution]:
        return self._run(self.store.list_contributions(limit))

    def get_asset_contributions(self, asset_id: UUID) -> list[Contribution]:
        return self._run(self.store.get_asset_contributions(asset_id))

    def get_contributor_contributions(self, contributor_id: UUID) -> list[Contribution]:
        return self._run(self.store.get_contributor_contributions(contributor_id))

    # -- GitHub --------------------------------------------------------------------------------
    def upsert_github_contributor(self, github_contributor: GitHubContributor) -> GitHubContributor:
        return self._run(self.store.upsert_github_contributor(github_contributor))

    def get_github_contributor(self, contributor_id: str) -> GitHubContributor | None:
        return self._run(self.store.get_github_contributor(contributor_id))

    def list_github_contributors(self, limit: int = 100) -> list[GitHubContributor]:
        return self._run(self.store.list_github_contributors(limit))

    def upsert_github_organization(self, organization: GitHubOrganization) -> GitHubOrganization:
        return self._run(self.store.upsert_github_organization(organization))

    def get_github_organization(self, organization_id: str) -> GitHubOrganization | None:
        return self._run(self.store.get_github_organization(organization_id))

    def add_github_contributes_to(self, contributor_id: str, ecosystem: str, project_name: str) -> None:
        self._run(self.store.add_github_contributes_to(contributor_id, ecosystem, project_name))

    def get_project_github_contributors(self, ecosystem: str, project_name: str) -> list[GitHubContributor]:
        return self._run(self.store.get_project_github_contributors(ecosystem, project_name))


async def _snapshot_of(graph: MemoryGraphStore) -> Snapshot:
    from coherence_sql.transfer.snapshot import Snapshot

    return Snapshot.of(graph)


class SyncAgentTaskStore:
    """`AgentTaskStore` for synchronous callers: the API's agent_service store functions (§3)."""

    def __init__(self, store: AgentTaskStore, runner: LoopThread) -> None:
        self.store = store
        self._run = runner.run

    def create_task(self, task: AgentTaskRecord) -> AgentTaskRecord:
        return self._run(self.store.create_task(task))

    def get_task(self, task_id: str) -> AgentTaskRecord | None:
        return self._run(self.store.get_task(task_id))

    def list_tasks(
        self,
        status: TaskStatus | None = None,
        task_type: TaskType | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> tuple[list[AgentTaskRecord], int]:
        return self._run(self.store.list_tasks(status, task_type, limit, offset))

    def update_task(
        self,
        task_id: str,
        status: TaskStatus | None = None,
        output: str | None = None,
        progress_pct: int | None = None,
        current_step: str | None = None,
        decision_prompt: str | None = None,
        decision: str | None = None,
        *,
        now: datetime | None = None,
    ) -> AgentTaskRecord | None:
        return self._run(
            self.store.update_task(
                task_id, status, output, progress_pct, current_step, decision_prompt, decision, now=now
            )
        )

    def get_attention_tasks(self, limit: int = 20) -> tuple[list[AgentTaskRecord], int]:
        return self._run(self.store.get_attention_tasks(limit))

    def get_task_count(self) -> dict[str, Any]:
        return self._run(self.store.get_task_count())

    def get_review_summary(self) -> dict[str, Any]:
        return self._run(self.store.get_review_summary())

    def get_usage_summary(self, routing: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
        return self._run(self.store.get_usage_summary(routing))

    def get_pipeline_status(
        self, now_utc: datetime | None = None, metrics: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._run(self.store.get_pipeline_status(now_utc, metrics))

    def claim_next_task(self, worker: str, *, now: datetime | None = None) -> AgentTaskRecord | None:
        return self._run(self.store.claim_next_task(worker, now=now))

    def claim_task(self, task_id: str, worker: str, *, now: datetime | None = None) -> AgentTaskRecord | None:
        return self._run(self.store.claim_task(task_id, worker, now=now))

    def clear(self) -> None:
        self._run(self.store.clear())

    clear_store = clear  # the API's name (agent_service.clear_store)


class SyncStores:
    """A graph store and a task store for synchronous callers, sharing one private event loop.

    `open(dsn)` for PostgreSQL, `memory()` for the in-memory stores, `from_async(...)` for any
    async stores built on the private loop. `close()` (or leaving `with`) closes the async stores on
    their loop (for PostgreSQL, its pool), then stops the loop and joins its thread.
    """

    def __init__(self, runner: LoopThread, stores: AsyncStores, close: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        self._runner = runner
        self._close = close
        self.graph = SyncGraphStore(stores.graph, runner)
        self.tasks = SyncAgentTaskStore(stores.tasks, runner)

    @classmethod
    def from_async(cls, open_stores: Callable[[], AbstractAsyncContextManager[AsyncStores]]) -> SyncStores:
        """Enter `open_stores()` on a new private loop (e.g. `lambda: postgres.connect(dsn)`)."""
        runner = LoopThread()

        async def enter() -> tuple[AbstractAsyncContextManager[AsyncStores], AsyncStores]:
            manager = open_stores()
            return manager, await manager.__aenter__()

        try:
            manager, stores = runner.run(enter())
        except BaseException:
            runner.close()
            raise

        async def leave() -> None:
            await manager.__aexit__(None, None, None)

        return cls(runner, stores, leave)

    @classmethod
    def open(cls, dsn: str | None = None) -> SyncStores:
        """The PostgreSQL stores (`coherence_sql.stores.postgres.connect(dsn)`) behind sync methods."""
        # Imported when asked for, so sync users of the memory stores never load the PostgreSQL stack.
        from coherence_sql.stores.postgres import connect

        return cls.from_async(lambda: connect(dsn))

    @classmethod
    def memory(cls) -> SyncStores:
        """Fresh in-memory stores behind sync methods."""
        return cls.from_async(memory_stores)

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run any coroutine on the stores' loop (e.g. `transfer.snapshot.restore_snapshot(...)`)."""
        return self._runner.run(coro)

    def close(self) -> None:
        self._runner.close(self._close)

    @property
    def closed(self) -> bool:
        return self._runner.closed

    def __enter__(self) -> SyncStores:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
