"""One projection for both sides of verify: a side's records as comparable values per entity and
key, and the defects a side holds on its own (a stated total its records do not give, a key-only
record listed twice, a contributes-to edge to an unknown contributor). The source (a snapshot's
models) and PostgreSQL (its scans' rows, whose columns carry the models' field names) go through
the same code, so the two sides cannot drift apart."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Final, Protocol, TypeAlias, cast

from coherence_sql.stores import rules
from coherence_sql.transfer.verify.report import (
    AGGREGATE,
    DUPLICATE,
    ENTITIES,
    UNKNOWN_REFERENCE,
    Difference,
    Key,
    jsonable,
    render_key,
)

__all__ = [
    "DERIVED",
    "ZERO",
    "Finding",
    "Projection",
    "Records",
    "Rows",
    "Side",
    "Values",
    "aggregate",
    "duplicate",
    "edge_key",
    "project",
    "project_key",
    "unknown_contributor",
    "with_derived",
    "work_key",
]

Values: TypeAlias = tuple[Any, ...]
Side: TypeAlias = dict[str, dict[Key, Values]]
Finding: TypeAlias = tuple[str, Key, Difference]  # (entity, key, what is wrong with it on one side)

ZERO: Final = Decimal("0.00")
_SCORES_MAX: Final = 4096


class Records(Protocol):
    """What a side holds, section by section: a `Snapshot`'s models, or PostgreSQL's rows. A record
    is read by the models' field names; `agent_tasks` is None when the side has no task section."""

    @property
    def projects(self) -> Sequence[Any]: ...
    @property
    def edges(self) -> Sequence[Any]: ...
    @property
    def contributors(self) -> Sequence[Any]: ...
    @property
    def assets(self) -> Sequence[Any]: ...
    @property
    def contributions(self) -> Sequence[Any]: ...
    @property
    def github_contributors(self) -> Sequence[Any]: ...
    @property
    def github_organizations(self) -> Sequence[Any]: ...
    @property
    def github_contributes_to(self) -> Sequence[Any]: ...
    @property
    def agent_tasks(self) -> Sequence[Any] | None: ...


@dataclass(slots=True)
class Projection:
    """One side: `values[entity][key]` in FIELDS order, and the side's own defects."""

    values: Side
    findings: list[Finding]


def _plain(value: Any) -> Any:
    """An enum by its value (a model holds the enum, a row the text)."""
    return value.value if isinstance(value, Enum) else value


def _aware(value: datetime | None) -> datetime | None:
    """A time as aware UTC (models hold naive UTC, rows aware UTC: those pass as they are)."""
    if value is None or value.tzinfo is UTC:
        return value
    return rules.optional_aware(value)


def _scorer() -> Any:
    """coherence_score as DECIMAL(3,2) holds it (rounded half-even, as both stores write it);
    memoised per run: scores repeat (two places)."""
    seen: dict[Any, Decimal] = {}

    def score(value: Any) -> Decimal:
        kind = type(value)
        if not ((kind is float and math.isfinite(value)) or (kind is Decimal and value.is_finite())):
            return Decimal(str(rules.coherence_score(value)))  # NaN, sNaN, a bool…: the rule's own error
        stored = seen.get(value)
        if stored is None:
            stored = Decimal(str(rules.coherence_score(value)))
            if len(seen) < _SCORES_MAX:
                seen[value] = stored
        return stored

    return score


# The field of FIELDS that each side derives from other records: the source computes it, PostgreSQL
# stores it. A row's values hold the record's stated value there; `project` and the streamed
# comparison put the side's compared value in its place.
DERIVED: Final[dict[str, int]] = {"projects": 6, "assets": 3}


def project_key(ecosystem: str, name: str) -> Key:
    return (ecosystem.lower(), name.lower())


def edge_key(edge: Any) -> Key:
    return (edge.from_ecosystem.lower(), edge.from_name.lower(), edge.to_ecosystem.lower(), edge.to_name.lower())


def work_key(work: Any) -> Key:
    return (work.contributor_id, work.ecosystem.lower(), work.name.lower())


class Rows:
    """A side's records one at a time: `row(entity, record)` is the record's key and its values in
    FIELDS order (the derived field as the record states it). One per run: scores are memoised."""

    def __init__(self) -> None:
        self._score = _scorer()

    def row(self, entity: str, record: Any) -> tuple[Key, Values]:
        return _ROWS[entity](self, record)

    def _projects(self, p: Any) -> tuple[Key, Values]:
        values = (p.ecosystem, p.name, p.version, p.description, p.homepage_url, p.repository_url, p.dependency_count)
        return project_key(p.ecosystem, p.name), values

    def _edges(self, e: Any) -> tuple[Key, Values]:
        return edge_key(e), ()

    def _contributors(self, c: Any) -> tuple[Key, Values]:
        return c.id, (
            _plain(c.type),
            c.name,
            c.email,
            c.wallet_address,
            c.hourly_rate,
            _aware(c.created_at),
            c.github_username,
            c.metadata,
        )

    def _assets(self, a: Any) -> tuple[Key, Values]:
        return a.id, (_plain(a.type), a.name, a.description, a.total_cost, _aware(a.created_at), a.metadata)

    def _contributions(self, k: Any) -> tuple[Key, Values]:
        return k.id, (
            k.contributor_id,
            k.asset_id,
            k.cost_amount,
            self._score(k.coherence_score),
            k.metadata,
            _aware(k.timestamp),
        )

    def _github_contributors(self, g: Any) -> tuple[Key, Values]:
        return g.id, (
            g.source,
            g.login,
            g.name,
            g.avatar_url,
            g.contributions_count,
            _aware(g.created_at),
            _aware(g.updated_at),
        )

    def _github_organizations(self, o: Any) -> tuple[Key, Values]:
        return o.id, (o.login, o.type, o.name, o.avatar_url, _aware(o.created_at), _aware(o.updated_at))

    def _github_contributes_to(self, w: Any) -> tuple[Key, Values]:
        return work_key(w), ()

    def _agent_tasks(self, t: Any) -> tuple[Key, Values]:
        return t.id, (
            t.direction,
            t.task_type,
            t.status,
            t.model,
            t.command,
            t.tier,
            t.context,
            t.output,
            t.progress_pct,
            t.current_step,
            t.decision_prompt,
            t.decision,
            _aware(t.started_at),
            _aware(t.created_at),
            _aware(t.updated_at),
            t.claimed_by,
            _aware(t.claimed_at),
        )


_ROWS: Final[dict[str, Callable[[Rows, Any], tuple[Key, Values]]]] = {
    name: getattr(Rows, f"_{name}") for name in ENTITIES
}


def with_derived(entity: str, values: Values, derived: Any) -> Values:
    """`values` with the derived field (if the entity has one) replaced by `derived`."""
    at = DERIVED[entity]
    return (*values[:at], derived, *values[at + 1 :])


def project(snapshot: Records, side: str, *, stored_aggregates: bool) -> Projection:
    """`snapshot` (a side's records) as `side` ("source" or "postgres") holds it, all in memory (the
    reference `compare` uses; `verify` streams, through the same `Rows`, see `streamed`).

    Keys are compared case-insensitively, as the stores do; the last record of a repeated project
    key wins, as upsert_project. A derived value (an asset's total_cost, a project's
    dependency_count) is what the records give, unless `stored_aggregates`: PostgreSQL's stored
    values are what the API reads, while the stores and the backfill recompute the source's. Either
    way a stated value its records do not give is a finding on `side`.
    """
    rows = Rows()
    values: Side = {name: {} for name in ENTITIES}
    findings: list[Finding] = []
    edges = values["edges"]
    edge_keys = Counter(edge_key(e) for e in snapshot.edges)
    for edge in edge_keys:
        edges[edge] = ()
    findings.extend(_duplicates("edges", edge_keys.items(), side))
    out_degree: Counter[Key] = Counter(key[:2] for key in cast(Iterable[tuple[str, str, str, str]], edges))
    stated_counts: dict[Key, int] = {}
    projects = values["projects"]
    for p in snapshot.projects:
        key, row = rows.row("projects", p)
        projects[key] = row if stored_aggregates else with_derived("projects", row, out_degree.get(key, 0))
        stated_counts[key] = p.dependency_count
    for key, stated in stated_counts.items():
        computed = out_degree.get(key, 0)
        if stated != computed:
            findings.append(("projects", key, aggregate("projects", key, "dependency_count", side, stated, computed)))
    for entity in ("contributors", "contributions", "github_contributors", "github_organizations"):
        side_values = values[entity]
        for record in getattr(snapshot, entity):
            key, row = rows.row(entity, record)
            side_values[key] = row
    sums: dict[Key, Decimal] = {}
    for k in snapshot.contributions:
        sums[k.asset_id] = sums.get(k.asset_id, ZERO) + k.cost_amount
    assets = values["assets"]
    for a in snapshot.assets:
        key, row = rows.row("assets", a)
        total = sums.get(key, ZERO)
        assets[key] = row if stored_aggregates else with_derived("assets", row, total)
        if a.total_cost != total:
            findings.append(("assets", key, aggregate("assets", key, "total_cost", side, a.total_cost, total)))
    works = values["github_contributes_to"]
    work_keys = Counter(work_key(w) for w in snapshot.github_contributes_to)
    for work in work_keys:
        works[work] = ()
    findings.extend(_duplicates("github_contributes_to", work_keys.items(), side))
    findings.extend(_unknown_contributors(work_keys, values["github_contributors"].keys(), side))
    tasks = values["agent_tasks"]
    for t in snapshot.agent_tasks or []:
        key, row = rows.row("agent_tasks", t)
        tasks[key] = row
    return Projection(values, findings)


def _duplicates(entity: str, counted: Iterable[tuple[Key, int]], side: str) -> list[Finding]:
    return [(entity, key, duplicate(entity, key, times, side)) for key, times in counted if times > 1]


def duplicate(entity: str, key: Key, times: int, side: str) -> Difference:
    """A key-only record (an edge) listed more than once: the stores and the backfill keep it once,
    so a reader of the source that keeps every row (the API's own loader) would disagree."""
    return Difference(
        entity,
        render_key(entity, key),
        DUPLICATE,
        side=side,
        stated=times,
        computed=1,
        reason=f"listed {times} times (keys compared case-insensitively); kept once",
    )


def _unknown_contributors(works: Iterable[Key], known: Collection[Key], side: str) -> list[Finding]:
    out: list[Finding] = []
    for key in works:
        if cast(tuple[str, str, str], key)[0] not in known:
            out.append(("github_contributes_to", key, unknown_contributor(key, side)))
    return out


def unknown_contributor(key: Key, side: str) -> Difference:
    """A contributes-to edge whose GitHub contributor the same side does not have: the project's
    contributor list silently leaves it out."""
    entity = "github_contributes_to"
    contributor = cast(tuple[str, str, str], key)[0]
    return Difference(
        entity,
        render_key(entity, key),
        UNKNOWN_REFERENCE,
        field="contributor_id",
        side=side,
        stated=contributor,
        reason=f"contributor {contributor!r} is not a known GitHub contributor",
    )


def aggregate(entity: str, key: Key, name: str, side: str, stated: Any, computed: Any) -> Difference:
    """A stated total or count its side's records do not give."""
    return Difference(
        entity,
        render_key(entity, key),
        AGGREGATE,
        field=name,
        side=side,
        stated=jsonable(stated),
        computed=jsonable(computed),
    )
