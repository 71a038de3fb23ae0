"""PostgreSQL as a snapshot: the rows read in one moment, made models by the PostgreSQL store's own
mappers (rows become models in one place), in the API's file format (phase 3's way back)."""

from __future__ import annotations

from pathlib import Path

from coherence_sql.db import Pool
from coherence_sql.errors import ConfigurationError, SnapshotError
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
from coherence_sql.transfer.postgres_reader import PostgresContents, read_postgres
from coherence_sql.transfer.progress import Progress
from coherence_sql.transfer.snapshot import ContributesTo, Snapshot, write_snapshot

__all__ = ["export_snapshot", "export_to_file", "snapshot_from_contents"]


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


async def export_to_file(target: Pool | str | None, path: str | Path, *, progress: Progress | None = None) -> Snapshot:
    """`export_snapshot`, written to `path` atomically in the API's format (plus agent_tasks)."""
    _refuse_directory(path)
    snapshot = await export_snapshot(target, progress=progress)
    write_snapshot(path, snapshot)
    return snapshot
