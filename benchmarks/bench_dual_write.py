"""Dual-write overhead: a write through the migrating stores (phase 1-2, healthy PostgreSQL) against
the same write through the PostgreSQL store alone, interleaved in one run on one server.

    python benchmarks/bench_dual_write.py [--rounds 5] [--writes 1000] [--dsn DSN]

Without --dsn it starts a throwaway embedded PostgreSQL on tmpfs. Prints the median time per write
of each path and their ratio (dual / PostgreSQL alone). The script only uses APIs older than the
budgeted dual-write, so the same file measures an older checkout (PYTHONPATH=<its root>) for a
before/after comparison: docs/benchmarks.md "Dual-write overhead".
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from coherence_sql.cutover.service import open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.embedded import EmbeddedPostgres, scratch_parent
from coherence_sql.models import AgentTaskRecord, TaskStatus, TaskType
from coherence_sql.schema import migrate
from coherence_sql.stores.postgres import connect


def task(n: int, prefix: str) -> AgentTaskRecord:
    return AgentTaskRecord(
        id=f"task_{prefix}{n:014x}", direction="bench", task_type=TaskType.IMPL, model="m", command="c", tier="t"
    )


async def per_write_us(write: object, writes: int) -> float:
    started = time.perf_counter()
    for n in range(writes):
        await write(n)  # type: ignore[operator]
    return (time.perf_counter() - started) / writes * 1e6


async def bench(dsn: str, rounds: int, writes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = CutoverSettings(dual_write=True, journal_path=Path(tmp) / "j.jsonl", database_url=dsn)
        async with connect(dsn) as alone, open_cutover_stores(settings, reconcile_interval_s=None) as dual:
            results: dict[str, list[float]] = {"postgres": [], "dual": []}
            for round_ in range(rounds):
                for name, tasks in (("postgres", alone.tasks), ("dual", dual.tasks)):
                    prefix = f"{round_:x}{'a' if name == 'postgres' else 'b'}"
                    for n in range(writes):  # the tasks first: the measured write is an update
                        await tasks.create_task(task(n, prefix))

                    async def update(n: int, tasks: object = tasks, prefix: str = prefix) -> None:
                        await tasks.update_task(  # type: ignore[attr-defined]
                            task(n, prefix).id, status=TaskStatus.RUNNING, progress_pct=n % 100
                        )

                    results[name].append(await per_write_us(update, writes))
            assert dual.core.stats.journaled == 0, "PostgreSQL was meant to be healthy"
        # Keyed reads: the cut-over stores at 100% PostgreSQL reads (router, budget, no shadow)
        # against the PostgreSQL store alone, on the tasks written above.
        read_settings = CutoverSettings(
            dual_write=True,
            read_from_postgres_percent=100,
            journal_path=Path(tmp) / "r.jsonl",
            database_url=dsn,
        )
        async with connect(dsn) as alone, open_cutover_stores(read_settings, reconcile_interval_s=None) as routed:
            reads: dict[str, list[float]] = {"postgres": [], "dual": []}
            ids = [task(n, "0a").id for n in range(writes)]
            for _ in range(rounds):
                for name, tasks in (("postgres", alone.tasks), ("dual", routed.tasks)):

                    async def read(n: int, tasks: object = tasks) -> None:
                        await tasks.get_task(ids[n])  # type: ignore[attr-defined]

                    reads[name].append(await per_write_us(read, writes))
    pg_read = statistics.median(reads["postgres"])
    dual_read = statistics.median(reads["dual"])
    pg = statistics.median(results["postgres"])
    dw = statistics.median(results["dual"])
    print(f"update_task, {writes} writes x {rounds} rounds, 1 caller")
    for label, name, median in (("PostgreSQL store alone", "postgres", pg), ("dual-write", "dual", dw)):
        rounds_shown = ", ".join(f"{value:.0f}" for value in results[name])
        print(f"  {label + ':':23} {median:8.1f} us/write  (rounds: {rounds_shown})")
    print(f"  ratio dual / alone:     {dw / pg:8.3f}")
    print(f"get_task, {writes} reads x {rounds} rounds, 1 caller, 100% PostgreSQL reads")
    print(f"  PostgreSQL store alone: {pg_read:8.1f} us/read")
    print(f"  cut-over stores:        {dual_read:8.1f} us/read")
    print(f"  ratio cut-over / alone: {dual_read / pg_read:8.3f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--dsn", default=None)
    args = parser.parse_args()
    if args.dsn:
        await bench(args.dsn, args.rounds, args.writes)
        return
    data = Path(tempfile.mkdtemp(prefix="coherence-sql-bench-", dir=scratch_parent())) / "pg"
    server = EmbeddedPostgres(data, durable=False)
    try:
        dsn = server.start()
        await migrate(dsn)
        await bench(dsn, args.rounds, args.writes)
    finally:
        server.destroy()
        shutil.rmtree(data.parent, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
