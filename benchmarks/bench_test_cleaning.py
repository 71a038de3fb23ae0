"""Per-test emptying of the tests' migrated database, alternated in one run: the TRUNCATE of every
table on a new connection (before), the plugin's statement that truncates only the tables written
to on a new connection, and that statement on the connection the plugin keeps for the run (now).

Usage: python benchmarks/bench_test_cleaning.py [--rounds 3] [--cleans 60] [--database-url DSN]
Without --database-url it starts a throwaway embedded server on tmpfs, as the test plugin does.

Each clean is what `clean_dsn` did or does: the statement, on a new connection or the kept one.
Before it, a writer puts a row in two tables (a typical test's writes) or in none. Reported per
clean: wall time, and the server CPU of the cleaning backends (from /proc, so the server must be on
this machine; a new backend's start-up is counted from its first query on), which the load of other
processes does not inflate as it does the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import asyncpg

from coherence_sql.schema import HISTORY_TABLE, migrate
from coherence_sql.testing.emptying import truncate_written_tables
from coherence_sql.testing.server import PgServer, create_database, drop_databases, start_test_server

WRITES: dict[int, tuple[str, ...]] = {
    0: (),
    2: (
        "INSERT INTO github_organizations (id, login, type) VALUES ('o' || random()::text, 'l', 'Organization')",
        "INSERT INTO shadow_mismatches (operation, control_ms) VALUES ('op', 1.0)",
    ),
}
TABLES = (
    "SELECT quote_ident(tablename) AS name, format('%L', format('%I.%I', schemaname, tablename)) AS literal "
    "FROM pg_tables WHERE schemaname = 'public' AND tablename <> $1 ORDER BY tablename"
)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _clean(dsn: str, statement: str, kept: asyncpg.Connection | None) -> tuple[float, float, float]:
    """One clean: its wall time, the client's CPU, and the server's (a new backend's from its fork)."""
    started, client_started = time.perf_counter(), time.process_time()
    conn = kept or await asyncpg.connect(dsn)
    try:
        pid = conn.get_server_pid()
        server_before = _cpu_s(pid) if kept else 0.0  # a new backend's counters start at its fork
        await conn.execute(statement)
        server = _cpu_s(pid) - server_before
    finally:
        if kept is None:
            await conn.close()
    return time.perf_counter() - started, time.process_time() - client_started, server


async def run(server: PgServer, rounds: int, cleans: int) -> None:
    name, dsn = await create_database(server)
    try:
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            tables = await conn.fetch(TABLES, HISTORY_TABLE)
        finally:
            await conn.close()
        every_table = f"TRUNCATE {', '.join(r['name'] for r in tables)} RESTART IDENTITY CASCADE"
        written_tables = truncate_written_tables([r["literal"] for r in tables])
        writer, kept = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
        variants = {
            "before: every table, new connection": (every_table, None),
            "tables written to, new connection": (written_tables, None),
            "now: tables written to, kept connection": (written_tables, kept),
        }
        try:
            for round_ in range(1, rounds + 1):
                for written, statements in WRITES.items():
                    for label, (statement, connection) in variants.items():
                        totals = [0.0, 0.0, 0.0]
                        for _ in range(cleans):
                            for write in statements:
                                await writer.execute(write)
                            totals = [
                                t + m for t, m in zip(totals, await _clean(dsn, statement, connection), strict=True)
                            ]
                        wall, client, server_cpu = (t / cleans * 1000 for t in totals)
                        print(
                            f"round {round_}, {written} table(s) written: {label:40s} {wall:6.1f} ms wall "
                            f"{client:5.1f} ms client CPU {server_cpu:5.1f} ms server CPU "
                            f"(load average {os.getloadavg()[0]:.2f})",
                            flush=True,
                        )
        finally:
            await writer.close()
            await kept.close()
    finally:
        await drop_databases(server, [name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cleans", type=int, default=60, help="cleans per variant and round")
    parser.add_argument("--database-url", help="a server on this machine (default: a throwaway embedded one)")
    args = parser.parse_args()
    if args.database_url:
        os.environ["TEST_DATABASE_URL"] = args.database_url
    with start_test_server() as server:
        asyncio.run(run(server, args.rounds, args.cleans))


if __name__ == "__main__":
    main()
