"""JSON snapshots of the in-memory stores, in the API's own persistence format plus `agent_tasks`.

`save_snapshot` writes atomically; `load_snapshot` parses and validates a file into a `Snapshot`
(failing loudly, naming section, record and field); `restore_snapshot` fills memory stores from it
all or nothing. The API's files (client-contract §2.5) load as they are.
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from coherence_sql.errors import CoherenceSQLError, SnapshotError
from coherence_sql.models import (
    AgentTaskRecord,
    Asset,
    Contribution,
    Contributor,
    GitHubContributor,
    GitHubOrganization,
    Project,
)
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore
from coherence_sql.stores.protocol import DependencyEdge

_M = TypeVar("_M", bound=BaseModel)

# The API's top-level keys in its order (client-contract §2.5); ours adds agent_tasks at the end.
GRAPH_SECTIONS = (
    "projects",
    "edges",
    "contributors",
    "assets",
    "contributions",
    "github_contributors",
    "github_organizations",
    "github_contributes_to",
)
TASK_SECTION = "agent_tasks"


class ContributesTo(NamedTuple):
    """A GitHub contributor works on a project, by project key."""

    contributor_id: str
    ecosystem: str
    name: str


@dataclass
class Snapshot:
    """A snapshot file's records, each validated against its model; edges and keys as stored."""

    projects: list[Project] = field(default_factory=list)
    edges: list[DependencyEdge] = field(default_factory=list)
    contributors: list[Contributor] = field(default_factory=list)
    assets: list[Asset] = field(default_factory=list)
    contributions: list[Contribution] = field(default_factory=list)
    github_contributors: list[GitHubContributor] = field(default_factory=list)
    github_organizations: list[GitHubOrganization] = field(default_factory=list)
    github_contributes_to: list[ContributesTo] = field(default_factory=list)
    agent_tasks: list[AgentTaskRecord] | None = None  # None: the file has no agent_tasks section

    @classmethod
    def of(cls, graph: MemoryGraphStore, tasks: MemoryAgentTaskStore | None = None) -> Snapshot:
        """What the stores hold now, in insertion order."""
        return cls(
            projects=graph.all_projects(),
            edges=graph.all_edges(),
            contributors=graph.all_contributors(),
            assets=graph.all_assets(),
            contributions=graph.all_contributions(),
            github_contributors=graph.all_github_contributors(),
            github_organizations=graph.all_github_organizations(),
            github_contributes_to=[ContributesTo(*row) for row in graph.all_github_contributes_to()],
            agent_tasks=None if tasks is None else tasks.all_tasks(),
        )

    def to_json(self) -> dict[str, Any]:
        """The file's object: the API's keys in its order, then agent_tasks when there are tasks."""
        data: dict[str, Any] = {
            "projects": [p.model_dump(mode="json") for p in self.projects],
            "edges": [[[e.from_ecosystem, e.from_name], [e.to_ecosystem, e.to_name]] for e in self.edges],
            "contributors": [c.model_dump(mode="json") for c in self.contributors],
            "assets": [a.model_dump(mode="json") for a in self.assets],
            "contributions": [c.model_dump(mode="json") for c in self.contributions],
            "github_contributors": [g.model_dump(mode="json") for g in self.github_contributors],
            "github_organizations": [o.model_dump(mode="json") for o in self.github_organizations],
            "github_contributes_to": [[c.contributor_id, [c.ecosystem, c.name]] for c in self.github_contributes_to],
        }
        if self.agent_tasks is not None:
            data[TASK_SECTION] = [t.model_dump(mode="json") for t in self.agent_tasks]
        return data


# -- saving --------------------------------------------------------------------------------------


def save_snapshot(path: str | os.PathLike[str], graph: MemoryGraphStore, tasks: MemoryAgentTaskStore | None) -> None:
    """Write the stores to `path` atomically: a temp file in the same directory, fsync, rename.

    Without `tasks` the file is exactly the API's format (no agent_tasks key).
    """
    write_snapshot(path, Snapshot.of(graph, tasks))


def write_snapshot(path: str | os.PathLike[str], snapshot: Snapshot) -> None:
    """Write `snapshot` to `path` atomically; a crash leaves the old file or the new one, never half."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(snapshot.to_json(), out, indent=0)  # the API's json.dump(data, f, indent=0)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)  # make the rename itself durable


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- loading -------------------------------------------------------------------------------------


def load_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read and validate a snapshot file; any bad record raises `SnapshotError` naming where it is."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{source}: cannot read the snapshot: {exc}") from None
    try:
        with collector_paused():
            data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{source}: not valid JSON: {exc}") from None
    return parse_snapshot(data, origin=str(source))


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: building ~200,000 acyclic objects (models, rows) would
    trigger collections that rescan all of them, about half the time spent (docs/benchmarks.md)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_snapshot(data: object, *, origin: str = "snapshot") -> Snapshot:
    """Validate a decoded snapshot object (missing sections are empty, as in the API's loader)."""
    with collector_paused():
        return _parse_snapshot(data, origin)


def _parse_snapshot(data: object, origin: str) -> Snapshot:
    if not isinstance(data, dict):
        raise SnapshotError(f"{origin}: the top level must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - {*GRAPH_SECTIONS, TASK_SECTION})
    if unknown:
        raise SnapshotError(f"{origin}: unknown sections {unknown}")
    sections = {name: _section(data, name, origin) for name in (*GRAPH_SECTIONS, TASK_SECTION)}
    return Snapshot(
        projects=_models(sections, "projects", Project, origin),
        edges=_rows(sections, "edges", _edge, origin),
        contributors=_models(sections, "contributors", Contributor, origin),
        assets=_models(sections, "assets", Asset, origin),
        contributions=_models(sections, "contributions", Contribution, origin),
        github_contributors=_models(sections, "github_contributors", GitHubContributor, origin),
        github_organizations=_models(sections, "github_organizations", GitHubOrganization, origin),
        github_contributes_to=_rows(sections, "github_contributes_to", _contributes_to, origin),
        agent_tasks=_models(sections, TASK_SECTION, AgentTaskRecord, origin) if TASK_SECTION in data else None,
    )


def _section(data: dict[str, Any], name: str, origin: str) -> list[Any]:
    records = data.get(name, [])
    if not isinstance(records, list):
        raise SnapshotError(f"{origin}: section {name!r} must be a list, got {type(records).__name__}")
    return records


def _models(sections: dict[str, list[Any]], name: str, model: type[_M], origin: str) -> list[_M]:
    out: list[_M] = []
    for index, record in enumerate(sections[name]):
        try:
            out.append(model.model_validate(record))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(record)"
            raise SnapshotError(
                f"{origin}: {name}[{index}].{where}: {first['msg']} (input {first.get('input')!r})"
            ) from None
    return out


_R = TypeVar("_R")


def _rows(sections: dict[str, list[Any]], name: str, parse: Callable[[Any], _R], origin: str) -> list[_R]:
    out: list[_R] = []
    for index, record in enumerate(sections[name]):
        try:
            out.append(parse(record))
        except ValueError as exc:
            raise SnapshotError(f"{origin}: {name}[{index}]: {exc} (got {record!r})") from None
    return out


def _pair(value: object) -> tuple[str, str]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError("expected [ecosystem, name]")
    return value[0], value[1]


def _edge(record: object) -> DependencyEdge:
    if not (isinstance(record, list) and len(record) == 2):
        raise ValueError("expected [[from_ecosystem, from_name], [to_ecosystem, to_name]]")
    return DependencyEdge(*_pair(record[0]), *_pair(record[1]))


def _contributes_to(record: object) -> ContributesTo:
    if not (isinstance(record, list) and len(record) == 2 and isinstance(record[0], str)):
        raise ValueError("expected [contributor_id, [ecosystem, name]]")
    return ContributesTo(record[0], *_pair(record[1]))


# -- restoring into memory stores ------------------------------------------------------------------


async def restore_snapshot(
    snapshot: Snapshot, graph: MemoryGraphStore, tasks: MemoryAgentTaskStore | None = None
) -> None:
    """Replace the stores' contents with the snapshot's, through the stores' own validation.

    Everything is loaded into fresh stores first and handed over only when every record went in,
    so a bad record raises `SnapshotError` (section, index, reason) and the targets stay untouched.
    `tasks` is left as it is when the snapshot has no agent_tasks section (an API graph file).
    Derived values are recomputed, not read: dependency_count from the edges, total_cost from the
    contributions (docs/decisions.md "Stores").
    """
    fresh_graph = MemoryGraphStore()
    await _apply(snapshot.projects, "projects", fresh_graph.upsert_project)
    await _apply(snapshot.edges, "edges", lambda e: fresh_graph.add_dependency(*e))
    await _apply(snapshot.contributors, "contributors", fresh_graph.create_contributor)
    await _apply(snapshot.assets, "assets", fresh_graph.create_asset)
    await _apply(
        snapshot.contributions,
        "contributions",
        lambda c: fresh_graph.create_contribution(
            c.contributor_id,
            c.asset_id,
            c.cost_amount,
            c.coherence_score,
            c.metadata,
            id=c.id,
            timestamp=c.timestamp,
        ),
    )
    await _apply(snapshot.github_contributors, "github_contributors", fresh_graph.upsert_github_contributor)
    await _apply(snapshot.github_organizations, "github_organizations", fresh_graph.upsert_github_organization)
    await _apply(
        snapshot.github_contributes_to,
        "github_contributes_to",
        lambda c: fresh_graph.add_github_contributes_to(c.contributor_id, c.ecosystem, c.name),
    )
    fresh_tasks = MemoryAgentTaskStore()
    restore_tasks = tasks is not None and snapshot.agent_tasks is not None
    if restore_tasks:
        await _apply(snapshot.agent_tasks or [], TASK_SECTION, fresh_tasks.create_task)
    graph.replace_contents(fresh_graph)
    if tasks is not None and restore_tasks:
        tasks.replace_contents(fresh_tasks)


async def load_into(
    path: str | os.PathLike[str], graph: MemoryGraphStore, tasks: MemoryAgentTaskStore | None = None
) -> Snapshot:
    """`load_snapshot` then `restore_snapshot`: the stores hold the file's contents, or are untouched."""
    snapshot = load_snapshot(path)
    try:
        await restore_snapshot(snapshot, graph, tasks)
    except SnapshotError as exc:
        raise SnapshotError(f"{path}: {exc}") from exc.__cause__
    return snapshot


_T = TypeVar("_T")


async def _apply(records: Sequence[_T], section: str, write: Callable[[_T], Any]) -> None:
    for index, record in enumerate(records):
        try:
            await write(record)
        except CoherenceSQLError as exc:
            raise SnapshotError(f"{section}[{index}]: {type(exc).__name__}: {exc}") from exc
