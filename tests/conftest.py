"""Shared fixtures: one real PostgreSQL for the whole run, a migrated database, per-test isolation.

The server is the embedded one on tmpfs unless TEST_DATABASE_URL names another. Isolation is by
TRUNCATE of every table (about 5 ms; docs/decisions.md has the measurements behind the choice).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, settings

from coherence_sql.db import Connection, connect
from coherence_sql.embedded import EmbeddedPostgres, scratch_parent
from coherence_sql.schema import HISTORY_TABLE, migrate
from tests.pg import PgServer, with_database

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The server for the whole run: TEST_DATABASE_URL, else a throwaway embedded one on tmpfs."""
    external = os.environ.get("TEST_DATABASE_URL", "").strip()
    if external:
        yield PgServer(admin_dsn=external, embedded=False)
        return
    data_dir = Path(tempfile.mkdtemp(prefix="coherence-sql-test-", dir=scratch_parent())) / "pg"
    server = EmbeddedPostgres(data_dir, durable=False)
    try:
        yield PgServer(admin_dsn=server.start(), embedded=True, server=server)
    finally:
        server.destroy()
        shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
async def database_factory(
    pg_server: PgServer,
) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Creates empty databases on the test server (dropped at the end of the run); returns DSNs."""
    created: list[str] = []

    async def create() -> str:
        name = f"cs_test_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(pg_server.admin_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        created.append(name)
        return with_database(pg_server.admin_dsn, name)

    yield create
    admin = await asyncpg.connect(pg_server.admin_dsn)
    try:
        for name in created:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def migrated_dsn(database_factory: Callable[[], Awaitable[str]]) -> str:
    """A database migrated by the runner once per run; tests truncate it through `clean_dsn`."""
    dsn = await database_factory()
    await migrate(dsn)
    return dsn


@pytest.fixture(scope="session")
async def _truncate_sql(migrated_dsn: str) -> str:
    conn = await asyncpg.connect(migrated_dsn)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) AS t FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> $1 ORDER BY tablename",
            HISTORY_TABLE,
        )
    finally:
        await conn.close()
    return f"TRUNCATE {', '.join(r['t'] for r in tables)} RESTART IDENTITY CASCADE"


@pytest.fixture
async def clean_dsn(migrated_dsn: str, _truncate_sql: str) -> str:
    """The migrated database, emptied for this test."""
    conn = await asyncpg.connect(migrated_dsn)
    try:
        await conn.execute(_truncate_sql)
    finally:
        await conn.close()
    return migrated_dsn


@pytest.fixture
async def conn(clean_dsn: str) -> AsyncIterator[Connection]:
    """A package connection (codecs, timeouts) to the emptied migrated database."""
    connection = await connect(clean_dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def empty_dsn(database_factory: Callable[[], Awaitable[str]]) -> str:
    """A brand-new database with nothing in it (for runner tests)."""
    return await database_factory()
