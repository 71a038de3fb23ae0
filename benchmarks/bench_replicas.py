"""Read-heavy load on the primary alone against the same load through the read router with two
streaming replicas, alternated in one run on one cluster (docs/benchmarks.md "Replicas").

    PYTHONPATH=. python benchmarks/bench_replicas.py [--seconds 8] [--rounds 2] [--callers 32]

Starts a primary and two `pg_basebackup -R` replicas on tmpfs (tests/replicas/cluster.py), loads
--projects projects, then runs closed-loop callers for --seconds per (mix, mode, round): each
operation in a `read_your_writes()` scope of its own (one API request), reads spread over
get_project, search and count_dependents, writes are upsert_project. Prints ops/s, p50 and p99 per
mix and mode, the replicas' share of the reads, and the machine's load average.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import cast

from hdrh.histogram import HdrHistogram

from coherence_sql.db import Pool, PoolSettings, create_pool
from coherence_sql.models import Project
from coherence_sql.replicas import ReadRouter, ReplicaSettings, is_read_only, open_read_router, read_your_writes
from coherence_sql.schema import migrate
from coherence_sql.sql import projects as projects_sql
from coherence_sql.stores.postgres import PostgresGraphStore
from tests.replicas.cluster import ReplicaCluster

POOL = PoolSettings(min_size=4, max_size=20)


def _project(n: int, version: str = "1") -> Project:
    return Project(ecosystem="npm", name=f"bench-{n}", version=version, description=f"package number {n}")


async def _load(store: PostgresGraphStore, projects: int) -> None:
    for start in range(0, projects, 1000):
        await store.upsert_projects([_project(n) for n in range(start, min(start + 1000, projects))])


def _operation(store: PostgresGraphStore, rng: random.Random, projects: int, write_percent: int) -> Awaitable[object]:
    """One request of the mix: a write (upsert_project) or a read (get_project, search, count_dependents)."""
    n = rng.randrange(projects)
    pick = rng.randrange(100)
    if pick < write_percent:
        return store.upsert_project(_project(n, str(rng.randrange(1000))))
    if pick % 5 == 0:
        return store.search(f"bench-{n // 10}", 10)
    if pick % 5 == 1:
        return store.count_dependents("npm", f"bench-{n}")
    return store.get_project("npm", f"bench-{n}")


async def _run(
    store: PostgresGraphStore, *, write_percent: int, callers: int, seconds: float, projects: int
) -> tuple[float, HdrHistogram]:
    histogram = HdrHistogram(1, 60_000_000, 3)  # microseconds
    done = 0
    deadline = time.perf_counter() + seconds

    async def caller(seed: int) -> None:
        nonlocal done
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            with read_your_writes():  # one request: it sees its own write, nobody else's
                await _operation(store, rng, projects, write_percent)
            histogram.record_value(max(1, int((time.perf_counter() - started) * 1e6)))
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller(seed) for seed in range(callers)))
    return done / (time.perf_counter() - started), histogram


Results = dict[tuple[int, str], list[tuple[float, float, float]]]
MODES = ("primary alone", "2 replicas")


async def main(args: argparse.Namespace) -> tuple[Results, dict[int, list[float]]]:
    cluster = ReplicaCluster(replica_count=2)
    try:
        await asyncio.to_thread(cluster.start)
        await migrate(cluster.primary_dsn())
        primary = await create_pool(cluster.primary_dsn(), POOL)
        settings = ReplicaSettings(urls=tuple(cluster.replica_dsns()))
        try:
            await _load(PostgresGraphStore(primary), args.projects)
            await asyncio.to_thread(cluster.wait_until_streaming)
            async with open_read_router(primary, settings, POOL) as router:
                stores = (PostgresGraphStore(primary), PostgresGraphStore(cast(Pool, router)))
                modes = dict(zip(MODES, stores, strict=True))
                results: Results = {}
                shares: dict[int, list[float]] = {}
                for write_percent in args.write_percents:
                    for _ in range(args.rounds):
                        for mode, store in modes.items():
                            before = _reads(router)
                            rate, histogram = await _run(
                                store, write_percent=write_percent, callers=args.callers,
                                seconds=args.seconds, projects=args.projects,
                            )  # fmt: skip
                            p50 = histogram.get_value_at_percentile(50) / 1000
                            p99 = histogram.get_value_at_percentile(99) / 1000
                            results.setdefault((write_percent, mode), []).append((rate, p50, p99))
                            if mode == "2 replicas":
                                after = _reads(router)
                                on_replicas = after[1] - before[1]
                                total = on_replicas + after[0] - before[0]
                                shares.setdefault(write_percent, []).append(on_replicas / max(total, 1))
                overhead_us = _routing_us(router)
        finally:
            await primary.close()
    finally:
        await asyncio.to_thread(cluster.destroy)
    print(f"the router's own work per read (classify, pick a replica): {overhead_us:.2f} us")
    return results, shares


def _routing_us(router: ReadRouter, calls: int = 100_000) -> float:
    """What the router adds to a read before any I/O: the cached classification and the choice."""
    sql = projects_sql.GET_PROJECT_SQL
    with read_your_writes():
        started = time.perf_counter()
        for _ in range(calls):
            is_read_only(sql)
            router.choose()
        return (time.perf_counter() - started) / calls * 1e6


def report(args: argparse.Namespace, results: Results, shares: dict[int, list[float]]) -> None:
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average {' '.join(load)}; {args.callers} callers, {args.seconds}s x {args.rounds} rounds per cell")
    header = ("writes", "mode", "ops/s", "p50 ms", "p99 ms", "vs primary", "replica reads")
    print("{:>6} {:>14} {:>8} {:>7} {:>7} {:>10} {:>13}".format(*header))
    for write_percent in args.write_percents:
        base = statistics.median(r[0] for r in results[(write_percent, "primary alone")])
        for mode in MODES:
            runs = results[(write_percent, mode)]
            rate = statistics.median(r[0] for r in runs)
            share = f"{statistics.median(shares[write_percent]):.0%}" if mode == "2 replicas" else "-"
            print(
                f"{write_percent:>5}% {mode:>14} {rate:>8.0f} {statistics.median(r[1] for r in runs):>7.2f} "
                f"{statistics.median(r[2] for r in runs):>7.2f} {rate / base:>9.2f}x {share:>13}"
            )


def _reads(router: ReadRouter) -> tuple[int, int]:
    return router.primary_reads, sum(r.reads for r in router.replicas)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--projects", type=int, default=5000)
    parser.add_argument("--write-percents", type=lambda s: [int(p) for p in s.split(",")], default=[0, 10])
    arguments = parser.parse_args()
    report(arguments, *asyncio.run(main(arguments)))
