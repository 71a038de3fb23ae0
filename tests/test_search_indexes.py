"""Search-shaped queries use the plan's trigram indexes once there is data to search.

One database per module, filled once with 10,000 projects and ANALYZEd; each test reads the
planner's choice from EXPLAIN (FORMAT JSON) and checks the answer against a sequential scan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from coherence_sql.db import Connection, connect
from coherence_sql.schema import migrate

PROJECTS = 10_000

# Rows about as wide as real ones (description, URLs), so the planner weighs a realistic table.
FILL = f"""
INSERT INTO projects (
    ecosystem, name, display_ecosystem, display_name, version, description, homepage_url, repository_url
)
SELECT 'pypi', 'pkg-' || substr(md5(g::text), 1, 12), 'PyPI', 'Pkg-' || substr(md5(g::text), 1, 12), '1.0.' || g,
       'Tools for ' || upper(md5((g * 7919)::text)) || ' ' || repeat(md5((g * 31)::text) || ' ', 4),
       'https://example.org/projects/' || md5(g::text), 'https://github.com/example/' || md5(g::text)
FROM generate_series(1, {PROJECTS}) AS g
"""


@pytest.fixture(scope="module")
async def search_conn(database_factory: Callable[[], Awaitable[str]]) -> AsyncIterator[Connection]:
    dsn = await database_factory()
    await migrate(dsn)
    conn = await connect(dsn)
    try:
        await conn.execute(FILL)
        # VACUUM, not just ANALYZE: a bulk insert leaves GIN entries in the index's pending list, which
        # the planner prices so high that it prefers a sequential scan until (auto)vacuum flushes it.
        await conn.execute("VACUUM ANALYZE projects")
        yield conn
    finally:
        await conn.close()


def index_names(plan: Any) -> Iterator[str]:
    """Every "Index Name" in an EXPLAIN (FORMAT JSON) plan tree."""
    if isinstance(plan, dict):
        for key, value in plan.items():
            if key == "Index Name" and isinstance(value, str):
                yield value
            else:
                yield from index_names(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from index_names(item)


async def plan_indexes(conn: Connection, query: str, *args: object) -> set[str]:
    plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
    return set(index_names(plan))


async def ids_without_indexes(conn: Connection, query: str, *args: object) -> list[int]:
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off")
        assert await plan_indexes(conn, query, *args) == set()
        return sorted(r["id"] for r in await conn.fetch(query, *args))


async def test_name_substring_search_uses_the_name_trigram_index(search_conn: Connection) -> None:
    query = "SELECT id FROM projects WHERE name LIKE '%abc%'"

    assert "idx_projects_name_trgm" in await plan_indexes(search_conn, query)

    found = sorted(r["id"] for r in await search_conn.fetch(query))
    assert found  # a few dozen 12-hex-digit names hold "abc"
    assert found == await ids_without_indexes(search_conn, query)


async def test_case_insensitive_description_search_uses_the_description_trigram_index(
    search_conn: Connection,
) -> None:
    query = "SELECT id FROM projects WHERE description ILIKE '%abc%'"

    assert "idx_projects_description_trgm" in await plan_indexes(search_conn, query)

    found = sorted(r["id"] for r in await search_conn.fetch(query))
    assert found
    assert found == await ids_without_indexes(search_conn, query)


async def test_name_or_description_search_with_a_parameter_uses_both_trigram_indexes(
    search_conn: Connection,
) -> None:
    query = "SELECT id FROM projects WHERE name ILIKE $1 OR description ILIKE $1"

    assert await plan_indexes(search_conn, query, "%f00d%") >= {
        "idx_projects_name_trgm",
        "idx_projects_description_trgm",
    }

    found = sorted(r["id"] for r in await search_conn.fetch(query, "%f00d%"))
    assert found == await ids_without_indexes(search_conn, query, "%f00d%")


async def test_prepared_search_with_a_generic_plan_still_uses_the_trigram_indexes(search_conn: Connection) -> None:
    # Drivers re-run prepared statements; after a few runs PostgreSQL may plan without the value.
    await search_conn.execute(
        "PREPARE search_generic(text) AS SELECT id FROM projects WHERE name ILIKE $1 OR description ILIKE $1"
    )
    try:
        async with search_conn.transaction():
            await search_conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            indexes = await plan_indexes(search_conn, "EXECUTE search_generic('%f00d%')")
    finally:
        await search_conn.execute("DEALLOCATE search_generic")

    assert indexes >= {"idx_projects_name_trgm", "idx_projects_description_trgm"}
