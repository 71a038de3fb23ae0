"""A throwaway database migrated to the current schema, for the generator, the lint and the bench.

With a server DSN (`--database-url`/DATABASE_URL) a fresh database is created on that server and
dropped afterwards; without one, a throwaway embedded server runs on tmpfs and is deleted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from coherence_sql.embedded import EmbeddedPostgres, scratch_parent
from coherence_sql.errors import DatabaseUnavailableError
from coherence_sql.redaction import failure_message, redact
from coherence_sql.schema import migrate


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@asynccontextmanager
async def _database_on(server_dsn: str) -> AsyncIterator[str]:
    name = f"coherence_sql_scratch_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(server_dsn)
    except Exception as exc:
        raise DatabaseUnavailableError(
            f"cannot connect to {redact(server_dsn)}: {failure_message(exc, str(exc), server_dsn)}"
        ) from None
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_database(server_dsn, name)
    finally:
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def _embedded() -> AsyncIterator[str]:
    parent = Path(tempfile.mkdtemp(prefix="coherence-sql-scratch-", dir=scratch_parent()))
    server = EmbeddedPostgres(parent / "pg", durable=False)
    try:
        yield server.start()
    finally:
        server.destroy()
        shutil.rmtree(parent, ignore_errors=True)


@asynccontextmanager
async def scratch_database(dsn: str | None = None, *, schema_dir: Path | None = None) -> AsyncIterator[str]:
    """Yield the DSN of a new database with every schema file applied; remove it afterwards.

    `dsn` (else $DATABASE_URL) names the server to create it on; with neither, an embedded
    server is started for the purpose.
    """
    server = dsn or os.environ.get("DATABASE_URL", "").strip() or None
    context = _database_on(server) if server else _embedded()
    async with context as scratch:
        await migrate(scratch, directory=schema_dir)
        yield scratch
