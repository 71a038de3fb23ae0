"""The least-privilege roles (`coherence-sql roles`): each role can do its job and nothing more.

Roles are cluster-wide: every name here carries this run's suffix and every role is dropped at the
end. The application role's name holds a space and a double quote, so every statement has to quote
it. The schema is migrated by the owner role, as in production.
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest

from coherence_sql import schema
from coherence_sql.cli import main
from coherence_sql.errors import ConfigurationError, MigrationPrivilegeError
from coherence_sql.health import check_health
from coherence_sql.models import TaskStatus
from coherence_sql.resources import schema_dir
from coherence_sql.security.roles import RoleNames, apply_roles, role_drift, role_statements
from coherence_sql.stores import postgres
from coherence_sql.stores.protocol import AgentTaskStore, DependencyEdge, GraphStore
from coherence_sql.testing.server import PgServer, create_database, drop_databases
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.verify import verify
from tests.stores import records

SUFFIX = uuid.uuid4().hex[:8]
NAMES = RoleNames(
    owner=f"cs_owner_{SUFFIX}",
    app=f'cs app "{SUFFIX}"',  # a space and a quote: only correct quoting gets this through
    readonly=f"cs_readonly_{SUFFIX}",
    backfill=f"cs_backfill_{SUFFIX}",
)
STORE_TABLES = (
    "agent_tasks",
    "assets",
    "contributions",
    "contributors",
    "github_contributes_to",
    "github_contributors",
    "github_organizations",
    "pending_dependencies",
    "project_dependencies",
    "projects",
    "shadow_mismatches",
)
DML = {"SELECT", "INSERT", "UPDATE", "DELETE"}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _as(dsn: str, role: str) -> str:
    """The same server and database, logged in as `role` (the test servers trust local logins)."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{quote(role, safe='')}@{host}", parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Prepared:
    admin_dsn: str

    def dsn(self, role: str) -> str:
        return _as(self.admin_dsn, role)


async def _prepare(server: PgServer, made: list[str]) -> Prepared:
    """A database set up as the runbook says: roles, migrate as the owner, roles again."""
    name, admin_dsn = await create_database(server)
    made.append(name)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await apply_roles(admin, NAMES)
        await schema.migrate(_as(admin_dsn, NAMES.owner))
        await apply_roles(admin, NAMES)  # the tables exist now: exactly the map
    finally:
        await admin.close()
    return Prepared(admin_dsn)


@pytest.fixture(scope="module")
async def databases(pg_server: PgServer) -> AsyncIterator[tuple[Callable[[], Awaitable[Prepared]], Prepared]]:
    made: list[str] = []
    try:
        first = await _prepare(pg_server, made)
        yield (lambda: _prepare(pg_server, made)), first
    finally:
        await drop_databases(pg_server, made)
        admin = await asyncpg.connect(pg_server.admin_dsn)
        try:
            roles = ", ".join(_ident(name) for _, name in NAMES.items())
            exists = await admin.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = any($1::text[])",
                                          [name for _, name in NAMES.items()])  # fmt: skip
            if exists:
                # Privileges on shared objects (the SET ON PARAMETER grant) go with DROP OWNED.
                await admin.execute(f"DROP OWNED BY {roles}; DROP ROLE IF EXISTS {roles}")
        finally:
            await admin.close()


@pytest.fixture(scope="module")
def db(databases: tuple[Callable[[], Awaitable[Prepared]], Prepared]) -> Prepared:
    return databases[1]


class Recorder:
    """Forwards every call to a store and remembers which methods ran."""

    def __init__(self, store: object, called: set[str]) -> None:
        self._store = store
        self._called = called

    def __getattr__(self, name: str) -> Any:
        self._called.add(name)
        return getattr(self._store, name)


def _protocol_methods(protocol: type) -> set[str]:
    return {name for name, member in vars(protocol).items() if inspect.isfunction(member) and not name.startswith("_")}


async def test_the_application_role_runs_every_store_operation(db: Prepared) -> None:
    called: set[str] = set()
    async with postgres.connect(db.dsn(NAMES.app)) as stores:
        graph: Any = Recorder(stores.graph, called)
        tasks: Any = Recorder(stores.tasks, called)
        await graph.upsert_project(records.project("react"))
        await graph.upsert_projects([records.project("vue"), records.project("left-pad")])
        await graph.add_dependency("npm", "react", "npm", "not-yet-indexed")  # a pending edge
        await graph.add_dependencies([DependencyEdge("npm", "vue", "npm", "react")])
        await graph.upsert_project(records.project("not-yet-indexed"))  # resolves the pending edge
        assert (await graph.get_project("npm", "react")).dependency_count == 1
        assert [p.name for p in await graph.search("react")] == ["react"]
        assert await graph.count_projects() == 4
        assert await graph.count_dependents("npm", "react") == 1
        person = await graph.create_contributor(records.contributor(1))
        assert await graph.get_contributor(person.id) == person
        assert await graph.find_contributor_by_email(person.email) == person
        assert await graph.list_contributors() == [person]
        thing = await graph.create_asset(records.asset(1))
        assert await graph.get_asset(thing.id) is not None
        made = await records.contribute(graph, person.id, thing.id, "12.50")
        assert await graph.get_contribution(made.id) == made
        assert await graph.list_contributions() == [made]
        assert await graph.get_asset_contributions(thing.id) == [made]
        assert await graph.get_contributor_contributions(person.id) == [made]
        assert [a.total_cost for a in await graph.list_assets()] == [Decimal("12.50")]  # the trigger ran as the app
        octo = await graph.upsert_github_contributor(records.github_contributor("octocat"))
        assert await graph.get_github_contributor(octo.id) == octo
        assert await graph.list_github_contributors() == [octo]
        org = await graph.upsert_github_organization(records.github_organization("coherence"))
        assert await graph.get_github_organization(org.id) == org
        await graph.add_github_contributes_to(octo.id, "npm", "react")
        assert await graph.get_project_github_contributors("npm", "react") == [octo]

        first = await tasks.create_task(records.task(1))
        await tasks.create_task(records.task(2))
        assert (await tasks.get_task(first.id)) == first
        assert (await tasks.list_tasks())[1] == 2
        claimed = await tasks.claim_next_task("worker-1")
        assert claimed is not None
        assert claimed.status is TaskStatus.RUNNING
        assert await tasks.claim_task(records.task(2).id, "worker-2") is not None
        now = records.T0_AWARE + timedelta(hours=1)
        done = await tasks.update_task(first.id, status=TaskStatus.COMPLETED, output="ok", now=now)
        assert done is not None
        assert done.status is TaskStatus.COMPLETED
        assert (await tasks.get_attention_tasks())[1] == 0
        assert (await tasks.get_task_count())["total"] == 2
        assert isinstance(await tasks.get_review_summary(), dict)
        assert isinstance(await tasks.get_usage_summary(), dict)
        assert isinstance(await tasks.get_pipeline_status(now_utc=now), dict)
        await tasks.clear()
        assert (await tasks.list_tasks())[1] == 0
    assert called >= _protocol_methods(GraphStore) | _protocol_methods(AgentTaskStore)


async def test_the_health_check_finds_the_application_role_ready_and_the_read_only_role_not(db: Prepared) -> None:
    async with postgres.connect(db.dsn(NAMES.app)) as stores:
        report = await check_health(stores)
    assert report.ready, report.reasons
    assert report.writes is not None
    assert report.writes.missing_privileges == []
    async with postgres.connect(db.dsn(NAMES.readonly)) as stores:
        report = await check_health(stores)
    assert not report.ready
    assert report.writes is not None
    assert report.writes.read_only


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE intruder (id int)",
        "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE SCHEMA intruder",
        "CREATE INDEX ON projects (version)",
        "ALTER TABLE projects ADD COLUMN intruder int",
        "ALTER TABLE contributions DISABLE TRIGGER USER",
        "DROP TABLE agent_tasks",
        "TRUNCATE contributions",
        "INSERT INTO schema_migrations (version, name, checksum, applied_by, success) VALUES (9, 'x', 'x', 'x', true)",
        "SELECT * FROM backfill_checkpoints",
        "SET session_replication_role = replica",
        "CREATE TEMPORARY TABLE intruder (id int)",  # PUBLIC's TEMPORARY on the database, revoked
    ],
)
async def test_the_application_role_may_not_change_the_schema_nor_touch_what_it_does_not_need(
    db: Prepared, statement: str
) -> None:
    conn = await asyncpg.connect(db.dsn(NAMES.app))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_the_application_role_cannot_read_another_roles_table(db: Prepared) -> None:
    admin = await asyncpg.connect(db.admin_dsn)
    try:
        await admin.execute("CREATE TABLE IF NOT EXISTS payroll (who text, salary numeric)")
        await admin.execute("INSERT INTO payroll VALUES ('ada', 1)")
    finally:
        await admin.close()
    conn = await asyncpg.connect(db.dsn(NAMES.app))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for table payroll"):
            await conn.fetch("SELECT * FROM payroll")
    finally:
        await conn.close()


async def test_each_role_holds_exactly_the_access_map_on_every_table(db: Prepared) -> None:
    conn = await asyncpg.connect(db.admin_dsn)
    try:
        owned = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner = $1"  # the schema's
        tables = [r["tablename"] for r in await conn.fetch(owned, NAMES.owner)]
        assert len(tables) >= len(STORE_TABLES) + 3
        held: dict[tuple[str, str], set[str]] = {}
        for role in (NAMES.app, NAMES.readonly, NAMES.backfill):
            for table in tables:
                held[role, table] = {
                    privilege
                    for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
                    if await conn.fetchval("SELECT has_table_privilege($1, $2, $3)", role, f"public.{table}", privilege)
                }
        statements = await role_statements(conn, NAMES)
    finally:
        await conn.close()
    # Every table a migration creates has a line in the access map (queries/roles.sql).
    for table in tables:
        assert any(s.startswith(f"REVOKE ALL ON TABLE public.{table} FROM") for s in statements), table
    for table in tables:
        assert held[NAMES.readonly, table] == {"SELECT"}, table
        expected_app = DML if table in STORE_TABLES else {"SELECT"} if table == "schema_migrations" else set()
        assert held[NAMES.app, table] == expected_app, table
        assert "TRUNCATE" not in held[NAMES.backfill, table]
    assert held[NAMES.backfill, "backfill_checkpoints"] == DML


async def test_migrate_as_the_application_role_with_nothing_pending_says_so(
    db: Prepared, capsys: pytest.CaptureFixture[str]
) -> None:
    report = await schema.migrate(db.dsn(NAMES.app))
    assert report.applied == []
    assert await asyncio.to_thread(main, ["migrate", "--database-url", db.dsn(NAMES.app)]) == 0
    assert "nothing to apply: the schema is current" in capsys.readouterr().out


async def test_migrate_as_the_application_role_with_a_file_pending_names_the_owner(
    db: Prepared, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "schema"
    shutil.copytree(schema_dir(), directory)
    (directory / "999_later.sql").write_text("CREATE TABLE later (id int);\n")
    with pytest.raises(MigrationPrivilegeError) as caught:
        await schema.migrate(db.dsn(NAMES.app), directory=directory)
    message = str(caught.value)
    assert message.startswith(f"the role {NAMES.app} cannot migrate (1 schema file(s) pending (999_later.sql first))")
    assert f"run `coherence-sql migrate` as {NAMES.owner}" in message
    argv = ["migrate", "--database-url", db.dsn(NAMES.app), "--schema-dir", str(directory)]
    assert await asyncio.to_thread(main, argv) == 2
    assert "MigrationPrivilegeError" in capsys.readouterr().err
    assert (await schema.migrate(db.dsn(NAMES.owner), directory=directory)).applied[0].filename == "999_later.sql"


async def test_the_backfill_role_loads_with_set_based_reference_checks_and_the_read_only_role_verifies(
    databases: tuple[Callable[[], Awaitable[Prepared]], Prepared],
) -> None:
    fresh = await databases[0]()
    snapshot = sample_snapshot(projects=30, edges=60, contributors=10, assets=10, contributions=60, tasks=10)
    report = await backfill(fresh.dsn(NAMES.backfill), snapshot)  # VACUUM and ANALYZE included
    assert report.references_per_batch  # GRANT SET ON PARAMETER session_replication_role took effect
    verified = await verify(snapshot, fresh.dsn(NAMES.readonly))
    assert verified.ok, verified.differences[:3]


async def test_the_read_only_role_cannot_write_even_with_read_write_transactions(db: Prepared) -> None:
    conn = await asyncpg.connect(db.dsn(NAMES.readonly))
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await conn.execute("DELETE FROM agent_tasks")
        await conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM agent_tasks")
    finally:
        await conn.close()


async def test_names_are_quoted_by_postgresql_whatever_they_hold(db: Prepared) -> None:
    hostile = RoleNames(
        owner=NAMES.owner, app=NAMES.app, readonly='x"; DROP TABLE projects; --', backfill=NAMES.backfill
    )
    conn = await asyncpg.connect(db.admin_dsn)
    try:
        statements = await role_statements(conn, hostile)
    finally:
        await conn.close()
    assert 'CREATE ROLE "x""; DROP TABLE projects; --" LOGIN NOSUPERUSER' in statements[0]
    assert f"GRANT USAGE ON SCHEMA public TO {_ident(NAMES.app)}" in " ".join(statements)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ({"app": "pg_app"}, "reserved by PostgreSQL"),
        ({"app": "public"}, "reserved by PostgreSQL"),
        ({"readonly": "coherence_app"}, "four different names"),
        ({"owner": ""}, "the owner role's name is empty"),
        ({"backfill": "b" * 64}, "longer than 63 bytes"),
    ],
)
def test_role_names_that_postgresql_would_refuse_or_truncate_are_refused(names: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RoleNames(**names)


async def test_a_superuser_is_refused_as_a_least_privilege_role(db: Prepared) -> None:
    conn = await asyncpg.connect(db.admin_dsn)
    try:
        superuser = await conn.fetchval("SELECT current_user")
        with pytest.raises(ConfigurationError, match=f"may not be SUPERUSER.*\\({superuser} is\\)"):
            await role_statements(conn, RoleNames(owner=superuser))
    finally:
        await conn.close()


async def test_the_command_prints_the_statements_it_would_run(db: Prepared, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["roles", "--database-url", db.admin_dsn, *(f"--{kind}={name}" for kind, name in NAMES.items())]
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert "GRANT SET ON PARAMETER session_replication_role TO " + NAMES.backfill + ";" in out
    assert all(line.endswith(";") for line in out)
    assert not any(line.startswith("CREATE ROLE") for line in out)  # they exist: nothing to create


async def test_check_finds_no_drift_once_applied_and_names_a_privilege_granted_by_hand(
    databases: tuple[Callable[[], Awaitable[Prepared]], Prepared], capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = await databases[0]()
    admin = await asyncpg.connect(fresh.admin_dsn)
    try:
        assert await role_drift(admin, NAMES) == []
        await admin.execute(f"GRANT TRUNCATE ON projects TO {_ident(NAMES.app)}")
        await admin.execute(f"REVOKE SELECT ON schema_migrations FROM {_ident(NAMES.readonly)}")
        await admin.execute(f"ALTER ROLE {_ident(NAMES.readonly)} RESET default_transaction_read_only")
        assert set(await role_drift(admin, NAMES)) == {
            f"would grant SELECT on table schema_migrations to {NAMES.readonly}",
            f"would set default_transaction_read_only=on for {NAMES.readonly}",
            f"would revoke TRUNCATE on table projects to {NAMES.app}",
        }
        assert await role_drift(admin, NAMES) != []  # the check rolled back: nothing was fixed
        argv = ["roles", "--check", "--database-url", fresh.admin_dsn, *(f"--{k}={n}" for k, n in NAMES.items())]
        assert await asyncio.to_thread(main, argv) == 1
        assert f"would revoke TRUNCATE on table projects to {NAMES.app}" in capsys.readouterr().out
        await apply_roles(admin, NAMES)
        assert await role_drift(admin, NAMES) == []
        assert await asyncio.to_thread(main, argv) == 0
        assert "the roles match the access map" in capsys.readouterr().out
    finally:
        await admin.close()


async def test_check_on_a_database_without_the_roles_lists_what_apply_would_create(db: Prepared) -> None:
    others = RoleNames(
        owner=f"cs_o2_{SUFFIX}", app=f"cs_a2_{SUFFIX}", readonly=f"cs_r2_{SUFFIX}", backfill=f"cs_b2_{SUFFIX}"
    )
    admin = await asyncpg.connect(db.admin_dsn)
    try:
        drift = await role_drift(admin, others)
        exists = await admin.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", others.app)
    finally:
        await admin.close()
    assert f"would create role {others.app}" in drift
    assert f"would grant SET on parameter session_replication_role to {others.backfill}" in drift
    assert exists == 0  # rolled back


async def test_the_read_only_role_creates_no_temporary_table(db: Prepared) -> None:
    conn = await asyncpg.connect(db.dsn(NAMES.readonly))
    try:
        await conn.execute("SET default_transaction_read_only = off")  # its own session may
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied to create temporary tables"):
            await conn.execute("CREATE TEMPORARY TABLE intruder (id int)")
    finally:
        await conn.close()


@pytest.mark.parametrize("role", [NAMES.owner, NAMES.backfill])
async def test_the_owner_and_the_backfill_keep_temporary_tables(db: Prepared, role: str) -> None:
    # PUBLIC lost TEMPORARY; these two have it by name (the backfill stages in temporary tables,
    # and a backfill run as the owner must not break).
    conn = await asyncpg.connect(db.dsn(role))
    try:
        await conn.execute("CREATE TEMPORARY TABLE staged (id int)")
    finally:
        await conn.close()


async def test_check_names_what_public_was_given_back_by_hand(
    databases: tuple[Callable[[], Awaitable[Prepared]], Prepared],
) -> None:
    # PUBLIC's grants reach every role: CREATE on the schema given back lets the application create tables.
    fresh = await databases[0]()
    admin = await asyncpg.connect(fresh.admin_dsn)
    try:
        assert await role_drift(admin, NAMES) == []
        database = await admin.fetchval("SELECT current_database()")
        await admin.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        await admin.execute(f"GRANT TEMPORARY ON DATABASE {_ident(database)} TO PUBLIC")
        assert set(await role_drift(admin, NAMES)) == {
            "would revoke CREATE on schema public to PUBLIC",
            f"would revoke TEMPORARY on database {database} to PUBLIC",
        }
        await apply_roles(admin, NAMES)
        assert await role_drift(admin, NAMES) == []
    finally:
        await admin.close()
