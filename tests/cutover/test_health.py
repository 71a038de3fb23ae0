"""Health for /api/ready (coherence_sql.health) and the start-up refusal of a database the role
cannot write.

`check_health()` reports, never raises, and returns within its timeout even when the server is
frozen; the schema is compared file by file (behind and edited files stop readiness, ahead is a
warning); readiness of the cut-over stores depends on the phase. The faults (a frozen server,
read-only sessions, revoked privileges) are done to a private server of this module's own
(tests/faults/server.py), never to the shared test server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from coherence_sql.cli import main
from coherence_sql.cutover.service import (
    STATUS_TIMEOUT_S,
    CutoverStores,
    PostgresMismatchRecorder,
    open_cutover_stores,
)
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.cutover.shadow import Mismatch
from coherence_sql.cutover.status import StoreStatus
from coherence_sql.db import create_pool
from coherence_sql.embedded import scratch_parent
from coherence_sql.errors import DatabaseNotWritableError
from coherence_sql.health import (
    STORE_WRITES,
    CutoverCheck,
    DatabaseCheck,
    DatabaseProbe,
    check_health,
    cutover_verdict,
)
from coherence_sql.models import Asset, AssetType, Contributor, ContributorType, GitHubOrganization, Project
from coherence_sql.schema import discover
from coherence_sql.stores.postgres import PostgresStores
from coherence_sql.stores.postgres import connect as connect_stores
from tests.cutover.workload import Workload
from tests.faults.server import APP_ROLE, PrivateServer
from tests.faults.traffic import dual_write_settings
from tests.pg import execute, with_database

TIMEOUT_S = 1.0  # the health check's timeout in the frozen-server test (5 s in production)
MARGIN_S = 1.0  # what a loaded 2-core machine may add to it


# -- on the shared test server -------------------------------------------------------------------


async def test_the_postgres_stores_on_a_current_writable_database_are_ready(
    postgres_stores: PostgresStores,
) -> None:
    report = await check_health(postgres_stores)
    assert report.ready is True
    assert report.reasons == []
    assert report.warnings == []
    assert report.database is not None
    assert report.database.reachable is True
    assert report.database.server_version
    assert report.database.round_trip_ms is not None
    assert report.database.round_trip_ms > 0
    assert report.schema_files is not None
    assert report.schema_files.current is True
    assert report.schema_files.shipped == report.schema_files.applied == len(discover())
    assert report.writes is not None
    assert report.writes.writable is True
    assert report.writes.missing_privileges == []
    assert report.cutover is None
    # A pool's users get the same check.
    assert (await check_health(postgres_stores.pool)).ready is True


async def test_an_empty_database_is_not_ready_and_the_report_names_every_pending_file(empty_dsn: str) -> None:
    pool = await create_pool(empty_dsn)
    try:
        report = await check_health(pool)
    finally:
        await pool.close()
    assert report.ready is False
    assert report.schema_files is not None
    assert report.schema_files.applied == 0
    assert report.schema_files.behind == [f.filename for f in discover()]
    assert any("001_initial_schema.sql" in reason and "coherence-sql migrate" in reason for reason in report.reasons)
    # The stores' tables do not exist either: nothing they write can be written.
    assert report.writes is not None
    assert "projects INSERT" in report.writes.missing_privileges
    assert len(report.reasons) == 1  # "lacks INSERT" on tables not there yet would only repeat it


async def test_a_schema_ahead_of_the_code_is_a_warning_and_an_edited_file_is_a_reason(
    postgres_stores: PostgresStores, clean_dsn: str
) -> None:
    newest = discover()[-1]
    try:
        await execute(
            clean_dsn,
            "INSERT INTO schema_migrations (version, name, checksum, applied_by, success) "
            "VALUES (999, 'from_the_future', 'x', 'test', true)",
        )
        report = await check_health(postgres_stores)
        assert report.ready is True
        assert report.schema_files is not None
        assert report.schema_files.ahead == ["999_from_the_future.sql"]
        assert any("ahead of this code: 999_from_the_future.sql" in warning for warning in report.warnings)

        await execute(clean_dsn, f"UPDATE schema_migrations SET checksum = 'edited' WHERE version = {newest.version}")
        report = await check_health(postgres_stores)
        assert report.ready is False
        assert report.schema_files is not None
        assert report.schema_files.changed == [newest.filename]
        assert any(newest.filename in reason for reason in report.reasons)
    finally:
        await execute(clean_dsn, "DELETE FROM schema_migrations WHERE version = 999")
        await execute(
            clean_dsn,
            f"UPDATE schema_migrations SET checksum = '{newest.checksum}' WHERE version = {newest.version}",
        )


async def test_the_cutover_stores_report_their_state(cutover_stores: CutoverStores) -> None:
    report = await cutover_stores.check_health()
    assert report.ready is True
    assert report.reasons == []
    assert report.cutover == CutoverCheck(
        phase="dual-write", degraded=False, diverged=False, diverged_since=None, journal_pending=0, dead_letters=0
    )
    assert report.database is not None
    assert report.database.reachable is True
    # What the API serves: JSON that reads back as the same model.
    assert type(report).model_validate_json(report.model_dump_json()) == report


async def test_the_store_status_is_what_an_api_can_return_as_it_is(cutover_stores: CutoverStores) -> None:
    """/api/health serves StoreStatus (response_model=StoreStatus): JSON that reads back as an equal
    model, and a schema that names every field (PostgresHealth's serializer drops the fields that
    do not apply; its schema still lists them)."""
    await cutover_stores.graph.upsert_project(Project(ecosystem="npm", name="react", version="1", description="UI"))
    status = await cutover_stores.store_status()
    as_json = status.model_dump_json()
    assert json.loads(as_json) == status.model_dump(mode="json")
    assert StoreStatus.model_validate_json(as_json) == status
    assert json.loads(as_json)["postgres"].keys() == {"configured", "pool", "reachable", "server_version"}
    schema = StoreStatus.model_json_schema(mode="serialization")
    postgres = schema["$defs"]["PostgresHealth"]
    assert postgres["properties"].keys() == {"configured", "pool", "reachable", "server_version", "error"}
    assert postgres["required"] == ["configured"]
    assert schema["required"] == list(StoreStatus.model_fields)


async def test_in_the_memory_phase_postgres_is_not_asked(tmp_path: Path) -> None:
    async with open_cutover_stores(CutoverSettings(), reconcile_interval_s=None) as stores:
        report = await stores.check_health()
    assert report.ready is True
    assert report.database is None
    assert report.schema_files is None
    assert report.cutover is not None
    assert report.cutover.phase == "memory"


def test_the_health_command_exits_0_when_ready_and_prints_the_report(
    migrated_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health", "--database-url", migrated_dsn]) == 0
    text = capsys.readouterr().out
    assert "\nready\n" in text
    assert f"schema: {len(discover())} of {len(discover())} files applied, current" in text
    assert main(["health", "--database-url", migrated_dsn, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ready"] is True
    assert report["writes"]["writable"] is True


def test_the_health_command_exits_1_naming_why(empty_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--database-url", empty_dsn]) == 1
    text = capsys.readouterr().out
    assert "NOT READY" in text
    assert "reason: the schema is behind this code: 001_initial_schema.sql" in text


def test_the_health_command_reports_a_database_that_is_not_there(
    empty_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = with_database(empty_dsn, "no_such_database")
    assert main(["health", "--database-url", missing, "--json", "--timeout", "2"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ready"] is False
    assert report["database"]["reachable"] is False
    assert report["database"]["error"].startswith("DatabaseUnavailableError")
    assert '"no_such_database" does not exist' in report["database"]["error"]


# -- readiness by phase (the verdict alone) ------------------------------------------------------


def _cutover(phase: str, *, diverged: bool = False) -> CutoverCheck:
    return CutoverCheck(
        phase=phase,  # type: ignore[arg-type]
        degraded=False,
        diverged=diverged,
        diverged_since="2026-12-01T00:00:00Z" if diverged else None,
        journal_pending=3,
        dead_letters=0,
    )


DOWN = DatabaseProbe(database=DatabaseCheck(reachable=False, error="DatabaseUnavailableError: refused"))


def test_in_dual_write_postgres_down_or_diverged_leaves_the_api_ready_with_warnings() -> None:
    report = cutover_verdict(_cutover("dual-write", diverged=True), DOWN, checked_in_ms=1.0)
    assert report.ready is True
    assert report.reasons == []
    assert "PostgreSQL does not answer: DatabaseUnavailableError: refused" in report.warnings
    assert any("diverged" in warning for warning in report.warnings)
    assert "3 write(s) wait in the journal for PostgreSQL" in report.warnings


def test_in_phase_3_postgres_down_or_diverged_is_not_ready() -> None:
    down = cutover_verdict(_cutover("postgres-primary"), DOWN, checked_in_ms=1.0)
    assert down.ready is False
    assert down.reasons == ["PostgreSQL does not answer: DatabaseUnavailableError: refused"]
    up = DatabaseProbe(database=DatabaseCheck(reachable=True))
    diverged = cutover_verdict(_cutover("postgres-primary", diverged=True), up, checked_in_ms=1.0)
    assert diverged.ready is False
    assert diverged.reasons == ["PostgreSQL diverged since 2026-12-01T00:00:00Z: it misses writes nothing can replay"]


# -- on a private server: frozen, read-only, privileges ------------------------------------------


@pytest.fixture(scope="module")
def _private_server() -> Iterator[PrivateServer]:
    parent = Path(tempfile.mkdtemp(prefix="coherence-sql-health-", dir=scratch_parent()))
    server = PrivateServer(parent / "pg")
    try:
        yield server
    finally:
        server.destroy()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="module")
async def _prepared(_private_server: PrivateServer) -> PrivateServer:
    await _private_server.prepare()
    return _private_server


@pytest.fixture
async def server(_prepared: PrivateServer) -> AsyncIterator[PrivateServer]:
    await _prepared.heal()
    try:
        yield _prepared
    finally:
        await _prepared.heal()


@pytest.fixture
async def database(server: PrivateServer) -> str:
    return await server.new_database()


@pytest.mark.slow
async def test_a_frozen_server_is_reported_within_the_timeout(
    server: PrivateServer, database: str, tmp_path: Path
) -> None:
    """check_health() and store_status() answer on time while PostgreSQL is SIGSTOPped."""
    settings = dual_write_settings(server.app_dsn(database), tmp_path / "journal.jsonl")
    async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
        assert stores.postgres is not None
        assert (await check_health(stores.postgres, timeout_s=TIMEOUT_S)).ready is True
        server.freeze()
        try:
            started = time.perf_counter()
            report = await check_health(stores.postgres, timeout_s=TIMEOUT_S)
            took = time.perf_counter() - started
            started = time.perf_counter()
            status = await stores.store_status()
            status_took = time.perf_counter() - started
        finally:
            server.thaw()
    assert took < TIMEOUT_S + MARGIN_S, took
    assert report.ready is False
    assert report.database == DatabaseCheck(reachable=False, error=f"no answer within {TIMEOUT_S:g}s")
    assert report.reasons == [f"PostgreSQL does not answer: no answer within {TIMEOUT_S:g}s"]
    assert status_took < STATUS_TIMEOUT_S + MARGIN_S, status_took
    assert status.postgres.reachable is False
    assert status.postgres.error == f"no answer within {STATUS_TIMEOUT_S:g}s"


async def test_the_stores_refuse_to_start_on_read_only_sessions(
    server: PrivateServer, database: str, tmp_path: Path
) -> None:
    await server.set_read_only(True)
    settings = dual_write_settings(server.app_dsn(database), tmp_path / "journal.jsonl")
    with pytest.raises(DatabaseNotWritableError, match=r"read-only \(default_transaction_read_only = on\)"):
        async with open_cutover_stores(settings, reconcile_interval_s=None):
            pass


async def test_the_stores_refuse_to_start_without_the_privileges_they_write_with(
    server: PrivateServer, database: str, tmp_path: Path
) -> None:
    await execute(
        server.admin_dsn(database),
        f"REVOKE INSERT ON contributions FROM {APP_ROLE}; REVOKE DELETE ON agent_tasks FROM {APP_ROLE}",
    )
    settings = dual_write_settings(server.app_dsn(database), tmp_path / "journal.jsonl")
    with pytest.raises(DatabaseNotWritableError) as refused:
        async with open_cutover_stores(settings, reconcile_interval_s=None):
            pass
    assert str(refused.value) == (
        f"the stores cannot write to this database: role {APP_ROLE} lacks contributions INSERT, agent_tasks DELETE"
    )
    assert server.password not in str(refused.value)


async def test_the_stores_refuse_to_start_on_tables_they_may_write_but_not_read(
    server: PrivateServer, database: str, tmp_path: Path
) -> None:
    # INSERT ... RETURNING, ON CONFLICT DO UPDATE and UPDATE ... WHERE all need SELECT: without it
    # every write of these tables would fail after a start-up that said all was well.
    await execute(server.admin_dsn(database), f"REVOKE SELECT ON contributors, agent_tasks FROM {APP_ROLE}")
    settings = dual_write_settings(server.app_dsn(database), tmp_path / "journal.jsonl")
    with pytest.raises(DatabaseNotWritableError) as refused:
        async with open_cutover_stores(settings, reconcile_interval_s=None):
            pass
    assert str(refused.value) == (
        f"the stores cannot write to this database: role {APP_ROLE} lacks contributors SELECT, agent_tasks SELECT"
    )


async def test_the_stores_refuse_to_start_without_the_sequences_their_inserts_draw_on(
    server: PrivateServer, database: str, tmp_path: Path
) -> None:
    await execute(server.admin_dsn(database), f"REVOKE USAGE ON SEQUENCE projects_id_seq FROM {APP_ROLE}")
    settings = dual_write_settings(server.app_dsn(database), tmp_path / "journal.jsonl")
    with pytest.raises(DatabaseNotWritableError) as refused:
        async with open_cutover_stores(settings, reconcile_interval_s=None):
            pass
    assert str(refused.value) == (
        f"the stores cannot write to this database: role {APP_ROLE} lacks public.projects_id_seq USAGE"
    )


@pytest.mark.slow
async def test_a_degraded_start_stays_degraded_while_the_database_cannot_be_written(
    server: PrivateServer,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("POSTGRES_POOL_TIMEOUT", "1")
    settings = dual_write_settings(server.app_dsn(database), tmp_path / "journal.jsonl")
    server.freeze()  # away at start-up: phases 1-2 start degraded
    try:
        async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
            server.thaw()
            await server.set_read_only(True)  # back, but as a read-only node
            with caplog.at_level(logging.ERROR, logger="coherence_sql.cutover.service"):
                assert await stores.attach_postgres() is False
            assert stores.degraded is True
            assert "cannot be written" in caplog.text
            report = await stores.check_health()
            assert report.ready is True  # memory serves in dual-write
            assert any("DatabaseNotWritableError" in warning and "read-only" in warning for warning in report.warnings)

            await server.set_read_only(False)
            assert await stores.attach_postgres() is True
            assert (await stores.check_health()).warnings == []
    finally:
        server.thaw()


@pytest.mark.slow
async def test_a_role_granted_exactly_the_store_writes_runs_every_write_path(
    server: PrivateServer, database: str, tmp_path: Path
) -> None:
    """STORE_WRITES is enough: the stores' write paths (their queries, functions and triggers) run
    as a role that has exactly those privileges (and SELECT on the schema history), and the
    start-up check lets it in."""
    role = f"exact_writer_{uuid.uuid4().hex[:8]}"
    grants = "; ".join(f"GRANT {', '.join(wanted)} ON {table} TO {role}" for table, wanted in STORE_WRITES.items())
    admin = server.admin_dsn(database)
    await execute(
        admin,
        f"CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA public TO {role}; "
        # The schema check reads the history; SERIAL columns draw on their sequences.
        f"GRANT SELECT ON schema_migrations TO {role}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}; "
        f"{grants}",
    )
    dsn = f"postgresql://{role}@/{database}?host={server.embedded.socket_dir}"  # trusted local socket
    try:
        settings = CutoverSettings(
            dual_write=True, journal_path=tmp_path / "journal.jsonl", database_url=dsn, shadow_compare_percent=0
        )
        async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
            assert stores.postgres is not None
            postgres = stores.postgres
            load = Workload(postgres.graph, postgres.tasks, seed=11, name="x")
            for _ in range(80):
                await load.step()
            contributor = Contributor(type=ContributorType.HUMAN, name="p", email="p@coherence.dev")
            person = await postgres.graph.create_contributor(contributor)
            asset = await postgres.graph.create_asset(Asset(type=AssetType.CODE, description="a"))
            await postgres.graph.create_contribution(person.id, asset.id, Decimal("1.50"), 0.5, {})
            organization = GitHubOrganization(id="github-org:x", login="x", type="Organization")
            await postgres.graph.upsert_github_organization(organization)
            await postgres.graph.upsert_github_organization(organization)  # the update path
            mismatch = Mismatch(
                operation="get_project",
                key="npm/x",
                control=None,
                candidate={"name": "x"},
                control_ms=1.0,
                candidate_ms=1.0,
                error=None,
                observed_at=datetime.now(UTC),
            )
            await PostgresMismatchRecorder(postgres).record(mismatch)
            await postgres.tasks.clear()
            assert (await stores.check_health()).writes is not None
    finally:
        await execute(admin, f"DROP OWNED BY {role}; DROP ROLE {role}")


@pytest.mark.slow
async def test_the_stores_refuse_to_start_on_a_hot_standby(
    server: PrivateServer, database: str, tmp_path: Path
) -> None:
    """The private server restarted as a hot standby (standby.signal, no primary to follow: it
    serves read-only sessions in recovery), as when DATABASE_URL names a replica."""
    signal_file = server.embedded.data_dir / "standby.signal"
    await asyncio.to_thread(server.stop)
    signal_file.touch()
    try:
        await asyncio.to_thread(server.start)
        settings = dual_write_settings(server.app_dsn(database), tmp_path / "journal.jsonl")
        with pytest.raises(DatabaseNotWritableError, match=r"hot standby \(in recovery\): DATABASE_URL must name"):
            async with open_cutover_stores(settings, reconcile_interval_s=None):
                pass
        async with connect_stores(server.app_dsn(database)) as stores:  # the schema is there: only writing is refused
            report = await check_health(stores)
        assert report.ready is False
        assert report.writes is not None
        assert report.writes.in_recovery is True
        assert report.schema_files is not None
        assert report.schema_files.current is True
    finally:
        await asyncio.to_thread(server.stop)
        signal_file.unlink(missing_ok=True)
        await asyncio.to_thread(server.start)  # a primary again (it was never promoted)


async def test_check_health_never_raises_for_a_stopped_server(server: PrivateServer, database: str) -> None:
    async with connect_stores(server.app_dsn(database)) as stores:
        await asyncio.to_thread(server.stop)
        report = await check_health(stores, timeout_s=TIMEOUT_S)
    assert report.ready is False
    assert report.database is not None
    assert report.database.reachable is False
    assert report.database.error is not None
    assert report.database.error.startswith(("DatabaseUnavailableError", "PoolTimeoutError"))
    assert server.password not in report.model_dump_json()
