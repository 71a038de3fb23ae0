"""The test server: TEST_DATABASE_URL when set, else a throwaway embedded PostgreSQL on tmpfs.

Shared by the plugin's fixtures and by tests that start processes against the same server.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from coherence_sql.embedded import EmbeddedPostgres, scratch_parent

__all__ = ["PgServer", "create_database", "drop_databases", "start_test_server", "with_database"]


@dataclass(frozen=True)
class PgServer:
    """A server the tests may create and drop databases on (`admin_dsn` is a superuser's)."""

    admin_dsn: str
    embedded: bool
    server: EmbeddedPostgres | None = None


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@contextmanager
def start_test_server() -> Iterator[PgServer]:
    """TEST_DATABASE_URL's server, else an embedded one on tmpfs (fsync off), destroyed on exit."""
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


async def create_database(server: PgServer) -> tuple[str, str]:
    """A new empty database on `server`: its name and its DSN."""
    name = f"cs_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name, with_database(server.admin_dsn, name)


async def drop_databases(server: PgServer, names: list[str]) -> None:
    """Drop the databases `create_database` made (connections to them are ended)."""
    admin = await asyncpg.connect(server.admin_dsn)
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
