"""`verify()`: read the source and PostgreSQL, compare them through one projection, check the journal."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg

from coherence_sql.db import Pool, redact, resolve_dsn
from coherence_sql.errors import ConfigurationError
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore, MemoryStores
from coherence_sql.transfer.postgres_reader import PAGE_SIZE, PostgresContents, PostgresRecords, read_postgres
from coherence_sql.transfer.progress import Progress
from coherence_sql.transfer.snapshot import Snapshot
from coherence_sql.transfer.snapshot_file import load_snapshot_streaming
from coherence_sql.transfer.verify.compare import compare_projections
from coherence_sql.transfer.verify.journal import read_journal
from coherence_sql.transfer.verify.project import Finding, project
from coherence_sql.transfer.verify.report import (
    DEFAULT_THRESHOLD_PERCENT,
    INVARIANT,
    Difference,
    VerifyReport,
    render_key,
)

__all__ = ["postgres_invariants", "verify", "verify_memory"]


def _describe_source(source: object) -> str:
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, Snapshot):
        return "snapshot"
    return "memory stores"


def postgres_invariants(contents: PostgresContents) -> list[Finding]:
    """PostgreSQL's defects a snapshot cannot show: a pending edge whose two projects both exist."""
    findings: list[Finding] = []
    for q in contents.resolvable_pending_edges:
        edge = (q.from_ecosystem, q.from_name, q.to_ecosystem, q.to_name)
        difference = Difference(
            "edges",
            render_key("edges", edge),
            INVARIANT,
            field="pending",
            side="postgres",
            stated="pending",
            computed="both projects exist: should be in project_dependencies",
        )
        findings.append(("edges", edge, difference))
    return findings


async def verify(
    source: Snapshot | MemoryStores | MemoryGraphStore | str | Path,
    target: Pool | str | None = None,
    *,
    tasks: MemoryAgentTaskStore | None = None,
    sample_percent: float = 100.0,
    threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
    page_size: int = PAGE_SIZE,
    journal: Path | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Compare `source` with PostgreSQL (`target`: a pool, a DSN, or None for $DATABASE_URL / the
    embedded server).

    `source` is the live in-memory stores (`MemoryStores`, or a `MemoryGraphStore` with `tasks=`),
    a `Snapshot`, or a snapshot file. Agent tasks are compared when the source has them. With
    `sample_percent` < 100 only the keys a stable hash picks are compared (the aggregate checks
    still run over every row, their findings filtered by the same sample). With `journal` (the
    dual-write journal's path) its pending writes and dead letters are reported, and either fails
    the report whatever the threshold. `progress` is called as PostgreSQL's tables are read.
    """
    if not 0 < sample_percent <= 100:
        raise ConfigurationError(f"sample_percent must be in (0, 100], got {sample_percent}")
    if threshold_percent < 0:
        raise ConfigurationError(f"threshold_percent must not be negative, got {threshold_percent}")
    started = time.perf_counter()
    if isinstance(source, str | Path):
        snapshot = load_snapshot_streaming(source)  # never the file's text and all its JSON at once
    elif isinstance(source, Snapshot):
        snapshot = source
    elif isinstance(source, MemoryStores):
        snapshot = Snapshot.of(source.graph, source.tasks)
    else:
        snapshot = Snapshot.of(source, tasks)
    resolved: Pool | str = target if isinstance(target, asyncpg.Pool) else resolve_dsn(target)
    target_name = "a pool" if isinstance(resolved, asyncpg.Pool) else redact(resolved)
    # Each side is projected as soon as it is read and its records dropped: the source's models
    # and PostgreSQL's rows are never in memory together (docs/decisions.md).
    tasks_compared = snapshot.agent_tasks is not None
    src = project(snapshot, "source", stored_aggregates=False)
    del snapshot
    contents = await read_postgres(resolved, page_size=page_size, progress=progress)
    invariants = postgres_invariants(contents)
    pg = project(PostgresRecords.of(contents), "postgres", stored_aggregates=True)
    del contents
    report = compare_projections(
        src,
        pg,
        tasks_compared=tasks_compared,
        postgres_findings=invariants,
        sample_percent=sample_percent,
        threshold_percent=threshold_percent,
        source_name=_describe_source(source),
        target_name=target_name,
    )
    if journal is not None:
        # Read after PostgreSQL: a write its read missed is still pending here, or the comparison shows it.
        report.journal = read_journal(journal)
    report.seconds = time.perf_counter() - started
    return report


async def verify_memory(
    target: Pool | str | None,
    graph: MemoryGraphStore,
    tasks: MemoryAgentTaskStore | None = None,
    *,
    sample_percent: float = 100.0,
    threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
) -> VerifyReport:
    """`verify` for the live in-memory stores (tasks compared when given)."""
    return await verify(graph, target, tasks=tasks, sample_percent=sample_percent, threshold_percent=threshold_percent)
