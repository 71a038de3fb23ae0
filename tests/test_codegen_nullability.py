"""Reading result-column origins off a generic plan, and the live cases the plan walk must survive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from coherence_sql.codegen.introspect import Introspector
from coherence_sql.codegen.loader import load_file
from coherence_sql.codegen.nullability import ColumnSource, NeverNull, output_origins


def scan(alias: str, relation: str, relationship: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"Node Type": "Seq Scan", "Relation Name": relation, "Schema": "public", "Alias": alias}
    if relationship:
        node["Parent Relationship"] = relationship
    return node


def plan(root: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Plan": root}]


def test_full_join_makes_both_sides_nullable() -> None:
    root = {
        "Node Type": "Hash Join",
        "Join Type": "Full",
        "Output": ["a.id", "b.id"],
        "Plans": [scan("a", "assets", "Outer"), {"Node Type": "Hash", "Parent Relationship": "Inner",
                                                 "Plans": [scan("b", "contributions", "Outer")]}],
    }  # fmt: skip
    assert output_origins(plan(root), 2) == [
        ColumnSource("public", "assets", "id", outer_nullable=True),
        ColumnSource("public", "contributions", "id", outer_nullable=True),
    ]


def test_casts_are_seen_through_and_count_is_never_null() -> None:
    root = {
        "Node Type": "Aggregate",
        "Output": ["(p.id)::bigint", "count(*)", "count(p.x) FILTER (WHERE p.y)", "count(*) OVER (?)", "count(*) + 1"],
        "Plans": [scan("p", "projects", "Outer")],
    }
    assert output_origins(plan(root), 5) == [
        ColumnSource("public", "projects", "id", outer_nullable=False),
        NeverNull(),
        NeverNull(),
        NeverNull(),
        None,
    ]


def test_unqualified_columns_belong_to_the_only_relation() -> None:
    root = {**scan("t", "agent_tasks"), "Output": ["status", '"timestamp"', "now()"]}
    assert output_origins(plan(root), 3) == [
        ColumnSource("public", "agent_tasks", "status", outer_nullable=False),
        ColumnSource("public", "agent_tasks", "timestamp", outer_nullable=False),
        None,
    ]


def test_set_operations_prove_nothing() -> None:
    root = {"Node Type": "Append", "Output": ["p.id"], "Plans": [scan("p", "projects", "Member")]}
    assert output_origins(plan(root), 1) == [None]


def test_junk_columns_after_the_result_are_ignored() -> None:
    root = {"Node Type": "Sort", "Output": ["p.name", "p.created_at"], "Plans": [scan("p", "projects", "Outer")]}
    assert output_origins(plan(root), 1) == [ColumnSource("public", "projects", "name", outer_nullable=False)]


async def describe(dsn: str, tmp_path: Path, sql: str) -> dict[str, bool]:
    (tmp_path / "probe.sql").write_text(sql)
    [spec] = load_file(tmp_path / "probe.sql")
    conn = await asyncpg.connect(dsn)
    try:
        accessor = await Introspector(conn).describe(spec)
    finally:
        await conn.close()
    return {column.name: column.nullable for column in accessor.columns}


async def test_a_where_on_the_outer_side_turns_the_left_join_inner(migrated_dsn: str, tmp_path: Path) -> None:
    # PostgreSQL reduces the LEFT JOIN to an inner join (d.to_project_id = $1 rejects NULLs), so d
    # is not on a nullable side any more (the sqlx #2127 case).
    nullable = await describe(
        migrated_dsn,
        tmp_path,
        "-- name: q(target)\nSELECT p.name, d.to_project_id FROM projects AS p "
        "LEFT JOIN project_dependencies AS d ON p.id = d.from_project_id WHERE d.to_project_id = :target;\n",
    )
    assert nullable == {"name": False, "to_project_id": False}


async def test_union_columns_stay_nullable(migrated_dsn: str, tmp_path: Path) -> None:
    nullable = await describe(
        migrated_dsn,
        tmp_path,
        "-- name: q()\nSELECT name FROM projects UNION ALL SELECT name FROM contributors;\n",
    )
    assert nullable == {"name": True}


async def test_subquery_columns_keep_what_the_plan_proves(migrated_dsn: str, tmp_path: Path) -> None:
    nullable = await describe(
        migrated_dsn,
        tmp_path,
        "-- name: q()\nSELECT s.n, m.top FROM (SELECT DISTINCT name AS n FROM projects) AS s "
        "CROSS JOIN (SELECT max(name) AS top FROM projects) AS m;\n",
    )
    assert nullable == {"n": False, "top": True}
