"""The pool hands connections out again without a reset round trip, and still no caller inherits
session state: a connection marked by `mark_session_changed` (the backfill's) gets the full reset.

Round trips are counted with asyncpg's query logger on the pool's one connection: every statement
the client sends, the pool's own reset included (docs/decisions.md "Speed (issue 12)").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from coherence_sql.db import Pool, PoolSettings, create_pool
from coherence_sql.models import AgentTaskRecord, Asset, AssetType, Contributor, ContributorType, Project, TaskType
from coherence_sql.pool import mark_session_changed
from coherence_sql.stores.postgres import PostgresAgentTaskStore, PostgresGraphStore
from coherence_sql.transfer.backfill.run import backfill
from coherence_sql.transfer.sample import sample_snapshot

pytestmark = pytest.mark.asyncio


class StatementLog:
    """Every statement the pool's one connection sends, in order."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, record: Any) -> None:
        self.statements.append(" ".join(record.query.split()))

    async def take(self) -> list[str]:
        """What was sent so far: asyncpg calls query loggers soon after a statement, not at once."""
        for _ in range(3):
            await asyncio.sleep(0)
        taken, self.statements = self.statements, []
        return taken


@pytest.fixture
async def one_connection_pool(clean_dsn: str) -> AsyncIterator[tuple[Pool, StatementLog]]:
    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=1))
    log = StatementLog()
    async with pool.acquire() as proxy:
        proxy.add_query_logger(log)
    try:
        yield pool, log
    finally:
        await pool.close()


async def _setting(pool: Pool, name: str) -> str:
    async with pool.acquire() as conn:
        value = await conn.fetchval("SELECT current_setting($1, true)", name)
    return "" if value is None else str(value)


async def test_a_store_read_is_one_round_trip_and_its_release_sends_nothing(
    one_connection_pool: tuple[Pool, StatementLog],
) -> None:
    pool, log = one_connection_pool
    graph = PostgresGraphStore(pool)
    await graph.upsert_project(Project(ecosystem="npm", name="left-pad", version="1", description="d"))
    await log.take()
    assert (await graph.get_project("npm", "left-pad")) is not None
    sent = await log.take()
    assert len(sent) == 1, sent
    assert "FROM projects" in sent[0]
    assert not any("RESET ALL" in s or "pg_advisory_unlock_all" in s for s in sent)


async def test_round_trips_of_the_store_operations(one_connection_pool: tuple[Pool, StatementLog]) -> None:
    """The counts docs/decisions.md lists: single statements are 1; a transaction adds BEGIN and COMMIT."""
    pool, log = one_connection_pool
    graph, tasks = PostgresGraphStore(pool), PostgresAgentTaskStore(pool)
    contributor = await graph.create_contributor(
        Contributor(type=ContributorType.HUMAN, name="A", email="a@example.org")
    )
    asset = await graph.create_asset(Asset(type=AssetType.CODE, description="x"))
    await tasks.create_task(
        AgentTaskRecord(id="task_1", direction="d", task_type=TaskType.IMPL, model="m", command="c")
    )
    await log.take()
    counts: dict[str, int] = {}
    calls: dict[str, Any] = {
        "get_project": lambda: graph.get_project("npm", "nope"),
        "get_contributor": lambda: graph.get_contributor(contributor.id),
        "list_contributors": lambda: graph.list_contributors(10),
        "upsert_project": lambda: graph.upsert_project(Project(ecosystem="npm", name="a", version="1", description="")),
        "add_dependency": lambda: graph.add_dependency("npm", "a", "npm", "b"),
        "create_contribution": lambda: graph.create_contribution(contributor.id, asset.id, Decimal("1"), 0.5, {}),
        "get_task": lambda: tasks.get_task("task_1"),
        "update_task": lambda: tasks.update_task("task_1", progress_pct=5),
        "list_tasks": lambda: tasks.list_tasks(limit=5),
        "claim_next_task": lambda: tasks.claim_next_task("w"),
        "search": lambda: graph.search("a"),
        "count_dependents": lambda: graph.count_dependents("npm", "b"),
        "get_attention_tasks": lambda: tasks.get_attention_tasks(),
        "get_review_summary": lambda: tasks.get_review_summary(),
        "get_pipeline_status": lambda: tasks.get_pipeline_status(),
        "upsert_projects": lambda: graph.upsert_projects(
            [Project(ecosystem="npm", name=n, version="1", description="") for n in ("c", "d")]
        ),
        "add_dependencies": lambda: graph.add_dependencies([("npm", "c", "npm", "d")]),
    }
    for name, call in calls.items():
        await call()
        counts[name] = len(await log.take())
    assert counts == {
        "get_project": 1,
        "get_contributor": 1,
        "list_contributors": 1,
        "upsert_project": 1,
        "add_dependency": 1,
        "create_contribution": 1,  # the references gating the insert, one statement
        "get_task": 1,
        "update_task": 1,
        "list_tasks": 1,  # the page and the total in one statement
        "claim_next_task": 1,
        "search": 1,
        "count_dependents": 1,
        "get_attention_tasks": 1,  # the page and the total in one statement
        "get_review_summary": 1,  # the counts by status and the tasks needing attention in one statement
        "get_pipeline_status": 1,  # running, pending, recent and the counts by phase in one statement
        "upsert_projects": 5,  # BEGIN, the key locks, the pending-resolution lock, the upsert, COMMIT
        "add_dependencies": 4,  # BEGIN, the key locks, the insert, COMMIT
    }


async def test_a_marked_session_is_reset_on_release(one_connection_pool: tuple[Pool, StatementLog]) -> None:
    pool, log = one_connection_pool
    async with pool.acquire() as conn:
        mark_session_changed(conn)
        await conn.execute("SET statement_timeout = '17min'")
        await conn.execute("SELECT set_config('coherence_sql.probe', 'left behind', false)")
        await conn.execute("CREATE TEMP TABLE left_behind (n int)")
    await log.take()
    assert await _setting(pool, "statement_timeout") == "1min"  # the pool's own setting, not 17min
    assert await _setting(pool, "coherence_sql.probe") == ""
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT to_regclass('pg_temp.left_behind')") is None
    # Reset once: the mark does not outlive the release it asked for.
    await log.take()
    await PostgresGraphStore(pool).get_project("npm", "x")
    assert len(await log.take()) == 1


async def test_an_unmarked_session_keeps_its_state_which_is_why_nothing_may_change_it(
    one_connection_pool: tuple[Pool, StatementLog],
) -> None:
    """The cost of skipping the reset, shown: an unmarked SET outlives its caller. The stores only
    use transaction-scoped state (SET LOCAL, set_config(..., true), xact advisory locks)."""
    pool, _ = one_connection_pool
    async with pool.acquire() as conn:
        await conn.execute("SELECT set_config('coherence_sql.probe', 'kept', false)")
    assert await _setting(pool, "coherence_sql.probe") == "kept"


async def test_an_open_transaction_is_rolled_back_on_release(one_connection_pool: tuple[Pool, StatementLog]) -> None:
    pool, _ = one_connection_pool
    async with pool.acquire() as conn:
        await conn.execute("BEGIN")
        await conn.execute("SELECT set_config('coherence_sql.probe', 'in a transaction', false)")
    assert await _setting(pool, "coherence_sql.probe") == ""


async def test_a_backfill_on_the_pool_leaves_no_session_state(clean_dsn: str) -> None:
    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=1))
    try:
        await backfill(pool, sample_snapshot(projects=5, edges=5, contributions=5, tasks=2), jobs=1, vacuum=False)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "1min"
            assert await conn.fetchval("SELECT current_setting('coherence_sql.backfill_unit', true)") in (None, "")
            assert await conn.fetchval("SELECT count(*) FROM pg_class WHERE relpersistence = 't'") == 0
    finally:
        await pool.close()


async def test_a_clean_release_skips_asyncpg_s_shield_and_others_keep_it(
    one_connection_pool: tuple[Pool, StatementLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lean release (BoundedPool.release) is taken only where nothing in it can suspend."""
    import asyncpg.pool

    pool, _ = one_connection_pool
    shielded: list[object] = []
    real_shield = asyncio.shield

    def counting_shield(awaitable: Any) -> Any:
        shielded.append(awaitable)
        return real_shield(awaitable)

    monkeypatch.setattr(asyncpg.pool.asyncio, "shield", counting_shield)
    pid = await pool.fetchval("SELECT pg_backend_pid()")
    assert shielded == []  # clean: the lean path
    async with pool.acquire() as conn:
        await conn.execute("BEGIN")  # left open: asyncpg's path rolls it back
    assert len(shielded) == 1
    async with pool.acquire() as conn:
        mark_session_changed(conn)  # session state: asyncpg's path runs the full reset
    assert len(shielded) == 2
    assert await pool.fetchval("SELECT pg_backend_pid()") == pid  # one connection throughout
    assert pool.get_idle_size() == 1


async def test_a_statement_cancelled_mid_flight_leaves_a_usable_pool(
    one_connection_pool: tuple[Pool, StatementLog],
) -> None:
    pool, _ = one_connection_pool
    sleeper = asyncio.ensure_future(pool.fetchval("SELECT pg_sleep(30)"))
    await asyncio.sleep(0.3)
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    assert await asyncio.wait_for(pool.fetchval("SELECT 41 + 1"), 10) == 42
    assert pool.get_idle_size() == 1


async def test_a_caller_that_acquires_again_at_once_does_not_jump_the_queue(clean_dsn: str) -> None:
    """FIFO, as asyncpg's pool is: 8 callers on 2 connections take turns. asyncpg's bounded acquire
    runs in the caller's task, so after a lean release the caller could take the connection back
    before the waiter it woke ran, and that waiter went to the end of the queue (at 64 callers on 20
    connections some waited past the 5 s bound)."""
    pool = await create_pool(clean_dsn, PoolSettings(min_size=2, max_size=2))
    order: list[int] = []

    async def caller(k: int) -> None:
        for _ in range(15):
            async with pool.acquire() as conn:
                order.append(k)
                await conn.fetchval("SELECT 1")

    try:
        await asyncio.gather(*(caller(k) for k in range(8)))
    finally:
        await pool.close()
    # Taking turns, every caller has had the connection within the first 2 x 8 acquisitions; a
    # caller that re-acquires ahead of the woken waiter keeps it among two or three callers.
    assert set(order[:16]) == set(range(8)), order


async def test_an_idle_connection_is_taken_without_the_timeout_machinery_and_a_real_wait_is_bounded(
    clean_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BoundedPool._acquire's fast path: a free connection with nobody queued is handed out without
    asyncpg's wait_for (a task per acquire); a caller that must wait still waits under the bound,
    and is then handed the connection, released with it."""
    import asyncpg.pool

    from coherence_sql.errors import PoolTimeoutError

    waits: list[object] = []
    real_wait_for = asyncpg.pool.compat.wait_for

    def counting_wait_for(fut: Any, timeout: Any) -> Any:
        waits.append(timeout)
        return real_wait_for(fut, timeout)

    monkeypatch.setattr(asyncpg.pool.compat, "wait_for", counting_wait_for)
    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=1, acquire_timeout_s=0.3))
    try:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        assert waits == []  # idle connection, nobody waiting: the fast path
        async with pool.acquire() as held:
            with pytest.raises(PoolTimeoutError, match=r"no PostgreSQL connection within 0.3s \(pool of 1, 1 in use\)"):
                await pool.fetchval("SELECT 1")
            assert waits == [0.3]
            waiter = asyncio.ensure_future(pool.fetchval("SELECT pg_backend_pid()"))
            await asyncio.sleep(0.05)
            assert pool.waiting == 1
            assert await held.fetchval("SELECT 2") == 2
        assert await asyncio.wait_for(waiter, 5) == pid  # the waiter got the one connection
        assert len(waits) == 2
        assert pool.waiting == 0
        assert pool.get_idle_size() == 1
        # A connection whose backend went away is not taken by the fast path: asyncpg reconnects it.
        async with pool.acquire() as conn:
            await conn.close()
        assert await pool.fetchval("SELECT pg_backend_pid()") != pid
        assert len(waits) == 3
    finally:
        await pool.close()
