"""Benchmark of the in-memory graph store: 100k projects and 500k edges through its public methods.

Run `python benchmarks/bench_memory_store.py`; it prints the time of each phase, one call per write
(the dual-write path) and the bulk methods (snapshot loads), plus a few reads on the loaded graph.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Awaitable, Callable

from coherence_sql.models import Project
from coherence_sql.stores.memory import MemoryGraphStore
from coherence_sql.stores.protocol import DependencyEdge

PROJECTS = 100_000
EDGES = 500_000
SEED = 20260216


def workload() -> tuple[list[Project], list[DependencyEdge]]:
    """Deterministic projects and distinct edges; a tenth of the edges point at projects never indexed."""
    rng = random.Random(SEED)
    projects = [
        Project(name=f"Package-{i}", ecosystem="npm", version="1.0.0", description=f"library number {i}")
        for i in range(PROJECTS)
    ]
    seen: set[tuple[int, int]] = set()
    edges: list[DependencyEdge] = []
    while len(edges) < EDGES:
        source = rng.randrange(PROJECTS)
        target = rng.randrange(PROJECTS + PROJECTS // 10)  # beyond PROJECTS: not indexed yet
        if source == target or (source, target) in seen:
            continue
        seen.add((source, target))
        edges.append(DependencyEdge("npm", f"package-{source}", "NPM", f"PACKAGE-{target}"))
    return projects, edges


async def timed(label: str, action: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await action()
    elapsed = time.perf_counter() - start
    print(f"{label:<52} {elapsed:8.3f} s")
    return elapsed


async def one_call_per_write(projects: list[Project], edges: list[DependencyEdge]) -> None:
    store = MemoryGraphStore()

    async def upsert_each() -> None:
        for p in projects:
            await store.upsert_project(p)

    async def add_each() -> None:
        for e in edges:
            await store.add_dependency(*e)

    async def reads() -> None:
        for i in range(0, PROJECTS, 100):
            await store.get_project("NPM", f"package-{i}")
            await store.count_dependents("npm", f"package-{i}")

    total = await timed("upsert_project x 100k (one call each)", upsert_each)
    total += await timed("add_dependency x 500k (one call each)", add_each)
    print(f"{'one call per write, total':<52} {total:8.3f} s")
    await timed("get_project + count_dependents x 1k", reads)
    await timed("search('number 9999', limit=20) over 100k", lambda: store.search("number 9999"))
    assert await store.count_projects() == PROJECTS
    out_degree = sum(p.dependency_count for p in store.all_projects())
    assert out_degree == EDGES, out_degree  # every edge starts at an indexed project


async def bulk_writes(projects: list[Project], edges: list[DependencyEdge]) -> None:
    store = MemoryGraphStore()
    total = await timed("upsert_projects (one bulk call)", lambda: store.upsert_projects(projects))
    total += await timed("add_dependencies (one bulk call)", lambda: store.add_dependencies(edges))
    print(f"{'bulk, total':<52} {total:8.3f} s")


async def main() -> None:
    projects, edges = workload()
    print(f"memory store: {PROJECTS:,} projects, {EDGES:,} edges")
    await one_call_per_write(projects, edges)
    gc.collect()  # the first graph is garbage now; keep its collection out of the next timing
    await bulk_writes(projects, edges)


if __name__ == "__main__":
    asyncio.run(main())
