"""Dual-write overhead: a write through the migrating stores (phase 1-2, healthy PostgreSQL) against
the same write through the PostgreSQL store alone, interleaved in one run on one server.

    python benchmarks/bench_dual_write.py [--rounds 5] [--writes 1000] [--callers 16] [--seconds 3] [--dsn DSN]

Without --dsn it starts a throwaway embedded PostgreSQL on tmpfs. Prints the median time per write
of each path and their ratio (dual / PostgreSQL alone), in wall time and in the client's CPU time
per write (`time.process_time`: what the machine's load inflates least; the client is CPU-bound),
and the load average before and after. The script only uses APIs older than the
budgeted dual-write, so the same file measures an older checkout (PYTHONPATH=<its root>) for a
before/after comparison: docs/benchmarks.md "Dual-write overhead". With --callers N > 0 it also
runs N closed-loop callers updating those tasks (alone and dual alternated, --seconds each) and
prints writes per second; that section gives the PostgreSQL leg a 4 s budget, so a loaded machine
measures the healthy path instead of journaling (a journaled write skips PostgreSQL and would
flatter the figure: their count is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

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


CPU: dict[str, list[float]] = {}  # client CPU µs per operation, by path, one entry per round


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


async def per_write_us(write: object, writes: int, name: str = "") -> float:
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(writes):
        await write(n)  # type: ignore[operator]
    CPU.setdefault(name, []).append((time.process_time() - cpu) / writes * 1e6)
    return (time.perf_counter() - started) / writes * 1e6


async def closed_loop(update: Any, ids: list[str], callers: int, seconds: float) -> tuple[float, float]:
    """Writes per second and client CPU µs per write of `callers` callers updating `ids`."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def caller(k: int) -> None:
        nonlocal done
        rng = random.Random(k)
        while time.perf_counter() < deadline:
            await update(rng.choice(ids), status=TaskStatus.RUNNING, progress_pct=rng.randrange(101))
            done += 1

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller(k) for k in range(callers)))
    return done / (time.perf_counter() - started), (time.process_time() - cpu) / max(done, 1) * 1e6


async def throughput(dsn: str, tmp: str, rounds: int, writes: int, callers: int, seconds: float) -> None:
    settings = CutoverSettings(
        dual_write=True, journal_path=Path(tmp) / "t.jsonl", database_url=dsn, postgres_budget_s=4.0
    )
    async with connect(dsn) as alone, open_cutover_stores(settings, reconcile_interval_s=None) as dual:
        ids = {"postgres": [task(n, "fa").id for n in range(writes)], "dual": [task(n, "fb").id for n in range(writes)]}
        for name, tasks in (("postgres", alone.tasks), ("dual", dual.tasks)):
            for n in range(writes):
                await tasks.create_task(task(n, "fa" if name == "postgres" else "fb"))
        got: dict[str, list[tuple[float, float]]] = {"postgres": [], "dual": []}
        for _ in range(rounds):
            for name, tasks in (("postgres", alone.tasks), ("dual", dual.tasks)):
                got[name].append(await closed_loop(tasks.update_task, ids[name], callers, seconds))
        journaled = dual.core.stats.journaled
    rate = {name: statistics.median(r for r, _ in values) for name, values in got.items()}
    cpu = {name: statistics.median(c for _, c in values) for name, values in got.items()}
    print(f"update_task, {callers} callers, {seconds:g} s x {rounds} rounds each")
    for name, values in got.items():
        shown = ", ".join(f"{r:.0f}" for r, _ in values)
        print(f"  {name + ':':9} {rate[name]:8.0f} writes/s (rounds: {shown}), client CPU {cpu[name]:.1f} us/write")
    print(f"  ratio dual / alone:  {rate['dual'] / rate['postgres']:.3f} (throughput)")
    void = " -- VOID: some writes skipped PostgreSQL" if journaled else ""
    print(f"  journaled during the run: {journaled}{void}")


async def bench(dsn: str, rounds: int, writes: int, callers: int = 0, seconds: float = 3.0) -> None:
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

                    results[name].append(await per_write_us(update, writes, f"update {name}"))
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

                    reads[name].append(await per_write_us(read, writes, f"read {name}"))
    pg_read = statistics.median(reads["postgres"])
    dual_read = statistics.median(reads["dual"])
    pg = statistics.median(results["postgres"])
    dw = statistics.median(results["dual"])
    cpu = {name: statistics.median(values) for name, values in CPU.items()}
    print(f"update_task, {writes} writes x {rounds} rounds, 1 caller")
    for label, name, median in (("PostgreSQL store alone", "postgres", pg), ("dual-write", "dual", dw)):
        rounds_shown = ", ".join(f"{value:.0f}" for value in results[name])
        print(f"  {label + ':':23} {median:8.1f} us/write  (rounds: {rounds_shown})")
    print(f"  ratio dual / alone:     {dw / pg:8.3f}")
    print(
        f"  client CPU per write:   alone {cpu['update postgres']:.1f} us, dual {cpu['update dual']:.1f} us,"
        f" ratio {cpu['update dual'] / cpu['update postgres']:.3f}"
    )
    print(f"get_task, {writes} reads x {rounds} rounds, 1 caller, 100% PostgreSQL reads")
    print(f"  PostgreSQL store alone: {pg_read:8.1f} us/read")
    print(f"  cut-over stores:        {dual_read:8.1f} us/read")
    print(f"  ratio cut-over / alone: {dual_read / pg_read:8.3f}")
    print(
        f"  client CPU per read:    alone {cpu['read postgres']:.1f} us, cut-over {cpu['read dual']:.1f} us,"
        f" ratio {cpu['read dual'] / cpu['read postgres']:.3f}"
    )
    if callers > 0:
        with tempfile.TemporaryDirectory() as tmp:
            await throughput(dsn, tmp, rounds, writes, callers, seconds)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--dsn", default=None)
    args = parser.parse_args()
    print(f"load average at start: {loadavg()}")
    if args.dsn:
        await bench(args.dsn, args.rounds, args.writes, args.callers, args.seconds)
        print(f"load average at end: {loadavg()}")
        return
    data = Path(tempfile.mkdtemp(prefix="coherence-sql-bench-", dir=scratch_parent())) / "pg"
    server = EmbeddedPostgres(data, durable=False)
    try:
        dsn = server.start()
        await migrate(dsn)
        await bench(dsn, args.rounds, args.writes, args.callers, args.seconds)
    finally:
        server.destroy()
        shutil.rmtree(data.parent, ignore_errors=True)
        print(f"load average at end: {loadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
