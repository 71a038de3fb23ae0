"""Instrumentation overhead: a point lookup through the generated accessor with metrics on and off,
beside the same lookup uninstrumented, interleaved in one run on one server (issue 11: the cost must
stay under 5% of a point lookup).

    python benchmarks/bench_metrics_overhead.py [--rounds 200] [--chunk 50] [--dsn SERVER_DSN]

On one connection and through a pool (where the acquire is timed too), each round runs every
variant for `chunk` lookups in a shuffled order (short rounds: on a shared, noisy machine the
variants of one round see the same load); the overhead is the median over rounds of
(on - off) / off per call. "bare" is the accessor as generated before metrics (try/translate only),
written out here, so the same run also gives the whole cost of the timing against no timing at all.
On a loaded machine a few % of a ~100 µs round trip is inside the noise of any interleaving, so
it also measures the cost itself: the accessor over a driver stub that returns at once (CPU only,
metrics on and off alternated), whose difference is what instrumentation adds to every call;
divided by the bare lookup's median it is the overhead the issue bounds at 5%.
Without --dsn (or $DATABASE_URL) a throwaway embedded PostgreSQL is started.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import timeit
from collections.abc import Awaitable, Callable
from typing import Any

from coherence_sql import metrics
from coherence_sql.codegen.bench import seed
from coherence_sql.codegen.scratch import scratch_database
from coherence_sql.db import PoolSettings, connect, create_pool
from coherence_sql.errors import DRIVER_FAILURES, translate
from coherence_sql.sql import projects
from coherence_sql.sql.projects import ProjectRow

Lookup = Callable[[int], Awaitable[Any]]


async def bare_get_project(conn: Any, *, ecosystem: str, name: str) -> ProjectRow | None:
    """`projects.get_project` as generated before metrics: no timer."""
    try:
        return await conn.fetchrow(projects.GET_PROJECT_SQL, ecosystem, name, record_class=ProjectRow)
    except DRIVER_FAILURES as exc:
        raise translate(exc, "projects.get_project") from None


class _ImmediateDriver:
    """Answers at once: what is left of an accessor call is its own Python (and the timer's)."""

    async def fetchrow(self, *args: object, record_class: type | None = None) -> None:
        return None


async def instrumentation_cost_ns(rounds: int = 40, calls: int = 5_000) -> float:
    """Median over alternated rounds of (on - off) ns per accessor call on the immediate driver."""
    driver = _ImmediateDriver()
    by_state: dict[bool, list[float]] = {True: [], False: []}
    for round_number in range(rounds):
        for on in (True, False) if round_number % 2 else (False, True):
            metrics.set_enabled(on)
            started = time.perf_counter()
            for _ in range(calls):
                await projects.get_project(driver, ecosystem="pypi", name="x")  # type: ignore[arg-type]
            by_state[on].append((time.perf_counter() - started) / calls * 1e9)
    metrics.set_enabled(True)
    return statistics.median(a - b for a, b in zip(by_state[True], by_state[False], strict=True))


async def per_call_us(run: Lookup, calls: int) -> float:
    started = time.perf_counter()
    for i in range(calls):
        await run(i)
    return (time.perf_counter() - started) / calls * 1e6


async def compare(variants: dict[str, tuple[bool, Lookup]], rounds: int, chunk: int) -> dict[str, list[float]]:
    """µs per call of each variant, per round; (metrics on?, lookup) per variant."""
    names = list(variants)
    for name in names:  # warm up: statement cache, codecs, histogram children
        metrics.set_enabled(variants[name][0])
        await per_call_us(variants[name][1], chunk // 5)
    timings: dict[str, list[float]] = {name: [] for name in names}
    shuffle = random.Random(11).shuffle
    for _ in range(rounds):
        order = list(names)
        shuffle(order)  # no variant always follows the same other one
        for name in order:
            enabled, run = variants[name]
            metrics.set_enabled(enabled)
            timings[name].append(await per_call_us(run, chunk))
    metrics.set_enabled(True)
    return timings


def overhead(timings: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of (a - b) / b, in percent."""
    return statistics.median((x - y) / y for x, y in zip(timings[a], timings[b], strict=True)) * 100


def report(label: str, timings: dict[str, list[float]], on: str, off: str, bare: str) -> float:
    """Print the medians and overheads; returns the bare variant's median µs per call."""
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(f"{label}: " + ", ".join(f"{name} {value:.1f} µs" for name, value in medians.items()))
    print(
        f"  metrics on vs off: {overhead(timings, on, off):+.2f}%   "
        f"on vs bare (no timer at all): {overhead(timings, on, bare):+.2f}%"
    )
    return medians[bare]


async def main(args: argparse.Namespace) -> None:
    observe_ns = (
        min(timeit.repeat(lambda: projects.GET_PROJECT_TIMER.observe(time.perf_counter()), number=100_000, repeat=5))
        / 100_000
        * 1e9
    )
    async with scratch_database(args.dsn) as dsn:
        conn = await connect(dsn)
        pool = await create_pool(dsn, PoolSettings(min_size=1, max_size=1))
        try:
            version = await conn.fetchval("SHOW server_version")
            keys = await seed(conn, 1_000)

            def key(i: int) -> tuple[str, str]:
                return keys[i % len(keys)]

            async def raw(i: int) -> Any:
                return await conn.fetchrow(projects.GET_PROJECT_SQL, *key(i), record_class=ProjectRow)

            async def accessor(i: int) -> Any:
                ecosystem, name = key(i)
                return await projects.get_project(conn, ecosystem=ecosystem, name=name)

            async def bare(i: int) -> Any:
                ecosystem, name = key(i)
                return await bare_get_project(conn, ecosystem=ecosystem, name=name)

            async def pooled(i: int) -> Any:
                ecosystem, name = key(i)
                return await projects.get_project(pool, ecosystem=ecosystem, name=name)

            async def pooled_bare(i: int) -> Any:
                ecosystem, name = key(i)
                return await bare_get_project(pool, ecosystem=ecosystem, name=name)

            print(f"PostgreSQL {version}, {args.rounds} rounds of {args.chunk} lookups per variant, shuffled order")
            print(f"QueryTimer.observe alone: {observe_ns:.0f} ns per call")
            on_conn = await compare(
                {
                    "raw": (False, raw),
                    "bare": (False, bare),
                    "off": (False, accessor),
                    "off-again": (False, accessor),
                    "on": (True, accessor),
                },
                args.rounds,
                args.chunk,
            )
            lookup_us = report("one connection (projects.get_project)", on_conn, "on", "off", "bare")
            # The same variant twice: how far apart the harness puts two identical things (noise floor).
            print(f"  noise floor (off-again vs off, identical): {overhead(on_conn, 'off-again', 'off'):+.2f}%")
            on_pool = await compare(
                {"bare": (False, pooled_bare), "off": (False, pooled), "on": (True, pooled)}, args.rounds, args.chunk
            )
            report("through a pool (acquire timed too)", on_pool, "on", "off", "bare")
            cost_ns = await instrumentation_cost_ns()
            print(
                f"instrumentation cost per accessor call (driver stub, on - off): {cost_ns:.0f} ns = "
                f"{cost_ns / 1000 / lookup_us * 100:.2f}% of a bare point lookup ({lookup_us:.1f} µs); "
                f"observe alone {observe_ns / 1000 / lookup_us * 100:.2f}%"
            )
        finally:
            await pool.close()
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--dsn", default=None, help="a server to create the scratch database on")
    asyncio.run(main(parser.parse_args()))
