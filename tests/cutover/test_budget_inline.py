"""The PostgreSQL leg in its caller's task (cutover/budget.py), against a real PostgreSQL: it adds
no task and no turn of the event loop, and keeps every promise the task per leg kept: the budget,
a write past it still lands, a cancelled caller goes on at once, nothing lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from coherence_sql.cutover.journal import WriteJournal
from coherence_sql.cutover.service import pool_timeout_s
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.cutover.stores import CutoverAgentTaskStore, CutoverCore
from coherence_sql.db import PoolSettings
from coherence_sql.models import AgentTaskRecord, TaskStatus, TaskType
from coherence_sql.stores.memory import MemoryAgentTaskStore
from coherence_sql.stores.postgres import PostgresStores, connect

BUDGET_S = 0.3
MARGIN_S = 0.5  # event-loop lag on 2 shared cores


def task(task_id: str = "task_00000000000000b1") -> AgentTaskRecord:
    return AgentTaskRecord(
        id=task_id, direction="inline", task_type=TaskType.IMPL, model="m", command="c", tier="t"
    )  # fmt: skip


class Watched:
    """The real PostgreSQL task store, noting the task each `update_task` ran and ended in; with
    `stall` set, the update first waits on it (a future only the test completes or cancels), for
    every task or, with `stalled_ids` set, for those."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.started_in: list[asyncio.Task[Any] | None] = []
        self.ended_in: list[asyncio.Task[Any] | None] = []
        self.ended_with: list[BaseException | None] = []
        self.stall: asyncio.Future[None] | None = None
        self.stalled_ids: set[str] | None = None

    async def update_task(self, *args: Any, **kwargs: Any) -> Any:
        self.started_in.append(asyncio.current_task())
        try:
            if self.stall is not None and (self.stalled_ids is None or kwargs.get("task_id") in self.stalled_ids):
                await asyncio.shield(self.stall)  # cancelling one leg leaves the others waiting
            result = await self.inner.update_task(*args, **kwargs)
        except BaseException as exc:
            self.ended_in.append(asyncio.current_task())
            self.ended_with.append(exc)
            raise
        self.ended_in.append(asyncio.current_task())
        self.ended_with.append(None)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def settings(dsn: str, journal: Path, budget_s: float = BUDGET_S) -> CutoverSettings:
    return CutoverSettings(dual_write=True, journal_path=journal, database_url=dsn, postgres_budget_s=budget_s)


@pytest.fixture
async def postgres(clean_dsn: str) -> AsyncIterator[PostgresStores]:
    async with connect(clean_dsn) as stores:
        yield stores


async def cutover(
    postgres: PostgresStores, dsn: str, journal: Path, budget_s: float = BUDGET_S
) -> tuple[CutoverAgentTaskStore, Watched]:
    core = CutoverCore(settings(dsn, journal, budget_s), WriteJournal(journal))
    core.inline_below_s = pool_timeout_s(postgres)
    watched = Watched(postgres.tasks)
    store = CutoverAgentTaskStore(core, MemoryAgentTaskStore(), watched)  # type: ignore[arg-type]
    await store.create_task(task())
    return store, watched


async def test_the_leg_runs_in_the_callers_task(postgres: PostgresStores, clean_dsn: str, tmp_path: Path) -> None:
    store, watched = await cutover(postgres, clean_dsn, tmp_path / "j.jsonl")
    made = await store.update_task(task().id, status=TaskStatus.RUNNING, progress_pct=5)
    assert watched.started_in == watched.ended_in == [asyncio.current_task()]
    assert made == await postgres.tasks.get_task(task().id) == await store.memory.get_task(task().id)
    assert store.core.detached == 0
    assert store.core.stats.postgres_ok == 2


async def test_a_budget_as_long_as_the_pools_timeout_runs_the_leg_in_a_task_of_its_own(
    postgres: PostgresStores, clean_dsn: str, tmp_path: Path
) -> None:
    timeout = pool_timeout_s(postgres)
    assert timeout > 0
    store, watched = await cutover(postgres, clean_dsn, tmp_path / "j.jsonl", budget_s=timeout)
    await store.update_task(task().id, progress_pct=6)
    assert len(watched.started_in) == 1
    assert watched.started_in[0] is not asyncio.current_task()
    assert (await postgres.tasks.get_task(task().id)).progress_pct == 6  # type: ignore[union-attr]


async def test_a_write_past_its_budget_answers_the_caller_and_still_lands(
    postgres: PostgresStores, clean_dsn: str, tmp_path: Path
) -> None:
    store, watched = await cutover(postgres, clean_dsn, tmp_path / "j.jsonl")
    core = store.core
    watched.stall = asyncio.get_running_loop().create_future()
    caller = asyncio.current_task()
    assert caller is not None
    started = time.perf_counter()
    answer = await store.update_task(task().id, status=TaskStatus.RUNNING, progress_pct=40)
    waited = time.perf_counter() - started
    assert BUDGET_S <= waited < BUDGET_S + MARGIN_S
    assert answer is not None
    assert answer.progress_pct == 40
    assert caller.cancelling() == 0  # the deadline's cancellation of the caller was taken back
    assert core.stats.over_budget == 1
    assert core.stats.by_error == {"BudgetExceededError": 1}
    assert core.journal is not None
    assert core.journal.pending() == 1
    # The leg is cancelled in a task of its own, never in the caller's.
    assert await core.settle_detached(5.0)
    assert len(watched.ended_in) == 1
    assert watched.ended_in[0] is not caller
    assert isinstance(watched.ended_with[0], asyncio.CancelledError)
    watched.stall = None
    report = await store.core.journal.replay(store.apply_journaled)
    assert (report.applied, report.error) == (1, None)
    landed = await postgres.tasks.get_task(task().id)
    assert landed == await store.memory.get_task(task().id)
    assert landed is not None
    assert landed.progress_pct == 40


async def test_a_caller_whose_own_timeout_ends_during_the_leg_gets_its_timeout_and_the_write_is_journaled(
    postgres: PostgresStores, clean_dsn: str, tmp_path: Path
) -> None:
    store, watched = await cutover(postgres, clean_dsn, tmp_path / "j.jsonl")
    watched.stall = asyncio.get_running_loop().create_future()
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await store.update_task(task().id, progress_pct=50)
    assert time.perf_counter() - started < BUDGET_S  # at its own deadline, not the budget's
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0
    assert store.core.stats.over_budget == 0
    assert store.core.journal is not None
    assert store.core.journal.pending() == 1
    assert await store.core.settle_detached(5.0)
    assert watched.ended_in[0] is not current
    await asyncio.sleep(BUDGET_S + 0.05)  # no stray cancellation reaches the caller later
    assert (await store.memory.get_task(task().id)).progress_pct == 50  # type: ignore[union-attr]


async def test_a_future_the_leg_waits_on_cancelled_from_inside_fails_the_leg_not_the_caller(
    postgres: PostgresStores, clean_dsn: str, tmp_path: Path
) -> None:
    store, watched = await cutover(postgres, clean_dsn, tmp_path / "j.jsonl")
    stall = watched.stall = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.02, stall.cancel)  # say, its connection went away
    answer = await store.update_task(task().id, progress_pct=60)
    assert answer is not None
    assert answer.progress_pct == 60
    assert watched.ended_in == [asyncio.current_task()]  # the leg took it where it ran
    assert store.core.stats.by_error == {"DatabaseUnavailableError": 1}
    assert store.core.journal is not None
    assert store.core.journal.pending() == 1
    assert store.core.detached == 0


async def test_the_pools_timeout_under_a_longer_budget_fails_the_leg_not_the_caller(
    clean_dsn: str, tmp_path: Path
) -> None:
    # The pool's acquire timeout is an asyncio timeout of the task that waits: had the leg waited in
    # the caller's task, its expiry would have cancelled the caller.
    bound = PoolSettings(min_size=1, max_size=1, acquire_timeout_s=0.1)
    async with connect(clean_dsn, settings=bound) as postgres:
        store, watched = await cutover(postgres, clean_dsn, tmp_path / "j.jsonl", budget_s=BUDGET_S)
        async with postgres.pool.acquire():  # the only connection
            answer = await store.update_task(task().id, progress_pct=70)
        assert answer is not None
        assert answer.progress_pct == 70
        assert store.core.stats.by_error == {"PoolTimeoutError": 1}
        assert store.core.stats.over_budget == 0
        assert store.core.journal is not None
        assert store.core.journal.pending() == 1
        assert watched.started_in[0] is not asyncio.current_task()


async def test_calls_in_flight_together_each_end_at_their_own_deadline(
    postgres: PostgresStores, clean_dsn: str, tmp_path: Path
) -> None:
    # One timer serves every call in flight (budget.Deadlines): staggered calls, and one answered
    # in between, must each be cut at their own deadline, not at another's. All start before the
    # first deadline (after it, writes queue behind the journal without a leg).
    store, watched = await cutover(postgres, clean_dsn, tmp_path / "j.jsonl")
    ids = [f"task_00000000000000c{n}" for n in range(3)]
    for task_id in ids:
        await store.create_task(task(task_id))
    watched.stall = asyncio.get_running_loop().create_future()
    watched.stalled_ids = set(ids)

    async def write(task_id: str, after_s: float) -> float:
        await asyncio.sleep(after_s)
        started = time.perf_counter()
        await store.update_task(task_id, progress_pct=80)
        return time.perf_counter() - started

    waits = await asyncio.gather(write(task().id, 0.05), *(write(task_id, 0.1 * n) for n, task_id in enumerate(ids)))
    assert waits[0] < BUDGET_S
    for waited in waits[1:]:
        assert BUDGET_S <= waited < BUDGET_S + MARGIN_S
    assert store.core.stats.over_budget == len(ids)
    assert store.core.stats.postgres_ok == 5  # the four creates and the write answered in between
    assert len(store.core.deadlines) == 0
    assert await store.core.settle_detached(5.0)
