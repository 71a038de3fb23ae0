"""The data set a load test runs over: a deterministic sample snapshot, loaded once.

PostgreSQL gets it through the backfill (`transfer.backfill`), which checkpoints every batch under
the snapshot's digest: a second run over the same database finds the checkpoints and loads
nothing, so a loaded database is reused. The in-memory stores get it through `restore_snapshot`.
The operations draw their keys from the same snapshot, so every keyed read finds a row.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import Final
from uuid import UUID

from coherence_sql.errors import InvalidValueError
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore
from coherence_sql.stores.postgres import connect
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import Snapshot, restore_snapshot

DATASET_SEED: Final = 12


@dataclass(frozen=True, slots=True)
class DatasetSize:
    """How many of each record the snapshot holds (the API's shape at 10k projects by default)."""

    projects: int = 10_000
    edges: int = 30_000
    contributors: int = 1_000
    assets: int = 1_000
    contributions: int = 10_000
    tasks: int = 2_000

    @classmethod
    def parse(cls, text: str) -> DatasetSize:
        """`projects=10000,edges=30000,...`: the sizes named, the defaults for the others."""
        known = {f.name for f in fields(cls)}
        given: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in known:
                raise InvalidValueError(
                    f"dataset: expected NAME=COUNT with NAME one of {', '.join(sorted(known))}, got {part!r}"
                )
            try:
                count = int(value)
            except ValueError:
                raise InvalidValueError(f"dataset: {name} must be a whole number, got {value.strip()!r}") from None
            if count < 1:
                raise InvalidValueError(f"dataset: {name} must be at least 1, got {count}")
            given[name] = count
        return cls(**given)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DatasetKeys:
    """The keys the operations read and write: every one exists in the loaded data set."""

    projects: tuple[tuple[str, str], ...]
    contributors: tuple[UUID, ...]
    assets: tuple[UUID, ...]
    tasks: tuple[str, ...]
    words: tuple[str, ...]  # search terms that match names in the data set


@dataclass(frozen=True, slots=True)
class Dataset:
    size: DatasetSize
    snapshot: Snapshot
    keys: DatasetKeys


@dataclass(frozen=True, slots=True)
class LoadedReport:
    """What bringing the data set into a database took."""

    rows_inserted: int
    seconds: float


def make_dataset(size: DatasetSize, seed: int = DATASET_SEED) -> Dataset:
    snapshot = sample_snapshot(
        projects=size.projects,
        edges=size.edges,
        contributors=size.contributors,
        assets=size.assets,
        contributions=size.contributions,
        tasks=size.tasks,
        seed=seed,
    )
    keys = DatasetKeys(
        projects=tuple((p.ecosystem, p.name) for p in snapshot.projects),
        contributors=tuple(c.id for c in snapshot.contributors),
        assets=tuple(a.id for a in snapshot.assets),
        tasks=tuple(t.id for t in snapshot.agent_tasks or ()),
        words=("react", "serde", "tokio", "flask", "numpy", "core-1", "utilities #4"),
    )
    return Dataset(size, snapshot, keys)


async def load_postgres(dsn: str, dataset: Dataset) -> LoadedReport:
    """Backfill the data set; a database that already holds it (same digest) costs a checkpoint read.

    A database holding contributors of another data set is refused: the sample data sets share
    e-mail addresses, so the backfill would keep the other set's contributors and refuse this
    one's contributions."""
    started = time.perf_counter()
    async with connect(dsn) as database:
        ours = await database.graph.get_contributor(dataset.keys.contributors[-1])
        others = await database.graph.list_contributors(1)
    if ours is None and others:
        raise InvalidValueError(
            "the database holds another data set (an earlier load test with other --dataset sizes, or real "
            "data): give each data set a scratch database of its own (created, then `coherence-sql migrate`)"
        )
    report = await backfill(dsn, dataset.snapshot)
    return LoadedReport(rows_inserted=report.inserted, seconds=time.perf_counter() - started)


async def load_memory(dataset: Dataset) -> tuple[MemoryGraphStore, MemoryAgentTaskStore]:
    """Fresh in-memory stores holding the data set."""
    graph, tasks = MemoryGraphStore(), MemoryAgentTaskStore()
    await restore_snapshot(dataset.snapshot, graph, tasks)
    return graph, tasks
