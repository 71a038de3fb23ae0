"""What the API wires in: both cut-over stores, their PostgreSQL pool, the journal and the status.

`open_cutover_stores()` builds everything from `CutoverSettings` (the plan's environment
variables by default), replays the journal in the background whenever PostgreSQL is behind, and
`store_status()` gives the payload of spec 054's `GET /api/agent/store-status` from live state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from coherence_sql.cutover.journal import ReplayReport, WriteJournal
from coherence_sql.cutover.settings import CutoverSettings, Phase
from coherence_sql.cutover.shadow import Mismatch, ShadowReader
from coherence_sql.cutover.status import (
    DeadLetterStatus,
    Diverged,
    JournalStatus,
    LastReplay,
    PoolStatus,
    PostgresHealth,
    ReadCounts,
    ShadowStatus,
    StatusSettings,
    StoreStatus,
    WriteCounts,
)
from coherence_sql.cutover.stores import (
    CutoverAgentTaskStore,
    CutoverCore,
    CutoverGraphStore,
    replay_journal,
)
from coherence_sql.errors import CoherenceSQLError, CutoverError, DatabaseNotWritableError, DatabaseUnavailableError
from coherence_sql.health import (
    HEALTH_TIMEOUT_S,
    CutoverCheck,
    DatabaseCheck,
    DatabaseProbe,
    HealthReport,
    answer_within,
    cutover_verdict,
    probe_database,
    require_writable,
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
            control_side=mismatch.control_side,
            control=mismatch.control,
            candidate=mismatch.candidate,
            control_ms=mismatch.control_ms,
            candidate_ms=mismatch.candidate_ms,
            error=mismatch.error,
            observed_at=mismatch.observed_at,
        )


@dataclass(frozen=True, slots=True)
class DeadLetterReplay:
    """What a replay of dead letters did: applied ones are removed from the file, refused ones stay."""

    applied: int = 0
    already_applied: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # dead letter id -> why it is refused still
    remaining: int = 0
    error: str | None = None


# How long a journal replay waits for PostgreSQL calls whose callers went on past their budget
# (each ends within the pool's acquire timeout: coherence_sql/pool.py).
SETTLE_TIMEOUT_S = 15.0
# How long store_status() waits for PostgreSQL to answer (its ping and version together).
STATUS_TIMEOUT_S = 2.0


@dataclass
class CutoverStores:
    """Both cut-over stores and what they share.

    `open_postgres` opens the PostgreSQL stores when the cut-over stores started without them
    (PostgreSQL was down at start-up in phases 1-2: they run degraded until it is reached)."""

    graph: CutoverGraphStore
    tasks: CutoverAgentTaskStore
    core: CutoverCore
    postgres: PostgresStores | None
    last_replay: ReplayReport | None = field(default=None)
    open_postgres: Callable[[], Awaitable[PostgresStores]] | None = field(default=None, repr=False)
    last_connect_error: str | None = field(default=None)
    _attaching: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def degraded(self) -> bool:
        """PostgreSQL has not been reached since start-up: writes are journaled, reads served by memory."""
        return self.core.settings.uses_postgres and self.postgres is None

    async def attach_postgres(self) -> bool:
        """Try once to reach PostgreSQL if the stores started without it; True once attached."""
        if self.postgres is not None:
            return True
        if self.open_postgres is None:
            return False
        async with self._attaching:
            if self.postgres is not None:
                return True
            try:
                postgres = await self.open_postgres()
            except DatabaseNotWritableError as exc:
                self.last_connect_error = f"{type(exc).__name__}: {exc}"
                log.error("PostgreSQL answers but cannot be written, staying degraded: %s", exc)
                return False
            except CoherenceSQLError as exc:
                self.last_connect_error = f"{type(exc).__name__}: {exc}"
                log.warning("PostgreSQL still unreachable, staying degraded: %s", self.last_connect_error)
                return False
            self._attach(postgres)
            log.warning("PostgreSQL reached: dual-writes go to it again once the journal has drained")
            return True

    def _attach(self, postgres: PostgresStores) -> None:
        self.postgres = postgres
        self.graph.postgres = postgres.graph
        self.tasks.postgres = postgres.tasks
        self.core.shadow.recorder = PostgresMismatchRecorder(postgres)
        self.core.postgres_attached = True
        self.core.inline_below_s = pool_timeout_s(postgres)
        self.last_connect_error = None

    async def _ready_to_replay(self) -> str | None:
        """Why a replay cannot start now, or None."""
        if not await self.attach_postgres():
            return f"PostgreSQL unreachable: {self.last_connect_error}"
        if not await self.core.settle_detached(SETTLE_TIMEOUT_S):
            return f"{self.core.detached} PostgreSQL call(s) whose callers went on are still in flight"
        return None

    async def reconcile(self) -> ReplayReport:
        """Replay journaled writes onto PostgreSQL, in order; stops at the first that fails."""
        journal = self.core.journal
        if journal is None:
            return ReplayReport()
        blocked = await self._ready_to_replay()
        if blocked is not None:
            report = ReplayReport(error=blocked, remaining=journal.pending())
        else:
            report = await replay_journal(journal, self.graph.apply_journaled, self.tasks.apply_journaled)
        self.last_replay = report
        return report

    async def replay_dead_letters(self, ids: Collection[str] | None = None) -> DeadLetterReplay:
        """Apply dead letters (all, or those with `ids`) on PostgreSQL after the cause was fixed.

        Each one that lands (or had landed) leaves the file; each still refused stays, with why.
        The journal goes first: a dead letter replayed while writes wait would skip ahead of them.
        """
        journal = self.core.journal
        if journal is None:
            return DeadLetterReplay()
        letters = journal.dead_letters
        blocked = await self._ready_to_replay()
        if blocked is None and journal.active():
            blocked = "the write journal is not empty: reconcile it first"
        if blocked is not None:
            return DeadLetterReplay(error=blocked, remaining=letters.count())
        wanted = None if ids is None else set(ids)
        applied = already = 0
        refused: dict[str, str] = {}
        done: list[str] = []
        for letter in letters.read():
            if wanted is not None and letter.id not in wanted:
                continue
            router = self.graph if letter.store == "graph" else self.tasks
            try:
                landed = await router.apply_dead_letter(letter.op, letter.kwargs)
            except CoherenceSQLError as exc:
                refused[letter.id] = f"{type(exc).__name__}: {exc}"
                continue
            done.append(letter.id)
            applied += landed
            already += not landed
        letters.remove(done)
        return DeadLetterReplay(applied=applied, already_applied=already, refused=refused, remaining=letters.count())

    def clear_diverged(self) -> None:
        """An operator's word that PostgreSQL was backfilled and verified again since it diverged."""
        self.core.clear_diverged()

    async def _postgres_health(self) -> PostgresHealth:
        if not self.core.settings.uses_postgres:
            return PostgresHealth(configured=False)
        if self.postgres is None:
            return PostgresHealth(configured=True, reachable=False, error=self.last_connect_error)
        pool = self.postgres.pool
        sizes = PoolStatus(size=pool.get_size(), idle=pool.get_idle_size(), max=pool.get_max_size())


        async def ask() -> str | None:
            await health_sql.ping(pool)
            return await health_sql.server_version(pool)

        try:
            # Abandoned, not awaited, past its deadline: a frozen server does not hold the status.
            version = await answer_within(ask(), STATUS_TIMEOUT_S)
        except TimeoutError:
            error = f"no answer within {STATUS_TIMEOUT_S:g}s"
            return PostgresHealth(configured=True, pool=sizes, reachable=False, error=error)
        except CoherenceSQLError as exc:
            return PostgresHealth(configured=True, pool=sizes, reachable=False, error=f"{type(exc).__name__}: {exc}")
        return PostgresHealth(configured=True, pool=sizes, reachable=True, server_version=version)

    def _journal_status(self) -> JournalStatus:
        journal = self.core.journal
        if journal is None:
            return JournalStatus(path=None, pending=0, set_aside=0, last_replay=None)
        try:
            pending: int | str = journal.pending()
            set_aside: int | str = journal.set_aside_count()
        except (OSError, CoherenceSQLError) as exc:
            pending = set_aside = f"unreadable: {exc}"
        last = self.last_replay
        return JournalStatus(
            path=str(journal.path),
            pending=pending,
            set_aside=set_aside,
            last_replay=None
            if last is None
            else LastReplay(
                applied=last.applied,
                already_applied=last.already_applied,
                remaining=last.remaining,
                set_aside=last.set_aside,
                error=last.error,
            ),
        )

    def _dead_letter_status(self) -> DeadLetterStatus:
        journal = self.core.journal
        count: int | str = 0
        if journal is not None:
            try:
                count = journal.dead_letters.count()
            except (OSError, CoherenceSQLError) as exc:
                count = f"unreadable: {exc}"
        return DeadLetterStatus(
            path=None if journal is None else str(journal.dead_letters.path),
            count=count,
            recent=list(self.core.stats.recent_dead_letters)[-10:],
        )

    async def check_health(self, timeout_s: float = HEALTH_TIMEOUT_S) -> HealthReport:
        """For the API's `/api/ready` (coherence_sql.health): PostgreSQL's round trip within
        `timeout_s`, its schema and writability, and the cut-over's state; `ready` by phase (in
        phases 1-2 memory serves, so PostgreSQL's problems are warnings). Never raises for a
        database that is down, and returns within `timeout_s`."""
        started = time.perf_counter()
        probe: DatabaseProbe | None = None
        if self.core.settings.uses_postgres:
            if self.postgres is None:
                error = self.last_connect_error or "not reached since start-up"
                probe = DatabaseProbe(database=DatabaseCheck(reachable=False, error=error))
            else:
                probe = await probe_database(self.postgres.pool, timeout_s)
        journal = self.core.journal
        pending: int | None = 0
        letters: int | None = 0
        if journal is not None:
            try:
                pending = journal.pending()
            except (OSError, CoherenceSQLError):
                pending = None
            try:
                letters = journal.dead_letters.count()
            except (OSError, CoherenceSQLError):
                letters = None
        diverged = self.core.diverged
        cutover = CutoverCheck(
            phase=self.core.settings.phase.value,
            degraded=self.degraded,
            diverged=diverged is not None,
            diverged_since=diverged,
            journal_pending=pending,
            dead_letters=letters,
        )
        return cutover_verdict(cutover, probe, checked_in_ms=round((time.perf_counter() - started) * 1000, 2))

    async def store_status(self) -> StoreStatus:
        """The cut-over's state now (coherence_sql.cutover.status); `.model_dump()` is the JSON the API serves."""
        core = self.core
        settings = core.settings
        stats = core.stats
        shadow = core.shadow
        diverged = core.diverged
        return StoreStatus(
            phase=settings.phase.value,
            settings=StatusSettings(
                dual_write_mode=settings.dual_write,
                read_from_postgres_percent=settings.read_from_postgres_percent,
                shadow_compare_percent=settings.shadow_compare_percent,
                postgres_primary=settings.postgres_primary,
                memory_writes=settings.memory_writes,
                postgres_budget_ms=round(settings.postgres_budget_s * 1000),
            ),
            source_of_truth="postgres" if settings.phase is Phase.POSTGRES_PRIMARY else "memory",
            degraded=self.degraded,
            diverged=Diverged(
                since=diverged,
                action=None
                if diverged is None
                else "PostgreSQL misses writes nothing can replay: backfill a new snapshot, verify, "
                "then clear with `coherence-sql reconcile --clear-diverged` (docs/runbook.md)",
            ),
            postgres=await self._postgres_health(),
            writes=WriteCounts(
                memory_ok=stats.memory_ok,
                postgres_ok=stats.postgres_ok,
                postgres_failed=stats.postgres_failed,
                journaled=stats.journaled,
                dead_lettered=stats.dead_lettered,
                over_budget=stats.over_budget,
                journal_write_failures=stats.journal_write_failures,
                memory_failed_after_postgres=stats.memory_failed_after_postgres,
                errors_by_type=dict(stats.by_error),
                in_flight_after_budget=core.detached,
            ),
            reads=ReadCounts(
                memory=stats.reads_memory,
                postgres=stats.reads_postgres,
                fallbacks_to_memory=stats.read_fallbacks,
            ),
            journal=self._journal_status(),
            dead_letters=self._dead_letter_status(),
            shadow=ShadowStatus(
                **shadow.stats.as_dict(), recent_mismatches=[m.as_json() for m in list(shadow.recent)[-10:]]
            ),
        )


async def _keep_reconciling(stores: CutoverStores, interval_s: float) -> None:
    """Every `interval_s`: follow the diverged marker, reach PostgreSQL if the stores started
    without it, and replay the journal when writes wait in it."""
    journal = stores.core.journal
    assert journal is not None
    while True:
        await asyncio.sleep(interval_s)
        stores.core.refresh_diverged()
        if not await stores.attach_postgres():
            continue
        try:
            if not journal.active():
                continue
            report = await stores.reconcile()
        except (CoherenceSQLError, OSError) as exc:
            log.warning("journal replay failed: %s", exc)
            continue
        if report.complete:
            log.info("journal replayed: %d applied, %d had landed", report.applied, report.already_applied)


def pool_timeout_s(postgres: PostgresStores) -> float:
    """The pool's acquire timeout: a PostgreSQL leg runs in its caller's task only under a shorter
    budget (cutover/budget.py). Its replicas' pools share the primary's settings."""
    timeout = getattr(postgres.pool, "acquire_timeout_s", None)
    return timeout if isinstance(timeout, float | int) else 0.0  # unknown: a task per leg, as before


async def _drain_before_serving(stores: CutoverStores) -> None:
    """Writes journaled by an earlier run go first. In phase 3 PostgreSQL is the source of truth,
    so serving before they landed would let them overwrite newer writes later: refuse instead."""
    report = await stores.reconcile()
    if report.complete:
        log.info("journal from an earlier run replayed: %d applied", report.applied)
        return
    if stores.core.phase is Phase.POSTGRES_PRIMARY:
        raise CutoverError(
            f"the write journal holds {report.remaining} write(s) from dual-write that did not reach "
            f"PostgreSQL ({report.error}); run `coherence-sql reconcile` before starting with "
            f"POSTGRES_PRIMARY=true"
        )
    log.warning("journal from an earlier run not fully replayed yet: %s", report.error)


@asynccontextmanager
async def open_cutover_stores(
    settings: CutoverSettings | None = None,
    *,
    memory_graph: MemoryGraphStore | None = None,
    memory_tasks: MemoryAgentTaskStore | None = None,
    reconcile_interval_s: float | None = 5.0,
    drain_on_start: bool = True,
) -> AsyncIterator[CutoverStores]:
    """The API's stores for the configured phase; closes the pool and background work on exit.

    `memory_graph`/`memory_tasks` are the live in-memory stores (new empty ones by default);
    `reconcile_interval_s=None` turns off the background journal replay and reconnection (tests,
    CLI); `drain_on_start=False` leaves a journal from an earlier run for the caller to replay.
    In phases 1-2 a PostgreSQL that cannot be reached does not stop the API: the stores start
    degraded (`degraded`, writes journaled, reads from memory) and attach it when it answers.
    """
    chosen = settings or CutoverSettings.from_env()
    graph_memory = memory_graph or MemoryGraphStore()
    tasks_memory = memory_tasks or MemoryAgentTaskStore()
    async with AsyncExitStack() as stack:
        postgres: PostgresStores | None = None
        journal: WriteJournal | None = None
        shadow: ShadowReader | None = None
        open_postgres: Callable[[], Awaitable[PostgresStores]] | None = None
        connect_error: str | None = None
        if chosen.uses_postgres:

            async def open_postgres() -> PostgresStores:
                # A database the role cannot write is a configuration problem, not an outage: it
                # fails the start in every phase (docs/decisions.md, "Operating it").
                async with AsyncExitStack() as opening:
                    postgres = await opening.enter_async_context(connect(chosen.database_url))
                    await require_writable(postgres.pool)
                    stack.push_async_exit(opening.pop_all())
                return postgres

            journal = WriteJournal(chosen.journal_path or default_journal_path())
            try:
                postgres = await open_postgres()
            except DatabaseUnavailableError as exc:
                if chosen.phase is Phase.POSTGRES_PRIMARY:
                    raise  # PostgreSQL is the source of truth: nothing can serve without it
                connect_error = f"{type(exc).__name__}: {exc}"
                log.error("PostgreSQL unreachable at start-up, starting degraded (memory only): %s", connect_error)
            shadow = ShadowReader(
                chosen.shadow_compare_percent,
                timeout_s=chosen.shadow_timeout_s,
                max_in_flight=chosen.shadow_max_in_flight,
                recorder=None if postgres is None else PostgresMismatchRecorder(postgres),
            )
        core = CutoverCore(chosen, journal, shadow)
        core.postgres_attached = postgres is not None
        if postgres is not None:
            core.inline_below_s = pool_timeout_s(postgres)
        stores = CutoverStores(
            graph=CutoverGraphStore(core, graph_memory, postgres.graph if postgres else None),
            tasks=CutoverAgentTaskStore(core, tasks_memory, postgres.tasks if postgres else None),
            core=core,
            postgres=postgres,
            open_postgres=open_postgres,
            last_connect_error=connect_error,
        )
        if drain_on_start and postgres is not None and journal is not None and journal.active():
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
            await core.settle_detached(SETTLE_TIMEOUT_S)
            await core.shadow.drain()
