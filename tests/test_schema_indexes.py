"""No index in the schema is redundant: none is a leading prefix of another B-tree on its table.

Such an index serves no lookup the wider one does not, yet every insert pays to maintain both
(schema/012_drop_redundant_indexes.sql). The finder is checked on a table built to have one, so a
finder that matches nothing cannot pass for a clean schema.
"""

from __future__ import annotations

import asyncpg
import pytest

# Non-unique, non-partial B-tree indexes on plain columns whose key columns, operator classes and
# directions are the leading key columns of another non-partial B-tree index on the same table.
REDUNDANT_INDEXES = """
SELECT
    i.indexrelid::regclass::text AS index,
    w.indexrelid::regclass::text AS covered_by
FROM pg_index AS i
INNER JOIN pg_class AS ic ON ic.oid = i.indexrelid
INNER JOIN pg_namespace AS n ON n.oid = ic.relnamespace
INNER JOIN pg_am AS am ON am.oid = ic.relam
INNER JOIN pg_index AS w ON w.indrelid = i.indrelid AND w.indexrelid <> i.indexrelid
INNER JOIN pg_class AS wc ON wc.oid = w.indexrelid AND wc.relam = ic.relam
WHERE
    n.nspname = $1
    AND am.amname = 'btree'
    AND NOT i.indisunique
    AND i.indpred IS NULL AND w.indpred IS NULL
    AND i.indexprs IS NULL AND w.indexprs IS NULL
    AND i.indnkeyatts <= w.indnkeyatts
    AND (i.indkey::int2[])[0:i.indnkeyatts - 1] = (w.indkey::int2[])[0:i.indnkeyatts - 1]
    AND (i.indclass::oid[])[0:i.indnkeyatts - 1] = (w.indclass::oid[])[0:i.indnkeyatts - 1]
    AND (i.indoption::int2[])[0:i.indnkeyatts - 1] = (w.indoption::int2[])[0:i.indnkeyatts - 1]
ORDER BY 1, 2
"""


async def redundant(conn: asyncpg.Connection, schema: str = "public") -> list[tuple[str, str]]:
    return [(r["index"], r["covered_by"]) for r in await conn.fetch(REDUNDANT_INDEXES, schema)]


async def test_the_schema_has_no_index_another_covers(migrated_dsn: str) -> None:
    conn = await asyncpg.connect(migrated_dsn)
    try:
        assert await redundant(conn) == []
        # The wide indexes that cover the dropped ones are all there.
        names = {
            r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        }
    finally:
        await conn.close()
    assert {
        "projects_ecosystem_name_key",
        "project_dependencies_from_project_id_to_project_id_key",
        "idx_contributors_created_seq",
        "idx_assets_created_seq",
        "idx_agent_tasks_created_seq",
        "idx_contributions_contributor_timestamp",
        "idx_contributions_asset_timestamp",
        "idx_contributions_timestamp_seq",
        "idx_agent_tasks_status_type",
    } <= names
    assert not names & {"idx_contributions_asset", "idx_projects_ecosystem", "idx_agent_tasks_status"}


@pytest.mark.parametrize(
    ("indexes", "expected"),
    [
        # a prefix, and an exact copy, are found; each names what covers it
        (["CREATE INDEX t_a ON t (a)", "CREATE INDEX t_ab ON t (a, b)"], [("t_a", "t_ab")]),
        (["CREATE INDEX t_b1 ON t (b)", "CREATE UNIQUE INDEX t_b2 ON t (b)"], [("t_b1", "t_b2")]),
        (["CREATE INDEX t_c ON t (c DESC)", "CREATE INDEX t_cb ON t (c DESC, b)"], [("t_c", "t_cb")]),
        # not covered: another column first, the other direction, a unique prefix, a partial wider one
        (["CREATE INDEX t_b ON t (b)", "CREATE INDEX t_ab ON t (a, b)"], []),
        (["CREATE INDEX t_c ON t (c)", "CREATE INDEX t_cb ON t (c DESC, b)"], []),
        (["CREATE UNIQUE INDEX t_a ON t (a)", "CREATE INDEX t_ab ON t (a, b)"], []),
        (["CREATE INDEX t_a ON t (a)", "CREATE INDEX t_ab ON t (a, b) WHERE b > 0"], []),
        (["CREATE INDEX t_a ON t (a)", "CREATE INDEX t_la ON t (lower(a::text), b)"], []),
    ],
)
async def test_the_finder_finds_a_covered_index_and_only_that(
    empty_dsn: str, indexes: list[str], expected: list[tuple[str, str]]
) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        await conn.execute("CREATE TABLE t (a INTEGER, b INTEGER, c TIMESTAMPTZ)")
        for statement in indexes:
            await conn.execute(statement)
        assert await redundant(conn) == expected
    finally:
        await conn.close()
