"""`coherence-sql bench accessors`: what a generated accessor costs over raw asyncpg.

On one connection to a scratch database with the real schema, seeded with projects, it times a
point lookup (`projects.get_project`) and a 1,000-row list (`projects.scan_projects`) through the
generated accessor and through `fetchrow`/`fetch` with the same SQL, interleaved in short chunks
so that a noisy machine disturbs both sides alike; the ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from coherence_sql.db import Connection
from coherence_sql.sql import projects

TARGET_RATIO: Final = 0.85
LIST_ROWS: Final = 1_000


@dataclass(frozen=True, slots=True)
class Comparison:
    """Calls per second of the same work through the accessor and through raw asyncpg."""

    label: str
    raw_rate: float
    accessor_rate: float
    ratio: float  # median over rounds of accessor rate / raw rate

    def line(self) -> str:
        return (
            f"{self.label}: raw {self.raw_rate:,.0f} calls/s, accessor {self.accessor_rate:,.0f} calls/s, "
            f"ratio {self.ratio:.2f}"
        )


@dataclass(slots=True)
class _Timing:
    seconds: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)

    def rate(self) -> float:
        return sum(self.calls) / sum(self.seconds)


async def _timed(calls: int, run: Callable[[int], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    for i in range(calls):
        await run(i)
    return time.perf_counter() - started


async def _compare(
    label: str,
    raw: Callable[[int], Awaitable[Any]],
    accessor: Callable[[int], Awaitable[Any]],
    *,
    rounds: int,
    chunk: int,
) -> Comparison:
    await _timed(max(1, chunk // 5), raw)  # warm up: statement caches, codecs
    await _timed(max(1, chunk // 5), accessor)
    timings = {"raw": _Timing(), "accessor": _Timing()}
    ratios: list[float] = []
    for round_number in range(rounds):
        order = [("raw", raw), ("accessor", accessor)]
        if round_number % 2:
            order.reverse()
        seconds: dict[str, float] = {}
        for name, run in order:
            seconds[name] = await _timed(chunk, run)
            timings[name].seconds.append(seconds[name])
            timings[name].calls.append(chunk)
        ratios.append(seconds["raw"] / seconds["accessor"])
    return Comparison(label, timings["raw"].rate(), timings["accessor"].rate(), statistics.median(ratios))


async def seed(conn: Connection, count: int) -> list[tuple[str, str]]:
    """`count` projects (through the generated bulk upsert); returns their keys."""
    keys = [("pypi", f"package-{i:05d}") for i in range(count)]
    await projects.upsert_projects(
        conn,
        ecosystems=[e for e, _ in keys],
        names=[n for _, n in keys],
        display_ecosystems=["PyPI"] * count,
        display_names=[n.capitalize() for _, n in keys],
        versions=["1.0.0"] * count,
        descriptions=[f"benchmark project number {i}" for i in range(count)],
        homepage_urls=[f"https://example.org/{n}" for _, n in keys],
        repository_urls=[f"https://example.org/{n}.git" for _, n in keys],
    )
    return keys


async def bench_accessors(
    conn: Connection, *, rounds: int = 10, point_chunk: int = 500, list_chunk: int = 10
) -> list[Comparison]:
    """Seed the (empty, migrated) database behind `conn` and compare; returns both comparisons."""
    keys = await seed(conn, LIST_ROWS)

    async def raw_point(i: int) -> Any:
        ecosystem, name = keys[i % len(keys)]
        return await conn.fetchrow(projects.GET_PROJECT_SQL, ecosystem, name)

    async def accessor_point(i: int) -> Any:
        ecosystem, name = keys[i % len(keys)]
        return await projects.get_project(conn, ecosystem=ecosystem, name=name)

    async def raw_list(_: int) -> Any:
        return await conn.fetch(projects.SCAN_PROJECTS_SQL, 0, LIST_ROWS)

    async def accessor_list(_: int) -> Any:
        return await projects.scan_projects(conn, after=0, lim=LIST_ROWS)

    if len(await accessor_list(0)) != LIST_ROWS or await accessor_point(0) is None:
        raise AssertionError("the seeded projects are not all visible")
    return [
        await _compare(
            "point lookup (projects.get_project)", raw_point, accessor_point, rounds=rounds, chunk=point_chunk
        ),
        await _compare(
            f"list of {LIST_ROWS:,} rows (projects.scan_projects)",
            raw_list,
            accessor_list,
            rounds=rounds,
            chunk=list_chunk,
        ),
    ]
