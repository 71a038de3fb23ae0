"""`verify()`: the source and PostgreSQL compared through one projection, a digest per key; the journal checked."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg

from coherence_sql.db import Pool, redact, resolve_dsn
from coherence_sql.errors import ConfigurationError
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore, MemoryStores
from coherence_sql.transfer.postgres_reader import PAGE_SIZE, PostgresPages, read_transaction
from coherence_sql.transfer.progress import Progress
from coherence_sql.transfer.snapshot import Snapshot
from coherence_sql.transfer.verify.journal import read_journal
from coherence_sql.transfer.verify.project import Rows
from coherence_sql.transfer.verify.report import DEFAULT_THRESHOLD_PERCENT, VerifyReport
from coherence_sql.transfer.verify.source import FileSource, MemorySource, RepeatedSectionError, Source, whole_file
from coherence_sql.transfer.verify.streamed import (
    capture,
    compare_postgres,
    digest_source,
    streamed_report,
    wanted_keys,
)

__all__ = ["verify", "verify_memory"]


def _describe_source(source: object) -> str:
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, Snapshot):
        return "snapshot"
    return "memory stores"


def _source(
    source: Snapshot | MemoryStores | MemoryGraphStore | str | Path, tasks: MemoryAgentTaskStore | None
) -> Source:
    if isinstance(source, str | Path):
        return FileSource(source)  # read record by record, twice at most
    if isinstance(source, Snapshot):
        return MemorySource(source)
    if isinstance(source, MemoryStores):
        return MemorySource(Snapshot.of(source.graph, source.tasks))
    return MemorySource(Snapshot.of(source, tasks))


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
    # A digest per key, never both sides' records (docs/decisions.md, "Verify in bounded memory"):
    # the source once, PostgreSQL once in pages, then the source again for the keys that differ.
    records = _source(source, tasks)
    rows = Rows()
    try:
        digests = digest_source(records, rows, sample_percent)  # a bad file is refused before any connection
    except RepeatedSectionError:
        records = whole_file(source)  # type: ignore[arg-type]  # only a file repeats a section
        digests = digest_source(records, rows, sample_percent)
    resolved: Pool | str = target if isinstance(target, asyncpg.Pool) else resolve_dsn(target)
    target_name = "a pool" if isinstance(resolved, asyncpg.Pool) else redact(resolved)
    async with read_transaction(resolved) as conn:
        postgres = await compare_postgres(
            PostgresPages(conn, page_size=page_size, progress=progress), digests, rows, sample_percent
        )
    captured = capture(records, rows, wanted_keys(digests, postgres))
    report = streamed_report(
        digests,
        postgres,
        captured,
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
