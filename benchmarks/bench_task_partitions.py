"""What partitioning agent_tasks by month costs and buys, measured on one scratch server
(docs/scaling.md "Task history"): the same rows in the plan's table and in a copy partitioned by
RANGE (created_at), one partition per month.

    python benchmarks/bench_task_partitions.py [--rows 400000] [--months 24] [--lookups 3000]

Measures, side by side: a lookup by id alone (what get_task/update_task do: the id carries no
date, so every partition's index is probed), a lookup by id and created_at (pruned to one
partition), the oldest pending task (claim_next_task's scan), the size of each, and retention:
DELETE of the oldest month against DETACH + DROP of its partition. Prints the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from coherence_sql.embedded import EmbeddedPostgres, scratch_parent
from coherence_sql.schema import migrate

START = datetime(2025, 1, 1, tzinfo=UTC)

# The plan's table (schema/001 + 002) copied, and the same columns partitioned by month. A
# partitioned table's primary key must hold the partition key: (id, created_at).
SETUP = """
CREATE TABLE plain (LIKE agent_tasks INCLUDING ALL);
CREATE TABLE by_month (LIKE agent_tasks INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY)
    PARTITION BY RANGE (created_at);
ALTER TABLE by_month ADD PRIMARY KEY (id, created_at);
CREATE INDEX ON by_month (status, created_at);
CREATE INDEX ON by_month (created_at DESC);
CREATE INDEX ON by_month (status, task_type);
"""
FILL = """
INSERT INTO {table} (id, direction, task_type, status, model, command, tier, output, created_at, updated_at)
SELECT 'task_' || lpad(to_hex(n), 16, '0'), 'direction ' || n, 'impl',
       (CASE WHEN n % 50 = 0 THEN 'pending' WHEN n % 33 = 0 THEN 'failed' ELSE 'completed' END)::task_status,
       'model', 'command', 'tier', repeat('output ', 30),
       $1::timestamptz + (n::float8 / $2 * $3) * interval '1 day',
       $1::timestamptz + (n::float8 / $2 * $3) * interval '1 day'
FROM generate_series(1, $2) AS n
"""


async def timed_us(conn: asyncpg.Connection, sql: str, args_list: Sequence[tuple[object, ...]]) -> float:
    statement = await conn.prepare(sql)
    started = time.perf_counter()
    for args in args_list:
        await statement.fetchrow(*args)
    return (time.perf_counter() - started) / len(args_list) * 1e6


async def main(args: argparse.Namespace) -> None:
    parent = Path(tempfile.mkdtemp(prefix="bench-partitions-", dir=scratch_parent()))
    server = EmbeddedPostgres(parent / "pg", durable=False)
    try:
        dsn = await asyncio.to_thread(server.start)
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(SETUP)
            for month in range(args.months):
                low = _month(month)
                high = _month(month + 1)
                await conn.execute(
                    f"CREATE TABLE by_month_{month:02d} PARTITION OF by_month FOR VALUES FROM ('{low}') TO ('{high}')"
                )
            days = (_month(args.months) - START).days - 1
            for table in ("plain", "by_month"):
                await conn.execute(FILL.format(table=table), START, args.rows, float(days))
            for table in ("plain", "by_month"):  # one statement each: VACUUM refuses a multi-statement string
                await conn.execute(f"VACUUM ANALYZE {table}")
            rng = random.Random(1)
            picks = [rng.randrange(1, args.rows + 1) for _ in range(args.lookups)]
            ids = [(f"task_{n:016x}",) for n in picks]
            with_dates = [(f"task_{n:016x}", START + timedelta(days=n / args.rows * days)) for n in picks]
            figures: dict[str, list[float]] = {}
            for _ in range(args.rounds):  # alternated: the machine is noisy
                for table in ("plain", "by_month"):
                    figures.setdefault(f"{table}: by id", []).append(
                        await timed_us(conn, f"SELECT * FROM {table} WHERE id = $1", ids)
                    )
                    figures.setdefault(f"{table}: oldest pending", []).append(
                        await timed_us(
                            conn,
                            f"SELECT id FROM {table} WHERE status = 'pending' ORDER BY created_at LIMIT 1",
                            [()] * args.lookups,
                        )
                    )
                figures.setdefault("by_month: by id and created_at", []).append(
                    await timed_us(conn, "SELECT * FROM by_month WHERE id = $1 AND created_at = $2", with_dates)
                )
            sizes = {t: await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t) for t in ("plain",)}
            sizes["by_month"] = await conn.fetchval(
                "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('by_month')"
            )
            started = time.perf_counter()
            deleted = await conn.execute("DELETE FROM plain WHERE created_at < $1", _month(1))
            delete_s = time.perf_counter() - started
            started = time.perf_counter()
            await conn.execute("ALTER TABLE by_month DETACH PARTITION by_month_00")
            await conn.execute("DROP TABLE by_month_00")
            drop_s = time.perf_counter() - started
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(server.destroy)
        shutil.rmtree(parent, ignore_errors=True)
    load = " ".join((await asyncio.to_thread(Path("/proc/loadavg").read_text)).split()[:3])
    print(f"load average {load}; {args.rows:,} tasks over {args.months} months; {args.lookups} lookups x {args.rounds}")
    for name, values in figures.items():
        print(f"{name:34} {statistics.median(values):9.1f} us")
    print(f"{'size plain / by_month':34} {sizes['plain'] / 2**20:.0f} MB / {sizes['by_month'] / 2**20:.0f} MB")
    print(f"{'retention of one month':34} DELETE {delete_s:.2f} s ({deleted}), DETACH + DROP {drop_s * 1000:.0f} ms")


def _month(index: int) -> datetime:
    return START.replace(year=START.year + index // 12, month=index % 12 + 1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--lookups", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
