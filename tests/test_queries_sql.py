"""The query files themselves: they load in aiosql 15, pass the hazard lint and sqlfluff, prepare on
PostgreSQL, and the queries the stores do not exercise (scans, digests, bulk loads) do what their
docstrings say. Search ranking is checked against `rules.search_rank`, the Python reference.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aiosql
import pytest
from sqlfluff.core import FluffConfig, Linter

from coherence_sql.codegen.lint import Catalog, lint_paths
from coherence_sql.db import Connection, connect
from coherence_sql.models import TaskStatus, TaskType
from coherence_sql.resources import queries_dir
from coherence_sql.sql import agent_tasks, assets, contributions, contributors, github, projects
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
T0 = datetime(2026, 2, 15, 10, 30, 0, 123456, tzinfo=UTC)


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


# -- scans, digests and bulk loads --------------------------------------------------------------


def jsonb_text(value: Any) -> str:
    """What `jsonb::text` prints (docs/decisions.md, digests): ', ' and ': ' separators, object
    keys shorter first then bytewise, strings escaped as JSON without ASCII-only escaping."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(f"{jsonb_text(k)}: {jsonb_text(value[k])}" for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    if value is None or isinstance(value, bool | int | str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(value)


def utc_text(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def digest(*values: Any) -> str:
    return hashlib.md5(jsonb_text(list(values)).encode()).hexdigest()


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
    assert [(r.from_name, r.to_name) for r in await projects.scan_dependencies(conn, after=0, lim=10)] == [("p0", "p1")]
    assert [(r.from_name, r.to_name) for r in await projects.scan_pending_dependencies(conn, after=0, lim=10)] == [
        ("p0", "zz")
    ]
    digests = await projects.digest_projects(conn, after_ecosystem="", after_name="", lim=10)
    assert [r.name for r in digests] == ["p0", "p1", "p2", "p3", "p4"]
    assert digests[0].digest == digest("npm", "P0", "1", "", None, None, 2)


async def test_bulk_contributors_assets_and_contributions_load_idempotently(conn: Connection) -> None:
    people = [uuid4(), uuid4()]
    things = [uuid4()]
    for _ in range(2):  # a rerun of a backfill changes nothing
        await contributors.upsert_contributors(
            conn,
            ids=people,
            types=["HUMAN", "SYSTEM"],
            names=["Alice", "Bot"],
            emails=["alice@coherence.dev", "bot@coherence.dev"],
            email_keys=["alice@coherence.dev", "bot@coherence.dev"],
            wallet_addresses=[None, "0xabc"],
            hourly_rates=[Decimal("12.5"), None],
            created_ats=[T0, T0 + timedelta(seconds=1)],
            github_usernames=[None, None],
            metadatas=[{"b": 1, "aa": ["x\n", True]}, {}],
        )
        await assets.upsert_assets(
            conn, ids=things, types=["CODE"], names=["repo"], descriptions=["repo"], created_ats=[T0], metadatas=[{}]
        )
        await contributions.insert_contributions(
            conn,
            ids=[UUID(int=1), UUID(int=2)],
            contributor_ids=people,
            asset_ids=things * 2,
            cost_amounts=[Decimal("10.10"), Decimal("0.01")],
            coherence_scores=[Decimal("0.9"), Decimal("0.5")],
            metadatas=[{}, {}],
            timestamps=[T0, T0],
        )
    scanned = await contributors.scan_contributors(conn, after=0, lim=10)
    assert [r.id for r in scanned] == people
    assert scanned[0].hourly_rate == Decimal("12.50")
    asset = await assets.get_asset(conn, id=things[0])
    assert asset is not None
    assert asset.total_cost == Decimal("10.11")  # each contribution counted once
    assert len(await contributions.scan_contributions(conn, after=0, lim=10)) == 2

    alice = next(
        r for r in await contributors.digest_contributors(conn, after=UUID(int=0), lim=10) if r.id == people[0]
    )
    assert alice.digest == digest(
        str(people[0]),
        "HUMAN",
        "Alice",
        "alice@coherence.dev",
        None,
        "12.50",
        utc_text(T0),
        None,
        {"b": 1, "aa": ["x\n", True]},
    )
    first = (await contributions.digest_contributions(conn, after=UUID(int=0), lim=1))[0]
    assert first.digest == digest(str(UUID(int=1)), str(people[0]), str(things[0]), "10.10", "0.90", {}, utc_text(T0))
    assert len(await assets.digest_assets(conn, after=UUID(int=0), lim=10)) == 1
    assert len(await assets.scan_assets(conn, after=0, lim=10)) == 1


async def test_bulk_github_loads_and_scans(conn: Connection) -> None:
    for _ in range(2):
        await github.upsert_github_contributors(
            conn,
            ids=["github:a", "github:b"],
            sources=["github", "github"],
            logins=["a", "b"],
            names=["A", None],
            avatar_urls=[None, None],
            contributions_counts=[3, 0],
            created_ats=[T0, T0],
            updated_ats=[None, T0],
        )
        await github.upsert_github_organizations(
            conn,
            ids=["github:o"],
            logins=["o"],
            types=["Organization"],
            names=[None],
            avatar_urls=[None],
            created_ats=[T0],
            updated_ats=[None],
        )
        await github.add_github_contributes_to_many(
            conn, contributor_ids=["github:b", "github:a"], ecosystems=["npm", "npm"], names=["x", "x"]
        )
    assert [r.id for r in await github.scan_github_contributors(conn, after=0, lim=10)] == ["github:a", "github:b"]
    assert [r.id for r in await github.scan_github_organizations(conn, after=0, lim=10)] == ["github:o"]
    edges = await github.scan_github_contributes_to(conn, after=0, lim=10)
    assert [r.contributor_id for r in edges] == ["github:b", "github:a"]
    b = (await github.digest_github_contributors(conn, after="github:a", lim=10))[0]
    assert b.digest == digest("github:b", "github", "b", None, None, 0, utc_text(T0), utc_text(T0))
    assert len(await github.digest_github_organizations(conn, after="", lim=10)) == 1


async def test_bulk_tasks_load_scan_and_digest(conn: Connection) -> None:
    for output in ("first", "second"):  # an existing id is replaced in place
        await agent_tasks.upsert_tasks(
            conn,
            ids=["task_b", "task_a"],
            directions=["d", "e"],
            task_types=[TaskType.IMPL, TaskType.SPEC],
            statuses=[TaskStatus.PENDING, TaskStatus.COMPLETED],
            models=["m", "m"],
            commands=["c", "c"],
            tiers=[None, "t"],
            contexts=[None, {"k": 1}],
            outputs=[None, output],
            progress_pcts=[None, 100],
            current_steps=[None, None],
            decision_prompts=[None, None],
            decisions=[None, None],
            started_ats=[None, T0],
            created_ats=[T0, T0],
            updated_ats=[None, T0],
            claimed_bys=[None, None],
            claimed_ats=[None, None],
        )
    scanned = await agent_tasks.scan_tasks(conn, after=0, lim=10)
    assert [(r.id, r.output) for r in scanned] == [("task_b", None), ("task_a", "second")]
    assert scanned[1].status is TaskStatus.COMPLETED
    a = (await agent_tasks.digest_tasks(conn, after="", lim=1))[0]
    assert a.digest == digest(
        "task_a", "e", "spec", "completed", "m", "c", "t", {"k": 1}, "second", 100, None, None, None,
        utc_text(T0), utc_text(T0), utc_text(T0), None, None,
    )  # fmt: skip
