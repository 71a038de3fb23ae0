"""What the API wires in: both migrating stores, their PostgreSQL pool, the journal and the status.

`open_migrating_stores()` builds everything from `MigrationSettings` (the plan's environment
variables by default), replays the journal in the background whenever PostgreSQL is behind, and
`store_status()` gives the payload of spec 054's `GET /api/agent/store-status` from live state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coherence_sql.errors import CoherenceSQLError, MigrationError
from coherence_sql.migration.config import MigrationSettings, Phase
from coherence_sql.migration.journal import ReplayReport, WriteJournal
from coherence_sql.migration.shadow import Mismatch, ShadowReader
from coherence_sql.migration.stores import (
    MigratingAgentTaskStore,
    MigratingGraphStore,
    MigrationCore,
    replay_journal,
)
from coherence_sql.sql import health as health_sql
from coherence_sql.sql import shadow as shadow_sql
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore
from coherence_sql.stores.postgres import PostgresStores, connect

log = logging.getLogger(__name__)


def default_journal_path() -> Path:
    """$COHERENCE_SQL_JOURNAL, else in the user's data directory beside the embedded server's."""
    configured = os.environ.get("COHERENCE_SQL_JOURNAL", "").strip()
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "coherence-sql" / "write-journal.jsonl"


class PostgresMismatchRecorder:
    """Keeps shadow mismatches in the `shadow_mismatches` table."""

    def __init__(self, stores: PostgresStores) -> None:
        self._pool = stores.pool

    async def record(self, mismatch: Mismatch) -> None:
        await shadow_sql.record_mismatch(
            self._pool,
            operation=mismatch.operation,
            entity_key=mismatch.key,
            control=mismatch.control,
            candidate=mismatch.candidate,
            control_ms=mismatch.control_ms,
            candidate_ms=mismatch.candidate_ms,
            error=mismatch.error,
            observed_at=mismatch.observed_at,
        )


@dataclass
class MigratingStores:
    """Both migrating stores and what they share."""

    graph: MigratingGraphStore
    tasks: MigratingAgentTaskStore
    core: MigrationCore
    postgres: PostgresStores | None
    last_replay: ReplayReport | None = field(default=None)

    async def reconcile(self) -> ReplayReport:
        """Replay journaled writes onto PostgreSQL, in order; stops at the first that fails."""
        if self.core.journal is None:
            return ReplayReport()
        report = await replay_journal(self.core.journal, self.graph.apply_journaled, self.tasks.apply_journaled)
        self.last_replay = report
        return report

    async def _postgres_health(self) -> dict[str, Any]:
        if self.postgres is None:
            return {"configured": False}
        pool = self.postgres.pool
        health: dict[str, Any] = {
            "configured": True,
            "pool": {"size": pool.get_size(), "idle": pool.get_idle_size(), "max": pool.get_max_size()},
        }
        try:
            await asyncio.wait_for(health_sql.ping(pool), 2.0)
            health["reachable"] = True
            health["server_version"] = await health_sql.server_version(pool)
        except (CoherenceSQLError, TimeoutError) as exc:
            health["reachable"] = False
            health["error"] = f"{type(exc).__name__}: {exc}"
        return health

    async def store_status(self) -> dict[str, Any]:
        core = self.core
        settings = core.settings
        stats = core.stats
        shadow = core.shadow
        journal = core.journal
        return {
            "phase": settings.phase.value,
            "settings": {
                "dual_write_mode": settings.dual_write,
                "read_from_postgres_percent": settings.read_from_postgres_percent,
                "shadow_compare_percent": settings.shadow_compare_percent,
                "postgres_primary": settings.postgres_primary,
                "memory_writes": settings.memory_writes,
            },
            "source_of_truth": "postgres" if settings.phase is Phase.POSTGRES_PRIMARY else "memory",
            "postgres": await self._postgres_health(),
            "writes": {
                "memory_ok": stats.memory_ok,
                "postgres_ok": stats.postgres_ok,
                "postgres_failed": stats.postgres_failed,
                "postgres_rejected": stats.rejected,
                "journaled": stats.journaled,
                "memory_failed_after_postgres": stats.memory_failed_after_postgres,
                "errors_by_type": dict(stats.by_error),
                "recent_rejections": list(stats.recent_rejections)[-10:],
            },
            "reads": {
                "memory": stats.reads_memory,
                "postgres": stats.reads_postgres,
                "fallbacks_to_memory": stats.read_fallbacks,
            },
            "journal": {
                "path": str(journal.path) if journal else None,
                "pending": journal.pending() if journal else 0,
                "last_replay": None
                if self.last_replay is None
                else {
                    "applied": self.last_replay.applied,
                    "already_applied": self.last_replay.already_applied,
                    "remaining": self.last_replay.remaining,
                    "error": self.last_replay.error,
                },
            },
            "shadow": {**shadow.stats.as_dict(), "recent_mismatches": [m.as_json() for m in list(shadow.recent)[-10:]]},
        }


async def _keep_reconciling(stores: MigratingStores, interval_s: float) -> None:
    journal = stores.core.journal
    assert journal is not None
    while True:
        await asyncio.sleep(interval_s)
        if not journal.active():
            continue
        try:
            report = await stores.reconcile()
        except CoherenceSQLError as exc:
            log.warning("journal replay failed: %s", exc)
            continue
        if report.complete:
            log.info("journal replayed: %d applied, %d had landed", report.applied, report.already_applied)


async def _drain_before_serving(stores: MigratingStores) -> None:
    """Writes journaled by an earlier run go first. In phase 3 PostgreSQL is the source of truth,
    so serving before they landed would let them overwrite newer writes later: refuse instead."""
    report = await stores.reconcile()
    if report.complete:
        log.info("journal from an earlier run replayed: %d applied", report.applied)
        return
    if stores.core.phase is Phase.POSTGRES_PRIMARY:
        raise MigrationError(
            f"the write journal holds {report.remaining} write(s) from dual-write that did not reach "
            f"PostgreSQL ({report.error}); run `coherence-sql reconcile` before starting with "
            f"POSTGRES_PRIMARY=true"
        )
    log.warning("journal from an earlier run not fully replayed yet: %s", report.error)


@asynccontextmanager
async def open_migrating_stores(
    settings: MigrationSettings | None = None,
    *,
    memory_graph: MemoryGraphStore | None = None,
    memory_tasks: MemoryAgentTaskStore | None = None,
    reconcile_interval_s: float | None = 5.0,
    drain_on_start: bool = True,
) -> AsyncIterator[MigratingStores]:
    """The API's stores for the configured phase; closes the pool and background work on exit.

    `memory_graph`/`memory_tasks` are the live in-memory stores (new empty ones by default);
    `reconcile_interval_s=None` turns off the background journal replay (tests, CLI);
    `drain_on_start=False` leaves a journal from an earlier run for the caller to replay.
    """
    chosen = settings or MigrationSettings.from_env()
    graph_memory = memory_graph or MemoryGraphStore()
    tasks_memory = memory_tasks or MemoryAgentTaskStore()
    async with AsyncExitStack() as stack:
        postgres: PostgresStores | None = None
        journal: WriteJournal | None = None
        shadow: ShadowReader | None = None
        if chosen.uses_postgres:
            postgres = await stack.enter_async_context(connect(chosen.database_url))
            journal = WriteJournal(chosen.journal_path or default_journal_path())
            shadow = ShadowReader(
                chosen.shadow_compare_percent,
                timeout_s=chosen.shadow_timeout_s,
                max_in_flight=chosen.shadow_max_in_flight,
                recorder=PostgresMismatchRecorder(postgres),
            )
        core = MigrationCore(chosen, journal, shadow)
        stores = MigratingStores(
            graph=MigratingGraphStore(core, graph_memory, postgres.graph if postgres else None),
            tasks=MigratingAgentTaskStore(core, tasks_memory, postgres.tasks if postgres else None),
            core=core,
            postgres=postgres,
        )
        if drain_on_start and journal is not None and journal.active():
            await _drain_before_serving(stores)
        background: asyncio.Task[None] | None = None
        if journal is not None and reconcile_interval_s is not None:
            background = asyncio.get_running_loop().create_task(_keep_reconciling(stores, reconcile_interval_s))
        try:
            yield stores
        finally:
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            await core.drain_writes()
            await core.shadow.drain()
