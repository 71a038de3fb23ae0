"""Test-server plumbing shared by fixtures and subprocess-based tests (now the plugin's own)."""

from __future__ import annotations

import asyncpg

from coherence_sql.testing.server import PgServer, with_database

__all__ = ["PgServer", "execute", "with_database"]


async def execute(dsn: str, statement: str, *args: object) -> None:
    """One statement on a connection of its own: a change behind the stores' back (drift for
    verify to find, a fault for the cut-over to survive)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()
