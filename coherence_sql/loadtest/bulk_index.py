"""The bulk-indexing scenario: N projects written as the indexer writes them, in batches through
`upsert_projects` and `add_dependencies`, first as new projects, then again as updates.

The caller counts the projects before and after (in the database itself for PostgreSQL and the
cut-over stores): every one must be there, once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from coherence_sql.loadtest.latency import LatencyBook
from coherence_sql.loadtest.report import latency_dict
from coherence_sql.models import Project
from coherence_sql.redaction import redact_text
from coherence_sql.stores.protocol import DependencyEdge

DEFAULT_PROJECTS: Final = 10_000
DEFAULT_BATCH: Final = 500
DEFAULT_WRITERS: Final = 4
EDGES_PER_PROJECT: Final = 3  # the indexer records each project's dependencies with it


@dataclass(slots=True)
class PassReport:
    name: str  # "insert" or "upsert"
    seconds: float = 0.0

    def rate(self, projects: int) -> float:
        return projects / self.seconds if self.seconds else 0.0


@dataclass(slots=True)
class BulkIndexReport:
    projects: int
    batch_size: int
    writers: int
    edges: int
    passes: list[PassReport]
    latency: LatencyBook  # per call: each batch's upsert_projects and add_dependencies
    projects_before: int = 0
    projects_after: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: dict[str, str] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(p.seconds for p in self.passes)

    @property
    def all_indexed(self) -> bool:
        return self.projects_after - self.projects_before == self.projects and not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "projects": self.projects,
            "batch_size": self.batch_size,
            "writers": self.writers,
            "edges": self.edges,
            "passes": {
                p.name: {"seconds": round(p.seconds, 3), "projects_per_s": round(p.rate(self.projects), 1)}
                for p in self.passes
            },
            "total_seconds": round(self.total_seconds, 3),
            "projects_before": self.projects_before,
            "projects_after": self.projects_after,
            "all_indexed": self.all_indexed,
            "latency_ms": {name: latency_dict(s) for name, s in self.latency.summaries().items()},
            "errors": dict(self.errors),
            "error_examples": self.error_examples,
        }


def _batch(run_tag: str, start: int, stop: int, total: int, version: str) -> tuple[list[Project], list[DependencyEdge]]:
    projects = [
        Project(
            ecosystem="npm",
            name=f"bulk-{run_tag}-{i}",
            version=version,
            description=f"bulk indexed package {i} of run {run_tag}",
            repository_url=f"https://github.com/bulk/{run_tag}-{i}",
        )
        for i in range(start, stop)
    ]
    edges = [
        DependencyEdge("npm", f"bulk-{run_tag}-{i}", "npm", f"bulk-{run_tag}-{(i * 7 + k + 1) % total}")
        for i in range(start, stop)
        for k in range(EDGES_PER_PROJECT)
    ]
    return projects, [e for e in edges if e.from_name != e.to_name]


async def run_bulk_index(
    graph: Any,
    *,
    projects: int = DEFAULT_PROJECTS,
    batch_size: int = DEFAULT_BATCH,
    writers: int = DEFAULT_WRITERS,
    run_tag: str,
) -> BulkIndexReport:
    """Index `projects` new projects in batches on `writers` concurrent callers, then upsert them all again."""
    latency = LatencyBook()
    report = BulkIndexReport(projects, batch_size, writers, 0, [], latency)
    bounds = [(start, min(projects, start + batch_size)) for start in range(0, projects, batch_size)]
    for pass_name, version in (("insert", "1.0.0"), ("upsert", "1.1.0")):
        queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        for bound in bounds:
            queue.put_nowait(bound)
        edges = 0

        async def writer(
            queue: asyncio.Queue[tuple[int, int]] = queue, pass_name: str = pass_name, version: str = version
        ) -> None:
            nonlocal edges
            while not queue.empty():
                start, stop = queue.get_nowait()
                batch, batch_edges = _batch(run_tag, start, stop, projects, version)
                try:
                    began = time.perf_counter()
                    await graph.upsert_projects(batch)
                    latency.record(f"{pass_name}: upsert_projects", time.perf_counter() - began)
                    began = time.perf_counter()
                    await graph.add_dependencies(batch_edges)
                    latency.record(f"{pass_name}: add_dependencies", time.perf_counter() - began)
                    edges += len(batch_edges)
                except Exception as exc:  # counted and reported: the run goes on
                    report.errors[type(exc).__name__] += 1
                    report.error_examples.setdefault(type(exc).__name__, redact_text(str(exc))[:300])

        began = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(writers)))
        report.passes.append(PassReport(pass_name, time.perf_counter() - began))
        report.edges = max(report.edges, edges)
    return report
