"""The `store` fixture: one behavioural suite over every store the API can be given.

Each test gets `store.graph` and `store.tasks` with awaitable methods, for the in-memory stores, the
PostgreSQL stores, and both behind the sync facade (called from a worker thread, as the API would).
The PostgreSQL params fail, never skip, when `coherence_sql.stores.postgres` cannot be imported.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from coherence_sql.stores.memory import memory_stores
from coherence_sql.stores.sync import SyncStores

# The cut-over stores are store kinds too: dual-write (phases 1-2, memory answers, PostgreSQL must
# take every write memory took) and postgres-primary (phase 3, memory follows PostgreSQL).
ALL_STORE_KINDS = ("memory", "postgres", "sync-memory", "sync-postgres", "dual-write", "postgres-primary")
MIGRATING_KINDS = ("dual-write", "postgres-primary")
# CI's second run (PostgreSQL 15) narrows the suite to the PostgreSQL store with STORE_KINDS=postgres.
STORE_KINDS = [k for k in os.environ.get("STORE_KINDS", ",".join(ALL_STORE_KINDS)).split(",") if k]
if not STORE_KINDS or set(STORE_KINDS) - set(ALL_STORE_KINDS):
    raise pytest.UsageError(f"STORE_KINDS must name some of {', '.join(ALL_STORE_KINDS)}")


class AwaitableFacade:
    """Async methods over a sync store: each call runs in a worker thread, as a sync caller's would."""

    def __init__(self, sync_store: object) -> None:
        self._sync = sync_store

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._sync, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call


@dataclass(frozen=True)
class Stores:
    kind: str
    graph: Any
    tasks: Any


def postgres_connect() -> Callable[..., Any]:
    """`coherence_sql.stores.postgres.connect`, or a test failure saying why it is missing."""
    try:
        module = importlib.import_module("coherence_sql.stores.postgres")
    except ImportError as exc:
        pytest.fail(f"coherence_sql.stores.postgres is not importable: {exc}")
    connect: Callable[..., Any] = module.connect
    return connect


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def store_dsn(store_kind: str, request: pytest.FixtureRequest) -> str | None:
    """The emptied test database for the PostgreSQL kinds (resolved only for them)."""
    if "postgres" not in store_kind and store_kind not in MIGRATING_KINDS:
        return None
    postgres_connect()  # fail before starting a server when the store does not exist
    dsn: str = request.getfixturevalue("clean_dsn")
    return dsn


@pytest.fixture
async def store(store_kind: str, store_dsn: str | None, tmp_path: Path) -> AsyncIterator[Stores]:
    if store_kind in MIGRATING_KINDS:
        async with cutover_kind(store_kind, store_dsn, tmp_path) as stores:
            yield stores
    elif store_kind == "memory":
        async with memory_stores() as stores:
            yield Stores(store_kind, stores.graph, stores.tasks)
    elif store_kind == "postgres":
        async with postgres_connect()(store_dsn) as stores:
            yield Stores(store_kind, stores.graph, stores.tasks)
    else:
        sync = await asyncio.to_thread(SyncStores.open, store_dsn) if store_dsn else SyncStores.memory()
        try:
            yield Stores(store_kind, AwaitableFacade(sync.graph), AwaitableFacade(sync.tasks))
        finally:
            await asyncio.to_thread(sync.close)


@asynccontextmanager
async def cutover_kind(kind: str, dsn: str | None, tmp_path: Path) -> AsyncIterator[Stores]:
    """The migrating stores of `kind` over a fresh memory store and the emptied database; on the
    way out, the other store must hold what the answering one held: nothing journaled, nothing
    dead-lettered, no write only one side took."""
    from coherence_sql.cutover.service import open_cutover_stores
    from coherence_sql.cutover.settings import CutoverSettings

    settings = CutoverSettings(
        dual_write=True,
        postgres_primary=kind == "postgres-primary",
        read_from_postgres_percent=50 if kind == "dual-write" else 0,
        journal_path=tmp_path / "journal.jsonl",
        database_url=dsn,
        postgres_budget_s=30.0,  # a slow shared machine must not turn a healthy write into a journaled one
    )
    async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
        yield Stores(kind, stores.graph, stores.tasks)
        journal = stores.core.journal
        assert journal is not None
        stats = stores.core.stats
        assert (journal.pending(), journal.dead_letters.count(), stores.core.diverged) == (0, 0, None)
        assert (stats.postgres_failed, stats.memory_failed_after_postgres) == (0, 0), stats
