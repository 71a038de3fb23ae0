"""A private server (migrated directly, never through PgBouncer) and a PgBouncer pooling by
transaction in front of it; skipped, with the reason, when Debian's pgbouncer is not installed.

The application role gets the package's timeouts as role settings before PgBouncer opens its
first server connection: with transaction pooling that is where they must come from.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from coherence_sql.db import DEFAULT_SERVER_SETTINGS
from coherence_sql.embedded import scratch_parent
from tests.faults.server import APP_PASSWORD, APP_ROLE, PrivateServer
from tests.pgbouncer.bouncer import Bouncer, available

TIMEOUTS = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")


@pytest.fixture(scope="package")
def bouncer_dir() -> Iterator[Path]:
    if not available():
        pytest.skip("Debian's pgbouncer is not installed (apt-get install pgbouncer; CI installs it)")
    parent = Path(tempfile.mkdtemp(prefix="coherence-sql-pgbouncer-", dir=scratch_parent()))
    parent.chmod(0o755)
    try:
        yield parent
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="package")
def private_server(bouncer_dir: Path) -> Iterator[PrivateServer]:
    server = PrivateServer(bouncer_dir / "pg")
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="package")
async def database(private_server: PrivateServer) -> str:
    """A migrated database (migrated directly), the role's timeouts set."""
    await private_server.prepare()
    name = await private_server.new_database()
    await set_role_timeouts(private_server, on=True)
    return name


async def set_role_timeouts(server: PrivateServer, *, on: bool) -> None:
    conn = await asyncpg.connect(server.admin_dsn(), timeout=10)
    try:
        for setting in TIMEOUTS:
            value = DEFAULT_SERVER_SETTINGS[setting]
            # Literals, not parameters: ALTER ROLE takes none; the values are the package's constants.
            await conn.execute(
                f"ALTER ROLE {APP_ROLE} SET {setting} = '{value}'" if on else f"ALTER ROLE {APP_ROLE} RESET {setting}"
            )
    finally:
        await conn.close()


def new_bouncer(server: PrivateServer, database: str, directory: Path) -> Bouncer:
    socket_dir = server.embedded.socket_dir
    return Bouncer(directory, socket_dir=socket_dir, database=database, role=APP_ROLE, password=APP_PASSWORD)


@pytest.fixture(scope="package")
async def bouncer(private_server: PrivateServer, database: str, bouncer_dir: Path) -> AsyncIterator[Bouncer]:
    started = new_bouncer(private_server, database, bouncer_dir / "bouncer")
    await asyncio.to_thread(started.start)
    try:
        yield started
    finally:
        await asyncio.to_thread(started.stop)
