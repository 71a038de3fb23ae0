"""One projection for both sides of verify: a side's records as comparable values per entity and
key, and the defects a side holds on its own (a stated total its records do not give, a key-only
record listed twice, a contributes-to edge to an unknown contributor). The source (a snapshot's
models) and PostgreSQL (its scans' rows, whose columns carry the models' field names) go through
the same code, so the two sides cannot drift apart."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Final, Protocol, TypeAlias, cast
from uuid import UUID

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

__all__ = ["Finding", "Projection", "Records", "Side", "Values", "project"]

Values: TypeAlias = tuple[Any, ...]
Side: TypeAlias = dict[str, dict[Key, Values]]
Finding: TypeAlias = tuple[str, Key, Difference]  # (entity, key, what is wrong with it on one side)

_ZERO: Final = Decimal("0.00")
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


def project(snapshot: Records, side: str, *, stored_aggregates: bool) -> Projection:
    """`snapshot` (a side's records) as `side` ("source" or "postgres") holds it.

    Keys are compared case-insensitively, as the stores do; the last record of a repeated project
    key wins, as upsert_project. A derived value (an asset's total_cost, a project's
    dependency_count) is what the records give, unless `stored_aggregates`: PostgreSQL's stored
    values are what the API reads, while the stores and the backfill recompute the source's. Either
    way a stated value its records do not give is a finding on `side`.
    """
    values: Side = {name: {} for name in ENTITIES}
    findings: list[Finding] = []
    edges = values["edges"]
    edge_keys = Counter(
        (e.from_ecosystem.lower(), e.from_name.lower(), e.to_ecosystem.lower(), e.to_name.lower())
        for e in snapshot.edges
    )
    for edge in edge_keys:
        edges[edge] = ()
    findings.extend(_duplicates("edges", edge_keys.items(), side))
    out_degree = Counter(key[:2] for key in cast(Iterable[tuple[str, str, str, str]], edges))
    stated_counts: dict[tuple[str, str], int] = {}
    projects = values["projects"]
    for p in snapshot.projects:
        key = (p.ecosystem.lower(), p.name.lower())
        count = p.dependency_count if stored_aggregates else out_degree.get(key, 0)
        projects[key] = (p.ecosystem, p.name, p.version, p.description, p.homepage_url, p.repository_url, count)
        stated_counts[key] = p.dependency_count
    for key, stated in stated_counts.items():
        computed = out_degree.get(key, 0)
        if stated != computed:
            findings.append(("projects", key, _aggregate("projects", key, "dependency_count", side, stated, computed)))
    contributors = values["contributors"]
    for c in snapshot.contributors:
        contributors[c.id] = (
            _plain(c.type),
            c.name,
            c.email,
            c.wallet_address,
            c.hourly_rate,
            _aware(c.created_at),
            c.github_username,
            c.metadata,
        )
    sums: dict[UUID, Decimal] = {}
    score = _scorer()
    contributions = values["contributions"]
    for k in snapshot.contributions:
        contributions[k.id] = (
            k.contributor_id,
            k.asset_id,
            k.cost_amount,
            score(k.coherence_score),
            k.metadata,
            _aware(k.timestamp),
        )
        sums[k.asset_id] = sums.get(k.asset_id, _ZERO) + k.cost_amount
    assets = values["assets"]
    for a in snapshot.assets:
        total = sums.get(a.id, _ZERO)
        shown = a.total_cost if stored_aggregates else total
        assets[a.id] = (_plain(a.type), a.name, a.description, shown, _aware(a.created_at), a.metadata)
        if a.total_cost != total:
            findings.append(("assets", a.id, _aggregate("assets", a.id, "total_cost", side, a.total_cost, total)))
    github = values["github_contributors"]
    for g in snapshot.github_contributors:
        github[g.id] = (
            g.source,
            g.login,
            g.name,
            g.avatar_url,
            g.contributions_count,
            _aware(g.created_at),
            _aware(g.updated_at),
        )
    organizations = values["github_organizations"]
    for o in snapshot.github_organizations:
        organizations[o.id] = (
            o.login,
            o.type,
            o.name,
            o.avatar_url,
            _aware(o.created_at),
            _aware(o.updated_at),
        )
    works = values["github_contributes_to"]
    work_keys = Counter((w.contributor_id, w.ecosystem.lower(), w.name.lower()) for w in snapshot.github_contributes_to)
    for work in work_keys:
        works[work] = ()
    findings.extend(_duplicates("github_contributes_to", work_keys.items(), side))
    findings.extend(_unknown_contributors(work_keys, github.keys(), side))
    tasks = values["agent_tasks"]
    for t in snapshot.agent_tasks or []:
        tasks[t.id] = (
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
    return Projection(values, findings)


def _duplicates(entity: str, counted: Iterable[tuple[Key, int]], side: str) -> list[Finding]:
    """A key-only record (an edge) listed more than once: the stores and the backfill keep it once,
    so a reader of the source that keeps every row (the API's own loader) would disagree."""
    return [
        (
            entity,
            key,
            Difference(
                entity,
                render_key(entity, key),
                DUPLICATE,
                side=side,
                stated=times,
                computed=1,
                reason=f"listed {times} times (keys compared case-insensitively); kept once",
            ),
        )
        for key, times in counted
        if times > 1
    ]


def _unknown_contributors(works: Iterable[Key], known: Collection[Key], side: str) -> list[Finding]:
    """Contributes-to edges whose GitHub contributor the same side does not have: the project's
    contributor list silently leaves them out."""
    entity = "github_contributes_to"
    out: list[Finding] = []
    for key in works:
        contributor = cast(tuple[str, str, str], key)[0]
        if contributor not in known:
            out.append(
                (
                    entity,
                    key,
                    Difference(
                        entity,
                        render_key(entity, key),
                        UNKNOWN_REFERENCE,
                        field="contributor_id",
                        side=side,
                        stated=contributor,
                        reason=f"contributor {contributor!r} is not a known GitHub contributor",
                    ),
                )
            )
    return out


def _aggregate(entity: str, key: Key, name: str, side: str, stated: Any, computed: Any) -> Difference:
    return Difference(
        entity,
        render_key(entity, key),
        AGGREGATE,
        field=name,
        side=side,
        stated=jsonable(stated),
        computed=jsonable(computed),
    )
