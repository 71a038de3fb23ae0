"""The backfill's foreign keys: checked once per batch (the parents locked and counted) with the
per-row triggers skipped when the role may set session_replication_role and nothing else would be
skipped; checked per row by the triggers otherwise. Both paths end in the same verified state, and a
batch naming a parent PostgreSQL lacks is refused whole on either."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from coherence_sql.commands.render import backfill_text
from coherence_sql.db import connect as connect_db
from coherence_sql.errors import UnknownReferenceError
from coherence_sql.schema import migrate
from coherence_sql.sql import backfill as backfill_sql
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import Snapshot, write_snapshot
from coherence_sql.transfer.verify import verify
from tests.transfer.test_backfill import ROOT, run


def snapshot() -> Snapshot:
    return sample_snapshot(projects=80, edges=300, contributors=30, assets=20, contributions=400, tasks=10, seed=11)


def as_user(dsn: str, user: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


@pytest.fixture
async def migrated(database_factory: Callable[[], Awaitable[str]]) -> str:
    """A database of its own: tests here add roles' grants and triggers."""
    dsn = await database_factory()
    await migrate(dsn)
    return dsn


@pytest.fixture
async def plain_role(migrated: str) -> AsyncIterator[str]:
    """A login role that owns nothing and is no superuser, with the privileges the backfill needs."""
    name = f"cs_plain_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(migrated)
    try:
        await admin.execute(f"CREATE ROLE {name} LOGIN")
        await admin.execute(
            f"GRANT USAGE ON SCHEMA public TO {name}; "
            f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {name}; "
            f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {name}"
        )
        yield name
        await admin.execute(f"DROP OWNED BY {name}; DROP ROLE {name}")
    finally:
        await admin.close()


async def test_a_superuser_checks_references_per_batch_and_ends_where_the_per_row_path_ends(
    migrated: str, database_factory: Callable[[], Awaitable[str]]
) -> None:
    per_row_dsn = await database_factory()
    await migrate(per_row_dsn)
    data = snapshot()

    fast = await backfill(migrated, data, batch_size=64)
    slow = await backfill(per_row_dsn, data, batch_size=64, per_row_foreign_keys=True)

    assert (fast.references_per_batch, slow.references_per_batch) == (True, False)
    assert "checked per batch" in backfill_text(fast)
    assert fast.as_json()["references_per_batch"] is True
    assert fast.inserted == slow.inserted == fast.records
    for dsn in (migrated, per_row_dsn):
        assert (await verify(data, dsn, threshold_percent=0.0)).differences == []


async def test_the_script_takes_per_row_foreign_keys(migrated: str, tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    write_snapshot(path, snapshot())

    result = await run(
        sys.executable,
        str(ROOT / "scripts" / "backfill_postgres.py"),
        str(path),
        "--database-url",
        migrated,
        "--per-row-foreign-keys",
        "--json",
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["references_per_batch"] is False
    assert report["inserted"] == report["records"]


async def test_a_role_that_may_not_set_session_replication_role_checks_per_row(migrated: str, plain_role: str) -> None:
    data = snapshot()

    report = await backfill(as_user(migrated, plain_role), data, batch_size=64)

    assert report.references_per_batch is False
    assert report.inserted == report.records
    assert (await verify(data, migrated, threshold_percent=0.0)).differences == []


async def test_a_role_granted_set_on_the_parameter_checks_per_batch(migrated: str, plain_role: str) -> None:
    admin = await asyncpg.connect(migrated)
    try:
        await admin.execute(f"GRANT SET ON PARAMETER session_replication_role TO {plain_role}")
    finally:
        await admin.close()
    data = snapshot()

    report = await backfill(as_user(migrated, plain_role), data, batch_size=64)

    assert report.references_per_batch is True
    assert (await verify(data, migrated, threshold_percent=0.0)).differences == []


@pytest.mark.parametrize("table", ["contributions", "assets", "project_dependencies", "projects"])
async def test_a_trigger_the_merges_do_not_know_keeps_every_trigger_firing(migrated: str, table: str) -> None:
    conn = await asyncpg.connect(migrated)
    try:
        # Someone's audit trigger: replica would silently skip it, so the backfill must not use it.
        await conn.execute(
            f"""
            CREATE TABLE audit (n BIGINT NOT NULL);
            CREATE FUNCTION audit_row() RETURNS trigger AS $$
            BEGIN INSERT INTO audit VALUES (1); RETURN NULL; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER audit_row AFTER INSERT OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION audit_row();
            """
        )
        data = snapshot()

        report = await backfill(migrated, data, batch_size=64)

        assert report.references_per_batch is False
        written = {
            "contributions": len(data.contributions),
            "assets": len(data.assets),  # their inserts; the total_cost updates fire it too
            "project_dependencies": 1,
            "projects": len(data.projects),
        }[table]
        assert await conn.fetchval("SELECT count(*) FROM audit") >= written
    finally:
        await conn.close()
    assert (await verify(data, migrated, threshold_percent=0.0)).differences == []


@pytest.mark.parametrize("per_batch", ["on", "off"])
@pytest.mark.parametrize("missing", ["contributor", "asset"])
async def test_a_batch_naming_a_parent_postgresql_lacks_is_refused_whole(
    migrated: str, per_batch: str, missing: str
) -> None:
    conn = await connect_db(migrated)
    try:
        contributor, asset = uuid.uuid4(), uuid.uuid4()
        now = datetime.now(UTC)
        await conn.execute(
            "INSERT INTO contributors (id, type, name, email, email_key, created_at, metadata) "
            "VALUES ($1, 'HUMAN', 'Ada', 'ada@example.org', 'ada@example.org', $2, '{}')",
            contributor,
            now,
        )
        await conn.execute(
            "INSERT INTO assets (id, asset_type, name, description, created_at, metadata) "
            "VALUES ($1, 'CODE', 'lib', 'a library', $2, '{}')",
            asset,
            now,
        )
        await backfill_sql.create_staging(conn)
        await backfill_sql.start_session(conn, snapshot_sha256="a" * 64)
        await backfill_sql.start_unit(conn, unit="contributions/0")
        await backfill_sql.set_reference_checks(conn, per_batch=per_batch)
        rows = [
            (1, uuid.uuid4(), contributor, asset, "1.00", "0.50", "{}", now),
            (
                2,
                uuid.uuid4(),
                uuid.uuid4() if missing == "contributor" else contributor,
                uuid.uuid4() if missing == "asset" else asset,
                "2.00",
                "0.50",
                "{}",
                now,
            ),
        ]
        columns = ["ord", "id", "contributor_id", "asset_id", "cost_amount", "coherence_score", "metadata", "timestamp"]
        async with conn.transaction():
            await conn.copy_records_to_table("backfill_stage_contributions", records=rows, columns=columns)
            savepoint = conn.transaction()
            await savepoint.start()
            with pytest.raises(UnknownReferenceError, match=f"the batch names 1 {missing}s that PostgreSQL does not"):
                await backfill_sql.merge_contributions(conn)
            await savepoint.rollback()
            assert await conn.fetchval("SELECT count(*) FROM backfill_stage_contributions") == 2

        assert await conn.fetchval("SELECT count(*) FROM contributions") == 0
        assert await conn.fetchval("SELECT total_cost FROM assets") == Decimal("0.00")
        assert await conn.fetchval("SELECT count(*) FROM backfill_checkpoints") == 0
        assert await conn.fetchval("SHOW session_replication_role") == "origin"
    finally:
        await conn.close()
