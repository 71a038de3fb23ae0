"""The query files themselves: they load in aiosql 15, pass the hazard lint and sqlfluff, prepare on
PostgreSQL, every one has a caller in the package, and the keyset scans verify reads page as their
docstrings say. Search ranking is checked against `rules.search_rank`, the Python reference.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiosql
import pytest
from sqlfluff.core import FluffConfig, Linter

from coherence_sql.codegen.callers import is_called, referenced_names
from coherence_sql.codegen.lint import Catalog, lint_paths
from coherence_sql.db import Connection, connect
from coherence_sql.resources import queries_dir
from coherence_sql.sql import projects, verify
from coherence_sql.stores import rules

QUERY_FILES = sorted(queries_dir().glob("*.sql"))
# As in test_postgres_store.py: DELETE is far cheaper than `clean_dsn`'s TRUNCATE on a few rows.
EMPTY_STORE_TABLES = """
DELETE FROM contributions; DELETE FROM contributors; DELETE FROM assets;
DELETE FROM project_dependencies; DELETE FROM pending_dependencies; DELETE FROM projects;
DELETE FROM github_contributes_to; DELETE FROM github_contributors; DELETE FROM github_organizations;
DELETE FROM agent_tasks;
"""
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def conn(migrated_dsn: str) -> AsyncIterator[Connection]:
    """A package connection to the migrated database, the stores' tables emptied."""
    connection = await connect(migrated_dsn)
    try:
        await connection.execute(EMPTY_STORE_TABLES)
        yield connection
    finally:
        await connection.close()


def test_the_table_groups_have_their_query_files() -> None:
    names = {p.stem for p in QUERY_FILES}
    assert {"projects", "contributors", "assets", "contributions", "github", "agent_tasks"} <= names


@pytest.mark.parametrize("path", QUERY_FILES, ids=lambda p: p.name)
def test_every_query_file_loads_in_aiosql_with_declared_parameters_and_docstrings(path: Path) -> None:
    queries = aiosql.from_path(path, "asyncpg")  # defaults: mandatory parameter lists, kwargs only
    names = [n for n in queries.available_queries if not n.endswith("_cursor")]
    assert names
    for name in names:
        assert (getattr(queries, name).__doc__ or "").strip(), f"{path.name}: {name} has no docstring"


async def test_the_hazard_lint_finds_nothing(conn: Connection) -> None:
    # Array slices, :word in comments, operators that do not fit the statement, '^' on many rows.
    findings = lint_paths(QUERY_FILES, await Catalog.load(conn))
    assert [str(f) for f in findings] == []


async def test_every_query_prepares_and_its_operator_fits_its_columns(conn: Connection) -> None:
    for path in QUERY_FILES:
        queries = aiosql.from_path(path, "asyncpg")
        for name in queries.available_queries:
            if name.endswith("_cursor"):
                continue
            fn = getattr(queries, name)
            if fn.operation.name == "SCRIPT":
                continue  # '#': may hold several statements (or use session temp tables); never prepared
            statement = await conn.prepare(fn.sql)
            columns = len(statement.get_attributes())
            where = f"{path.name}: {name}"
            if fn.operation.name == "SELECT_VALUE":
                assert columns == 1, where
            elif fn.operation.name in ("INSERT_UPDATE_DELETE", "INSERT_UPDATE_DELETE_MANY"):
                assert columns == 0, where
            else:
                assert columns >= 1, where


@pytest.mark.slow
def test_sqlfluff_finds_nothing() -> None:
    config = FluffConfig.from_path(str(REPO_ROOT))
    result = Linter(config=config).lint_paths(tuple(str(p) for p in QUERY_FILES))
    assert [f"{v.rule_code()} {v.desc()}" for v in result.get_violations()] == []


# -- search --------------------------------------------------------------------------------------


async def _add_projects(conn: Connection, rows: list[tuple[str, str, str]]) -> None:
    """(display ecosystem, display name, description) in insertion order."""
    async with conn.transaction():
        keys = [rules.project_key(eco, name) for eco, name, _ in rows]
        await projects.lock_project_keys(conn, ecosystems=[k[0] for k in keys], names=[k[1] for k in keys])
        await projects.upsert_projects(
            conn,
            ecosystems=[k[0] for k in keys],
            names=[k[1] for k in keys],
            display_ecosystems=[r[0] for r in rows],
            display_names=[r[1] for r in rows],
            versions=["1"] * len(rows),
            descriptions=[r[2] for r in rows],
            homepage_urls=[None] * len(rows),
            repository_urls=[None] * len(rows),
        )


async def test_search_uses_both_trigram_indexes(conn: Connection) -> None:
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) {projects.SEARCH_PROJECTS_SQL.rstrip(';')}", "%react%", "react", 20
        )
    text = json.dumps(plan)
    assert "idx_projects_name_trgm" in text
    assert "idx_projects_description_trgm" in text


async def test_search_ranks_exactly_as_rules_search_rank(conn: Connection) -> None:
    # Names and descriptions over a tiny alphabet with LIKE's special characters and mixed case.
    alphabet = "aB%_\\"
    names = ["".join(p) for n in (1, 2, 3) for p in itertools.product(alphabet, repeat=n)]
    seen: set[str] = set()
    corpus: list[tuple[str, str, str]] = []
    for i, name in enumerate(names[::3]):
        if name.lower() not in seen:
            seen.add(name.lower())
            corpus.append(("Eco", name, names[(i * 7) % len(names)] + " Ab"))
    await _add_projects(conn, corpus)
    queries = ["".join(p).lower() for n in (1, 2) for p in itertools.product(alphabet + "x", repeat=n)]
    for q in dict.fromkeys(queries):
        ranked = [
            (rank, position, name)
            for position, (_, name, description) in enumerate(corpus)
            if (rank := rules.search_rank(q, name.lower(), description)) is not None
        ]
        expected = [name for _, _, name in sorted(ranked)]
        rows = await projects.search_projects(conn, pattern=rules.like_pattern(q), query=q, lim=10_000)
        assert [r.name for r in rows] == expected, q


# -- keyset scans -------------------------------------------------------------------------------


async def test_keyset_scans_page_through_every_project_and_edge(conn: Connection) -> None:
    await _add_projects(conn, [("npm", f"P{i}", "") for i in range(5)])
    await projects.add_dependency(conn, from_ecosystem="npm", from_name="p0", to_ecosystem="npm", to_name="p1")
    await projects.add_dependency(conn, from_ecosystem="npm", from_name="p0", to_ecosystem="npm", to_name="zz")
    seen: list[str] = []
    after = 0
    while page := await projects.scan_projects(conn, after=after, lim=2):
        seen += [r.name for r in page]
        after = page[-1].id
    assert seen == ["P0", "P1", "P2", "P3", "P4"]
    resolved = await verify.scan_resolved_edges(conn, after=0, lim=10)
    pending = await verify.scan_pending_edges(conn, after=0, lim=10)
    assert [(r.from_name, r.to_name) for r in resolved] == [("p0", "p1")]
    assert [(r.from_name, r.to_name) for r in pending] == [("p0", "zz")]
    # One row shape, one class (docs/accessors.md, "Row types"); the old per-query names are aliases.
    assert type(resolved[0]) is type(pending[0]) is verify.DependencyEdgeRow


# -- every named query has a caller -----------------------------------------------------------


def test_every_named_query_is_called_by_the_package() -> None:
    # The same check as `coherence-sql lint` rule CS401 (which CI runs): a query nothing in
    # coherence_sql/ calls is dead weight (its SQL, its accessor, a test keeping it alive).
    referenced = referenced_names()
    uncalled = [
        f"{path.stem}.{name}"
        for path in QUERY_FILES
        for name in aiosql.from_path(path, "asyncpg").available_queries
        if not name.endswith("_cursor") and not is_called(path.stem, name, referenced)
    ]
    assert uncalled == [], "delete these queries (and run `coherence-sql generate`), or call them"
