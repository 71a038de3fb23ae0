"""Fixtures: one real PostgreSQL for the run, a migrated database emptied per test, ready stores.

Offered to pytest by `coherence_sql.testing.plugin` (the package's `pytest11` entry point). The
server is TEST_DATABASE_URL's, else a throwaway embedded one on tmpfs. Isolation is by TRUNCATE
of every table a test wrote to (docs/decisions.md has the measurements behind the choice). Session
fixtures run on the session event loop; per-test ones on the loop the test runs on.

- `pg_server`: the server (`PgServer`: admin DSN, whether embedded).
- `database_factory`: `await database_factory()` makes an empty database, dropped at the end; a DSN.
- `migrated_dsn`: one database migrated by the schema runner for the whole run.
- `clean_dsn`: `migrated_dsn`, emptied for this test. `conn`: a package connection to it.
- `empty_dsn`: a brand-new database with nothing in it.
- `postgres_stores`: the PostgreSQL stores (`coherence_sql.connect`) over `clean_dsn`.
- `cutover_stores`: the cut-over stores in dual-write mode over fresh memory stores and `clean_dsn`,
  journal in `tmp_path`, no background replay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
import pytest_asyncio

from coherence_sql.db import Connection, connect
from coherence_sql.schema import HISTORY_TABLE, migrate
from coherence_sql.testing.emptying import Emptier, truncate_written_tables
from coherence_sql.testing.server import PgServer, create_database, drop_databases, start_test_server

if TYPE_CHECKING:  # the stores load when a test asks for them, not whenever pytest starts
    from coherence_sql.cutover.service import CutoverStores
    from coherence_sql.stores.postgres import PostgresStores


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The server for the whole run: TEST_DATABASE_URL, else a throwaway embedded one on tmpfs."""
    with start_test_server() as server:
        yield server


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_factory(pg_server: PgServer) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Creates empty databases on the test server (dropped at the end of the run); returns DSNs."""
    created: list[str] = []

    async def create() -> str:
        name, dsn = await create_database(pg_server)
        created.append(name)
        return dsn

    yield create
    await drop_databases(pg_server, created)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def migrated_dsn(database_factory: Callable[[], Awaitable[str]]) -> str:
    """A database migrated by the runner once per run; tests truncate it through `clean_dsn`."""
    dsn = await database_factory()
    await migrate(dsn)
    return dsn


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _truncate_sql(migrated_dsn: str) -> str:
    """One statement that empties every table but the schema history (the list read once from the
    catalog): a TRUNCATE of those a test wrote to (`coherence_sql.testing.emptying`)."""
    admin = await asyncpg.connect(migrated_dsn)
    try:
        tables = await admin.fetch(
            "SELECT format('%L', format('%I.%I', schemaname, tablename)) AS t FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> $1 ORDER BY tablename",
            HISTORY_TABLE,
        )
    finally:
        await admin.close()
    return truncate_written_tables([r["t"] for r in tables])


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _emptier(migrated_dsn: str) -> AsyncIterator[Emptier]:
    """The connection `clean_dsn` empties the database on, kept for the run."""
    emptier = Emptier(migrated_dsn)
    yield emptier
    await emptier.close()


@pytest_asyncio.fixture
async def clean_dsn(migrated_dsn: str, _truncate_sql: str, _emptier: Emptier) -> str:
    """The migrated database, emptied for this test."""
    await _emptier.empty(_truncate_sql)
    return migrated_dsn


@pytest_asyncio.fixture
async def conn(clean_dsn: str) -> AsyncIterator[Connection]:
    """A package connection (codecs, timeouts) to the emptied migrated database."""
    connection = await connect(clean_dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest_asyncio.fixture
async def empty_dsn(database_factory: Callable[[], Awaitable[str]]) -> str:
    """A brand-new database with nothing in it (for schema runner tests)."""
    return await database_factory()


@pytest_asyncio.fixture
async def postgres_stores(clean_dsn: str) -> AsyncIterator[PostgresStores]:
    """The PostgreSQL stores over the emptied migrated database; the pool closes after the test."""
    from coherence_sql.stores.postgres import connect as connect_stores

    async with connect_stores(clean_dsn) as stores:
        yield stores


@pytest_asyncio.fixture
async def cutover_stores(clean_dsn: str, tmp_path: Path) -> AsyncIterator[CutoverStores]:
    """The cut-over stores in dual-write mode (memory answers, PostgreSQL takes every write)."""
    from coherence_sql.cutover.service import open_cutover_stores
    from coherence_sql.cutover.settings import CutoverSettings

    settings = CutoverSettings(dual_write=True, journal_path=tmp_path / "journal.jsonl", database_url=clean_dsn)
    async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
        yield stores
