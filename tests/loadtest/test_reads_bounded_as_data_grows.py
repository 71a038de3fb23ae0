"""The two reads the 10-minute load test found growing with the data its writes add stay bounded
(schema/022_reads_bounded_as_data_grows.sql): a page of tasks of one status reads only that page
however many newer tasks of another status there are, and the trigram indexes' pending list, which
every search reads whole, stays a few pages between vacuums.

One private database for the module (its projects table has autovacuum off, so nothing flushes
the pending lists behind a test's back). Each check is on server-side counts (buffers, pending
entries), never on a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from coherence_sql.db import Connection, connect
from coherence_sql.models import TaskStatus
from coherence_sql.schema import migrate
from coherence_sql.sql import agent_tasks

# Tasks as the load test leaves them: a few old ones running (agent runners took them), many newer
# ones pending (the API created them since). created_at one second apart in that order.
TASKS = """
INSERT INTO agent_tasks (id, direction, task_type, status, model, command, created_at)
SELECT 'task_' || $1::text || '_' || g, 'direction ' || g, 'impl', $2::task_status, 'm', 'c',
       timestamptz '2026-01-01' + make_interval(secs => $3::int + g)
FROM generate_series(1, $4::int) AS g
"""

# Projects about as wide as the load test's (a description of ~60 characters).
PROJECTS = """
INSERT INTO projects (ecosystem, name, display_ecosystem, display_name, version, description)
SELECT 'npm', $1::text || '-' || g, 'npm', $1::text || '-' || g, '1.0.' || g,
       'indexed by load test ' || g || ' ' || md5(g::text)
FROM generate_series(1, $2::int) AS g
"""

PENDING = """
SELECT g.pending_pages, g.pending_tuples
FROM pgstatginindex($1::regclass) AS g
"""


@pytest.fixture(scope="module")
async def grown(database_factory: Callable[[], Awaitable[str]]) -> AsyncIterator[Connection]:
    dsn = await database_factory()
    await migrate(dsn)
    conn = await connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        await conn.execute("ALTER TABLE projects SET (autovacuum_enabled = false)")
        yield conn
    finally:
        await conn.close()


def _nodes(plan: Any) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan tree."""
    if isinstance(plan, dict):
        if "Node Type" in plan:
            yield plan
        for value in plan.values():
            yield from _nodes(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from _nodes(item)


async def _running_page(conn: Connection) -> tuple[dict[str, Any], list[agent_tasks.TaskPageRow]]:
    """The plan node of the page (the LIMIT under the count) for list_tasks(status=running), and
    the page itself."""
    sql = agent_tasks.LIST_TASKS_PAGE_SQL.rstrip().rstrip(";")
    args = (TaskStatus.RUNNING.value, None, 20, 0)
    plan = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args)
    (limit,) = [node for node in _nodes(plan) if node["Node Type"] == "Limit"]
    rows = await agent_tasks.list_tasks_page(conn, status=TaskStatus.RUNNING, task_type=None, lim=20, off=0)
    return limit, rows


def _buffers(node: dict[str, Any]) -> int:
    return int(node["Shared Hit Blocks"]) + int(node["Shared Read Blocks"])


async def test_a_page_of_running_tasks_reads_the_page_not_the_newer_pending_tasks(grown: Connection) -> None:
    await grown.execute("TRUNCATE agent_tasks")
    await grown.execute(TASKS, "old", TaskStatus.RUNNING.value, 0, 100)
    await grown.execute(TASKS, "new", TaskStatus.PENDING.value, 1_000, 2_000)
    await grown.execute("ANALYZE agent_tasks")
    small, rows = await _running_page(grown)
    assert [r.id for r in rows] == [f"task_old_{g}" for g in range(100, 80, -1)]  # newest running first
    assert {r.total for r in rows} == {100}
    # 20 rows from the index that leads with status: no task of another status is read and dropped.
    scans = [node for node in _nodes(small) if "Index Name" in node]
    assert [scan["Index Name"] for scan in scans] == ["idx_agent_tasks_status_created"], scans
    assert all(node.get("Rows Removed by Filter", 0) == 0 for node in _nodes(small))
    # Five times the newer pending tasks: the same page, the same few buffers (before schema/022 the
    # page read every pending task newer than the running ones: ~1 buffer each, 2,000 then 10,000).
    await grown.execute(TASKS, "newer", TaskStatus.PENDING.value, 100_000, 8_000)
    await grown.execute("ANALYZE agent_tasks")
    large, rows_large = await _running_page(grown)
    assert [r.id for r in rows_large] == [r.id for r in rows]
    assert _buffers(small) <= 60
    assert _buffers(large) <= _buffers(small) + 5


async def _pending(conn: Connection) -> dict[str, tuple[int, int]]:
    found = {}
    for index in ("idx_projects_name_trgm", "idx_projects_description_trgm"):
        row = await conn.fetchrow(PENDING, index)
        assert row is not None
        found[index] = (row["pending_pages"], row["pending_tuples"])
    return found


async def test_the_trigram_indexes_pending_lists_stay_a_few_pages_between_vacuums(grown: Connection) -> None:
    options = {
        r["relname"]: r["reloptions"]
        for r in await grown.fetch(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN "
            "('idx_projects_name_trgm', 'idx_projects_description_trgm')"
        )
    }
    assert options == {
        "idx_projects_name_trgm": ["gin_pending_list_limit=64"],
        "idx_projects_description_trgm": ["gin_pending_list_limit=64"],
    }
    await grown.execute("TRUNCATE projects CASCADE")
    await grown.execute(PROJECTS, "base", 2_000)
    await grown.execute("VACUUM ANALYZE projects")
    # 1,500 more with no vacuum since: each flush empties the list once it passes 64 kB (8 pages).
    await grown.execute(PROJECTS, "indexed", 1_500)
    for pages, entries in (await _pending(grown)).values():
        assert pages <= 10
        assert entries < 300
    # The same 1,500 under the default limit (4 MB) stay pending until a vacuum: what the check
    # above would see without schema/022, so it can tell the two apart.
    await grown.execute("ALTER INDEX idx_projects_name_trgm RESET (gin_pending_list_limit)")
    await grown.execute("ALTER INDEX idx_projects_description_trgm RESET (gin_pending_list_limit)")
    try:
        await grown.execute("VACUUM projects")
        await grown.execute(PROJECTS, "default", 1_500)
        for pages, entries in (await _pending(grown)).values():
            assert pages > 10
            assert entries == 1_500
    finally:
        await grown.execute("ALTER INDEX idx_projects_name_trgm SET (gin_pending_list_limit = 64)")
        await grown.execute("ALTER INDEX idx_projects_description_trgm SET (gin_pending_list_limit = 64)")
