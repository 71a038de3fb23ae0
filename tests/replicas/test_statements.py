"""Every named query of queries/*.sql is classified as what it does: read-only exactly when the
server's own plan writes nothing, locks no row and calls no volatile function.

The truth comes from PostgreSQL, not from the classifier's rules: the generic plan of each statement
on the migrated primary (PREPARE, then EXPLAIN (VERBOSE) EXECUTE under force_generic_plan):
ModifyTable or LockRows nodes, or a function pg_proc marks volatile in its expressions (but those
that only report server state, which the standby test runs); a statement that cannot be prepared
(DDL, LOCK, ANALYZE) is a write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from coherence_sql.codegen.loader import QuerySpec, load_file
from coherence_sql.replicas.statements import READ_ONLY_FUNCTIONS, SERVER_STATE, is_read_only
from coherence_sql.sql import backfill as backfill_sql
from coherence_sql.sqltext import split_statements
from tests.replicas.cluster import DATABASE, ReplicaCluster, on_replica

QUERIES = Path(__file__).resolve().parents[2] / "queries"
_EXPLAINABLE = ("select", "with", "insert", "update", "delete", "merge", "values")
_CALL = re.compile(r"([A-Za-z_][\w$]*)\(")


def _every_query() -> list[QuerySpec]:
    return [q for path in sorted(QUERIES.glob("*.sql")) for q in load_file(path)]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _statement_writes(conn: asyncpg.Connection, statement: str, volatile: set[str]) -> bool:
    first = statement.lstrip().split(None, 1)[0].lower()
    if first not in _EXPLAINABLE:
        return True
    await conn.execute(f"PREPARE probe AS {statement}")  # the simple protocol: $n stay parameters
    try:
        count = await conn.fetchval(
            "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = 'probe'"
        )
        nulls = ", ".join(["NULL"] * count)
        raw = await conn.fetchval(f"EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE probe{f'({nulls})' if count else ''}")
    finally:
        await conn.execute("DEALLOCATE probe")
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    if any(node["Node Type"] in ("ModifyTable", "LockRows") for node in _nodes(plan)):
        return True
    called = {name.rsplit(".", 1)[-1].lower() for name in _CALL.findall(json.dumps(plan))}
    return bool(called & volatile)


async def _truths(dsn: str) -> dict[str, bool]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT DISTINCT proname FROM pg_proc WHERE provolatile = 'v'")
        volatile = {r["proname"] for r in rows} - SERVER_STATE
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await backfill_sql.create_staging(conn)  # the merges read the staging tables
        truths: dict[str, bool] = {}
        for query in _every_query():
            writes = False
            for statement in (s for s in split_statements(query.sql) if s.strip()):
                async with conn.transaction():
                    writes = writes or await _statement_writes(conn, statement, volatile)
            truths[f"{query.module}.{query.name}"] = not writes
        return truths
    finally:
        await conn.close()


# The query files the stores run (through the router, when replicas are set): each must be classified
# exactly. Operator queries (backfill, backup, roles, ...) never reach the router; for them a read
# taken for a write is only a read the primary serves, so only the unsafe mistake fails.
STORE_MODULES = frozenset({"agent_tasks", "assets", "contributions", "contributors", "github", "projects"})


@pytest.mark.slow
async def test_every_named_query_is_classified_as_its_plan_says(cluster: ReplicaCluster) -> None:
    truths = await _truths(cluster.primary_dsn())
    classified = {f"{q.module}.{q.name}": is_read_only(q.sql) for q in _every_query()}
    assert len(classified) > 90
    unsafe = sorted(name for name, truth in truths.items() if classified[name] and not truth)
    assert unsafe == [], "classified read-only, but the plan writes, locks or calls a volatile function"
    wrong = {
        name: ("read-only" if truth else "write")
        for name, truth in truths.items()
        if classified[name] != truth and name.split(".")[0] in STORE_MODULES
    }
    assert wrong == {}, f"the stores' queries classified against what the plan does (truth shown): {wrong}"
    assert sum(truths.values()) > 40  # most queries are reads: the check is not vacuous
    assert sum(1 for name in truths if name.split(".")[0] in STORE_MODULES) > 45


async def test_the_read_only_functions_are_built_in_and_never_volatile_but_for_server_state(
    cluster: ReplicaCluster,
) -> None:
    conn = await asyncpg.connect(cluster.primary_dsn())
    try:
        rows = await conn.fetch(
            "SELECT proname, bool_or(provolatile = 'v') AS volatile,"
            " bool_and(pronamespace = 'pg_catalog'::regnamespace) AS built_in"
            " FROM pg_proc WHERE proname = ANY($1::text[]) GROUP BY proname",
            sorted(READ_ONLY_FUNCTIONS),
        )
    finally:
        await conn.close()
    assert {r["proname"] for r in rows if not r["built_in"]} == set()
    assert {r["proname"] for r in rows if r["volatile"]} == SERVER_STATE


async def test_the_server_state_functions_run_on_a_hot_standby(cluster: ReplicaCluster) -> None:
    answers = await on_replica(
        cluster,
        0,
        "SELECT ARRAY[pg_database_size(current_database())::text, pg_relation_size('projects')::text,"
        " pg_total_relation_size('projects')::text, pg_is_in_recovery()::text, pg_last_wal_receive_lsn()::text,"
        " pg_last_wal_replay_lsn()::text, coalesce(pg_last_xact_replay_timestamp()::text, 'none')]",
        DATABASE,
    )
    assert len(answers) == len(SERVER_STATE)
    assert answers[3] == "true"


@pytest.mark.parametrize(
    ("sql", "read_only"),
    [
        ("SELECT 1", True),
        ("select p.id from projects as p where lower(p.name) = $1", True),
        ("SELECT * FROM agent_tasks FOR UPDATE SKIP LOCKED", False),
        ("SELECT * FROM agent_tasks FOR NO KEY UPDATE", False),
        ("SELECT * FROM agent_tasks FOR SHARE", False),
        ("WITH gone AS (DELETE FROM assets RETURNING id) SELECT count(*) FROM gone", False),
        ("SELECT * INTO copy_of_assets FROM assets", False),
        ("SELECT record_dependency($1, $2, $3, $4)", False),
        ("SELECT public.lock_project_key($1, $2)", False),
        ("SELECT nextval('contributions_seq')", False),
        ("SELECT pg_advisory_xact_lock(1)", False),
        ("SELECT set_config('statement_timeout', '1s', false)", False),
        ("SELECT 1; DELETE FROM assets", False),
        ("SELECT 'FOR UPDATE', \"insert\" FROM assets -- delete", True),
        ("UPDATE assets SET name = $1", False),
        ("VACUUM projects", False),
        ("", False),
    ],
)
def test_classification_of_statement_shapes(sql: str, read_only: bool) -> None:
    assert is_read_only(sql) is read_only
