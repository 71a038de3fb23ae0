"""Store-level speed (issue 12 §2): every ratio the issue targets, measured side by side in one run.

    python benchmarks/bench_store_speed.py [--dsn DSN] [--sections point,list,mixed,updaters,dual]
        [--seconds 8] [--loops asyncio,uvloop] [--callers 16,64] [--pool-max 8,30] [--json]

Sections (each prints its figures and the ratio the issue asks for):
- point: `get_project` through the store on a pool of 1 vs raw `fetchrow` on one connection;
- cpu: the client's CPU per acquire + release, per pooled `fetchrow` and per raw `fetchrow`;
- list: `list_contributors(100)`, `get_contributor`, `list_tasks(20)` through the store vs the
  generated accessor on the same pool;
- mixed: the mixed API workload (70% reads, 20% writes, 10% graph) at 16 and 64 closed-loop
  callers on a pool from the plan's settings (20): ops/s and p50/p95/p99 from an HDR histogram,
  once per event loop in --loops;
- updaters: 64 task updaters, each on its own task, updates/s and lost updates (must be 0);
- dual: `update_task` dual-write (cut-over stores, phase 1) vs the PostgreSQL store alone, per
  write at 1 caller and throughput at 16 callers.

Without --dsn it creates a scratch database on the PostgreSQL service at 127.0.0.1:5432 (dropped at
the end); a --dsn an earlier run seeded is reused as it is (alternate an older checkout and this one
on the same data, many times, as the machine is noisy). The script uses only APIs older than issue
12, so the same file measures an older checkout (PYTHONPATH=<its root>) for a before/after
comparison: docs/benchmarks.md "Store speed". Errors are counted by type.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from hdrh.histogram import HdrHistogram

from coherence_sql.db import PoolSettings, create_pool
from coherence_sql.db import connect as db_connect
from coherence_sql.models import AgentTaskRecord, Asset, AssetType, Contributor, ContributorType, Project, TaskStatus
from coherence_sql.schema import migrate
from coherence_sql.sql import agent_tasks as tasks_sql
from coherence_sql.sql import contributors as contributors_sql
from coherence_sql.sql import projects as projects_sql
from coherence_sql.stores.postgres import PostgresGraphStore, PostgresStores, connect

SERVICE = "postgresql://postgres@127.0.0.1:5432/test"
PROJECTS = 10_000
CONTRIBUTORS = 500
ASSETS = 100
TASKS = 2_000
Op = Callable[[random.Random], Awaitable[Any]]
list_accessor: Any = getattr(tasks_sql, "list_tasks_page", None) or tasks_sql.list_tasks
CALLERS = [16, 64]  # --callers
POOL_MAX: list[int] = []  # --pool-max; empty: the plan's settings only


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" tid")[0].strip()


def pname(n: int) -> str:
    return f"Pkg-{n:05d}"


async def seed(stores: PostgresStores) -> dict[str, Any]:
    """The dataset every section reads: 10k projects, edges, contributors, assets, contributions, tasks."""
    g, t = stores.graph, stores.tasks
    for start in range(0, PROJECTS, 1_000):
        await g.upsert_projects(
            [
                Project(ecosystem="npm", name=pname(n), version="1.0", description=f"package number {n} of the bench")
                for n in range(start, start + 1_000)
            ]
        )
    rng = random.Random(7)
    await g.add_dependencies([("npm", pname(rng.randrange(PROJECTS)), "npm", pname(n)) for n in range(0, PROJECTS, 2)])
    contributors = [
        (
            await g.create_contributor(
                Contributor(
                    type=ContributorType.HUMAN, name=f"C {n}", email=f"c{n}@example.org", hourly_rate=Decimal("12.50")
                )
            )
        ).id
        for n in range(CONTRIBUTORS)
    ]
    assets = [(await g.create_asset(Asset(type=AssetType.CODE, description=f"asset {n}"))).id for n in range(ASSETS)]
    for n in range(1_000):
        await g.create_contribution(contributors[n % CONTRIBUTORS], assets[n % ASSETS], Decimal("1.25"), 0.5, {"n": n})
    tasks = []
    for n in range(TASKS):
        record = AgentTaskRecord(
            id=f"task_{n:016x}",
            direction=f"do thing {n}",
            task_type="impl",
            model="m",
            command="c",
            tier="t",
            context={"n": n},
        )
        tasks.append((await t.create_task(record)).id)
    return {"contributors": contributors, "assets": assets, "tasks": tasks}


async def seeded(stores: PostgresStores) -> dict[str, Any]:
    """The keys `seed` returned, read back from a database an earlier run seeded."""
    async with stores.pool.acquire() as conn:
        contributors = [r[0] for r in await conn.fetch("SELECT id FROM contributors ORDER BY created_at")]
        assets = [r[0] for r in await conn.fetch("SELECT id FROM assets ORDER BY created_at")]
        tasks = [r[0] for r in await conn.fetch("SELECT id FROM agent_tasks ORDER BY id")]
    return {"contributors": contributors, "assets": assets, "tasks": tasks}


async def timed(call: Callable[[], Awaitable[Any]], n: int) -> float:
    """Microseconds per call, over n sequential calls."""
    started = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - started) / n * 1e6


async def alternate(pairs: dict[str, Callable[[], Awaitable[Any]]], n: int, rounds: int) -> dict[str, float]:
    """Median µs per call of each, the candidates alternated round by round (noise hits all)."""
    runs: dict[str, list[float]] = {name: [] for name in pairs}
    for call in pairs.values():  # warm-up: statement caches, connections
        await timed(call, 50)
    for _ in range(rounds):
        for name, call in pairs.items():
            runs[name].append(await timed(call, n))
    return {name: statistics.median(values) for name, values in runs.items()}


async def section_point(dsn: str, out: dict[str, Any]) -> None:
    raw = await db_connect(dsn)
    pool = await create_pool(dsn, PoolSettings(min_size=1, max_size=1))
    try:
        store = PostgresGraphStore(pool)
        sql = projects_sql.GET_PROJECT_SQL

        async def fetchrow() -> None:
            await raw.fetchrow(sql, "npm", "pkg-00042")

        async def through_store() -> None:
            await store.get_project("npm", "Pkg-00042")

        got = await alternate({"raw fetchrow": fetchrow, "store get_project": through_store}, 2_000, 5)
    finally:
        await pool.close()
        await raw.close()
    ratio = got["raw fetchrow"] / got["store get_project"]
    out["point"] = {**got, "ratio store/raw (throughput)": ratio}
    print(
        f"point read, pool of 1: raw {got['raw fetchrow']:.0f} us, store {got['store get_project']:.0f} us"
        f" -> store = {ratio:.2f}x raw"
    )


async def cpu_timed(call: Callable[[], Awaitable[Any]], n: int) -> float:
    """Microseconds of this process's CPU per call: the client's own cost, which a loaded machine
    inflates far less than wall time (waiting for the server is not counted)."""
    started = time.process_time()
    for _ in range(n):
        await call()
    return (time.process_time() - started) / n * 1e6


async def section_cpu(dsn: str, out: dict[str, Any]) -> None:
    """Client CPU of the pool's acquire + release and of a pooled point read, against raw fetchrow."""
    raw = await db_connect(dsn)
    pool = await create_pool(dsn, PoolSettings(min_size=1, max_size=1))
    sql = projects_sql.GET_PROJECT_SQL

    async def acquire_release() -> None:
        async with pool.acquire():
            pass

    async def pooled_fetchrow() -> None:
        await pool.fetchrow(sql, "npm", "pkg-00042")

    async def raw_fetchrow() -> None:
        await raw.fetchrow(sql, "npm", "pkg-00042")

    calls = {"acquire+release": acquire_release, "pool.fetchrow": pooled_fetchrow, "raw fetchrow": raw_fetchrow}
    runs: dict[str, list[float]] = {name: [] for name in calls}
    try:
        for _ in range(5):
            for name, call in calls.items():
                runs[name].append(await cpu_timed(call, 2_000))
    finally:
        await pool.close()
        await raw.close()
    got = {f"{name} cpu us": statistics.median(values) for name, values in runs.items()}
    out["cpu"] = got
    print("client CPU per call (median of 5 x 2,000): " + ", ".join(f"{k} {v:.1f}" for k, v in got.items()))


async def section_list(dsn: str, data: dict[str, Any], out: dict[str, Any]) -> None:
    async with connect(dsn) as stores:
        pool, g, t = stores.pool, stores.graph, stores.tasks
        cid = data["contributors"][3]
        cases: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]], int]] = {
            "list_contributors(100)": (
                lambda: g.list_contributors(100),
                lambda: contributors_sql.list_contributors(pool, lim=100),
                200,
            ),
            "get_contributor": (
                lambda: g.get_contributor(cid),
                lambda: contributors_sql.get_contributor(pool, id=cid),
                1_000,
            ),
            "list_tasks(20)": (
                lambda: t.list_tasks(limit=20),
                # The checkout's own list accessor: the page alone before round two, the page and
                # the total (one statement) since.
                lambda: list_accessor(pool, status=None, task_type=None, lim=20, off=0),
                500,
            ),
        }
        out["list"] = {}
        for name, (store_call, accessor_call, n) in cases.items():
            got = await alternate({"store": store_call, "accessor": accessor_call}, n, 5)
            ratio = got["accessor"] / got["store"]
            out["list"][name] = {**got, "ratio store/accessor (throughput)": ratio}
            print(
                f"{name}: accessor {got['accessor']:.0f} us, store {got['store']:.0f} us"
                f" -> store = {ratio:.2f}x accessor"
            )


def mixed_ops(stores: PostgresStores, data: dict[str, Any], rng: random.Random) -> list[tuple[int, str, Op]]:
    """The mixed API workload: (weight, name, op). 70% reads, 20% writes, 10% graph."""
    g, t = stores.graph, stores.tasks
    contributors, assets, tasks = data["contributors"], data["assets"], data["tasks"]
    statuses = [TaskStatus.RUNNING, TaskStatus.PENDING, TaskStatus.COMPLETED]

    async def get_project(r: random.Random) -> Any:
        return await g.get_project("npm", pname(r.randrange(PROJECTS)))

    async def get_contributor(r: random.Random) -> Any:
        return await g.get_contributor(r.choice(contributors))

    async def get_task(r: random.Random) -> Any:
        return await t.get_task(r.choice(tasks))

    async def list_tasks(r: random.Random) -> Any:
        return await t.list_tasks(status=r.choice(statuses), limit=20)

    async def search(r: random.Random) -> Any:
        return await g.search(f"pkg-0{r.randrange(100):02d}", 20)

    async def asset_contributions(r: random.Random) -> Any:
        return await g.get_asset_contributions(r.choice(assets))

    async def update_task(r: random.Random) -> Any:
        return await t.update_task(r.choice(tasks), status=r.choice(statuses), progress_pct=r.randrange(101))

    async def upsert_project(r: random.Random) -> Any:
        n = r.randrange(PROJECTS)
        return await g.upsert_project(
            Project(ecosystem="npm", name=pname(n), version=f"1.{r.randrange(9)}", description="x")
        )

    async def create_contribution(r: random.Random) -> Any:
        return await g.create_contribution(r.choice(contributors), r.choice(assets), Decimal("0.10"), 0.7, {})

    async def count_dependents(r: random.Random) -> Any:
        return await g.count_dependents("npm", pname(r.randrange(PROJECTS)))

    async def add_dependency(r: random.Random) -> Any:
        return await g.add_dependency("npm", pname(r.randrange(PROJECTS)), "npm", pname(r.randrange(PROJECTS)))

    return [
        (30, "get_project", get_project),
        (10, "get_contributor", get_contributor),
        (15, "get_task", get_task),
        (5, "list_tasks", list_tasks),
        (5, "search", search),
        (5, "get_asset_contributions", asset_contributions),
        (10, "update_task", update_task),
        (5, "upsert_project", upsert_project),
        (5, "create_contribution", create_contribution),
        (5, "count_dependents", count_dependents),
        (5, "add_dependency", add_dependency),
    ]


async def closed_loop(
    callers: int, seconds: float, make_op: Callable[[int], Callable[[], Awaitable[Any]]]
) -> dict[str, Any]:
    """`callers` tasks calling as fast as they can for `seconds`: ops/s and latency percentiles."""
    hist = HdrHistogram(1, 60_000_000, 3)
    errors = 0
    kinds: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds

    async def caller(k: int) -> None:
        nonlocal errors
        op = make_op(k)
        while (start := time.perf_counter()) < deadline:
            try:
                await op()
            except Exception as exc:  # counted, reported by type
                errors += 1
                kinds[type(exc).__name__] += 1
            hist.record_value(max(1, int((time.perf_counter() - start) * 1e6)))

    started = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(callers)))
    elapsed = time.perf_counter() - started
    return {
        "ops_per_s": hist.get_total_count() / elapsed,
        "p50_ms": hist.get_value_at_percentile(50) / 1e3,
        "p95_ms": hist.get_value_at_percentile(95) / 1e3,
        "p99_ms": hist.get_value_at_percentile(99) / 1e3,
        "errors": errors,
        "error_types": dict(kinds),
    }


async def section_mixed(dsn: str, data: dict[str, Any], seconds: float, loop_name: str, out: dict[str, Any]) -> None:
    for pool_max in POOL_MAX or [0]:
        await mixed_on_pool(dsn, data, seconds, loop_name, pool_max, out)


async def mixed_on_pool(
    dsn: str, data: dict[str, Any], seconds: float, loop_name: str, pool_max: int, out: dict[str, Any]
) -> None:
    """The mixed workload on a pool from the plan's settings, or of at most `pool_max` connections
    (the database's concurrency: admission in the client instead of time-slicing in the server)."""
    settings = PoolSettings.from_env({})
    if pool_max:
        settings = dataclasses.replace(settings, min_size=min(settings.min_size, pool_max), max_size=pool_max)
    label = f", pool of {settings.max_size}"
    async with connect(dsn, settings=settings) as stores:
        for callers in CALLERS:

            def make_op(k: int) -> Callable[[], Awaitable[Any]]:
                rng = random.Random(k)
                ops = mixed_ops(stores, data, rng)
                weights = [w for w, _, _ in ops]
                chosen = [op for _, _, op in ops]

                async def one() -> Any:
                    return await rng.choices(chosen, weights)[0](rng)

                return one

            await closed_loop(callers, 1.0, make_op)  # warm-up
            got = await closed_loop(callers, seconds, make_op)
            out.setdefault("mixed", {})[f"{loop_name}, {callers} callers{label}"] = got
            print(
                f"mixed [{loop_name}{label}] {callers} callers: {got['ops_per_s']:.0f} ops/s,"
                f" p50 {got['p50_ms']:.1f} ms,"
                f" p95 {got['p95_ms']:.1f} ms, p99 {got['p99_ms']:.1f} ms,"
                f" errors {got['errors']} {got['error_types'] or ''}"
            )


async def section_updaters(dsn: str, data: dict[str, Any], seconds: float, out: dict[str, Any]) -> None:
    async with connect(dsn, settings=PoolSettings.from_env({})) as stores:
        t = stores.tasks
        ids = data["tasks"][:64]
        last: dict[str, int] = {}
        missing = 0

        def make_op(k: int) -> Callable[[], Awaitable[Any]]:
            counter = 0

            async def one() -> None:
                nonlocal counter, missing
                counter += 1
                record = await t.update_task(ids[k], status=TaskStatus.RUNNING, current_step=f"{k}:{counter}")
                if record is None or record.current_step != f"{k}:{counter}":
                    missing += 1
                last[ids[k]] = counter

            return one

        got = await closed_loop(64, seconds, make_op)
        lost = missing
        for k, task_id in enumerate(ids):
            if task_id not in last:  # this updater never got a connection: nothing of it to find
                continue
            record = await t.get_task(task_id)
            if record is None or record.current_step != f"{k}:{last[task_id]}":
                lost += 1
        got["lost"] = lost
        got["updaters_that_never_ran"] = len(ids) - len(last)
        out["updaters"] = got
        print(
            f"64 updaters: {got['ops_per_s']:.0f} updates/s, p99 {got['p99_ms']:.1f} ms,"
            f" lost {lost}, errors {got['errors']} {got['error_types'] or ''}"
        )


async def section_dual(dsn: str, data: dict[str, Any], seconds: float, out: dict[str, Any]) -> None:
    from coherence_sql.cutover.service import open_cutover_stores
    from coherence_sql.cutover.settings import CutoverSettings
    from coherence_sql.stores.memory import MemoryAgentTaskStore

    with tempfile.TemporaryDirectory() as tmp:
        settings = CutoverSettings(dual_write=True, journal_path=Path(tmp) / "j.jsonl", database_url=dsn)
        ids = data["tasks"][64:]
        memory = MemoryAgentTaskStore()
        async with connect(dsn, settings=PoolSettings.from_env({})) as alone:
            # The cut-over stores' memory side holds the tasks too (as after a backfill).
            for task_id in ids:
                record = await alone.tasks.get_task(task_id)
                assert record is not None
                await memory.create_task(record)
        async with (
            connect(dsn, settings=PoolSettings.from_env({})) as alone,
            open_cutover_stores(settings, memory_tasks=memory, reconcile_interval_s=None) as dual,
        ):
            sides = {"postgres": alone.tasks, "dual": dual.tasks}

            def updater(side: Any) -> Callable[[], Awaitable[Any]]:
                rng = random.Random(1)
                return lambda: side.update_task(
                    rng.choice(ids), status=TaskStatus.RUNNING, progress_pct=rng.randrange(101)
                )

            per_write = await alternate({name: updater(side) for name, side in sides.items()}, 1_000, 5)
            throughput: dict[str, float] = {}
            for _ in range(2):
                for name, side in sides.items():

                    def make_op(k: int, side: Any = side) -> Callable[[], Awaitable[Any]]:
                        rng = random.Random(k)
                        return lambda: side.update_task(
                            rng.choice(ids), status=TaskStatus.RUNNING, progress_pct=rng.randrange(101)
                        )

                    got = await closed_loop(16, seconds / 2, make_op)
                    throughput[name] = max(throughput.get(name, 0.0), got["ops_per_s"])
            assert dual.core.stats.journaled == 0, "PostgreSQL was meant to be healthy"
    result = {
        "per write us": per_write,
        "ratio dual/alone per write": per_write["dual"] / per_write["postgres"],
        "ops/s at 16": throughput,
        "ratio dual/alone throughput at 16": throughput["dual"] / throughput["postgres"],
    }
    out["dual"] = result
    print(
        f"dual-write update_task, 1 caller: alone {per_write['postgres']:.0f} us, dual {per_write['dual']:.0f} us"
        f" -> {result['ratio dual/alone per write']:.2f}x; 16 callers: alone {throughput['postgres']:.0f}/s,"
        f" dual {throughput['dual']:.0f}/s -> {result['ratio dual/alone throughput at 16']:.2f}x"
    )


def run_loop(loop_name: str, coro: Awaitable[Any]) -> Any:
    if loop_name == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)  # type: ignore[arg-type]
    return asyncio.run(coro)  # type: ignore[arg-type]


async def scratch_database(action: str, name: str) -> None:
    conn = await asyncpg.connect(SERVICE)
    try:
        if action == "create":
            await conn.execute(f'CREATE DATABASE "{name}"')
        else:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=None)
    parser.add_argument("--sections", default="point,cpu,list,mixed,updaters,dual")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--callers", default="16,64", help="the mixed workload's caller counts")
    parser.add_argument(
        "--pool-max", default="", help="the mixed workload's pool sizes to compare (default: the plan's settings)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    CALLERS[:] = [int(n) for n in args.callers.split(",")]
    POOL_MAX[:] = [int(n) for n in args.pool_max.split(",") if n]
    sections = set(args.sections.split(","))
    out: dict[str, Any] = {"loadavg_start": loadavg()}
    print(f"load average at start: {out['loadavg_start']}")
    scratch = None if args.dsn else f"coherence_sql_bench_{os.getpid()}"
    dsn = args.dsn or f"postgresql://postgres@127.0.0.1:5432/{scratch}"
    try:
        if scratch:
            asyncio.run(scratch_database("create", scratch))

        async def prepare() -> dict[str, Any]:
            await migrate(dsn)
            async with connect(dsn) as stores:
                if await stores.graph.count_projects() >= PROJECTS:  # --dsn of an earlier run: reuse it
                    return await seeded(stores)
                data = await seed(stores)
            # As autovacuum would have by now: no GIN pending list, fresh statistics.
            conn = await db_connect(dsn)
            try:
                await conn.execute("VACUUM ANALYZE")
            finally:
                await conn.close()
            return data

        data = asyncio.run(prepare())
        if "point" in sections:
            asyncio.run(section_point(dsn, out))
        if "cpu" in sections:
            asyncio.run(section_cpu(dsn, out))
        if "list" in sections:
            asyncio.run(section_list(dsn, data, out))
        if "mixed" in sections:
            for loop_name in args.loops.split(","):
                run_loop(loop_name, section_mixed(dsn, data, args.seconds, loop_name, out))
        if "updaters" in sections:
            asyncio.run(section_updaters(dsn, data, args.seconds, out))
        if "dual" in sections:
            asyncio.run(section_dual(dsn, data, args.seconds, out))
    finally:
        if scratch:
            asyncio.run(scratch_database("drop", scratch))
    out["loadavg_end"] = loadavg()
    print(f"load average at end: {out['loadavg_end']}")
    if args.json:
        print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
