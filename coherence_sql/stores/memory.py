"""In-memory reference stores: the API's graph store and agent task store behind the async protocols.

They are today's API behaviour with the contract decisions applied (docs/decisions.md "Stores"), and
the live primary during dual-write, so every write validates with `rules` before it mutates, every
read returns copies, and counts are kept incrementally. Use a store from one event loop at a time
(methods never await, so each call is atomic on that loop); `stores.sync` wraps them for threads.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, Final, TypeVar
from uuid import UUID

from pydantic import BaseModel

from coherence_sql.errors import CONSTRAINT_MESSAGES, DuplicateError, UnknownReferenceError
from coherence_sql.models import (
    AgentTaskRecord,
    Asset,
    Contribution,
    Contributor,
    GitHubContributor,
    GitHubOrganization,
    Project,
    ProjectSummary,
    TaskStatus,
    TaskType,
)
from coherence_sql.stores import rules
from coherence_sql.stores.pipeline import pipeline_status
from coherence_sql.stores.protocol import DependencyEdge

ProjectKey = tuple[str, str]
EdgeKey = tuple[ProjectKey, ProjectKey]

_ATTENTION: Final = (TaskStatus.NEEDS_DECISION, TaskStatus.FAILED)
_ZERO: Final = Decimal("0.00")

_by_created_at = attrgetter("created_at")
_by_timestamp = attrgetter("timestamp")
_M = TypeVar("_M", bound=BaseModel)
_JSON_SCALARS: Final = (str, int, float, bool, type(None))


def _json_copy(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: _json_copy(item) for key, item in value.items()}
    if kind is list:
        return [_json_copy(item) for item in value]
    if kind in _JSON_SCALARS:
        return value
    return copy.deepcopy(value)  # not JSON (the rules refuse it on write); copied the slow, sure way


def copied(model: _M) -> _M:
    """What `model.model_copy(deep=True)` gives, at a fraction of its cost (~200 µs for a task):
    the models' only mutable values are their JSON fields (metadata, context), so only those are
    copied deeply; strings, numbers, decimals, UUIDs, datetimes and enums are immutable and shared."""
    clone = model.model_copy()
    fields = clone.__dict__
    for name, value in fields.items():
        if type(value) in (dict, list):
            fields[name] = _json_copy(value)  # replaces a value, never a key: safe while iterating
    return clone


# -- the graph store -----------------------------------------------------------------------------


class MemoryGraphStore:
    """The API's InMemoryGraphStore, fixed: validated writes, copies out, O(1) counts.

    Projects are keyed by `rules.project_key` and keep the latest caller's spelling at the first
    insert's position; `dependency_count` is the out-degree, edges to projects not indexed yet
    included. Lists break timestamp ties by insertion order, exactly as the API's stable sorts do.
    """

    def __init__(self) -> None:
        self._projects: dict[ProjectKey, Project] = {}
        self._edges: dict[EdgeKey, None] = {}  # an ordered set: snapshots keep edge order
        self._out_degree: dict[ProjectKey, int] = {}
        self._in_degree: dict[ProjectKey, int] = {}
        self._contributors: dict[UUID, Contributor] = {}
        self._contributor_by_email: dict[str, UUID] = {}
        self._assets: dict[UUID, Asset] = {}
        self._contributions: dict[UUID, Contribution] = {}
        self._contributions_by_asset: dict[UUID, list[Contribution]] = {}
        self._contributions_by_contributor: dict[UUID, list[Contribution]] = {}
        self._github_contributors: dict[str, GitHubContributor] = {}
        self._github_organizations: dict[str, GitHubOrganization] = {}
        self._contributes_to: dict[tuple[str, ProjectKey], None] = {}
        self._contributors_of_project: dict[ProjectKey, list[str]] = {}

    # -- projects and the dependency graph ---------------------------------------------------

    async def get_project(self, ecosystem: str, name: str) -> Project | None:
        key = rules.project_key(ecosystem, name)
        stored = self._projects.get(key)
        return None if stored is None else self._project_out(key, stored)

    async def search(self, query: str, limit: int = 20) -> list[ProjectSummary]:
        q = rules.search_text(query)
        rules.no_nul("search query", q)
        wanted = rules.list_limit(limit)
        if not q or wanted == 0:
            return []
        ranked: list[tuple[int, int, Project]] = []
        for position, (key, project) in enumerate(self._projects.items()):
            rank = rules.search_rank(q, key[1], project.description)
            if rank is not None:
                ranked.append((rank, position, project))
        # (rank, position) is unique, so the projects themselves are never compared.
        return [
            ProjectSummary(name=p.name, ecosystem=p.ecosystem, description=p.description or "")
            for _, _, p in heapq.nsmallest(wanted, ranked)
        ]

    async def upsert_project(self, project: Project) -> None:
        key, stored = self._validated_project(rules.checked_model(project, Project, "project"))
        self._projects[key] = stored

    async def upsert_projects(self, projects: Sequence[Project]) -> None:
        validated = [self._validated_project(p) for p in rules.checked_projects(projects)]
        for key, stored in validated:
            self._projects[key] = stored

    async def add_dependency(self, from_eco: str, from_name: str, to_eco: str, to_name: str) -> None:
        self._record_edge(rules.edge_keys(from_eco, from_name, to_eco, to_name))

    async def add_dependencies(self, edges: Sequence[DependencyEdge]) -> None:
        validated = [rules.edge_keys(*edge) for edge in rules.checked_edges(edges)]
        for edge in validated:
            self._record_edge(edge)

    async def count_projects(self) -> int:
        return len(self._projects)

    async def count_dependents(self, ecosystem: str, name: str) -> int:
        return self._in_degree.get(rules.project_key(ecosystem, name), 0)

    def _project_out(self, key: ProjectKey, stored: Project) -> Project:
        # Every field of Project is immutable, so a shallow copy shares nothing mutable.
        return stored.model_copy(update={"dependency_count": self._out_degree.get(key, 0)})

    @staticmethod
    def _validated_project(project: Project) -> tuple[ProjectKey, Project]:
        return rules.project_fields(project), project.model_copy(update={"dependency_count": 0})

    def _record_edge(self, edge: EdgeKey) -> None:
        if edge in self._edges:
            return
        self._edges[edge] = None
        source, target = edge
        self._out_degree[source] = self._out_degree.get(source, 0) + 1
        self._in_degree[target] = self._in_degree.get(target, 0) + 1

    # -- contributors ------------------------------------------------------------------------

    async def get_contributor(self, contributor_id: UUID) -> Contributor | None:
        stored = self._contributors.get(rules.uuid_value("contributor_id", contributor_id))
        return None if stored is None else copied(stored)

    async def create_contributor(self, contributor: Contributor) -> Contributor:
        contributor = rules.checked_model(contributor, Contributor, "contributor")
        rules.contributor_text(contributor)
        rate = None if contributor.hourly_rate is None else rules.money("hourly_rate", contributor.hourly_rate)
        stored = contributor.model_copy(
            update={
                "hourly_rate": rate,
                "created_at": rules.naive_utc(contributor.created_at, "created_at"),
                "metadata": rules.json_object("metadata", contributor.metadata),
            }
        )
        if stored.id in self._contributors:
            raise DuplicateError(f"{CONSTRAINT_MESSAGES['contributors_pkey']}: {stored.id}")
        email_key = rules.email_key(stored.email)
        if email_key in self._contributor_by_email:
            raise DuplicateError(f"{CONSTRAINT_MESSAGES['contributors_email_key_unique']}: {stored.email}")
        self._contributors[stored.id] = stored
        self._contributor_by_email[email_key] = stored.id
        return copied(stored)

    async def list_contributors(self, limit: int = 100) -> list[Contributor]:
        newest = heapq.nlargest(rules.list_limit(limit), self._contributors.values(), key=_by_created_at)
        return [copied(c) for c in newest]

    async def find_contributor_by_email(self, email: str) -> Contributor | None:
        rules.key_text("email", email)
        found = self._contributor_by_email.get(rules.email_key(email))
        return None if found is None else copied(self._contributors[found])

    # -- assets ------------------------------------------------------------------------------

    async def get_asset(self, asset_id: UUID) -> Asset | None:
        stored = self._assets.get(rules.uuid_value("asset_id", asset_id))
        return None if stored is None else copied(stored)

    async def create_asset(self, asset: Asset) -> Asset:
        asset = rules.checked_model(asset, Asset, "asset")
        rules.text("description", asset.description)
        rules.text("name", asset.name, rules.NAME_MAX)
        stored = asset.model_copy(
            update={
                "total_cost": _ZERO,  # only the sum of contributions (docs/decisions.md)
                "created_at": rules.naive_utc(asset.created_at, "created_at"),
                "metadata": rules.json_object("metadata", asset.metadata),
            }
        )
        if stored.id in self._assets:
            raise DuplicateError(f"{CONSTRAINT_MESSAGES['assets_pkey']}: {stored.id}")
        self._assets[stored.id] = stored
        return copied(stored)

    async def list_assets(self, limit: int = 100) -> list[Asset]:
        newest = heapq.nlargest(rules.list_limit(limit), self._assets.values(), key=_by_created_at)
        return [copied(a) for a in newest]

    # -- contributions -----------------------------------------------------------------------

    async def create_contribution(
        self,
        contributor_id: UUID,
        asset_id: UUID,
        cost_amount: Decimal,
        coherence_score: float,
        metadata: dict[str, Any],
        *,
        id: UUID | None = None,
        timestamp: datetime | None = None,
    ) -> Contribution:
        # Values first, then references, then the id: the order both stores check in.
        cost, score, meta, contributor_key, asset_key, contribution_id, when = rules.contribution_args(
            contributor_id, asset_id, cost_amount, coherence_score, metadata, id, timestamp
        )
        if contributor_key not in self._contributors:
            raise UnknownReferenceError(
                f"{CONSTRAINT_MESSAGES['contributions_contributor_id_fkey']}: {contributor_key}"
            )
        asset = self._assets.get(asset_key)
        if asset is None:
            raise UnknownReferenceError(f"{CONSTRAINT_MESSAGES['contributions_asset_id_fkey']}: {asset_key}")
        if contribution_id in self._contributions:
            raise DuplicateError(f"{CONSTRAINT_MESSAGES['contributions_pkey']}: {contribution_id}")
        new_total = rules.money("total_cost", asset.total_cost + cost)  # DECIMAL(15,2) overflow
        contribution = Contribution(
            id=contribution_id,
            contributor_id=contributor_key,
            asset_id=asset_key,
            cost_amount=cost,
            coherence_score=score,
            metadata=meta,
            timestamp=when,
        )
        self._contributions[contribution_id] = contribution
        self._contributions_by_asset.setdefault(asset_key, []).append(contribution)
        self._contributions_by_contributor.setdefault(contributor_key, []).append(contribution)
        asset.total_cost = new_total
        return copied(contribution)

    async def get_contribution(self, contribution_id: UUID) -> Contribution | None:
        stored = self._contributions.get(rules.uuid_value("contribution_id", contribution_id))
        return None if stored is None else copied(stored)

    async def list_contributions(self, limit: int = 100) -> list[Contribution]:
        newest = heapq.nlargest(rules.list_limit(limit), self._contributions.values(), key=_by_timestamp)
        return [copied(c) for c in newest]

    async def get_asset_contributions(self, asset_id: UUID) -> list[Contribution]:
        found = self._contributions_by_asset.get(rules.uuid_value("asset_id", asset_id), [])
        return [copied(c) for c in sorted(found, key=_by_timestamp)]

    async def get_contributor_contributions(self, contributor_id: UUID) -> list[Contribution]:
        found = self._contributions_by_contributor.get(rules.uuid_value("contributor_id", contributor_id), [])
        return [copied(c) for c in sorted(found, key=_by_timestamp)]

    # -- GitHub ------------------------------------------------------------------------------

    async def upsert_github_contributor(self, github_contributor: GitHubContributor) -> GitHubContributor:
        gc = rules.checked_model(github_contributor, GitHubContributor, "github_contributor")
        rules.github_contributor_fields(gc)
        stored = gc.model_copy(
            update={
                "created_at": rules.naive_utc(gc.created_at, "created_at"),
                "updated_at": rules.optional_naive(gc.updated_at, "updated_at"),
            }
        )
        self._github_contributors[stored.id] = stored  # a replaced id keeps its position
        return stored.model_copy()

    async def get_github_contributor(self, contributor_id: str) -> GitHubContributor | None:
        rules.key_text("contributor_id", contributor_id)
        stored = self._github_contributors.get(contributor_id)
        return None if stored is None else stored.model_copy()

    async def list_github_contributors(self, limit: int = 100) -> list[GitHubContributor]:
        newest = heapq.nlargest(rules.list_limit(limit), self._github_contributors.values(), key=_by_created_at)
        return [gc.model_copy() for gc in newest]

    async def upsert_github_organization(self, organization: GitHubOrganization) -> GitHubOrganization:
        org = rules.checked_model(organization, GitHubOrganization, "organization")
        rules.github_organization_fields(org)
        stored = org.model_copy(
            update={
                "created_at": rules.naive_utc(org.created_at, "created_at"),
                "updated_at": rules.optional_naive(org.updated_at, "updated_at"),
            }
        )
        self._github_organizations[stored.id] = stored
        return stored.model_copy()

    async def get_github_organization(self, organization_id: str) -> GitHubOrganization | None:
        rules.key_text("organization_id", organization_id)
        stored = self._github_organizations.get(organization_id)
        return None if stored is None else stored.model_copy()

    async def add_github_contributes_to(self, contributor_id: str, ecosystem: str, project_name: str) -> None:
        rules.key_text("contributor_id", contributor_id, rules.NAME_MAX)
        key = rules.project_key(ecosystem, project_name)
        if (contributor_id, key) in self._contributes_to:
            return
        self._contributes_to[(contributor_id, key)] = None
        self._contributors_of_project.setdefault(key, []).append(contributor_id)

    async def get_project_github_contributors(self, ecosystem: str, project_name: str) -> list[GitHubContributor]:
        ids = self._contributors_of_project.get(rules.project_key(ecosystem, project_name), [])
        found = (self._github_contributors.get(cid) for cid in ids)
        return [gc.model_copy() for gc in found if gc is not None]

    # -- whole-store access for snapshots (insertion order, copies) ---------------------------

    def all_projects(self) -> list[Project]:
        return [self._project_out(key, p) for key, p in self._projects.items()]

    def all_edges(self) -> list[DependencyEdge]:
        return [DependencyEdge(*source, *target) for source, target in self._edges]

    def all_contributors(self) -> list[Contributor]:
        return [copied(c) for c in self._contributors.values()]

    def all_assets(self) -> list[Asset]:
        return [copied(a) for a in self._assets.values()]

    def all_contributions(self) -> list[Contribution]:
        return [copied(c) for c in self._contributions.values()]

    def all_github_contributors(self) -> list[GitHubContributor]:
        return [gc.model_copy() for gc in self._github_contributors.values()]

    def all_github_organizations(self) -> list[GitHubOrganization]:
        return [org.model_copy() for org in self._github_organizations.values()]

    def all_github_contributes_to(self) -> list[tuple[str, str, str]]:
        """(contributor_id, ecosystem key, name key) in insertion order."""
        return [(cid, eco, name) for cid, (eco, name) in self._contributes_to]

    def replace_contents(self, other: MemoryGraphStore) -> None:
        """Take over `other`'s contents in one step (a validated snapshot load); `other` is left empty."""
        taken = dict(other.__dict__)
        other.__dict__.update(MemoryGraphStore().__dict__)  # the two must share no state afterwards
        self.__dict__.update(taken)


# -- the agent task store ------------------------------------------------------------------------


class MemoryAgentTaskStore:
    """The API's agent_service task store (client-contract §3) as an object, with claims.

    Records are stored as given (ids, model, command and times are decided by the caller);
    `update_task` follows the API step by step. Listing is newest first, ties by insertion.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, AgentTaskRecord] = {}

    async def create_task(self, task: AgentTaskRecord) -> AgentTaskRecord:
        stored = self._validated_task(task)
        if stored.id in self._tasks:
            raise DuplicateError(f"{CONSTRAINT_MESSAGES['agent_tasks_pkey']}: {stored.id}")
        self._tasks[stored.id] = stored
        return copied(stored)

    async def get_task(self, task_id: str) -> AgentTaskRecord | None:
        rules.key_text("task_id", task_id)
        stored = self._tasks.get(task_id)
        return None if stored is None else copied(stored)

    async def list_tasks(
        self,
        status: TaskStatus | None = None,
        task_type: TaskType | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> tuple[list[AgentTaskRecord], int]:
        wanted, skip = rules.page(limit, offset)
        status = rules.optional_enum(TaskStatus, "status", status)
        task_type = rules.optional_enum(TaskType, "task_type", task_type)
        matching = [
            t
            for t in self._tasks.values()
            if (status is None or t.status == status) and (task_type is None or t.task_type == task_type)
        ]
        newest = heapq.nlargest(skip + wanted, matching, key=_by_created_at)[skip:]
        return [copied(t) for t in newest], len(matching)

    async def update_task(
        self,
        task_id: str,
        status: TaskStatus | None = None,
        output: str | None = None,
        progress_pct: int | None = None,
        current_step: str | None = None,
        decision_prompt: str | None = None,
        decision: str | None = None,
        *,
        now: datetime | None = None,
    ) -> AgentTaskRecord | None:
        texts = {
            "output": output,
            "current_step": current_step,
            "decision_prompt": decision_prompt,
            "decision": decision,
        }
        status, progress_pct, moment = rules.task_update(task_id, status, progress_pct, texts, now)
        task = self._tasks.get(task_id)
        if task is None:
            return None
        # The API's steps, in its order (client-contract §3.4); None means "leave alone".
        changes: dict[str, Any] = {}
        if decision is not None and task.status == TaskStatus.NEEDS_DECISION:
            changes["status"] = TaskStatus.RUNNING
            changes["decision"] = decision
        if status is not None:
            changes["status"] = status
            if status == TaskStatus.RUNNING and task.started_at is None:
                changes["started_at"] = moment
        given: dict[str, object] = {
            "output": output,
            "progress_pct": progress_pct,
            "current_step": current_step,
            "decision_prompt": decision_prompt,
        }
        changes.update((name, value) for name, value in given.items() if value is not None)
        if decision is not None and task.decision is None:
            changes["decision"] = decision
        changes["updated_at"] = moment
        updated = task.model_copy(update=changes)
        self._tasks[task_id] = updated
        return copied(updated)

    async def get_attention_tasks(self, limit: int = 20) -> tuple[list[AgentTaskRecord], int]:
        wanted, _ = rules.page(limit, 0)
        matching = [t for t in self._tasks.values() if t.status in _ATTENTION]
        newest = heapq.nlargest(wanted, matching, key=_by_created_at)
        return [copied(t) for t in newest], len(matching)

    async def get_task_count(self) -> dict[str, Any]:
        return {"total": len(self._tasks), "by_status": self._by_status(self._tasks.values())}

    async def get_review_summary(self) -> dict[str, Any]:
        return {
            "by_status": self._by_status(self._tasks.values()),
            "needs_attention": [copied(t) for t in self._tasks.values() if t.status in _ATTENTION],
            "total": len(self._tasks),
        }

    async def get_usage_summary(self, routing: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
        table = rules.routing_table(routing)
        by_model: dict[str, dict[str, Any]] = {}
        for t in self._tasks.values():
            usage = by_model.setdefault(t.model, {"count": 0, "by_status": {}, "last_used": None})
            usage["count"] += 1
            usage["by_status"][t.status.value] = usage["by_status"].get(t.status.value, 0) + 1
            # The API keeps the last task iterated, not the latest time (client-contract §3.3).
            usage["last_used"] = (t.updated_at or t.created_at).isoformat()
        return {"by_model": by_model, "routing": table}

    async def get_pipeline_status(
        self, now_utc: datetime | None = None, metrics: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return pipeline_status(self._tasks.values(), rules.moment("now_utc", now_utc), metrics)

    async def claim_next_task(self, worker: str, *, now: datetime | None = None) -> AgentTaskRecord | None:
        rules.text("worker", worker, rules.NAME_MAX, required=True)
        moment = rules.moment("now", now)
        oldest: AgentTaskRecord | None = None
        for t in self._tasks.values():  # strict < keeps the first inserted among equal times
            if t.status == TaskStatus.PENDING and (oldest is None or t.created_at < oldest.created_at):
                oldest = t
        return None if oldest is None else self._claim(oldest, worker, moment)

    async def claim_task(self, task_id: str, worker: str, *, now: datetime | None = None) -> AgentTaskRecord | None:
        rules.key_text("task_id", task_id)
        rules.text("worker", worker, rules.NAME_MAX, required=True)
        moment = rules.moment("now", now)
        task = self._tasks.get(task_id)
        if task is None or task.status != TaskStatus.PENDING:
            return None
        return self._claim(task, worker, moment)

    def _claim(self, task: AgentTaskRecord, worker: str, moment: datetime) -> AgentTaskRecord:
        claimed = task.model_copy(
            update={
                "status": TaskStatus.RUNNING,
                "claimed_by": worker,
                "claimed_at": moment,
                "started_at": task.started_at or moment,
                "updated_at": moment,
            }
        )
        self._tasks[claimed.id] = claimed
        return copied(claimed)

    async def clear(self) -> None:
        self._tasks.clear()

    def all_tasks(self) -> list[AgentTaskRecord]:
        """Every task in insertion order (copies), for snapshots."""
        return [copied(t) for t in self._tasks.values()]

    def replace_contents(self, other: MemoryAgentTaskStore) -> None:
        """Take over `other`'s tasks in one step; `other` is left empty."""
        self._tasks, other._tasks = other._tasks, {}

    @staticmethod
    def _by_status(tasks: Iterable[AgentTaskRecord]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in tasks:
            counts[t.status.value] = counts.get(t.status.value, 0) + 1
        return counts

    @staticmethod
    def _validated_task(task: AgentTaskRecord) -> AgentTaskRecord:
        task = rules.checked_model(task, AgentTaskRecord, "task")
        rules.task_fields(task)
        return task.model_copy(
            update={
                "context": None if task.context is None else rules.json_object("context", task.context),
                "created_at": rules.aware_utc(task.created_at, "created_at"),
                "updated_at": rules.optional_aware(task.updated_at, "updated_at"),
                "started_at": rules.optional_aware(task.started_at, "started_at"),
                "claimed_at": rules.optional_aware(task.claimed_at, "claimed_at"),
            }
        )


# -- both stores together, shaped like `postgres.connect(dsn)` --------------------------------


@dataclass(frozen=True)
class MemoryStores:
    graph: MemoryGraphStore = field(default_factory=MemoryGraphStore)
    tasks: MemoryAgentTaskStore = field(default_factory=MemoryAgentTaskStore)


@asynccontextmanager
async def memory_stores() -> AsyncIterator[MemoryStores]:
    """`async with memory_stores() as stores:` — the in-memory twin of `postgres.connect(dsn)`."""
    yield MemoryStores()
