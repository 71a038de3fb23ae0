"""Task updates are HOT (schema/021): a runner's progress update writes no index entry, even on a
page the inserts filled, because no index holds a column it changes and each page keeps room.

Counted with PostgreSQL's own statistics on the pool's one backend (pg_stat_force_next_flush, then
pg_stat_user_tables): whether an update was HOT is the server's answer, not a timing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from coherence_sql.db import Pool, PoolSettings, create_pool
from coherence_sql.models import TaskStatus
from coherence_sql.stores.postgres import PostgresAgentTaskStore

from .records import T0_AWARE, task

pytestmark = pytest.mark.asyncio

# Columns an update from a runner changes (update_task: progress, step, output, updated_at).
PROGRESS_COLUMNS = ("progress_pct", "current_step", "updated_at")


@pytest.fixture
async def one_backend(clean_dsn: str) -> AsyncIterator[Pool]:
    """A pool of one connection: the statistics read are that backend's own, flushed on request."""
    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=1))
    try:
        yield pool
    finally:
        await pool.close()


async def _updates(pool: Pool) -> tuple[int, int]:
    """agent_tasks' updates and HOT updates so far, this backend's pending counts included."""
    await pool.execute("SELECT pg_stat_force_next_flush()")  # flushed when the backend goes idle
    row = await pool.fetchrow("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'agent_tasks'")
    assert row is not None
    return int(row["n_tup_upd"]), int(row["n_tup_hot_upd"])


async def test_no_index_on_agent_tasks_holds_a_column_a_progress_update_changes(one_backend: Pool) -> None:
    """One such index makes every progress update non-HOT (PostgreSQL decides by column)."""
    definitions = await one_backend.fetch(
        "SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS definition"
        " FROM pg_index WHERE indrelid = 'agent_tasks'::regclass"
    )
    assert len(definitions) >= 5  # the table's indexes were read
    blocking = [
        (r["name"], column)
        for r in definitions
        for column in PROGRESS_COLUMNS
        if re.search(rf"\b{column}\b", r["definition"].split(" USING ", 1)[1])
    ]
    assert blocking == []
    options = await one_backend.fetchval("SELECT reloptions FROM pg_class WHERE oid = 'agent_tasks'::regclass")
    assert options == ["fillfactor=90"]


async def test_progress_updates_on_full_pages_are_hot(one_backend: Pool) -> None:
    tasks = PostgresAgentTaskStore(one_backend)
    for n in range(150):  # several pages, filled to the fillfactor by the inserts alone
        await tasks.create_task(task(n, status=TaskStatus.RUNNING, output="x" * 200))
    pages = await one_backend.fetch(
        "SELECT (ctid::text::point)[0]::int AS page, min(id) AS first FROM agent_tasks GROUP BY 1 ORDER BY 1"
    )
    assert len(pages) >= 4, pages
    full = [r["first"] for r in pages[:-1]]  # the last page may have room at fillfactor 100 too
    before = await _updates(one_backend)
    for step, task_id in enumerate(full):
        record = await tasks.update_task(
            task_id, progress_pct=50, current_step=f"step {step}", now=T0_AWARE + timedelta(minutes=step + 1)
        )
        assert record is not None
        assert (record.progress_pct, record.current_step) == (50, f"step {step}")
    after = await _updates(one_backend)
    assert (after[0] - before[0], after[1] - before[1]) == (len(full), len(full))


async def test_a_status_change_still_updates_the_status_indexes(one_backend: Pool) -> None:
    """The status indexes (claims, lists, attention) must see a finished task: not HOT, as it must not be."""
    tasks = PostgresAgentTaskStore(one_backend)
    await tasks.create_task(task(1, status=TaskStatus.RUNNING))
    before = await _updates(one_backend)
    done = await tasks.update_task(task(1).id, status=TaskStatus.FAILED, output="boom")
    assert done is not None
    assert done.status is TaskStatus.FAILED
    after = await _updates(one_backend)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 0)
    attention, total = await tasks.get_attention_tasks()
    assert ([t.id for t in attention], total) == ([task(1).id], 1)
