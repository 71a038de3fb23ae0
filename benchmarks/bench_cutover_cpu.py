"""The cut-over stores' own client CPU per dual-write, the load-robust figure (issue 12 §2).

    python benchmarks/bench_cutover_cpu.py --dsn DSN [--rounds 15] [--writes 300]

Two measurements of `update_task` at one caller, client CPU by `time.process_time`, many short
rounds interleaved in one process, minimum and median per path:

- real PostgreSQL (DSN, migrated): the PostgreSQL store alone; the in-memory store then the
  PostgreSQL store called one after the other (the floor a dual-write cannot go under); the
  cut-over stores (phase 1). The cut-over's own cost is the third minus the second.
- no network: the same with a stand-in for PostgreSQL, an in-memory store that answers after one
  turn of the event loop (what a network round trip costs the loop), so only Python is measured.

Only APIs older than the change measured, so an older checkout runs it too (PYTHONPATH=<its
root>): docs/benchmarks.md "Dual-write overhead". The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from coherence_sql.cutover.journal import WriteJournal
from coherence_sql.cutover.service import open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.cutover.stores import CutoverAgentTaskStore, CutoverCore
from coherence_sql.models import AgentTaskRecord, TaskStatus, TaskType
from coherence_sql.stores.memory import MemoryAgentTaskStore
from coherence_sql.stores.postgres import connect

TASKS = 200
Run = Callable[[int], Awaitable[None]]


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def task(n: int, prefix: str) -> AgentTaskRecord:
    return AgentTaskRecord(
        id=f"task_{prefix}{n:012x}", direction="bench", task_type=TaskType.IMPL, model="m", command="c", tier="t"
    )


class OneTurn:
    """An in-memory task store that answers an update after one turn of the event loop."""

    def __init__(self) -> None:
        self.inner = MemoryAgentTaskStore()

    async def create_task(self, *args: Any, **kwargs: Any) -> AgentTaskRecord:
        return await self.inner.create_task(*args, **kwargs)

    async def update_task(self, *args: Any, **kwargs: Any) -> AgentTaskRecord | None:
        await asyncio.sleep(0)
        return await self.inner.update_task(*args, **kwargs)


def updates(*stores: Any, ids: list[str]) -> Run:
    """`n` updates, each applied to `stores` one after the other."""

    async def run(n: int) -> None:
        for i in range(n):
            for store in stores:
                await store.update_task(ids[i % TASKS], status=TaskStatus.RUNNING, progress_pct=i % 100)

    return run


async def created(prefix: str, *stores: Any) -> list[str]:
    for n in range(TASKS):
        for store in stores:
            await store.create_task(task(n, prefix))
    return [task(n, prefix).id for n in range(TASKS)]


async def measure(runs: dict[str, Run], rounds: int, writes: int) -> dict[str, list[float]]:
    for run in runs.values():
        await run(100)  # warm: statements prepared, caches filled
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.process_time()
            await run(writes)
            cpu[name].append((time.process_time() - started) / writes * 1e6)
    return cpu


def report(title: str, cpu: dict[str, list[float]]) -> None:
    low = {name: min(values) for name, values in cpu.items()}
    mid = {name: statistics.median(values) for name, values in cpu.items()}
    print(title)
    for name in cpu:
        print(f"  {name + ':':16} {low[name]:7.1f} us min, {mid[name]:7.1f} us median")
    print(
        f"  cut-over's own:  {low['dual-write'] - low['floor']:7.1f} us min, "
        f"{mid['dual-write'] - mid['floor']:7.1f} us median (dual-write minus floor)"
    )
    if "postgres alone" in cpu:
        print(
            f"  dual / alone:    {low['dual-write'] / low['postgres alone']:7.3f} min, "
            f"{mid['dual-write'] / mid['postgres alone']:7.3f} median"
        )


async def with_postgres(dsn: str, tmp: str, rounds: int, writes: int) -> None:
    settings = CutoverSettings(dual_write=True, journal_path=Path(tmp) / "p.jsonl", database_url=dsn)
    async with connect(dsn) as alone, open_cutover_stores(settings, reconcile_interval_s=None) as dual:
        tag = f"{os.getpid() % 4096:03x}"
        memory = MemoryAgentTaskStore()
        runs = {
            "postgres alone": updates(alone.tasks, ids=await created(tag + "pa", alone.tasks)),
            "floor": updates(memory, alone.tasks, ids=await created(tag + "pf", memory, alone.tasks)),
            "dual-write": updates(dual.tasks, ids=await created(tag + "pd", dual.tasks)),
        }
        cpu = await measure(runs, rounds, writes)
        assert dual.core.stats.journaled == 0, "PostgreSQL was meant to be healthy"
    report(f"update_task, real PostgreSQL, {rounds} rounds x {writes} writes, client CPU per write", cpu)


async def without_network(tmp: str, rounds: int, writes: int) -> None:
    journal = Path(tmp) / "n.jsonl"
    settings = CutoverSettings(dual_write=True, journal_path=journal, database_url="postgresql://unused@127.0.0.1/x")
    dual = CutoverAgentTaskStore(CutoverCore(settings, WriteJournal(journal)), MemoryAgentTaskStore(), OneTurn())  # type: ignore[arg-type]
    memory, stand_in = MemoryAgentTaskStore(), OneTurn()
    runs = {
        "floor": updates(memory, stand_in, ids=await created("nf", memory, stand_in)),
        "dual-write": updates(dual, ids=await created("nd", dual)),
    }
    cpu = await measure(runs, rounds, writes * 5)
    assert dual.core.stats.journaled == 0
    report(f"update_task, PostgreSQL stand-in answering after one turn, {rounds} rounds x {writes * 5} writes", cpu)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--writes", type=int, default=300)
    args = parser.parse_args()
    print(f"load average at start: {loadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        await with_postgres(args.dsn, tmp, args.rounds, args.writes)
        await without_network(tmp, args.rounds, args.writes)
    print(f"load average at end: {loadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
