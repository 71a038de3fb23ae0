"""Record builders for the store suites: explicit ids and times, so every store gets identical writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from coherence_sql.models import (
    AgentTaskRecord,
    Asset,
    AssetType,
    Contributor,
    ContributorType,
    GitHubContributor,
    GitHubOrganization,
    Project,
    TaskStatus,
    TaskType,
)

T0 = datetime(2026, 2, 15, 10, 30, 0, 123456)  # naive UTC, as the graph models carry it
T0_AWARE = T0.replace(tzinfo=UTC)


def project(name: str = "react", ecosystem: str = "npm", **fields: Any) -> Project:
    values: dict[str, Any] = {"version": "18.2.0", "description": f"{name} library"}
    values.update(fields)
    return Project(name=name, ecosystem=ecosystem, **values)


def contributor(n: int = 0, *, email: str | None = None, **fields: Any) -> Contributor:
    values: dict[str, Any] = {
        "id": UUID(int=0xC0 + n),
        "type": ContributorType.HUMAN,
        "name": f"Contributor {n}",
        "email": email or f"person{n}@coherence.network",
        "created_at": T0 + timedelta(seconds=n),
    }
    values.update(fields)
    return Contributor(**values)


def asset(n: int = 0, **fields: Any) -> Asset:
    values: dict[str, Any] = {
        "id": UUID(int=0xA0 + n),
        "type": AssetType.CODE,
        "description": f"Asset {n}",
        "created_at": T0 + timedelta(seconds=n),
    }
    values.update(fields)
    return Asset(**values)


def github_contributor(login: str = "octocat", **fields: Any) -> GitHubContributor:
    values: dict[str, Any] = {"id": f"github:{login}", "login": login, "created_at": T0}
    values.update(fields)
    return GitHubContributor(**values)


def github_organization(login: str = "coherence", **fields: Any) -> GitHubOrganization:
    values: dict[str, Any] = {"id": f"github:{login}", "login": login, "type": "Organization", "created_at": T0}
    values.update(fields)
    return GitHubOrganization(**values)


def task(n: int = 0, **fields: Any) -> AgentTaskRecord:
    values: dict[str, Any] = {
        "id": f"task_{n:016x}",
        "direction": f"Do thing {n}",
        "task_type": TaskType.IMPL,
        "status": TaskStatus.PENDING,
        "model": "openrouter/free",
        "command": f'aider --yes "Do thing {n}"',
        "tier": "openrouter",
        "created_at": T0_AWARE + timedelta(seconds=n),
    }
    values.update(fields)
    return AgentTaskRecord(**values)


async def contribute(
    graph: Any,
    contributor_id: UUID,
    asset_id: UUID,
    cost: str | Decimal = "100.00",
    score: float = 0.9,
    *,
    seconds: int = 0,
    metadata: dict[str, Any] | None = None,
) -> Any:
    return await graph.create_contribution(
        contributor_id,
        asset_id,
        Decimal(cost),
        score,
        metadata if metadata is not None else {},
        id=uuid4(),
        timestamp=T0 + timedelta(seconds=seconds),
    )
