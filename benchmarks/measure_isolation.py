"""Measure the per-test isolation choice: TRUNCATE every table vs clone a template database.

Usage: python benchmarks/measure_isolation.py [--rounds 15] [--database-url DSN]
Without --database-url it starts a throwaway embedded server on tmpfs, as tests/conftest.py does.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from coherence_sql.embedded import EmbeddedPostgres, scratch_parent
from coherence_sql.schema import HISTORY_TABLE, migrate

# A few rows in the tables a typical test touches, written (untimed) before every TRUNCATE.
SAMPLE_ROWS = """
INSERT INTO projects (ecosystem, name, display_ecosystem, display_name, version) VALUES ('pypi', 'a', 'PyPI', 'A', '1');
INSERT INTO contributors (id, name, email, type)
VALUES ('00000000-0000-0000-0000-000000000001', 'Ada', 'a@x.org', 'HUMAN');
INSERT INTO assets (id, name, description, asset_type)
VALUES ('00000000-0000-0000-0000-000000000002', 'l', 'l', 'CODE');
INSERT INTO contributions (contributor_id, asset_id, cost_amount, coherence_score)
VALUES ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002', 1.50, 0.5);
INSERT INTO agent_tasks (id, direction, task_type, model, command) VALUES ('t', 'd', 'impl', 'm', 'c');
"""


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def median_ms(rounds: int, action: Callable[[], Awaitable[None]], before: Callable[[], Awaitable[None]]) -> float:
    timings: list[float] = []
    for _ in range(rounds):
        await before()
        started = time.perf_counter()
        await action()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


async def measure(admin_dsn: str, rounds: int) -> tuple[str, float, float]:
    suffix = uuid.uuid4().hex[:8]
    template, clone = f"cs_measure_tpl_{suffix}", f"cs_measure_clone_{suffix}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        version = str(await admin.fetchval("SHOW server_version"))
        await admin.execute(f'CREATE DATABASE "{template}"')
        try:
            template_dsn = with_database(admin_dsn, template)
            await migrate(template_dsn)
            conn = await asyncpg.connect(template_dsn)
            try:
                tables = await conn.fetch(
                    "SELECT quote_ident(tablename) AS t FROM pg_tables "
                    "WHERE schemaname = 'public' AND tablename <> $1 ORDER BY tablename",
                    HISTORY_TABLE,
                )
                truncate = f"TRUNCATE {', '.join(r['t'] for r in tables)} RESTART IDENTITY CASCADE"

                async def fill() -> None:
                    await conn.execute(SAMPLE_ROWS)

                async def empty() -> None:
                    await conn.execute(truncate)

                truncate_ms = await median_ms(rounds, empty, fill)
                await conn.execute(truncate)
            finally:
                await conn.close()  # a template cannot be cloned while anyone is connected to it

            async def nothing() -> None:
                return None

            async def clone_and_drop() -> None:
                await admin.execute(f'CREATE DATABASE "{clone}" TEMPLATE "{template}" STRATEGY FILE_COPY')
                await admin.execute(f'DROP DATABASE "{clone}"')

            clone_ms = await median_ms(rounds, clone_and_drop, nothing)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{clone}"')
            await admin.execute(f'DROP DATABASE IF EXISTS "{template}"')
    finally:
        await admin.close()
    return version, truncate_ms, clone_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15, help="timed repetitions of each (default 15)")
    parser.add_argument("--database-url", default=None, help="measure on this server instead of an embedded one")
    args = parser.parse_args(argv)

    server: EmbeddedPostgres | None = None
    scratch: Path | None = None
    try:
        if args.database_url:
            admin_dsn, where = args.database_url, "the given server"
        else:
            scratch = Path(tempfile.mkdtemp(prefix="cs-measure-", dir=scratch_parent()))
            server = EmbeddedPostgres(scratch / "pg", durable=False)
            admin_dsn, where = server.start(), f"embedded, fsync off, data in {scratch}"
        version, truncate_ms, clone_ms = asyncio.run(measure(admin_dsn, args.rounds))
    finally:
        if server is not None:
            server.destroy()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    print(f"PostgreSQL {version} ({where}), median of {args.rounds}:")
    print(f"  TRUNCATE all tables RESTART IDENTITY CASCADE            {truncate_ms:7.2f} ms")
    print(f"  CREATE DATABASE … TEMPLATE … STRATEGY FILE_COPY + DROP  {clone_ms:7.2f} ms")
    print(f"  clone / truncate = {clone_ms / truncate_ms:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
