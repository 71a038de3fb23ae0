"""What a load test runs against: the PostgreSQL stores, the in-memory stores, or the cut-over
stores in one of the plan's phases, each holding the same data set.

    async with open_target(Target("cutover", Phase.DUAL_WRITE), dsn, dataset, workdir) as stores:
        await stores.graph.get_project("npm", "react-1")
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from coherence_sql.cutover.service import CutoverStores, open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings, Phase
from coherence_sql.errors import InvalidValueError
from coherence_sql.loadtest.dataset import Dataset, load_memory
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore
from coherence_sql.stores.postgres import connect

KINDS: Final = ("postgres", "memory", "cutover")
PHASES: Final = (Phase.DUAL_WRITE.value, Phase.POSTGRES_PRIMARY.value)


@dataclass(frozen=True, slots=True)
class Target:
    kind: str  # one of KINDS
    phase: Phase | None = None  # the cut-over stores' phase
    read_percent: int = 0  # dual-write: READ_FROM_POSTGRES_PERCENT

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidValueError(f"stores must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if (self.kind == "cutover") != (self.phase is not None):
            raise InvalidValueError("a phase goes with the cut-over stores, and only with them")
        if not 0 <= self.read_percent <= 100:
            raise InvalidValueError(f"read percent must be from 0 to 100, got {self.read_percent}")

    @property
    def name(self) -> str:
        if self.phase is None:
            return self.kind
        if self.phase is Phase.DUAL_WRITE:
            return f"cutover:{self.phase.value}:reads-{self.read_percent}%"
        return f"cutover:{self.phase.value}"

    @property
    def uses_postgres(self) -> bool:
        return self.kind != "memory"

    def settings(self, dsn: str, journal: Path) -> CutoverSettings:
        if self.phase is Phase.POSTGRES_PRIMARY:
            return CutoverSettings(dual_write=True, postgres_primary=True, journal_path=journal, database_url=dsn)
        return CutoverSettings(
            dual_write=True, read_from_postgres_percent=self.read_percent, journal_path=journal, database_url=dsn
        )


def targets_from(kinds: str, phases: str, read_percent: int) -> list[Target]:
    """`--stores postgres,memory,cutover --phase dual-write,postgres-primary` as targets, in order."""
    found: list[Target] = []
    for kind in filter(None, (k.strip() for k in kinds.split(","))):
        if kind != "cutover":
            found.append(Target(kind))
            continue
        for phase in filter(None, (p.strip() for p in phases.split(","))):
            if phase not in PHASES:
                raise InvalidValueError(f"phase must be one of {', '.join(PHASES)}, got {phase!r}")
            found.append(Target(kind, Phase(phase), read_percent))
    if not found:
        raise InvalidValueError("name at least one store: postgres, memory or cutover")
    return found


@dataclass(frozen=True, slots=True)
class OpenStores:
    graph: Any  # a GraphStore
    tasks: Any  # an AgentTaskStore
    cutover: CutoverStores | None = None  # its counters say what was journaled or fell back

    def cutover_counters(self) -> dict[str, int]:
        """The cut-over stores' write and read counters (empty for the other stores)."""
        if self.cutover is None:
            return {}
        stats = self.cutover.core.stats
        return {f.name: getattr(stats, f.name) for f in fields(stats) if isinstance(getattr(stats, f.name), int)}


@asynccontextmanager
async def open_target(
    target: Target, dsn: str | None, dataset: Dataset | None, workdir: Path
) -> AsyncIterator[OpenStores]:
    """The target's stores; memory (and the cut-over stores' memory side) restored from `dataset`.
    PostgreSQL must hold the data set already (`dataset.load_postgres`)."""
    if target.uses_postgres and dsn is None:
        raise InvalidValueError(f"{target.name} needs a PostgreSQL database")
    if target.kind == "memory":
        graph, tasks = await load_memory(dataset) if dataset else (MemoryGraphStore(), MemoryAgentTaskStore())
        yield OpenStores(graph, tasks)
        return
    assert dsn is not None
    if target.kind == "postgres":
        async with connect(dsn) as stores:
            yield OpenStores(stores.graph, stores.tasks)
        return
    graph, tasks = await load_memory(dataset) if dataset else (MemoryGraphStore(), MemoryAgentTaskStore())
    settings = target.settings(dsn, workdir / f"journal-{target.name.replace(':', '-').replace('%', '')}.jsonl")
    async with open_cutover_stores(
        settings, memory_graph=graph, memory_tasks=tasks, reconcile_interval_s=None
    ) as cutover:
        yield OpenStores(cutover.graph, cutover.tasks, cutover)
