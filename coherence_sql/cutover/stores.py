"""The cut-over stores: one GraphStore and one AgentTaskStore over memory and PostgreSQL.

They route by `CutoverSettings` (the plan's phases): memory only; dual-write with memory as
the source of truth, a stable-hashed share of reads from PostgreSQL and sampled shadow reads;
PostgreSQL primary with memory still written for rollback. A write's ids and timestamps are
decided here once, so both stores receive the same values.

A write is `(op, kwargs)`, what the journal records: it holds its keys' order locks, memory takes it,
then PostgreSQL within the budget, else it waits in the journal (or, refused on its data, goes to
the dead letters); in phase 3 PostgreSQL takes it first and memory follows. A read is a typed
callable over one store: the router picks the side by key, PostgreSQL answers within the budget
unless it is behind (else memory does), and a sampled shadow read compares the other side.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Generic, TypeVar
from uuid import UUID, uuid4

from coherence_sql.cutover.budget import BudgetExceededError, Deadlines, InlineCall
from coherence_sql.cutover.journal import JournalEntry, ReplayReport, StoreName, WriteJournal
from coherence_sql.cutover.journal_watch import JournalWatch
from coherence_sql.cutover.ordering import WriteOrder
from coherence_sql.cutover.routing import ReadRouter, entity_key
from coherence_sql.cutover.settings import CutoverSettings, Phase
from coherence_sql.cutover.shadow import ShadowReader
from coherence_sql.db import DEFAULT_ACQUIRE_TIMEOUT_S
from coherence_sql.errors import (
    CoherenceSQLError,
    DatabaseUnavailableError,
    DuplicateError,
    InvalidValueError,
    JournalError,
    UnknownReferenceError,
)
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
    utcnow,
    utcnow_naive,
)
from coherence_sql.stores import rules
from coherence_sql.stores.protocol import AgentTaskStore, DependencyEdge, GraphStore

log = logging.getLogger(__name__)
T = TypeVar("T")
S = TypeVar("S")  # the store protocol a router routes between


class NotYetInPostgresError(CoherenceSQLError):
    """A dual-write needs a row PostgreSQL does not have yet; it waits in the journal."""


# Verdicts on the data itself (SQLSTATE classes 22 and 23, and the stores' own argument checks):
# PostgreSQL will refuse the write however often it is replayed, so it goes to the dead letters.
# Every other failure means "PostgreSQL could not take it now" and the write waits in the journal
# (docs/decisions.md: "Which failures are journaled").
DATA_VERDICTS: Final = (InvalidValueError, DuplicateError)
# Writes that change an existing task: PostgreSQL answering None means it lacks the task.
_MUST_FIND = frozenset({"update_task", "claim_task"})
# Creates, with how to find the row one made: (getter, argument, the argument's id attribute).
_CREATES: Final[dict[str, tuple[str, str, str | None]]] = {
    "create_contributor": ("get_contributor", "contributor", "id"),
    "create_asset": ("get_asset", "asset", "id"),
    "create_contribution": ("get_contribution", "id", None),
    "create_task": ("get_task", "task", "id"),
}


@dataclass(slots=True)
class WriteStats:
    memory_ok: int = 0
    postgres_ok: int = 0
    postgres_failed: int = 0
    journaled: int = 0
    dead_lettered: int = 0
    journal_write_failures: int = 0
    over_budget: int = 0
    memory_failed_after_postgres: int = 0
    reads_memory: int = 0
    reads_postgres: int = 0
    read_fallbacks: int = 0
    by_error: Counter[str] = field(default_factory=Counter)
    recent_dead_letters: deque[str] = field(default_factory=lambda: deque(maxlen=100))


class CutoverCore:
    """What both cut-over stores share: settings, the journal, counters, budgets and shadow reads."""

    def __init__(
        self,
        settings: CutoverSettings,
        journal: WriteJournal | None,
        shadow: ShadowReader | None = None,
        router: ReadRouter | None = None,
    ) -> None:
        if settings.uses_postgres and journal is None:
            raise ValueError("a cut-over store that writes PostgreSQL needs a write journal")
        self.settings = settings
        self.phase: Final[Phase] = settings.phase  # read three times a write; the settings are frozen
        self.journal = journal
        self.journal_watch = None if journal is None else JournalWatch(journal)
        self.router = router or ReadRouter(settings.read_from_postgres_percent)
        self.shadow = shadow or ShadowReader(
            settings.shadow_compare_percent,
            timeout_s=settings.shadow_timeout_s,
            max_in_flight=settings.shadow_max_in_flight,
        )
        self.stats = WriteStats()
        self.order = WriteOrder()
        self.budget_s = settings.postgres_budget_s
        # Legs run in their caller's task while the budget is shorter than this: the pool's acquire
        # timeout, the one asyncio timeout a PostgreSQL call enters (budget.py). The service sets it
        # from the pool it opened.
        self.inline_below_s = DEFAULT_ACQUIRE_TIMEOUT_S
        self.deadlines = Deadlines()
        # False while PostgreSQL could not be reached at start-up (phases 1-2 start degraded).
        self.postgres_attached = settings.uses_postgres
        self._diverged: str | None = self._read_marker()
        self._marker_written = self._diverged is not None
        self._finishing: set[asyncio.Future[Any]] = set()
        self._detached: set[asyncio.Future[Any]] = set()

    async def finish_even_if_cancelled(self, write: Coroutine[Any, Any, T]) -> T:
        """Run a phase-3 write to its end even if its caller is cancelled meanwhile (a client gone).

        Once the PostgreSQL write is sent it may commit whatever the caller does, and memory must
        then follow it or a rollback loses it; so the write, its memory follow-up and its order
        locks finish in a task of their own. The caller still sees its cancellation at once.
        """
        task = asyncio.ensure_future(write)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                task.add_done_callback(_report_orphaned)
            raise

    async def drain_writes(self) -> None:
        """Wait for the writes whose callers were cancelled (before the pool closes)."""
        while self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)

    # -- the PostgreSQL leg, within its budget ----------------------------------------------------
    def within_budget(self, call: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        """Run one PostgreSQL call for a caller who must not wait past `budget_s`.

        Past the budget (or when the caller is cancelled) the caller goes on at once and the call
        is cancelled in a task of its own, where the bounded pool (coherence_sql/pool.py) ends it,
        terminating its connection if the server does not answer. A journal replay waits for such
        tasks first (`settle_detached`), so a write that was sent before its caller gave up can
        never land after the replay of later writes.

        The call runs in the caller's own task until then (budget.py: no task, no extra turns of
        the event loop), unless the budget reaches the pool's acquire timeout or the caller is
        already being cancelled: then in a task of its own from the start, as it always did.
        """
        task = asyncio.current_task()
        if task is not None and self.budget_s < self.inline_below_s and not task.cancelling():
            # The awaitable itself, not a coroutine around it: one frame fewer on every resumption.
            return InlineCall(call(), self.budget_s, task, self.deadlines, self._hand_off)
        return self._within_budget_in_task(call)

    async def _within_budget_in_task(self, call: Callable[[], Awaitable[T]]) -> T:
        # What asyncio.wait((task,), timeout=budget) does, without its sets and wrapper coroutine
        # (~10 µs of every dual-write and routed read): a future woken by the task or the timer.
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(call())
        waiter = loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        task.add_done_callback(wake)
        timer = loop.call_later(self.budget_s, wake)
        try:
            await waiter
        except asyncio.CancelledError:
            self._detach(task)
            raise
        finally:
            timer.cancel()
            task.remove_done_callback(wake)
        if not task.done():
            self._detach(task)
            self.stats.over_budget += 1
            raise BudgetExceededError(f"PostgreSQL did not answer within {self.budget_s:g}s")
        exc = task.exception()
        if isinstance(exc, asyncio.CancelledError):
            # The call was cancelled from inside (its connection went away), not our caller.
            raise DatabaseUnavailableError(f"the PostgreSQL call was cancelled: {exc}") from None
        return task.result()

    def _detach(self, task: asyncio.Future[Any]) -> None:
        task.cancel()
        self._detached.add(task)
        task.add_done_callback(self._settled)

    def _hand_off(self, remainder: Awaitable[Any], past_budget: bool) -> None:
        """Run what is left of a call cut short (it starts by taking its cancellation) in a task."""
        if past_budget:
            self.stats.over_budget += 1
        task = asyncio.ensure_future(remainder)
        self._detached.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Future[Any]) -> None:
        self._detached.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a detached call's failure is already handled (journaled)

    async def settle_detached(self, timeout_s: float) -> bool:
        """Wait (at most `timeout_s`) for PostgreSQL calls whose callers went on without them."""
        if not self._detached:
            return True
        await asyncio.wait(list(self._detached), timeout=timeout_s)
        return not self._detached

    @property
    def detached(self) -> int:
        return len(self._detached)

    # -- where a write goes when PostgreSQL did not take it ---------------------------------------
    def postgres_behind(self) -> bool:
        """Whether PostgreSQL may lack writes memory has: then it serves no reads and shadow
        reads are off (they would only report the lag)."""
        return not self.postgres_attached or self._diverged is not None or self.journal_pending()

    def journal_pending(self) -> bool:
        """Whether writes wait in the journal: a new write must then queue behind them."""
        if self.journal_watch is None:
            return False
        try:
            return self.journal_watch.active()
        except (OSError, JournalError) as exc:
            self.mark_diverged(f"the write journal cannot be read: {exc}")
            return True

    def journal_write(self, store: StoreName, op: str, kwargs: dict[str, Any], exc: BaseException | None) -> None:
        """Queue one write for PostgreSQL; never fails the caller, whose write memory has taken."""
        assert self.journal is not None
        if exc is not None:
            self.stats.postgres_failed += 1
            self.stats.by_error[type(exc).__name__] += 1
            log.warning("PostgreSQL %s.%s failed, journaled for replay: %s: %s", store, op, type(exc).__name__, exc)
        try:
            self.journal.append(store, op, kwargs)
        except (OSError, JournalError) as failure:
            self.stats.journal_write_failures += 1
            log.error("could not journal %s.%s, PostgreSQL now misses it: %s", store, op, failure)
            self.mark_diverged(f"{store}.{op} could not be journaled: {failure}")
            return
        self.stats.journaled += 1

    def dead_letter(
        self, store: StoreName, op: str, kwargs: dict[str, Any], exc: BaseException, *, replaying: bool = False
    ) -> None:
        """Keep a write PostgreSQL refused on its data, whole, for an operator (never just counted).

        If the dead letter cannot be written: a live write marks PostgreSQL diverged (the caller
        must not fail), a replayed one raises JournalWriteError so the entry stays journaled.
        """
        assert self.journal is not None
        reason = f"{type(exc).__name__}: {exc}"
        self.stats.by_error[type(exc).__name__] += 1
        log.error("PostgreSQL refused %s.%s that memory accepted, dead-lettered: %s", store, op, reason)
        try:
            self.journal.dead_letters.append(store, op, kwargs, reason)
        except (OSError, JournalError) as failure:
            if replaying:
                raise
            self.stats.journal_write_failures += 1
            log.error("could not dead-letter %s.%s, PostgreSQL now misses it: %s", store, op, failure)
            self.mark_diverged(f"{store}.{op} could not be dead-lettered: {failure}")
            return
        self.stats.dead_lettered += 1
        self.stats.recent_dead_letters.append(f"{store}.{op}: {reason}")

    # -- diverged: PostgreSQL lost a write nothing can replay -------------------------------------
    # The state lives in a marker file beside the journal, so it outlives a restart and an operator
    # can clear it from another host; the flag in memory serves the hot path and covers a disk too
    # full for the marker. The background loop calls `refresh_diverged` to pick up the file.
    @property
    def _diverged_marker(self) -> Path | None:
        return None if self.journal is None else self.journal.path.with_name(self.journal.path.name + ".diverged")

    def _read_marker(self) -> str | None:
        marker = self._diverged_marker
        if marker is None:
            return None
        try:
            return marker.read_text(encoding="utf-8").strip() or "diverged"
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            return f"the diverged marker {marker} cannot be read: {exc}"

    def _write_marker(self) -> bool:
        marker = self._diverged_marker
        if marker is None or self._diverged is None:
            return False
        try:
            marker.write_text(self._diverged + "\n", encoding="utf-8")
        except OSError:
            return False
        return True

    def mark_diverged(self, reason: str) -> None:
        """Remember that PostgreSQL misses a write: only a new backfill and verify repair that."""
        if self._diverged is None:
            self._diverged = f"{utcnow().isoformat(timespec='seconds')} {reason}"
            self._marker_written = self._write_marker()

    def refresh_diverged(self) -> None:
        """Follow the marker file (set or cleared by another process); retry writing our own."""
        if self._diverged is not None and not self._marker_written:
            self._marker_written = self._write_marker()
            return
        self._diverged = self._read_marker()
        self._marker_written = self._diverged is not None

    @property
    def diverged(self) -> str | None:
        """Why PostgreSQL is known to miss writes, or None."""
        return self._diverged

    def clear_diverged(self) -> None:
        """An operator's word that PostgreSQL was backfilled and verified again."""
        marker = self._diverged_marker
        if marker is not None:
            marker.unlink(missing_ok=True)
        self._diverged = None
        self._marker_written = False


def _report_orphaned(task: asyncio.Future[Any]) -> None:
    """A write whose caller was cancelled can only report its failure to the log."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("a phase-3 write whose caller was cancelled failed: %r", task.exception())


_CLAIMS: Final = "claims"  # claims are decided one at a time, in memory's order


def _project_key(project: Project) -> str:
    return entity_key("project", project.ecosystem, project.name)


def _task_key(task_id: object) -> str:
    return entity_key("task", task_id)


class _Router(Generic[S]):
    """Routing shared by both stores over two stores of type `S`; `_store_name` names the journal section.

    Reads are typed: each passes a callable that reads one store (`lambda s: s.get_task(task_id)`).
    Writes are `(op, kwargs)`, which is what the journal records and replays.
    """

    _store_name: StoreName
    memory: S
    postgres: S | None

    def __init__(self, core: CutoverCore, memory: S, postgres: S | None) -> None:
        if core.settings.uses_postgres and postgres is None and core.postgres_attached:
            raise ValueError(f"{core.phase.value} mode needs a PostgreSQL store")
        self.core = core
        self.memory = memory
        self.postgres = postgres

    async def _write(self, op: str, keys: Iterable[str], **kwargs: Any) -> Any:
        """Apply one write to the stores of the current phase; `keys` order it (see ordering.py)."""
        core = self.core
        if core.phase is Phase.MEMORY:
            return await getattr(self.memory, op)(**kwargs)
        if core.phase is Phase.POSTGRES_PRIMARY:
            return await core.finish_even_if_cancelled(self._write_held(op, keys, kwargs))
        async with core.order.hold(keys):  # `_write_held`, one coroutine fewer on every dual-write
            return await self._write_ordered(op, kwargs)

    async def _write_held(self, op: str, keys: Iterable[str], kwargs: dict[str, Any]) -> Any:
        async with self.core.order.hold(keys):
            return await self._write_ordered(op, kwargs)

    async def _write_ordered(self, op: str, kwargs: dict[str, Any]) -> Any:
        core = self.core
        if core.phase is Phase.POSTGRES_PRIMARY:
            result = await getattr(self.postgres, op)(**kwargs)
            core.stats.postgres_ok += 1
            await self._follow_in_memory(op, kwargs)
            return result
        result = await getattr(self.memory, op)(**kwargs)  # the source of truth decides the answer
        core.stats.memory_ok += 1
        if result is not None or op not in _MUST_FIND:  # memory had nothing to change: nor has PostgreSQL
            await self._to_postgres(op, kwargs)
        return result

    async def _follow_in_memory(self, op: str, kwargs: dict[str, Any]) -> None:
        """Phase 3: keep memory written so a rollback finds it current."""
        if not self.core.settings.memory_writes:
            return
        try:
            await getattr(self.memory, op)(**kwargs)
            self.core.stats.memory_ok += 1
        except CoherenceSQLError as exc:
            self.core.stats.memory_failed_after_postgres += 1
            log.warning("in-memory %s failed after PostgreSQL took it: %s", op, exc)

    async def _to_postgres(self, op: str, kwargs: dict[str, Any]) -> None:
        """Phases 1-2: the PostgreSQL leg of a write memory took. Never fails the caller (except
        with its own cancellation) and never keeps it past the budget."""
        core = self.core
        store = self._store_name
        if self.postgres is None or core.journal_pending():  # keep PostgreSQL's order: queue behind
            core.journal_write(store, op, kwargs, None)
            return
        try:
            await core.within_budget(lambda: self._apply_on_postgres(op, kwargs))
            core.stats.postgres_ok += 1
        except asyncio.CancelledError as exc:
            # The caller is gone, memory has the write, the journal brings it to PostgreSQL (a
            # replay of one that did land is a no-op): the cancellation goes on to the caller.
            core.journal_write(store, op, kwargs, exc)
            raise
        except DATA_VERDICTS as exc:
            core.dead_letter(store, op, kwargs, exc)
        except Exception as exc:  # PostgreSQL could not take it now, whatever the reason
            core.journal_write(store, op, kwargs, exc)

    async def _apply_on_postgres(self, op: str, kwargs: dict[str, Any]) -> bool:
        """Apply one write; False when it had already landed (a create that exists, a claim made).

        Raises NotYetInPostgresError when it needs a row PostgreSQL does not have yet (a parent, or
        the task it changes): the backfill brings those, so the write waits in the journal.
        """
        postgres: Any = self.postgres
        if postgres is None:
            raise DatabaseUnavailableError("PostgreSQL has not been reachable since start-up")
        try:
            result = await getattr(postgres, op)(**kwargs)
        except DuplicateError:
            if op in _CREATES and await self._created_before(postgres, op, kwargs):
                return False  # it reached PostgreSQL before a failure was noticed
            raise  # another row holds one of its unique values (an e-mail): a verdict on the data
        except UnknownReferenceError as exc:
            raise NotYetInPostgresError(str(exc)) from None
        if result is None and op in _MUST_FIND:
            task_id = kwargs["task_id"]
            if op == "claim_task":
                # Memory claimed it while pending, and PostgreSQL sees writes in memory's order: a
                # task that is there and no longer pending already holds this claim (a snapshot
                # taken after it was backfilled). Still pending means it arrived just now: retry.
                existing = await postgres.get_task(task_id)
                if existing is not None and existing.status is not TaskStatus.PENDING:
                    return False
            raise NotYetInPostgresError(f"task {task_id} is not in PostgreSQL yet")
        return True

    @staticmethod
    async def _created_before(postgres: Any, op: str, kwargs: dict[str, Any]) -> bool:
        """Whether PostgreSQL holds the row this create makes, under its id (not merely a row that
        shares one of its unique values)."""
        getter, argument, identity = _CREATES[op]
        created = kwargs[argument] if identity is None else getattr(kwargs[argument], identity)
        return await getattr(postgres, getter)(created) is not None

    async def _read(self, op: str, key: str | None, read: Callable[[S], Awaitable[T]]) -> T:
        """Serve one read: `op` names it (shadow reports), `key` routes it (None: an unkeyed read)."""
        core = self.core
        memory = self.memory
        if core.phase is Phase.MEMORY:
            return await read(memory)
        postgres = self.postgres

        def from_memory() -> Awaitable[T]:
            return read(memory)

        def from_postgres() -> Awaitable[T]:
            if postgres is None:
                raise DatabaseUnavailableError("PostgreSQL has not been reachable since start-up")
            return read(postgres)

        if core.phase is Phase.POSTGRES_PRIMARY:
            started = time.perf_counter()
            value = await from_postgres()
            core.stats.reads_postgres += 1
            if core.settings.memory_writes:  # memory is kept for rollback: keep comparing it
                core.shadow.compare(op, key, value, _ms_since(started), from_memory, control_side="postgres")
            return value
        behind = postgres is None or core.postgres_behind()
        wants_postgres = core.router.keyed(key) if key is not None else core.router.unkeyed()
        if wants_postgres and not behind:
            started = time.perf_counter()
            try:
                value = await core.within_budget(from_postgres)
            except asyncio.CancelledError:
                raise  # the caller is gone: no fallback read for it
            except Exception as exc:  # slow, away or refusing: memory, the source of truth, answers
                core.stats.read_fallbacks += 1
                log.warning("PostgreSQL read %s failed, served from memory: %s: %s", op, type(exc).__name__, exc)
            else:
                core.stats.reads_postgres += 1
                # At 100% PostgreSQL reads memory becomes the candidate, so the comparison (the
                # phase-3 gate) keeps running.
                core.shadow.compare(op, key, value, _ms_since(started), from_memory, control_side="postgres")
                return value
        started = time.perf_counter()
        value = await from_memory()
        core.stats.reads_memory += 1
        if not behind:
            core.shadow.compare(op, key, value, _ms_since(started), from_postgres)
        return value

    async def apply_journaled(self, entry: JournalEntry) -> bool:
        """Replay one journaled write on PostgreSQL; False when it had already landed or was
        dead-lettered.

        Unavailability and writes still waiting for the backfill stop the replay (it resumes there
        next time); a verdict on the data sends the entry to the dead letters and the replay goes
        on. A dead letter that cannot be written stops the replay too: the entry stays journaled.
        """
        try:
            return await self._apply_on_postgres(entry.op, entry.kwargs)
        except DATA_VERDICTS as exc:
            self.core.dead_letter(self._store_name, entry.op, entry.kwargs, exc, replaying=True)
            return False

    async def apply_dead_letter(self, store_op: str, kwargs: dict[str, Any]) -> bool:
        """Apply one dead letter on PostgreSQL after a fix; raises when it is still refused."""
        return await self._apply_on_postgres(store_op, kwargs)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class CutoverGraphStore(_Router[GraphStore]):
    """GraphStore over the in-memory and PostgreSQL graph stores."""

    _store_name: StoreName = "graph"

    # -- reads -------------------------------------------------------------------------------
    async def get_project(self, ecosystem: str, name: str) -> Project | None:
        key = entity_key("project", ecosystem, name)
        return await self._read("get_project", key, lambda s: s.get_project(ecosystem, name))

    async def search(self, query: str, limit: int = 20) -> list[ProjectSummary]:
        return await self._read("search", None, lambda s: s.search(query, limit))

    async def count_projects(self) -> int:
        return await self._read("count_projects", None, lambda s: s.count_projects())

    async def count_dependents(self, ecosystem: str, name: str) -> int:
        key = entity_key("project", ecosystem, name)
        return await self._read("count_dependents", key, lambda s: s.count_dependents(ecosystem, name))

    async def get_contributor(self, contributor_id: UUID) -> Contributor | None:
        key = entity_key("contributor", contributor_id)
        return await self._read("get_contributor", key, lambda s: s.get_contributor(contributor_id))

    async def list_contributors(self, limit: int = 100) -> list[Contributor]:
        return await self._read("list_contributors", None, lambda s: s.list_contributors(limit))

    async def find_contributor_by_email(self, email: str) -> Contributor | None:
        key = entity_key("email", email)
        return await self._read("find_contributor_by_email", key, lambda s: s.find_contributor_by_email(email))

    async def get_asset(self, asset_id: UUID) -> Asset | None:
        return await self._read("get_asset", entity_key("asset", asset_id), lambda s: s.get_asset(asset_id))

    async def list_assets(self, limit: int = 100) -> list[Asset]:
        return await self._read("list_assets", None, lambda s: s.list_assets(limit))

    async def get_contribution(self, contribution_id: UUID) -> Contribution | None:
        key = entity_key("contribution", contribution_id)
        return await self._read("get_contribution", key, lambda s: s.get_contribution(contribution_id))

    async def list_contributions(self, limit: int = 100) -> list[Contribution]:
        return await self._read("list_contributions", None, lambda s: s.list_contributions(limit))

    async def get_asset_contributions(self, asset_id: UUID) -> list[Contribution]:
        key = entity_key("asset", asset_id)
        return await self._read("get_asset_contributions", key, lambda s: s.get_asset_contributions(asset_id))

    async def get_contributor_contributions(self, contributor_id: UUID) -> list[Contribution]:
        key = entity_key("contributor", contributor_id)
        return await self._read(
            "get_contributor_contributions", key, lambda s: s.get_contributor_contributions(contributor_id)
        )

    async def get_github_contributor(self, contributor_id: str) -> GitHubContributor | None:
        key = entity_key("github", contributor_id)
        return await self._read("get_github_contributor", key, lambda s: s.get_github_contributor(contributor_id))

    async def list_github_contributors(self, limit: int = 100) -> list[GitHubContributor]:
        return await self._read("list_github_contributors", None, lambda s: s.list_github_contributors(limit))

    async def get_github_organization(self, organization_id: str) -> GitHubOrganization | None:
        key = entity_key("github-org", organization_id)
        return await self._read(
            "get_github_organization", key, lambda s: s.get_github_organization(organization_id)
        )

    async def get_project_github_contributors(self, ecosystem: str, project_name: str) -> list[GitHubContributor]:
        key = entity_key("project", ecosystem, project_name)
        return await self._read(
            "get_project_github_contributors", key, lambda s: s.get_project_github_contributors(ecosystem, project_name)
        )

    # -- writes ------------------------------------------------------------------------------
    async def upsert_project(self, project: Project) -> None:
        project = rules.checked_model(project, Project, "project")
        await self._write("upsert_project", [_project_key(project)], project=project)

    async def add_dependency(self, from_eco: str, from_name: str, to_eco: str, to_name: str) -> None:
        await self._write(
            "add_dependency",
            [entity_key("project", from_eco, from_name), entity_key("project", to_eco, to_name)],
            from_eco=from_eco,
            from_name=from_name,
            to_eco=to_eco,
            to_name=to_name,
        )

    async def upsert_projects(self, projects: Sequence[Project]) -> None:
        checked = rules.checked_projects(projects)
        await self._write("upsert_projects", map(_project_key, checked), projects=checked)

    async def add_dependencies(self, edges: Sequence[DependencyEdge]) -> None:
        checked = rules.checked_edges(edges)
        keys = [entity_key("project", *edge[:2]) for edge in checked] + [
            entity_key("project", *edge[2:]) for edge in checked
        ]
        await self._write("add_dependencies", keys, edges=checked)

    async def create_contributor(self, contributor: Contributor) -> Contributor:
        contributor = rules.checked_model(contributor, Contributor, "contributor")
        keys = [entity_key("contributor", contributor.id), entity_key("email", contributor.email)]
        result: Contributor = await self._write("create_contributor", keys, contributor=contributor)
        return result

    async def create_asset(self, asset: Asset) -> Asset:
        asset = rules.checked_model(asset, Asset, "asset")
        result: Asset = await self._write("create_asset", [entity_key("asset", asset.id)], asset=asset)
        return result

    async def create_contribution(
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
        result: Contribution = await self._write(
            "create_contribution",
            [entity_key("contributor", contributor_id), entity_key("asset", asset_id)],
            contributor_id=contributor_id,
            asset_id=asset_id,
            cost_amount=cost_amount,
            coherence_score=coherence_score,
            metadata=metadata,
            # `is None`, not `or`: a falsy id or timestamp is the caller's, for the stores to refuse.
            id=uuid4() if id is None else id,
            timestamp=utcnow_naive() if timestamp is None else timestamp,
        )
        return result

    async def upsert_github_contributor(self, github_contributor: GitHubContributor) -> GitHubContributor:
        github_contributor = rules.checked_model(github_contributor, GitHubContributor, "github_contributor")
        result: GitHubContributor = await self._write(
            "upsert_github_contributor",
            [entity_key("github", github_contributor.id)],
            github_contributor=github_contributor,
        )
        return result

    async def upsert_github_organization(self, organization: GitHubOrganization) -> GitHubOrganization:
        organization = rules.checked_model(organization, GitHubOrganization, "organization")
        result: GitHubOrganization = await self._write(
            "upsert_github_organization",
            [entity_key("github-org", organization.id)],
            organization=organization,
        )
        return result

    async def add_github_contributes_to(self, contributor_id: str, ecosystem: str, project_name: str) -> None:
        await self._write(
            "add_github_contributes_to",
            [entity_key("github", contributor_id), entity_key("project", ecosystem, project_name)],
            contributor_id=contributor_id,
            ecosystem=ecosystem,
            project_name=project_name,
        )


class CutoverAgentTaskStore(_Router[AgentTaskStore]):
    """AgentTaskStore over the in-memory and PostgreSQL task stores."""

    _store_name: StoreName = "tasks"

    async def get_task(self, task_id: str) -> AgentTaskRecord | None:
        return await self._read("get_task", entity_key("task", task_id), lambda s: s.get_task(task_id))

    async def list_tasks(
        self,
        status: TaskStatus | None = None,
        task_type: TaskType | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> tuple[list[AgentTaskRecord], int]:
        return await self._read("list_tasks", None, lambda s: s.list_tasks(status, task_type, limit, offset))

    async def get_attention_tasks(self, limit: int = 20) -> tuple[list[AgentTaskRecord], int]:
        return await self._read("get_attention_tasks", None, lambda s: s.get_attention_tasks(limit))

    async def get_task_count(self) -> dict[str, Any]:
        return await self._read("get_task_count", None, lambda s: s.get_task_count())

    async def get_review_summary(self) -> dict[str, Any]:
        return await self._read("get_review_summary", None, lambda s: s.get_review_summary())

    async def get_usage_summary(self, routing: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
        return await self._read("get_usage_summary", None, lambda s: s.get_usage_summary(routing))

    async def get_pipeline_status(
        self, now_utc: datetime | None = None, metrics: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        moment = utcnow() if now_utc is None else now_utc  # one instant for both stores
        return await self._read("get_pipeline_status", None, lambda s: s.get_pipeline_status(moment, metrics))

    async def create_task(self, task: AgentTaskRecord) -> AgentTaskRecord:
        task = rules.checked_model(task, AgentTaskRecord, "task")
        result: AgentTaskRecord = await self._write("create_task", [_task_key(task.id)], task=task)
        return result

    async def update_task(
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
        result: AgentTaskRecord | None = await self._write(
            "update_task",
            [_task_key(task_id)],
            task_id=task_id,
            status=status,
            output=output,
            progress_pct=progress_pct,
            current_step=current_step,
            decision_prompt=decision_prompt,
            decision=decision,
            now=utcnow() if now is None else now,
        )
        return result

    async def claim_next_task(self, worker: str, *, now: datetime | None = None) -> AgentTaskRecord | None:
        moment = utcnow() if now is None else now
        core = self.core
        if core.phase is Phase.MEMORY:
            result: AgentTaskRecord | None = await self.memory.claim_next_task(worker, now=moment)
            return result
        if core.phase is Phase.POSTGRES_PRIMARY:
            return await core.finish_even_if_cancelled(self._claim_next_on_postgres(worker, moment))
        async with core.order.hold([_CLAIMS]):
            # Memory decides which task; PostgreSQL is told to claim that same one, after any
            # write to that task that memory saw first.
            claimed = await self.memory.claim_next_task(worker, now=moment)
            core.stats.memory_ok += 1
            if claimed is not None:
                async with core.order.also(_task_key(claimed.id)):
                    await self._to_postgres("claim_task", {"task_id": claimed.id, "worker": worker, "now": moment})
            return claimed

    async def _claim_next_on_postgres(self, worker: str, moment: datetime) -> AgentTaskRecord | None:
        """Phase 3: PostgreSQL decides which task; memory then takes the same claim."""
        core = self.core
        assert self.postgres is not None
        async with core.order.hold([_CLAIMS]):
            claimed = await self.postgres.claim_next_task(worker, now=moment)
            core.stats.postgres_ok += 1
            if claimed is not None:
                async with core.order.also(_task_key(claimed.id)):
                    await self._follow_in_memory("claim_task", {"task_id": claimed.id, "worker": worker, "now": moment})
            return claimed

    async def claim_task(self, task_id: str, worker: str, *, now: datetime | None = None) -> AgentTaskRecord | None:
        result: AgentTaskRecord | None = await self._write(
            "claim_task",
            [_CLAIMS, _task_key(task_id)],
            task_id=task_id,
            worker=worker,
            now=utcnow() if now is None else now,
        )
        return result

    async def clear(self) -> None:
        if self.core.phase is Phase.MEMORY:
            await self.memory.clear()
            return
        async with self.core.order.exclusive():
            await self._write_ordered("clear", {})


async def replay_journal(
    journal: WriteJournal,
    graph: Callable[[JournalEntry], Awaitable[bool]],
    tasks: Callable[[JournalEntry], Awaitable[bool]],
) -> ReplayReport:
    """Drain the journal onto PostgreSQL, each entry through the store it came from."""

    async def apply(entry: JournalEntry) -> bool:
        return await (graph if entry.store == "graph" else tasks)(entry)

    return await journal.replay(apply)
