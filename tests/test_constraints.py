"""Every constraint of the real schema, broken once, comes back as the right typed error.

Violations are written as direct SQL (the stores that will wrap them are separate work) and the
driver's exception goes through `coherence_sql.errors.translate`, exactly as the stores will do it.
Each violation runs its setup and the violating statement in one transaction that the violation
aborts, so those cases share one connection and need no TRUNCATE between them (on a busy
PostgreSQL 15 on ext4 a TRUNCATE of every table costs about half a second). Also:
`CONSTRAINT_MESSAGES` matches the migrated database, and the edges-before-projects machinery
(`record_dependency`, `pending_dependencies`, `dependency_count`) keeps its promises; those tests
commit, so they use the per-test emptied `conn`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from coherence_sql.db import Connection, connect
from coherence_sql.errors import (
    CONSTRAINT_MESSAGES,
    CoherenceSQLError,
    DuplicateError,
    InvalidValueError,
    UnknownReferenceError,
    translate,
)
from coherence_sql.schema import HISTORY_TABLE


def project_sql(name: str, *, ecosystem: str = "pypi", display: str | None = None, extra: str = "") -> str:
    display_name = display or name.upper()
    return (
        "INSERT INTO projects (ecosystem, name, display_ecosystem, display_name, version) "
        f"VALUES ('{ecosystem}', '{name}', '{ecosystem}', '{display_name}', '1.0'){extra}"
    )


ADA = "00000000-0000-0000-0000-0000000000c1"
LIB = "00000000-0000-0000-0000-0000000000a1"
GIFT = "00000000-0000-0000-0000-0000000000b1"
PROJECT_A = project_sql("a")
PROJECT_B = project_sql("b")
CONTRIBUTOR = (
    f"INSERT INTO contributors (id, name, email, email_key, type) "
    f"VALUES ('{ADA}', 'Ada', 'ada@example.com', 'ada@example.com', 'HUMAN')"
)
ASSET = f"INSERT INTO assets (id, name, description, asset_type) VALUES ('{LIB}', 'lib', 'a library', 'CODE')"
TASK = "INSERT INTO agent_tasks (id, direction, task_type, model, command) VALUES ('task_1', 'do it', 'impl', 'm', 'c')"
GH_CONTRIBUTOR = "INSERT INTO github_contributors (id, login) VALUES ('gh_1', 'octo')"
GH_ORG = "INSERT INTO github_organizations (id, login, type) VALUES ('org_1', 'acme', 'Organization')"
GH_EDGE = "INSERT INTO github_contributes_to (contributor_id, ecosystem, name) VALUES ('gh_1', 'pypi', 'a')"
SHADOW = "INSERT INTO shadow_mismatches (operation, control_ms) VALUES ('get_project', 1.5)"
SNAPSHOT_SHA = "a" * 64
CHECKPOINT = (
    "INSERT INTO backfill_checkpoints (snapshot_sha256, section, done_through) "
    f"VALUES ('{SNAPSHOT_SHA}', 'projects', 10)"
)
RESERVED = f"INSERT INTO backfill_reserved_seqs (snapshot_sha256, first_seq, last_seq) VALUES ('{SNAPSHOT_SHA}', 1, 9)"
EDGE_A_B = (
    "INSERT INTO project_dependencies (from_project_id, to_project_id) "
    "SELECT f.id, t.id FROM projects AS f, projects AS t WHERE f.name = 'a' AND t.name = 'b'"
)
PENDING_A_B = (
    "INSERT INTO pending_dependencies (from_ecosystem, from_name, to_ecosystem, to_name) "
    "VALUES ('pypi', 'a', 'pypi', 'b')"
)


def contribution_sql(cost: str = "10.00", score: str = "0.50", *, contributor: str = ADA, asset: str = LIB) -> str:
    return (
        "INSERT INTO contributions (id, contributor_id, asset_id, cost_amount, coherence_score) "
        f"VALUES ('{GIFT}', '{contributor}', '{asset}', {cost}, {score})"
    )


def task_sql(*, id: str = "task_2", direction: str = "'do it'", task_type: str = "impl", progress: str = "NULL") -> str:
    return (
        "INSERT INTO agent_tasks (id, direction, task_type, model, command, progress_pct) "
        f"VALUES ('{id}', {direction}, '{task_type}', 'm', 'c', {progress})"
    )


@dataclass(frozen=True)
class Violation:
    """Run `setup`, then `violate` (all in one transaction, rolled back by the failure)."""

    id: str
    setup: tuple[str, ...]
    violate: str
    error: type[CoherenceSQLError]
    constraint: str | None = None  # the constraint PostgreSQL must name; its CONSTRAINT_MESSAGES text is expected
    fragment: str | None = None  # for errors without a constraint (NOT NULL, enum, range): PostgreSQL's words


def _drop(constraint: str) -> str:
    # Some CHECKs are shadowed: projects_display_matches_key (checked first, by name) also fails whenever a
    # key is not lower-case. Dropping it inside the rolled-back transaction lets the shadowed one speak.
    return f"ALTER TABLE projects DROP CONSTRAINT {constraint}"


VIOLATIONS: tuple[Violation, ...] = (
    # projects
    Violation(
        "projects_pkey",
        (PROJECT_A,),
        project_sql("b")
        .replace("(ecosystem,", "(id, ecosystem,")
        .replace("VALUES (", "VALUES (currval('projects_id_seq'), "),
        DuplicateError,
        "projects_pkey",
    ),
    Violation(
        "projects_ecosystem_name_key",
        (PROJECT_A,),
        project_sql("a", display="a"),
        DuplicateError,
        "projects_ecosystem_name_key",
    ),
    Violation(
        "projects_ecosystem_lower",
        (_drop("projects_display_matches_key"),),
        project_sql("a", ecosystem="PyPI"),
        InvalidValueError,
        "projects_ecosystem_lower",
    ),
    Violation(
        "projects_name_lower",
        (_drop("projects_display_matches_key"),),
        project_sql("A"),
        InvalidValueError,
        "projects_name_lower",
    ),
    Violation(
        "projects_ecosystem_not_empty",
        (),
        project_sql("a", ecosystem=""),
        InvalidValueError,
        "projects_ecosystem_not_empty",
    ),
    Violation("projects_name_not_empty", (), project_sql("", display=""), InvalidValueError, "projects_name_not_empty"),
    Violation(
        "projects_display_matches_key",
        (),
        project_sql("a", display="B"),
        InvalidValueError,
        "projects_display_matches_key",
    ),
    Violation(
        "projects_dependency_count_check",
        (PROJECT_A,),
        "UPDATE projects SET dependency_count = -1",
        InvalidValueError,
        "projects_dependency_count_check",
    ),
    Violation(
        "projects_version_not_null",
        (),
        project_sql("a").replace("'1.0'", "NULL"),
        InvalidValueError,
        fragment='null value in column "version" of relation "projects" violates not-null constraint',
    ),
    Violation(
        "projects_display_name_not_null",
        (),
        project_sql("a", display="a").replace("'a', '1.0'", "NULL, '1.0'"),
        InvalidValueError,
        fragment='null value in column "display_name" of relation "projects" violates not-null constraint',
    ),
    Violation(
        "projects_ecosystem_too_long",
        (),
        project_sql("a", ecosystem="x" * 101),
        InvalidValueError,
        fragment="value too long for type character varying(100)",
    ),
    # project_dependencies
    Violation(
        "project_dependencies_pkey",
        (PROJECT_A, PROJECT_B, EDGE_A_B),
        "INSERT INTO project_dependencies (id, from_project_id, to_project_id) "
        "SELECT d.id, d.to_project_id, d.from_project_id FROM project_dependencies AS d",
        DuplicateError,
        "project_dependencies_pkey",
    ),
    Violation(
        "project_dependencies_unique_edge",
        (PROJECT_A, PROJECT_B, EDGE_A_B),
        EDGE_A_B,
        DuplicateError,
        "project_dependencies_from_project_id_to_project_id_key",
    ),
    Violation(
        "project_dependencies_not_self",
        (PROJECT_A,),
        "INSERT INTO project_dependencies (from_project_id, to_project_id) SELECT id, id FROM projects",
        InvalidValueError,
        "project_dependencies_not_self",
    ),
    Violation(
        "project_dependencies_from_project_id_fkey",
        (PROJECT_B,),
        "INSERT INTO project_dependencies (from_project_id, to_project_id) SELECT 999999, id FROM projects",
        UnknownReferenceError,
        "project_dependencies_from_project_id_fkey",
    ),
    Violation(
        "project_dependencies_to_project_id_fkey",
        (PROJECT_A,),
        "INSERT INTO project_dependencies (from_project_id, to_project_id) SELECT id, 999999 FROM projects",
        UnknownReferenceError,
        "project_dependencies_to_project_id_fkey",
    ),
    # pending_dependencies
    Violation("pending_dependencies_pkey", (PENDING_A_B,), PENDING_A_B, DuplicateError, "pending_dependencies_pkey"),
    Violation(
        "pending_dependencies_not_self",
        (),
        PENDING_A_B.replace("'pypi', 'b'", "'pypi', 'a'"),
        InvalidValueError,
        "pending_dependencies_not_self",
    ),
    Violation(
        "pending_dependencies_keys_lower",
        (),
        PENDING_A_B.replace("'pypi', 'b'", "'pypi', 'B'"),
        InvalidValueError,
        "pending_dependencies_keys_lower",
    ),
    # contributors
    Violation(
        "contributors_pkey",
        (CONTRIBUTOR,),
        CONTRIBUTOR.replace("ada@example.com", "other@example.com"),
        DuplicateError,
        "contributors_pkey",
    ),
    Violation(
        "contributors_email_key_unique",
        (CONTRIBUTOR,),
        CONTRIBUTOR.replace(ADA, "00000000-0000-0000-0000-0000000000c2").replace("'ada@", "'ADA@", 1),
        DuplicateError,
        "contributors_email_key_unique",
    ),
    Violation(
        "contributors_type_check",
        (),
        CONTRIBUTOR.replace("'HUMAN'", "'ROBOT'"),
        InvalidValueError,
        "contributors_type_check",
    ),
    Violation(
        "contributors_hourly_rate_check",
        (),
        CONTRIBUTOR.replace("type)", "type, hourly_rate)").replace("'HUMAN')", "'HUMAN', -0.01)"),
        InvalidValueError,
        "contributors_hourly_rate_check",
    ),
    Violation(
        "contributors_name_not_empty",
        (),
        CONTRIBUTOR.replace("'Ada'", "''"),
        InvalidValueError,
        "contributors_name_not_empty",
    ),
    Violation(
        "contributors_email_not_null",
        (),
        CONTRIBUTOR.replace("'ada@example.com'", "NULL", 1),
        InvalidValueError,
        fragment='null value in column "email" of relation "contributors" violates not-null constraint',
    ),
    # assets
    Violation("assets_pkey", (ASSET,), ASSET, DuplicateError, "assets_pkey"),
    Violation(
        "assets_asset_type_check", (), ASSET.replace("'CODE'", "'VIDEO'"), InvalidValueError, "assets_asset_type_check"
    ),
    Violation(
        "assets_total_cost_check",
        (ASSET,),
        "UPDATE assets SET total_cost = -0.01",
        InvalidValueError,
        "assets_total_cost_check",
    ),
    Violation(
        "assets_description_not_null",
        (),
        ASSET.replace("'a library'", "NULL"),
        InvalidValueError,
        fragment='null value in column "description" of relation "assets" violates not-null constraint',
    ),
    # contributions
    Violation(
        "contributions_pkey",
        (CONTRIBUTOR, ASSET, contribution_sql()),
        contribution_sql(),
        DuplicateError,
        "contributions_pkey",
    ),
    Violation(
        "contributions_cost_amount_check",
        (CONTRIBUTOR, ASSET),
        contribution_sql(cost="-0.01"),
        InvalidValueError,
        "contributions_cost_amount_check",
    ),
    Violation(
        "contributions_coherence_score_check",
        (CONTRIBUTOR, ASSET),
        contribution_sql(score="1.01"),
        InvalidValueError,
        "contributions_coherence_score_check",
    ),
    Violation(
        "contributions_contributor_id_fkey",
        (ASSET,),
        contribution_sql(),
        UnknownReferenceError,
        "contributions_contributor_id_fkey",
    ),
    Violation(
        "contributions_asset_id_fkey",
        (CONTRIBUTOR,),
        contribution_sql(),
        UnknownReferenceError,
        "contributions_asset_id_fkey",
    ),
    Violation(
        "contributions_cost_amount_out_of_range",
        (CONTRIBUTOR, ASSET),
        contribution_sql(cost="10000000000000.00"),
        InvalidValueError,
        fragment="numeric field overflow",
    ),
    Violation(
        "contributions_coherence_score_out_of_range",
        (CONTRIBUTOR, ASSET),
        contribution_sql(score="10"),
        InvalidValueError,
        fragment="numeric field overflow",
    ),
    Violation(
        "contributions_coherence_score_not_null",
        (CONTRIBUTOR, ASSET),
        contribution_sql(score="NULL"),
        InvalidValueError,
        fragment='null value in column "coherence_score" of relation "contributions" violates not-null constraint',
    ),
    # github_contributors, github_organizations, github_contributes_to
    Violation(
        "github_contributors_pkey", (GH_CONTRIBUTOR,), GH_CONTRIBUTOR, DuplicateError, "github_contributors_pkey"
    ),
    Violation(
        "github_contributors_id_not_empty",
        (),
        GH_CONTRIBUTOR.replace("'gh_1'", "''"),
        InvalidValueError,
        "github_contributors_id_not_empty",
    ),
    Violation(
        "github_contributors_contributions_count_check",
        (GH_CONTRIBUTOR,),
        "UPDATE github_contributors SET contributions_count = -1",
        InvalidValueError,
        "github_contributors_contributions_count_check",
    ),
    Violation("github_organizations_pkey", (GH_ORG,), GH_ORG, DuplicateError, "github_organizations_pkey"),
    Violation(
        "github_organizations_id_not_empty",
        (),
        GH_ORG.replace("'org_1'", "''"),
        InvalidValueError,
        "github_organizations_id_not_empty",
    ),
    Violation(
        "github_organizations_type_check",
        (),
        GH_ORG.replace("'Organization'", "'Team'"),
        InvalidValueError,
        "github_organizations_type_check",
    ),
    Violation("github_contributes_to_pkey", (GH_EDGE,), GH_EDGE, DuplicateError, "github_contributes_to_pkey"),
    Violation(
        "github_contributes_to_keys_lower",
        (),
        GH_EDGE.replace("'pypi'", "'PyPI'"),
        InvalidValueError,
        "github_contributes_to_keys_lower",
    ),
    # agent_tasks and the plan's ENUM types
    Violation("agent_tasks_pkey", (TASK,), TASK, DuplicateError, "agent_tasks_pkey"),
    Violation("agent_tasks_id_not_empty", (), task_sql(id=""), InvalidValueError, "agent_tasks_id_not_empty"),
    Violation(
        "agent_tasks_progress_pct_above_100",
        (),
        task_sql(progress="101"),
        InvalidValueError,
        "agent_tasks_progress_pct_range",
    ),
    Violation(
        "agent_tasks_progress_pct_negative",
        (),
        task_sql(progress="-1"),
        InvalidValueError,
        "agent_tasks_progress_pct_range",
    ),
    Violation(
        "agent_tasks_direction_length",
        (),
        task_sql(direction="repeat('x', 5001)"),
        InvalidValueError,
        "agent_tasks_direction_length",
    ),
    Violation("direction_not_empty", (), task_sql(direction="'   '"), InvalidValueError, "direction_not_empty"),
    Violation(
        "agent_tasks_command_not_null",
        (),
        task_sql().replace("'m', 'c'", "'m', NULL"),
        InvalidValueError,
        fragment='null value in column "command" of relation "agent_tasks" violates not-null constraint',
    ),
    Violation(
        "task_type_enum",
        (),
        task_sql(task_type="deploy"),
        InvalidValueError,
        fragment='invalid input value for enum task_type: "deploy"',
    ),
    Violation(
        "task_status_enum",
        (TASK,),
        "UPDATE agent_tasks SET status = 'paused'",
        InvalidValueError,
        fragment='invalid input value for enum task_status: "paused"',
    ),
    # shadow_mismatches
    Violation(
        "shadow_mismatches_pkey",
        (SHADOW,),
        "INSERT INTO shadow_mismatches (id, operation, control_ms) OVERRIDING SYSTEM VALUE "
        "SELECT id, 'get_project', 1.5 FROM shadow_mismatches",
        DuplicateError,
        "shadow_mismatches_pkey",
    ),
    Violation(
        "shadow_mismatches_operation_not_null",
        (),
        SHADOW.replace("'get_project'", "NULL"),
        InvalidValueError,
        fragment='null value in column "operation" of relation "shadow_mismatches" violates not-null constraint',
    ),
    Violation(
        "shadow_mismatches_control_side",
        (SHADOW,),
        "UPDATE shadow_mismatches SET control_side = 'replica'",
        InvalidValueError,
        "shadow_mismatches_control_side",
    ),
    # backfill bookkeeping (schema/011)
    Violation("backfill_checkpoints_pkey", (CHECKPOINT,), CHECKPOINT, DuplicateError, "backfill_checkpoints_pkey"),
    Violation(
        "backfill_checkpoints_sha256_hex",
        (),
        CHECKPOINT.replace(SNAPSHOT_SHA, "not-a-sha256"),
        InvalidValueError,
        "backfill_checkpoints_sha256_hex",
    ),
    Violation("backfill_reserved_seqs_pkey", (RESERVED,), RESERVED, DuplicateError, "backfill_reserved_seqs_pkey"),
    Violation(
        "backfill_reserved_seqs_range",
        (),
        RESERVED.replace("1, 9)", "9, 1)"),
        InvalidValueError,
        "backfill_reserved_seqs_range",
    ),
)

QUERY = "the_query_under_test"


@pytest.fixture(scope="module")
async def shared_conn(migrated_dsn: str, _truncate_sql: str) -> AsyncIterator[Connection]:
    """One connection for the module's rolled-back cases, to a migrated database emptied once."""
    connection = await connect(migrated_dsn)
    try:
        await connection.execute(_truncate_sql)
        yield connection
    finally:
        await connection.close()


async def table_rows(conn: Connection) -> int:
    """Rows in every table of the schema but the runner's: how much a case left behind."""
    tables = await conn.fetch(
        "SELECT quote_ident(tablename) AS t FROM pg_tables WHERE schemaname = 'public' AND tablename <> $1",
        HISTORY_TABLE,
    )
    counts = " + ".join(f"(SELECT count(*) FROM {r['t']})" for r in tables)
    value = await conn.fetchval(f"SELECT {counts}")
    assert isinstance(value, int)
    return value


async def run_in_one_transaction(conn: Connection, statements: list[str]) -> None:
    async with conn.transaction():
        for statement in statements:
            await conn.execute(statement)


@pytest.mark.parametrize("case", VIOLATIONS, ids=[v.id for v in VIOLATIONS])
async def test_violation_is_translated_to_the_typed_error_naming_the_rule(
    shared_conn: Connection, case: Violation
) -> None:
    rows_before = await table_rows(shared_conn)
    with pytest.raises(asyncpg.PostgresError) as caught:
        await run_in_one_transaction(shared_conn, [*case.setup, case.violate])

    assert await table_rows(shared_conn) == rows_before  # the failure took its setup with it

    assert getattr(caught.value, "constraint_name", None) == case.constraint  # the rule we meant to break broke
    error = translate(caught.value, QUERY)
    assert type(error) is case.error
    message = str(error)
    assert message.startswith(f"{QUERY}: ")
    if case.constraint is not None:
        assert message.startswith(f"{QUERY}: {CONSTRAINT_MESSAGES[case.constraint]}; constraint {case.constraint}")
    else:
        assert case.fragment is not None
        assert case.fragment in message
    assert message.count("Failing row contains") <= 1  # the DETAIL is said once


async def test_every_named_constraint_of_the_schema_is_violated_by_a_case(shared_conn: Connection) -> None:
    covered = {v.constraint for v in VIOLATIONS if v.constraint is not None}

    assert covered == await named_constraints(shared_conn)


async def named_constraints(conn: Connection) -> set[str]:
    """Constraints and unique indexes of the migrated schema, without NOT NULL and the runner's own table."""
    rows = await conn.fetch(
        "SELECT conname AS name FROM pg_constraint "
        "WHERE connamespace = 'public'::regnamespace AND contype IN ('p', 'u', 'c', 'f', 'x') "
        "AND conrelid <> $1::regclass "
        "UNION "
        "SELECT c.relname FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid "
        "WHERE i.indisunique AND c.relnamespace = 'public'::regnamespace AND i.indrelid <> $1::regclass",
        HISTORY_TABLE,
    )
    return {r["name"] for r in rows}


async def test_constraint_messages_name_only_constraints_that_exist(shared_conn: Connection) -> None:
    conn = shared_conn
    rows = await conn.fetch("SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace")
    constraints = {r["conname"] for r in rows}
    indexes = {r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}

    assert set(CONSTRAINT_MESSAGES) - (constraints | indexes) == set()


async def test_every_named_constraint_has_a_message(shared_conn: Connection) -> None:
    assert await named_constraints(shared_conn) - set(CONSTRAINT_MESSAGES) == set()
    assert all(text and text == text.strip() for text in CONSTRAINT_MESSAGES.values())


# -- record_dependency, pending edges and dependency_count ------------------------------------------


async def record(conn: Connection, source: str, target: str, ecosystem: str = "pypi") -> bool:
    result = await conn.fetchval("SELECT record_dependency($1, $2, $1, $3)", ecosystem, source, target)
    assert isinstance(result, bool)
    return result


async def add_project(conn: Connection, name: str) -> None:
    await conn.execute(project_sql(name))


async def dependency_count(conn: Connection, name: str) -> int:
    value = await conn.fetchval("SELECT dependency_count FROM projects WHERE name = $1", name)
    assert isinstance(value, int)
    return value


async def pending_edges(conn: Connection) -> list[tuple[str, str]]:
    rows = await conn.fetch("SELECT from_name, to_name FROM pending_dependencies ORDER BY id")
    return [(r["from_name"], r["to_name"]) for r in rows]


async def resolved_edges(conn: Connection) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT f.name AS f, t.name AS t FROM project_dependencies AS d "
        "JOIN projects AS f ON f.id = d.from_project_id JOIN projects AS t ON t.id = d.to_project_id ORDER BY d.id"
    )
    return [(r["f"], r["t"]) for r in rows]


async def test_edge_recorded_before_its_projects_is_resolved_when_both_arrive(conn: Connection) -> None:
    assert await record(conn, "a", "b") is True
    recorded_at = await conn.fetchval("SELECT created_at FROM pending_dependencies")
    assert await pending_edges(conn) == [("a", "b")]
    assert await resolved_edges(conn) == []

    await add_project(conn, "a")
    assert await pending_edges(conn) == [("a", "b")]  # b is still missing
    assert await dependency_count(conn, "a") == 1  # ...but the edge already counts

    await add_project(conn, "b")
    assert await pending_edges(conn) == []
    assert await resolved_edges(conn) == [("a", "b")]
    assert await dependency_count(conn, "a") == 1
    assert await dependency_count(conn, "b") == 0
    assert await conn.fetchval("SELECT created_at FROM project_dependencies") == recorded_at


async def test_edge_resolves_when_the_dependency_arrives_before_the_dependent(conn: Connection) -> None:
    await record(conn, "a", "b")
    await add_project(conn, "b")
    assert await pending_edges(conn) == [("a", "b")]
    assert await dependency_count(conn, "b") == 0

    await add_project(conn, "a")

    assert await pending_edges(conn) == []
    assert await resolved_edges(conn) == [("a", "b")]
    assert await dependency_count(conn, "a") == 1


async def test_edge_between_existing_projects_is_stored_resolved_at_once(conn: Connection) -> None:
    await add_project(conn, "a")
    await add_project(conn, "b")

    assert await record(conn, "a", "b") is True

    assert await pending_edges(conn) == []
    assert await resolved_edges(conn) == [("a", "b")]
    assert await dependency_count(conn, "a") == 1


async def test_dependency_count_is_the_out_degree_including_pending_edges(conn: Connection) -> None:
    await add_project(conn, "a")
    await record(conn, "a", "b")
    await record(conn, "a", "c")
    await record(conn, "x", "a")  # an in-edge: not part of a's count
    assert await dependency_count(conn, "a") == 2

    await add_project(conn, "b")  # one of a's edges resolves; the count is unchanged
    assert await resolved_edges(conn) == [("a", "b")]
    assert sorted(await pending_edges(conn)) == [("a", "c"), ("x", "a")]
    assert await dependency_count(conn, "a") == 2

    await conn.execute("DELETE FROM project_dependencies")
    await conn.execute("DELETE FROM pending_dependencies WHERE to_name = 'c'")
    assert await dependency_count(conn, "a") == 0


async def test_dependency_count_given_by_the_caller_is_ignored(conn: Connection) -> None:
    await record(conn, "a", "b")

    await conn.execute(
        project_sql("a").replace("version)", "version, dependency_count)").replace("'1.0')", "'1.0', 42)")
    )

    assert await dependency_count(conn, "a") == 1


@pytest.mark.parametrize(
    ("project_exists", "constraint"),
    [(False, "pending_dependencies_not_self"), (True, "project_dependencies_not_self")],
)
async def test_self_dependency_is_rejected(conn: Connection, project_exists: bool, constraint: str) -> None:
    if project_exists:
        await add_project(conn, "a")

    with pytest.raises(asyncpg.PostgresError) as caught:
        await record(conn, "a", "a")

    error = translate(caught.value, "record_dependency")
    assert type(error) is InvalidValueError
    assert str(error).startswith(f"record_dependency: a project cannot depend on itself; constraint {constraint}")
    assert await pending_edges(conn) == []
    assert await resolved_edges(conn) == []


async def test_recording_a_pending_edge_twice_is_a_no_op(conn: Connection) -> None:
    await add_project(conn, "a")

    assert await record(conn, "a", "b") is True
    assert await record(conn, "a", "b") is False

    assert await pending_edges(conn) == [("a", "b")]
    assert await dependency_count(conn, "a") == 1


async def test_recording_a_resolved_edge_twice_is_a_no_op(conn: Connection) -> None:
    await add_project(conn, "a")
    await add_project(conn, "b")

    assert await record(conn, "a", "b") is True
    assert await record(conn, "a", "b") is False

    assert await resolved_edges(conn) == [("a", "b")]
    assert await pending_edges(conn) == []
    assert await dependency_count(conn, "a") == 1


async def test_recording_an_edge_with_an_upper_case_key_is_rejected(conn: Connection) -> None:
    with pytest.raises(asyncpg.PostgresError) as caught:
        await conn.fetchval("SELECT record_dependency('pypi', 'A', 'pypi', 'b')")

    error = translate(caught.value, "record_dependency")
    assert type(error) is InvalidValueError
    assert "dependency keys must be lower-case" in str(error)
