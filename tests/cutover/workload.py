"""A realistic mixed workload for the migration tests, and a read-back comparison of two stores.

The workload writes through the API's store methods only (projects with mixed case, edges before
their projects, contributors, assets, contributions, GitHub entities, tasks with updates and
claims) and remembers every key it touched, so the comparison can read each one back from both
sides.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from coherence_sql.models import (
    AgentTaskRecord,
    Asset,
    AssetType,
    Contributor,
    ContributorType,
    GitHubContributor,
    Project,
    TaskStatus,
    TaskType,
)

BIG = 1_000_000


@dataclass
class Touched:
    projects: set[tuple[str, str]] = field(default_factory=set)
    contributors: list[UUID] = field(default_factory=list)
    assets: list[UUID] = field(default_factory=list)
    contributions: list[UUID] = field(default_factory=list)
    github: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)


class Workload:
    """Deterministic writes through a GraphStore and an AgentTaskStore."""

    def __init__(self, graph: Any, tasks: Any, seed: int, name: str = "w") -> None:
        self.graph = graph
        self.tasks = tasks
        self.random = random.Random(seed)
        self.name = name
        self.touched = Touched()
        self.counter = 0

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    async def step(self) -> None:
        """One write, chosen at random among the API's write paths."""
        r = self.random
        choice = r.randrange(9)
        n = self._next()
        if choice == 0 or not self.touched.projects:
            eco, name = r.choice(["npm", "PyPI", "cargo"]), f"{self.name}-Pkg{r.randrange(40)}"
            await self.graph.upsert_project(Project(ecosystem=eco, name=name, version=f"1.{n}", description=f"d{n}"))
            self.touched.projects.add((eco.lower(), name.lower()))
        elif choice == 1:
            a = r.choice(sorted(self.touched.projects))
            b = (r.choice(["npm", "pypi"]), f"{self.name}-pkg{r.randrange(40)}")  # may not exist yet
            if a != b:
                await self.graph.add_dependency(a[0], a[1].upper(), b[0], b[1])
                self.touched.projects.add(b)
        elif choice == 2 or not self.touched.contributors:
            made = await self.graph.create_contributor(
                Contributor(type=ContributorType.HUMAN, name=f"person {n}", email=f"{self.name}{n}@coherence.dev")
            )
            self.touched.contributors.append(made.id)
        elif choice == 3 or not self.touched.assets:
            made_asset = await self.graph.create_asset(Asset(type=AssetType.CODE, description=f"repo {self.name}/{n}"))
            self.touched.assets.append(made_asset.id)
        elif choice in (4, 5):
            made_contribution = await self.graph.create_contribution(
                r.choice(self.touched.contributors),
                r.choice(self.touched.assets),
                Decimal(r.randrange(0, 100_000)) / 100,
                r.choice([0.5, 0.7, 0.9, 1.0]),
                {"has_tests": r.random() < 0.5, "n": n},
            )
            self.touched.contributions.append(made_contribution.id)
        elif choice == 6:
            login = f"{self.name}-dev{r.randrange(20)}"
            await self.graph.upsert_github_contributor(
                GitHubContributor(id=f"github:{login}", login=login, contributions_count=n)
            )
            self.touched.github.append(f"github:{login}")
            eco, name = r.choice(sorted(self.touched.projects))
            await self.graph.add_github_contributes_to(f"github:{login}", eco, name)
        elif choice == 7 or not self.touched.tasks:
            task_id = f"task_{self.name}{n:012x}"[:21]
            await self.tasks.create_task(
                AgentTaskRecord(
                    id=task_id,
                    direction=f"do {n}",
                    task_type=r.choice(list(TaskType)),
                    model="openrouter/free",
                    command=f'aider "do {n}"',
                    tier="openrouter",
                    context={"n": n},
                )
            )
            self.touched.tasks.append(task_id)
        else:
            task_id = r.choice(self.touched.tasks)
            if r.random() < 0.3:
                await self.tasks.claim_next_task(f"runner-{self.name}")
            else:
                await self.tasks.update_task(
                    task_id, status=r.choice(list(TaskStatus)), progress_pct=r.randrange(101), output=f"out {n}"
                )


async def differences(
    memory_graph: Any, memory_tasks: Any, pg_graph: Any, pg_tasks: Any, touched: Touched
) -> list[str]:
    """Every read-back that differs between the two sides, named."""
    found: list[str] = []

    async def same(what: str, a: Any, b: Any) -> None:
        if a != b:
            found.append(f"{what}: memory={a!r} postgres={b!r}")

    await same("count_projects", await memory_graph.count_projects(), await pg_graph.count_projects())
    for eco, name in sorted(touched.projects):
        await same(
            f"project {eco}/{name}", await memory_graph.get_project(eco, name), await pg_graph.get_project(eco, name)
        )
        await same(
            f"dependents {eco}/{name}",
            await memory_graph.count_dependents(eco, name),
            await pg_graph.count_dependents(eco, name),
        )
        await same(
            f"github of {eco}/{name}",
            await memory_graph.get_project_github_contributors(eco, name),
            await pg_graph.get_project_github_contributors(eco, name),
        )
    for method in ("list_contributors", "list_assets", "list_contributions", "list_github_contributors"):
        await same(method, await getattr(memory_graph, method)(BIG), await getattr(pg_graph, method)(BIG))
    for asset_id in touched.assets:
        await same(f"asset {asset_id}", await memory_graph.get_asset(asset_id), await pg_graph.get_asset(asset_id))
        await same(
            f"contributions of {asset_id}",
            await memory_graph.get_asset_contributions(asset_id),
            await pg_graph.get_asset_contributions(asset_id),
        )
    await same("list_tasks", await memory_tasks.list_tasks(limit=BIG), await pg_tasks.list_tasks(limit=BIG))
    await same("task count", await memory_tasks.get_task_count(), await pg_tasks.get_task_count())
    return found
