"""PostgreSQL as a snapshot: the rows read in one moment, made models by the PostgreSQL store's own
mappers (rows become models in one place), in the API's file format (phase 3's way back).

`export_to_file` streams: each keyset page is written record by record and dropped, so its memory
does not grow with the data (docs/decisions.md "Backfill and transfer at scale"); `export_snapshot`
builds the whole `Snapshot` in memory for callers that want the models."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from coherence_sql.db import Connection, Pool
from coherence_sql.errors import ConfigurationError, SnapshotError
from coherence_sql.sql import assets as assets_sql
from coherence_sql.sql import contributions as contributions_sql
from coherence_sql.sql import contributors as contributors_sql
from coherence_sql.sql import github as github_sql
from coherence_sql.sql import projects as projects_sql
from coherence_sql.sql import verify as verify_sql
from coherence_sql.stores.postgres import (
    asset_model,
    contribution_model,
    contributor_model,
    github_contributor_model,
    github_organization_model,
    project_model,
    task_model,
)
from coherence_sql.stores.protocol import DependencyEdge
from coherence_sql.transfer.postgres_reader import PAGE_SIZE, PostgresContents, read_postgres, read_transaction
from coherence_sql.transfer.progress import Progress
from coherence_sql.transfer.snapshot import GRAPH_SECTIONS, TASK_SECTION, ContributesTo, Snapshot
from coherence_sql.transfer.snapshot_file import SnapshotFileWriter

__all__ = ["ExportSummary", "export_snapshot", "export_to_file", "snapshot_from_contents"]

_R = TypeVar("_R")
# Before every edge: keyset pages by (created_at, id) start after it.
_BEFORE_ALL: Final = datetime(1, 1, 1, tzinfo=UTC)


def snapshot_from_contents(pg: PostgresContents) -> Snapshot:
    """The stores' records as models, in insertion order (edges: by the time they were recorded)."""
    edges = sorted(
        [
            (r.created_at, 0, r.id, DependencyEdge(r.from_ecosystem, r.from_name, r.to_ecosystem, r.to_name))
            for r in pg.resolved_edges
        ]
        + [
            (r.created_at, 1, r.id, DependencyEdge(r.from_ecosystem, r.from_name, r.to_ecosystem, r.to_name))
            for r in pg.pending_edges
        ],
        key=lambda item: item[:3],
    )
    try:
        return Snapshot(
            projects=[project_model(r) for r in pg.projects],
            edges=[edge for *_, edge in edges],
            contributors=[contributor_model(r) for r in pg.contributors],
            assets=[asset_model(r) for r in pg.assets],
            contributions=[contribution_model(r) for r in pg.contributions],
            github_contributors=[github_contributor_model(r) for r in pg.github_contributors],
            github_organizations=[github_organization_model(r) for r in pg.github_organizations],
            github_contributes_to=[
                ContributesTo(r.contributor_id, r.ecosystem, r.name) for r in pg.github_contributes_to
            ],
            agent_tasks=[task_model(r) for r in pg.agent_tasks],
        )
    except ValueError as exc:  # a row the models refuse (pydantic's ValidationError is a ValueError)
        raise SnapshotError(f"PostgreSQL holds a row the API's models refuse: {exc}") from None


async def export_snapshot(target: Pool | str | None, *, progress: Progress | None = None) -> Snapshot:
    """Everything the stores hold in PostgreSQL, read in one REPEATABLE READ transaction."""
    return snapshot_from_contents(await read_postgres(target, progress=progress))


def _refuse_directory(path: str | Path) -> None:
    if Path(path).is_dir():
        raise ConfigurationError(f"the snapshot path {path} is a directory; give a file path")


@dataclass(slots=True)
class ExportSummary:
    """What `export_to_file` wrote: the file and how many records of each section."""

    path: str
    records: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


async def _keyset(
    fetch: Callable[..., Awaitable[list[_R]]], conn: Connection, position: Callable[[_R], int], page_size: int
) -> AsyncIterator[_R]:
    """The rows of a keyset scan, one page in memory at a time."""
    after = 0
    while True:
        page = await fetch(conn, after=after, lim=page_size)
        for row in page:
            yield row
        if len(page) < page_size:
            return
        after = position(page[-1])


async def _by_time(
    fetch: Callable[..., Awaitable[list[Any]]], conn: Connection, page_size: int
) -> AsyncIterator[tuple[datetime, int, Any]]:
    """Edge rows by (created_at, id), one page at a time."""
    after_at, after_id = _BEFORE_ALL, 0
    while True:
        page = await fetch(conn, after_at=after_at, after_id=after_id, lim=page_size)
        for row in page:
            yield row.created_at, row.id, row
        if len(page) < page_size:
            return
        after_at, after_id = page[-1].created_at, page[-1].id


async def _edges_in_order(conn: Connection, page_size: int) -> AsyncIterator[Any]:
    """Resolved and pending edges merged as `snapshot_from_contents` sorts them: by the time they
    were recorded, a resolved edge before a pending one at the same time, then by id."""
    resolved = _by_time(verify_sql.scan_resolved_edges_by_time, conn, page_size)
    pending = _by_time(verify_sql.scan_pending_edges_by_time, conn, page_size)
    left = await anext(resolved, None)
    right = await anext(pending, None)
    while left is not None or right is not None:
        if right is None or (left is not None and (left[0], 0, left[1]) <= (right[0], 1, right[1])):
            assert left is not None
            row = left[2]
            left = await anext(resolved, None)
        else:
            row = right[2]
            right = await anext(pending, None)
        yield [[row.from_ecosystem, row.from_name], [row.to_ecosystem, row.to_name]]


async def _as_json(rows: AsyncIterator[Any], model: Callable[[Any], Any]) -> AsyncIterator[Any]:
    try:
        async for row in rows:
            yield model(row).model_dump(mode="json")
    except ValueError as exc:  # a row the models refuse (pydantic's ValidationError is a ValueError)
        raise SnapshotError(f"PostgreSQL holds a row the API's models refuse: {exc}") from None


async def _contributes_to(rows: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for row in rows:
        yield [row.contributor_id, [row.ecosystem, row.name]]


async def export_to_file(
    target: Pool | str | None, path: str | Path, *, progress: Progress | None = None, page_size: int = PAGE_SIZE
) -> ExportSummary:
    """Everything the stores hold in PostgreSQL, read in one REPEATABLE READ transaction and written
    to `path` atomically in the API's format (plus agent_tasks), the same bytes as
    `write_snapshot(path, await export_snapshot(target))`, streamed: one keyset page in memory."""
    _refuse_directory(path)
    started = time.perf_counter()
    summary = ExportSummary(str(path))
    by_id: Callable[[Any], int] = lambda row: int(row.id)  # noqa: E731
    by_seq: Callable[[Any], int] = lambda row: int(row.seq)  # noqa: E731
    async with read_transaction(target) as conn:
        sections: dict[str, AsyncIterator[Any]] = {
            "projects": _as_json(_keyset(projects_sql.scan_projects, conn, by_id, page_size), project_model),
            "edges": _edges_in_order(conn, page_size),
            "contributors": _as_json(
                _keyset(contributors_sql.scan_contributors, conn, by_seq, page_size), contributor_model
            ),
            "assets": _as_json(_keyset(assets_sql.scan_assets, conn, by_seq, page_size), asset_model),
            "contributions": _as_json(
                _keyset(contributions_sql.scan_contributions, conn, by_seq, page_size), contribution_model
            ),
            "github_contributors": _as_json(
                _keyset(github_sql.scan_github_contributors, conn, by_seq, page_size), github_contributor_model
            ),
            "github_organizations": _as_json(
                _keyset(github_sql.scan_github_organizations, conn, by_seq, page_size), github_organization_model
            ),
            "github_contributes_to": _contributes_to(
                _keyset(verify_sql.scan_contributes_to, conn, by_seq, page_size)
            ),
            TASK_SECTION: _as_json(_keyset(verify_sql.scan_agent_tasks, conn, by_seq, page_size), task_model),
        }
        assert tuple(sections) == (*GRAPH_SECTIONS, TASK_SECTION)
        with SnapshotFileWriter(path) as out:
            for step, (name, records) in enumerate(sections.items()):
                if progress is not None:
                    progress(f"export {name}", step, len(sections))
                summary.records[name] = await out.section(name, records)
            if progress is not None:
                progress("export", len(sections), len(sections))
    summary.seconds = time.perf_counter() - started
    return summary
