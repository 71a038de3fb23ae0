"""The statement that empties the tests' migrated database between tests: TRUNCATE ... RESTART
IDENTITY CASCADE of the tables a test wrote to, in one round trip.

TRUNCATE gives every table and index it names new files, whether they held rows or not: about
1.2 ms of server CPU a table, 16 ms for all of them (docs/benchmarks.md), paid by every test that
takes `clean_dsn`, most of which write to two or three tables. So the statement names only the
tables that hold a page (rows, or the dead rows of a rolled-back or deleted write) or whose identity
or serial sequence has been used; the others are empty and unused, as a TRUNCATE would leave them.
CASCADE and RESTART IDENTITY act as before on what is named.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg

__all__ = ["Emptier", "truncate_written_tables"]

# A DO block: one statement, so callers run it with one `execute` as they ran the TRUNCATE. The
# sequence check reads pg_sequence_last_value (what the pg_sequences view shows): NULL until the
# sequence is first used, and again after RESTART IDENTITY.
_TEMPLATE = """DO $empty_written_tables$
DECLARE
    written text;
BEGIN
    SELECT string_agg(t.oid::regclass::text, ', ') INTO written
    FROM unnest(ARRAY[{tables}]::regclass[]) AS t (oid)
    WHERE pg_relation_size(t.oid) > 0
        OR EXISTS (
            SELECT 1
            FROM pg_depend AS d
            INNER JOIN pg_class AS s ON d.objid = s.oid
            WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                AND d.refobjid = t.oid AND d.deptype IN ('a', 'i')
                -- CASE: the planner may order the quals as it likes; only a sequence may be read
                AND CASE WHEN s.relkind = 'S' THEN pg_sequence_last_value(s.oid) END IS NOT NULL
        );
    IF written IS NOT NULL THEN
        EXECUTE 'TRUNCATE ' || written || ' RESTART IDENTITY CASCADE';
    END IF;
END
$empty_written_tables$"""


def truncate_written_tables(table_literals: Sequence[str]) -> str:
    """The statement over `table_literals`: each a quoted SQL literal of a qualified, quoted table
    name (`format('%L', format('%I.%I', schema, table))` from the catalog)."""
    if not table_literals:
        raise ValueError("no tables to empty")
    return _TEMPLATE.format(tables=", ".join(table_literals))


class Emptier:
    """Runs the emptying statement for `clean_dsn` on one connection kept for the run: a new
    connection per test (a backend's start, ~2-5 ms of CPU on each side) cost as much as the
    statement. The connection belongs to the loop that opened it; from any other loop (a plugin user
    with per-test loops) the statement runs on a connection of its own, as it always did. A
    connection a test ended (a server restart, pg_terminate_backend) is replaced once."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def empty(self, statement: str) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        if loop is not self._loop:
            conn = await asyncpg.connect(self._dsn)
            try:
                await conn.execute(statement)
            finally:
                await conn.close()
            return
        for attempt in (1, 2):
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn)
            try:
                await self._conn.execute(statement)
                return
            except Exception:
                if attempt == 2 or not self._conn.is_closed():
                    raise  # an error of the statement's own, not a connection that was ended

    async def close(self) -> None:
        if self._conn is not None and asyncio.get_running_loop() is self._loop:
            await self._conn.close()
        self._conn = None
