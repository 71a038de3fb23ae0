"""The operations made one statement keep what their transactions gave: one snapshot for every part
of a read, and create_contribution's errors in the memory store's order with nothing written.

The reads run while another connection keeps moving tasks between statuses: parts read at two
moments (two statements outside one snapshot) disagree within a few dozen reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from coherence_sql.db import Pool, PoolSettings, create_pool
from coherence_sql.errors import DuplicateError, UnknownReferenceError
from coherence_sql.models import TaskStatus, TaskType
from coherence_sql.stores.postgres import PostgresAgentTaskStore, PostgresGraphStore

from .records import asset, contributor, task

pytestmark = pytest.mark.asyncio

TASKS = 8  # fewer than every list the payloads show, so each list holds all its tasks
READS = 60
MOVES = 10
CYCLE = (TaskStatus.RUNNING, TaskStatus.FAILED, TaskStatus.PENDING, TaskStatus.NEEDS_DECISION, TaskStatus.COMPLETED)


@pytest.fixture
async def pool(clean_dsn: str) -> AsyncIterator[Pool]:
    pool = await create_pool(clean_dsn, PoolSettings(min_size=2, max_size=2))
    try:
        yield pool
    finally:
        await pool.close()


async def _while_statuses_move(pool: Pool, read: Callable[[], Awaitable[None]]) -> None:
    """`read` READS times while a writer on the other connection moves every task on, one by one."""
    tasks = PostgresAgentTaskStore(pool)
    for n in range(TASKS):
        await tasks.create_task(task(n, task_type=(TaskType.SPEC, TaskType.IMPL)[n % 2]))
    stop = asyncio.Event()
    moves = 0

    async def writer() -> None:
        nonlocal moves
        while not stop.is_set():
            await tasks.update_task(task(moves % TASKS).id, status=CYCLE[(moves // TASKS) % len(CYCLE)])
            moves += 1

    running = asyncio.ensure_future(writer())
    reads = 0
    try:
        # At least READS reads, and on until the writer has moved statuses MOVES times meanwhile (on
        # a loaded machine the writer's commits can lag the reads): each read then saw a moving table.
        async with asyncio.timeout(120):
            while reads < READS or moves < MOVES:
                await read()
                reads += 1
    finally:
        stop.set()
        await running
    assert moves >= MOVES  # the statuses did move during the reads


async def test_review_summary_counts_and_tasks_are_one_moment(pool: Pool) -> None:
    tasks = PostgresAgentTaskStore(pool)

    async def read() -> None:
        summary = await tasks.get_review_summary()
        by_status: dict[str, int] = summary["by_status"]
        assert summary["total"] == TASKS == sum(by_status.values())
        attention = [t.status.value for t in summary["needs_attention"]]
        assert len(attention) == by_status.get("needs_decision", 0) + by_status.get("failed", 0), summary
        assert all(by_status.get(status, 0) >= attention.count(status) for status in set(attention))

    await _while_statuses_move(pool, read)


async def test_attention_page_and_total_are_one_moment(pool: Pool) -> None:
    tasks = PostgresAgentTaskStore(pool)

    async def read() -> None:
        page, total = await tasks.get_attention_tasks(limit=100)
        assert len(page) == total
        assert {t.status for t in page} <= {TaskStatus.NEEDS_DECISION, TaskStatus.FAILED}

    await _while_statuses_move(pool, read)


async def test_pipeline_lists_and_phase_counts_are_one_moment(pool: Pool) -> None:
    tasks = PostgresAgentTaskStore(pool)

    async def read() -> None:
        status: dict[str, Any] = await tasks.get_pipeline_status()
        shown = len(status["running"]) + len(status["pending"])
        assert sum(status["running_by_phase"].values()) == shown, status
        assert shown + len(status["recent_completed"]) == TASKS

    await _while_statuses_move(pool, read)


async def test_empty_task_table_reads(pool: Pool) -> None:
    """No task at all: the one row of counts and no task becomes empty payloads, not an error."""
    tasks = PostgresAgentTaskStore(pool)
    assert await tasks.get_attention_tasks() == ([], 0)
    assert await tasks.get_review_summary() == {"by_status": {}, "needs_attention": [], "total": 0}
    status = await tasks.get_pipeline_status()
    assert (status["running"], status["pending"], status["recent_completed"]) == ([], [], [])
    assert status["running_by_phase"] == {"spec": 0, "impl": 0, "test": 0, "review": 0}


async def _written(pool: Pool) -> tuple[int, Decimal]:
    """How many contributions there are, and asset 0's total_cost."""
    graph = PostgresGraphStore(pool)
    found = await graph.get_asset(asset(0).id)
    assert found is not None
    return len(await graph.list_contributions(1000)), found.total_cost


async def test_a_contribution_names_its_unknown_reference_before_a_duplicate_id(pool: Pool) -> None:
    graph = PostgresGraphStore(pool)
    await graph.create_contributor(contributor(0))
    await graph.create_asset(asset(0))
    first = await graph.create_contribution(contributor(0).id, asset(0).id, Decimal("2.50"), 0.5, {})
    assert await _written(pool) == (1, Decimal("2.50"))
    # The INSERT is gated by the references: with one unknown, the existing id is never reached.
    with pytest.raises(UnknownReferenceError, match=f"contributor does not exist: {contributor(1).id}"):
        await graph.create_contribution(contributor(1).id, asset(1).id, Decimal("1"), 0.5, {}, id=first.id)
    with pytest.raises(UnknownReferenceError, match=f"asset does not exist: {asset(1).id}"):
        await graph.create_contribution(contributor(0).id, asset(1).id, Decimal("1"), 0.5, {}, id=first.id)
    with pytest.raises(DuplicateError, match=f"a contribution with this id already exists.*{first.id}"):
        await graph.create_contribution(contributor(0).id, asset(0).id, Decimal("1"), 0.5, {}, id=first.id)
    assert await _written(pool) == (1, Decimal("2.50"))
