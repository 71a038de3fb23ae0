"""Deterministic sample snapshots: the same arguments always give the same records, byte for byte.

For the backfill benchmark and for tests: display case that differs from the keys, edges to
projects the snapshot does not have (they stay pending), timestamp ties, optional fields both set
and empty, every task status. Derived values are consistent (total_cost is the sum of the asset's
contributions, dependency_count the out-degree), as the in-memory stores would save them.

    snapshot = sample_snapshot(projects=100, edges=300, contributions=500, seed=7)
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

from coherence_sql.models import (
    AgentTaskRecord,
    Asset,
    AssetType,
    Contribution,
    Contributor,
    ContributorType,
    GitHubContributor,
    GitHubOrganization,
    Project,
    TaskStatus,
    TaskType,
)
from coherence_sql.stores.protocol import DependencyEdge
from coherence_sql.transfer.snapshot import ContributesTo, Snapshot

__all__ = ["sample_snapshot"]

BASE_TIME: Final = datetime(2026, 1, 15, 9, 30, 0, 250000)  # naive UTC, as the graph models carry it
_ECOSYSTEMS: Final = ("npm", "PyPI", "crates", "Maven", "Go")
_WORDS: Final = ("react", "lodash", "serde", "Tokio", "requests", "Flask", "guava", "Cobra", "numpy", "express")
_PENDING_SHARE: Final = 0.05  # edges to projects the snapshot does not have


def _cents(n: int) -> Decimal:
    """An amount with two places, as both stores keep it (`12.30`, not `12.3`)."""
    return (Decimal(n) / 100).quantize(Decimal("0.01"))


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _project(rng: random.Random, i: int) -> Project:
    word = _WORDS[i % len(_WORDS)]
    name = f"{word}-{i}" if i % 3 else f"{word.upper()}-Core-{i}"  # display case differs from the key
    return Project(
        name=name,
        ecosystem=_ECOSYSTEMS[i % len(_ECOSYSTEMS)],
        version=f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}",
        description=f"{word} utilities #{i}" + (" — café ☕" if i % 11 == 0 else ""),
        homepage_url=f"https://{word.lower()}.example.org/{i}" if i % 4 else None,
        repository_url=f"https://github.com/coherence/{word.lower()}-{i}" if i % 5 else None,
    )


def _edges(rng: random.Random, keys: list[tuple[str, str]], count: int) -> list[DependencyEdge]:
    """`count` distinct edges by lower-case key; about 5% point at projects the snapshot lacks."""
    chosen: dict[tuple[tuple[str, str], tuple[str, str]], None] = {}
    attempts = 0
    while len(chosen) < count:
        attempts += 1
        if attempts > count * 50:
            raise ValueError(f"cannot draw {count} distinct edges from {len(keys)} projects")
        source = keys[rng.randrange(len(keys))] if keys else ("npm", f"indexer-{rng.randrange(count + 1)}")
        if len(keys) < 2 or rng.random() < _PENDING_SHARE:
            target = ("npm", f"not-indexed-{rng.randrange(max(1, count // 20))}")
        else:
            target = keys[rng.randrange(len(keys))]
        if source != target:
            chosen[(source, target)] = None
    return [DependencyEdge(*s, *t) for s, t in chosen]


def _contributor(rng: random.Random, i: int) -> Contributor:
    return Contributor(
        id=_uuid(rng),
        type=ContributorType.SYSTEM if i % 9 == 0 else ContributorType.HUMAN,
        name=f"Contributor {i}",
        email=f"Person.{i}@coherence.network",
        wallet_address=f"0x{rng.getrandbits(160):040x}" if i % 2 else None,
        hourly_rate=_cents(rng.randint(0, 25000)) if i % 3 else None,
        created_at=BASE_TIME + timedelta(seconds=i // 2),  # pairs share a time: ties by insertion
        github_username=f"gh-user-{i}" if i % 4 == 0 else None,
        metadata={"team": f"team-{i % 7}", "level": i % 5} if i % 2 == 0 else {},
    )


def _asset(rng: random.Random, i: int) -> Asset:
    kinds = list(AssetType)
    return Asset(
        id=_uuid(rng),
        type=kinds[i % len(kinds)],
        description=f"GitHub repository: coherence/asset-{i}",
        created_at=BASE_TIME + timedelta(seconds=i // 2),
        metadata={"source": "sample", "n": i} if i % 3 == 0 else {},
    )


def _contribution(rng: random.Random, i: int, contributor: uuid.UUID, asset: uuid.UUID) -> Contribution:
    return Contribution(
        id=_uuid(rng),
        contributor_id=contributor,
        asset_id=asset,
        cost_amount=_cents(rng.randint(0, 500000)),
        coherence_score=rng.randint(0, 100) / 100,
        metadata={"has_tests": i % 2 == 0, "has_docs": i % 3 == 0, "complexity": "low" if i % 4 == 0 else "medium"},
        timestamp=BASE_TIME + timedelta(milliseconds=(i // 3) * 7),
    )


def _github_contributor(rng: random.Random, i: int) -> GitHubContributor:
    login = f"octo-{i}"
    return GitHubContributor(
        id=f"github:{login}",
        login=login,
        name=f"Octo {i}" if i % 2 else None,
        avatar_url=f"https://avatars.example.org/u/{i}" if i % 3 else None,
        contributions_count=rng.randint(0, 5000),
        created_at=BASE_TIME + timedelta(minutes=i),
        updated_at=BASE_TIME + timedelta(minutes=i, seconds=30) if i % 2 == 0 else None,
    )


def _github_organization(i: int) -> GitHubOrganization:
    login = f"org-{i}"
    return GitHubOrganization(
        id=f"github:{login}",
        login=login,
        type="User" if i % 4 == 0 else "Organization",
        name=f"Organization {i}" if i % 3 else None,
        avatar_url=f"https://avatars.example.org/o/{i}",
        created_at=BASE_TIME + timedelta(hours=i),
        updated_at=None,
    )


def _task(rng: random.Random, i: int) -> AgentTaskRecord:
    statuses = list(TaskStatus)
    types = list(TaskType)
    status = statuses[i % len(statuses)]
    created = BASE_TIME.replace(tzinfo=UTC) + timedelta(seconds=i // 2)
    started = created + timedelta(seconds=5) if status is not TaskStatus.PENDING else None
    updated = created + timedelta(seconds=60) if status is not TaskStatus.PENDING else None
    direction = f"Implement feature {i}: keep the store's contract"
    return AgentTaskRecord(
        id=f"task_{rng.getrandbits(64):016x}",
        direction=direction,
        task_type=types[i % len(types)],
        status=status,
        model="openrouter/free",
        command=f'aider --model ollama/glm-4.7-flash:q8_0 --yes "{direction}"',
        tier="openrouter",
        context={"source": "sample", "issue": i} if i % 2 == 0 else None,
        output=f"done {i}" if status in (TaskStatus.COMPLETED, TaskStatus.FAILED) and i % 3 else None,
        progress_pct=(i * 7) % 101 if status is TaskStatus.RUNNING else None,
        current_step="testing" if status is TaskStatus.RUNNING else None,
        decision_prompt="Ship it?" if status is TaskStatus.NEEDS_DECISION else None,
        decision=None,
        started_at=started,
        created_at=created,
        updated_at=updated,
        claimed_by=f"runner-{i % 3}" if status is TaskStatus.RUNNING and i % 2 else None,
        claimed_at=started if status is TaskStatus.RUNNING and i % 2 else None,
    )


def sample_snapshot(
    *,
    projects: int = 100,
    edges: int = 300,
    contributors: int = 50,
    assets: int = 50,
    contributions: int = 500,
    tasks: int = 50,
    github_contributors: int | None = None,
    github_organizations: int | None = None,
    contributes_to: int | None = None,
    seed: int = 0,
) -> Snapshot:
    """A consistent snapshot of the given sizes; the GitHub sections default to a tenth of `projects`.

    Contributions need at least one contributor and one asset when `contributions > 0`.
    """
    if contributions and not (contributors and assets):
        raise ValueError("contributions need at least one contributor and one asset")
    rng = random.Random(seed)
    project_list = [_project(rng, i) for i in range(projects)]
    keys = [(p.ecosystem.lower(), p.name.lower()) for p in project_list]
    edge_list = _edges(rng, keys, edges)
    out_degree = Counter((e.from_ecosystem, e.from_name) for e in edge_list)
    project_list = [
        p.model_copy(update={"dependency_count": out_degree[k]}) for p, k in zip(project_list, keys, strict=True)
    ]

    contributor_list = [_contributor(rng, i) for i in range(contributors)]
    asset_list = [_asset(rng, i) for i in range(assets)]
    contribution_list = [
        _contribution(
            rng,
            i,
            contributor_list[rng.randrange(contributors)].id,
            asset_list[rng.randrange(assets)].id,
        )
        for i in range(contributions)
    ]
    totals: dict[uuid.UUID, Decimal] = {}
    for c in contribution_list:
        totals[c.asset_id] = totals.get(c.asset_id, Decimal("0.00")) + c.cost_amount
    asset_list = [a.model_copy(update={"total_cost": totals.get(a.id, Decimal("0.00"))}) for a in asset_list]

    n_github = projects // 10 if github_contributors is None else github_contributors
    n_orgs = projects // 20 if github_organizations is None else github_organizations
    n_works = projects // 5 if contributes_to is None else contributes_to
    github_list = [_github_contributor(rng, i) for i in range(n_github)]
    works: dict[ContributesTo, None] = {}
    attempts = 0
    while github_list and len(works) < n_works and attempts < n_works * 20:
        attempts += 1
        who = github_list[rng.randrange(len(github_list))].id
        eco, name = keys[rng.randrange(len(keys))] if keys and rng.random() > 0.1 else ("npm", "unindexed-project")
        works[ContributesTo(who, eco, name)] = None
    task_list = [_task(rng, i) for i in range(tasks)]
    return Snapshot(
        projects=project_list,
        edges=edge_list,
        contributors=contributor_list,
        assets=asset_list,
        contributions=contribution_list,
        github_contributors=github_list,
        github_organizations=[_github_organization(i) for i in range(n_orgs)],
        github_contributes_to=list(works),
        agent_tasks=task_list,
    )
