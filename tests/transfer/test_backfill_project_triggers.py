"""merge_projects does the projects' INSERT triggers' work for the whole batch (schema/019): the
pending out-degree of each new project and the resolution of pending edges whose two projects now
exist give the same rows and counts as the triggers do for the live store's upserts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from coherence_sql.models import Project
from coherence_sql.schema import migrate
from coherence_sql.stores.postgres import connect
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.snapshot import Snapshot

# Pending before the projects arrive: a→b and d→a resolve once both ends exist, c→zzz stays
# pending (zzz never arrives), b→a resolves too (two pending edges between the same pair).
PENDING = [("npm", "a", "npm", "b"), ("npm", "c", "npm", "zzz"), ("npm", "d", "npm", "a"), ("npm", "b", "npm", "a")]
PROJECTS = [Project(ecosystem="npm", name=n, version="1", description=f"project {n}") for n in ("A", "b", "c", "d")]


async def graph_state(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        resolved = await conn.fetch(
            "SELECT f.ecosystem || '/' || f.name AS source, t.ecosystem || '/' || t.name AS target "
            "FROM project_dependencies AS d JOIN projects AS f ON f.id = d.from_project_id "
            "JOIN projects AS t ON t.id = d.to_project_id ORDER BY 1, 2"
        )
        pending = await conn.fetch(
            "SELECT from_name, to_name FROM pending_dependencies ORDER BY from_name, to_name"
        )
        counts = await conn.fetch("SELECT name, dependency_count FROM projects ORDER BY name")
        return {
            "resolved": [tuple(r) for r in resolved],
            "pending": [tuple(r) for r in pending],
            "counts": dict(map(tuple, counts)),
        }
    finally:
        await conn.close()


async def pending_first(dsn: str) -> None:
    async with connect(dsn) as stores:
        for edge in PENDING:
            await stores.graph.add_dependency(*edge)


async def test_backfilled_projects_count_and_resolve_pending_edges_as_the_triggers_do(
    clean_dsn: str, database_factory: Callable[[], Awaitable[str]]
) -> None:
    await pending_first(clean_dsn)
    before = await graph_state(clean_dsn)
    assert before["pending"] == [("a", "b"), ("b", "a"), ("c", "zzz"), ("d", "a")]

    report = await backfill(clean_dsn, Snapshot(projects=PROJECTS), batch_size=2)  # keys across batches
    assert report.inserted == 4

    backfilled = await graph_state(clean_dsn)
    assert backfilled == {
        "resolved": [("npm/a", "npm/b"), ("npm/b", "npm/a"), ("npm/d", "npm/a")],
        "pending": [("c", "zzz")],
        "counts": {"a": 1, "b": 1, "c": 1, "d": 1},
    }

    by_triggers = await database_factory()  # the same writes through the live store: per-row triggers
    await migrate(by_triggers)
    await pending_first(by_triggers)
    async with connect(by_triggers) as stores:
        for project in PROJECTS[:2]:  # two statements, as the two batches
            await stores.graph.upsert_project(project)
        await stores.graph.upsert_projects(PROJECTS[2:])
    assert await graph_state(by_triggers) == backfilled


async def test_a_project_already_stored_keeps_its_count_and_its_pending_edges(clean_dsn: str) -> None:
    """ON CONFLICT DO NOTHING: an existing project is left alone; its pending edge (other end
    missing) stays pending, and a re-run changes nothing."""
    await pending_first(clean_dsn)
    async with connect(clean_dsn) as stores:
        await stores.graph.upsert_project(PROJECTS[2])  # c, with c→zzz pending: count 1
    await backfill(clean_dsn, Snapshot(projects=PROJECTS[2:]))
    first = await graph_state(clean_dsn)
    assert first["counts"] == {"c": 1, "d": 1}
    assert first["pending"] == [("a", "b"), ("b", "a"), ("c", "zzz"), ("d", "a")]
    await backfill(clean_dsn, Snapshot(projects=PROJECTS[2:]), restart=True)
    assert await graph_state(clean_dsn) == first
