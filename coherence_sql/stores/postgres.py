"""PostgreSQL stores: `PostgresGraphStore` and `PostgresAgentTaskStore` on one asyncpg pool.

They implement `stores.protocol` on the generated accessors of `coherence_sql/sql/` (SQL lives in
`queries/*.sql`), apply `rules` before any SQL runs, and let the database keep every aggregate.
`connect(dsn)` opens a pool, checks the schema and yields both stores:

    async with connect("postgresql://...") as stores:
        await stores.graph.upsert_project(Project(ecosystem="npm", name="React", version="19", description=""))
        await stores.tasks.claim_next_task("runner-1")
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, TypeVar, cast
from uuid import UUID

import asyncpg

from coherence_sql.db import Connection, Pool, PoolSettings, create_pool
from coherence_sql.errors import (
    CONSTRAINT_MESSAGES,
    DRIVER_FAILURES,
    CoherenceSQLError,
    InvalidValueError,
    UnknownReferenceError,
    translate,
)
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
    ProjectSummary,
    TaskStatus,
    TaskType,
)
from coherence_sql.schema import require_current
from coherence_sql.sql import agent_tasks as tasks_sql
from coherence_sql.sql import assets as assets_sql
from coherence_sql.sql import contributions as contributions_sql
from coherence_sql.sql import contributors as contributors_sql
from coherence_sql.sql import github as github_sql
from coherence_sql.sql import projects as projects_sql
from coherence_sql.stores import pipeline, rules
from coherence_sql.stores.protocol import DependencyEdge
from coherence_sql.stores.trusted import TrustedBuilder

if TYPE_CHECKING:  # generic in the stubs only
    PoolConnection: TypeAlias = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:
    PoolConnection = asyncpg.pool.PoolConnectionProxy

__all__ = ["PostgresAgentTaskStore", "PostgresGraphStore", "PostgresStores", "connect"]

ProjectKey = tuple[str, str]
_E = TypeVar("_E", bound=Enum)
_T = TypeVar("_T")

# SQL LIMIT takes a bigint; larger limits are capped (the widths are in rules).
_BIGINT_MAX: Final = 2**63 - 1
# Keys a bulk write locks one by one: each holds an advisory lock until commit, and the lock table
# is shared by all sessions (max_locks_per_transaction x max_connections). A bulk write with more
# takes the one all-project-keys lock instead (schema/016); either way it is one transaction.
BULK_KEYS_PER_TRANSACTION: Final = 500
CLOSE_TIMEOUT_S: Final = 30.0

# -- argument checks (the same ones the in-memory store makes) ----------------------------------


def _required_enum(enum: type[_E], field: str, value: object) -> _E:
    member = rules.optional_enum(enum, field, value)
    if member is None:
        raise InvalidValueError(f"{field} is required")
    return member


def _sql_limit(limit: object) -> int:
    """rules.list_limit, capped at what SQL LIMIT takes (a bigint)."""
    return min(rules.list_limit(limit), _BIGINT_MAX)


async def _lock_project_keys(conn: PoolConnection, keys: Sequence[ProjectKey]) -> None:
    """A bulk write's key locks, before any row is written: one per key (in the one global order)
    up to BULK_KEYS_PER_TRANSACTION keys, else the one lock on all keys (docs/decisions.md)."""
    if len(keys) > BULK_KEYS_PER_TRANSACTION:
        await projects_sql.lock_all_project_keys(conn)
    else:
        await projects_sql.lock_project_keys(conn, ecosystems=[k[0] for k in keys], names=[k[1] for k in keys])


# -- pool and transaction plumbing ---------------------------------------------------------------


@asynccontextmanager
async def _transaction(
    pool: Pool,
    what: str,
    *,
    isolation: Literal["read_committed", "repeatable_read"] = "read_committed",
    readonly: bool = False,
) -> AsyncIterator[PoolConnection]:
    """One pooled connection in one transaction; driver failures of acquire, BEGIN, COMMIT and
    release come out as the package's typed errors (the accessors translate their own)."""
    try:
        async with pool.acquire() as conn, conn.transaction(isolation=isolation, readonly=readonly):
            yield conn
    except CoherenceSQLError:
        raise
    except DRIVER_FAILURES as exc:
        raise translate(exc, what) from None


# -- rows to models ------------------------------------------------------------------------------

# One generated row class per shape (docs/accessors.md): every query of a table group returns it.
_ProjectRow = projects_sql.ProjectRow
_ContributorRow = contributors_sql.ContributorRow
_AssetRow = assets_sql.AssetRow
_ContributionRow = contributions_sql.ContributionRow
_GitHubContributorRow = github_sql.GithubContributorRow
_GitHubOrganizationRow = github_sql.GithubOrganizationRow
_TaskRow = tasks_sql.TaskRow


# Rows become models without re-running pydantic's validators (stores/trusted.py): PostgreSQL
# already constrained them, and validation cost 8x the query for a list of contributors. Each
# mapper takes the builder, so the tests can build the same row the validating way (`Model`).
_PROJECT: Final = TrustedBuilder(Project).build
_PROJECT_SUMMARY: Final = TrustedBuilder(ProjectSummary).build
_CONTRIBUTOR: Final = TrustedBuilder(Contributor).build
_ASSET: Final = TrustedBuilder(
    Asset, validators=frozenset({"_default_name"}), validate_when=lambda values: values["name"] is None
).build
_CONTRIBUTION: Final = TrustedBuilder(Contribution).build
_GITHUB_CONTRIBUTOR: Final = TrustedBuilder(GitHubContributor).build
_GITHUB_ORGANIZATION: Final = TrustedBuilder(GitHubOrganization).build
_TASK: Final = TrustedBuilder(AgentTaskRecord).build
# Enum members by the value a row holds: a dict lookup instead of Enum's call (~2 µs a row).
_CONTRIBUTOR_TYPES: Final = {member.value: member for member in ContributorType}
_ASSET_TYPES: Final = {member.value: member for member in AssetType}


def _member(members: Mapping[str, _E], enum: type[_E], value: str) -> _E:
    """`enum(value)`, from `members` when the value is one of them (what the rows hold)."""
    member = members.get(value) if type(value) is str else None
    return enum(value) if member is None else member


def _project(row: _ProjectRow, build: Callable[..., Project] = _PROJECT) -> Project:
    return build(
        name=row.name,
        ecosystem=row.ecosystem,
        version=row.version,
        description=row.description,
        dependency_count=row.dependency_count,
        homepage_url=row.homepage_url,
        repository_url=row.repository_url,
    )


def _contributor(row: _ContributorRow, build: Callable[..., Contributor] = _CONTRIBUTOR) -> Contributor:
    return build(
        id=row.id,
        type=_member(_CONTRIBUTOR_TYPES, ContributorType, row.type),
        name=row.name,
        email=row.email,
        wallet_address=row.wallet_address,
        hourly_rate=row.hourly_rate,
        created_at=rules.naive_utc(row.created_at),
        github_username=row.github_username,
        metadata=row.metadata,
    )


def _asset(row: _AssetRow, build: Callable[..., Asset] = _ASSET) -> Asset:
    return build(
        id=row.id,
        type=_member(_ASSET_TYPES, AssetType, row.type),
        name=row.name,
        description=row.description,
        total_cost=row.total_cost,
        created_at=rules.naive_utc(row.created_at),
        metadata=row.metadata,
    )


def _contribution(row: _ContributionRow, build: Callable[..., Contribution] = _CONTRIBUTION) -> Contribution:
    return build(
        id=row.id,
        contributor_id=row.contributor_id,
        asset_id=row.asset_id,
        cost_amount=row.cost_amount,
        coherence_score=float(row.coherence_score),
        metadata=row.metadata,
        timestamp=rules.naive_utc(row.timestamp),
    )


def _github_contributor(
    row: _GitHubContributorRow, build: Callable[..., GitHubContributor] = _GITHUB_CONTRIBUTOR
) -> GitHubContributor:
    return build(
        id=row.id,
        source=row.source,
        login=row.login,
        name=row.name,
        avatar_url=row.avatar_url,
        contributions_count=row.contributions_count,
        created_at=rules.naive_utc(row.created_at),
        updated_at=rules.optional_naive(row.updated_at),
    )


def _github_organization(
    row: _GitHubOrganizationRow, build: Callable[..., GitHubOrganization] = _GITHUB_ORGANIZATION
) -> GitHubOrganization:
    return build(
        id=row.id,
        login=row.login,
        type=row.type,
        name=row.name,
        avatar_url=row.avatar_url,
        created_at=rules.naive_utc(row.created_at),
        updated_at=rules.optional_naive(row.updated_at),
    )


def _task(row: _TaskRow, build: Callable[..., AgentTaskRecord] = _TASK) -> AgentTaskRecord:
    return build(
        id=row.id,
        direction=row.direction,
        task_type=row.task_type,
        status=row.status,
        model=row.model,
        command=row.command,
        tier=row.tier,
        context=row.context,
        output=row.output,
        progress_pct=row.progress_pct,
        current_step=row.current_step,
        decision_prompt=row.decision_prompt,
        decision=row.decision,
        started_at=rules.optional_aware(row.started_at),
        created_at=rules.aware_utc(row.created_at),
        updated_at=rules.optional_aware(row.updated_at),
        claimed_by=row.claimed_by,
        claimed_at=rules.optional_aware(row.claimed_at),
    )


# Public for coherence_sql.transfer (export, verify): rows become models here only. Typed on Any:
# any row with the columns the mapper reads will do (the transfer reads with its own scans).
project_model: Callable[[Any], Project] = _project
contributor_model: Callable[[Any], Contributor] = _contributor
asset_model: Callable[[Any], Asset] = _asset
contribution_model: Callable[[Any], Contribution] = _contribution
github_contributor_model: Callable[[Any], GitHubContributor] = _github_contributor
github_organization_model: Callable[[Any], GitHubOrganization] = _github_organization
task_model: Callable[[Any], AgentTaskRecord] = _task


# -- the graph store -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ProjectWrite:
    key: ProjectKey
    project: Project


class PostgresGraphStore:
    """The API's GraphStore on PostgreSQL (client-contract §2.4 with the design's decisions).

    Project keys are matched case-insensitively and shown in the latest upsert's spelling;
    `dependency_count` and `total_cost` are kept by triggers in the writing transaction. Reads run
    on the pool; a write of more than one statement runs in one transaction on one connection.
    """

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    # -- projects and the dependency graph ---------------------------------------------------

    async def get_project(self, ecosystem: str, name: str) -> Project | None:
        eco, key = rules.project_key(ecosystem, name)
        row = await projects_sql.get_project(self._pool, ecosystem=eco, name=key)
        return None if row is None else _project(row)

    async def search(self, query: str, limit: int = 20) -> list[ProjectSummary]:
        q = rules.search_text(query)
        rules.no_nul("search query", q)
        wanted = _sql_limit(limit)
        if not q or wanted == 0:  # decision: limit <= 0 gives no results (the API gave one)
            return []
        rows = await projects_sql.search_projects(self._pool, pattern=rules.like_pattern(q), query=q, lim=wanted)
        return [_PROJECT_SUMMARY(name=r.name, ecosystem=r.ecosystem, description=r.description) for r in rows]

    async def upsert_project(self, project: Project) -> None:
        w = _validated_project(rules.checked_model(project, Project, "project"))
        await projects_sql.upsert_project(
            self._pool,
            ecosystem=w.key[0],
            name=w.key[1],
            display_ecosystem=w.project.ecosystem,
            display_name=w.project.name,
            version=w.project.version,
            description=w.project.description,
            homepage_url=w.project.homepage_url,
            repository_url=w.project.repository_url,
        )

    async def upsert_projects(self, projects: Sequence[Project]) -> None:
        # Latest spelling wins, first position kept: what repeated upsert_project calls would do.
        latest: dict[ProjectKey, _ProjectWrite] = {}
        for project in rules.checked_projects(projects):
            write = _validated_project(project)
            latest[write.key] = write
        batch = list(latest.values())
        if not batch:
            return
        # One transaction, all or nothing, whatever the size (docs/decisions.md).
        async with _transaction(self._pool, "PostgresGraphStore.upsert_projects") as conn:
            ecosystems, names = [w.key[0] for w in batch], [w.key[1] for w in batch]
            await _lock_project_keys(conn, list(latest))
            # Before any row is written: the updates would lock rows a resolver may need (015).
            await projects_sql.lock_pending_resolution_for(conn, ecosystems=ecosystems, names=names)
            await projects_sql.upsert_projects(
                conn,
                ecosystems=ecosystems,
                names=names,
                display_ecosystems=[w.project.ecosystem for w in batch],
                display_names=[w.project.name for w in batch],
                versions=[w.project.version for w in batch],
                descriptions=[w.project.description for w in batch],
                homepage_urls=[w.project.homepage_url for w in batch],
                repository_urls=[w.project.repository_url for w in batch],
            )

    async def add_dependency(self, from_eco: str, from_name: str, to_eco: str, to_name: str) -> None:
        source, target = rules.edge_keys(from_eco, from_name, to_eco, to_name)
        await projects_sql.add_dependency(
            self._pool, from_ecosystem=source[0], from_name=source[1], to_ecosystem=target[0], to_name=target[1]
        )

    async def add_dependencies(self, edges: Sequence[DependencyEdge]) -> None:
        validated = [rules.edge_keys(*edge) for edge in rules.checked_edges(edges)]
        if not validated:
            return
        async with _transaction(self._pool, "PostgresGraphStore.add_dependencies") as conn:
            await _lock_project_keys(conn, list({key: None for edge in validated for key in edge}))
            await projects_sql.add_dependencies(
                conn,
                from_ecosystems=[s[0] for s, _ in validated],
                from_names=[s[1] for s, _ in validated],
                to_ecosystems=[t[0] for _, t in validated],
                to_names=[t[1] for _, t in validated],
            )

    async def count_projects(self) -> int:
        return await projects_sql.count_projects(self._pool) or 0

    async def count_dependents(self, ecosystem: str, name: str) -> int:
        eco, key = rules.project_key(ecosystem, name)
        return await projects_sql.count_dependents(self._pool, ecosystem=eco, name=key) or 0

    # -- contributors ------------------------------------------------------------------------

    async def get_contributor(self, contributor_id: UUID) -> Contributor | None:
        row = await contributors_sql.get_contributor(self._pool, id=rules.uuid_value("contributor_id", contributor_id))
        return None if row is None else _contributor(row)

    async def create_contributor(self, contributor: Contributor) -> Contributor:
        c = rules.checked_model(contributor, Contributor, "contributor")
        rules.contributor_text(c)
        rate = None if c.hourly_rate is None else rules.money("hourly_rate", c.hourly_rate)
        metadata = rules.json_object("metadata", c.metadata)
        # An existing id or email key is a unique violation: DuplicateError.
        row = await contributors_sql.insert_contributor(
            self._pool,
            id=rules.uuid_value("id", c.id),
            type=_required_enum(ContributorType, "type", c.type).value,
            name=c.name,
            email=c.email,
            email_key=rules.email_key(c.email),
            wallet_address=c.wallet_address,
            hourly_rate=rate,
            created_at=rules.aware_utc(c.created_at, "created_at"),
            github_username=c.github_username,
            metadata=metadata,
        )
        assert row is not None  # RETURNING always yields the inserted row
        return _contributor(row)

    async def list_contributors(self, limit: int = 100) -> list[Contributor]:
        wanted = _sql_limit(limit)
        if wanted == 0:
            return []
        return [_contributor(r) for r in await contributors_sql.list_contributors(self._pool, lim=wanted)]

    async def find_contributor_by_email(self, email: str) -> Contributor | None:
        rules.key_text("email", email)
        row = await contributors_sql.find_contributor_by_email(self._pool, email_key=rules.email_key(email))
        return None if row is None else _contributor(row)

    # -- assets ------------------------------------------------------------------------------

    async def get_asset(self, asset_id: UUID) -> Asset | None:
        row = await assets_sql.get_asset(self._pool, id=rules.uuid_value("asset_id", asset_id))
        return None if row is None else _asset(row)

    async def create_asset(self, asset: Asset) -> Asset:
        asset = rules.checked_model(asset, Asset, "asset")
        rules.text("description", asset.description)
        name = asset.name if asset.name is not None else asset.description[: rules.NAME_MAX]
        rules.text("name", name, rules.NAME_MAX)
        metadata = rules.json_object("metadata", asset.metadata)
        # total_cost starts at 0.00 whatever the caller says; only contributions add to it.
        row = await assets_sql.insert_asset(
            self._pool,
            id=rules.uuid_value("id", asset.id),
            type=_required_enum(AssetType, "type", asset.type).value,
            name=name,
            description=asset.description,
            created_at=rules.aware_utc(asset.created_at, "created_at"),
            metadata=metadata,
        )
        assert row is not None
        return _asset(row)

    async def list_assets(self, limit: int = 100) -> list[Asset]:
        wanted = _sql_limit(limit)
        if wanted == 0:
            return []
        return [_asset(r) for r in await assets_sql.list_assets(self._pool, lim=wanted)]

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
        # One statement (queries/contributions.sql): the references gate the INSERT, so an unknown one
        # writes nothing; the asset's total_cost grows in the same statement (trigger), and an
        # overflow or a duplicate id fails it whole.
        row = await contributions_sql.create_contribution(
            self._pool,
            id=contribution_id,
            contributor_id=contributor_key,
            asset_id=asset_key,
            cost_amount=cost,
            coherence_score=Decimal(str(score)),
            metadata=meta,
            timestamp=rules.aware_utc(when),
        )
        assert row is not None  # the references' one row, joined to the new row or to none
        if not row.contributor_exists:  # the contributor's error first, as the memory store
            raise UnknownReferenceError(
                f"{CONSTRAINT_MESSAGES['contributions_contributor_id_fkey']}: {contributor_key}"
            )
        if not row.asset_exists:
            raise UnknownReferenceError(f"{CONSTRAINT_MESSAGES['contributions_asset_id_fkey']}: {asset_key}")
        return _contribution(cast(_ContributionRow, row))

    async def get_contribution(self, contribution_id: UUID) -> Contribution | None:
        row = await contributions_sql.get_contribution(
            self._pool, id=rules.uuid_value("contribution_id", contribution_id)
        )
        return None if row is None else _contribution(row)

    async def list_contributions(self, limit: int = 100) -> list[Contribution]:
        wanted = _sql_limit(limit)
        if wanted == 0:
            return []
        return [_contribution(r) for r in await contributions_sql.list_contributions(self._pool, lim=wanted)]

    async def get_asset_contributions(self, asset_id: UUID) -> list[Contribution]:
        rows = await contributions_sql.get_asset_contributions(
            self._pool, asset_id=rules.uuid_value("asset_id", asset_id)
        )
        return [_contribution(r) for r in rows]

    async def get_contributor_contributions(self, contributor_id: UUID) -> list[Contribution]:
        rows = await contributions_sql.get_contributor_contributions(
            self._pool, contributor_id=rules.uuid_value("contributor_id", contributor_id)
        )
        return [_contribution(r) for r in rows]

    # -- GitHub ------------------------------------------------------------------------------

    async def upsert_github_contributor(self, github_contributor: GitHubContributor) -> GitHubContributor:
        gc = rules.checked_model(github_contributor, GitHubContributor, "github_contributor")
        rules.github_contributor_fields(gc)
        row = await github_sql.upsert_github_contributor(
            self._pool,
            id=gc.id,
            source=gc.source,
            login=gc.login,
            name=gc.name,
            avatar_url=gc.avatar_url,
            contributions_count=gc.contributions_count,
            created_at=rules.aware_utc(gc.created_at, "created_at"),
            updated_at=rules.optional_aware(gc.updated_at, "updated_at"),
        )
        assert row is not None
        return _github_contributor(row)

    async def get_github_contributor(self, contributor_id: str) -> GitHubContributor | None:
        rules.key_text("contributor_id", contributor_id)
        row = await github_sql.get_github_contributor(self._pool, id=contributor_id)
        return None if row is None else _github_contributor(row)

    async def list_github_contributors(self, limit: int = 100) -> list[GitHubContributor]:
        wanted = _sql_limit(limit)
        if wanted == 0:
            return []
        return [_github_contributor(r) for r in await github_sql.list_github_contributors(self._pool, lim=wanted)]

    async def upsert_github_organization(self, organization: GitHubOrganization) -> GitHubOrganization:
        org = rules.checked_model(organization, GitHubOrganization, "organization")
        rules.github_organization_fields(org)
        row = await github_sql.upsert_github_organization(
            self._pool,
            id=org.id,
            login=org.login,
            type=org.type,
            name=org.name,
            avatar_url=org.avatar_url,
            created_at=rules.aware_utc(org.created_at, "created_at"),
            updated_at=rules.optional_aware(org.updated_at, "updated_at"),
        )
        assert row is not None
        return _github_organization(row)

    async def get_github_organization(self, organization_id: str) -> GitHubOrganization | None:
        rules.key_text("organization_id", organization_id)
        row = await github_sql.get_github_organization(self._pool, id=organization_id)
        return None if row is None else _github_organization(row)

    async def add_github_contributes_to(self, contributor_id: str, ecosystem: str, project_name: str) -> None:
        rules.key_text("contributor_id", contributor_id, rules.NAME_MAX)
        eco, name = rules.project_key(ecosystem, project_name)
        await github_sql.add_github_contributes_to(self._pool, contributor_id=contributor_id, ecosystem=eco, name=name)

    async def get_project_github_contributors(self, ecosystem: str, project_name: str) -> list[GitHubContributor]:
        eco, name = rules.project_key(ecosystem, project_name)
        rows = await github_sql.get_project_github_contributors(self._pool, ecosystem=eco, name=name)
        return [_github_contributor(r) for r in rows]


def _validated_project(project: Project) -> _ProjectWrite:
    return _ProjectWrite(rules.project_fields(project), project)


# -- the agent task store ------------------------------------------------------------------------


class PostgresAgentTaskStore:
    """The API's agent_service task store (client-contract §3) on PostgreSQL, with claims.

    Records are stored as given; `update_task` and the claims are single statements, so concurrent
    callers never lose an update and two claimers never get the same task. Aggregating reads run in
    one read-only snapshot so their parts agree.
    """

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def create_task(self, task: AgentTaskRecord) -> AgentTaskRecord:
        t = _validated_task(task)
        row = await tasks_sql.insert_task(
            self._pool,
            id=t.id,
            direction=t.direction,
            task_type=t.task_type,
            status=t.status,
            model=t.model,
            command=t.command,
            tier=t.tier,
            context=t.context,
            output=t.output,
            progress_pct=t.progress_pct,
            current_step=t.current_step,
            decision_prompt=t.decision_prompt,
            decision=t.decision,
            started_at=t.started_at,
            created_at=t.created_at,
            updated_at=t.updated_at,
            claimed_by=t.claimed_by,
            claimed_at=t.claimed_at,
        )
        assert row is not None
        return _task(row)

    async def get_task(self, task_id: str) -> AgentTaskRecord | None:
        rules.key_text("task_id", task_id)
        row = await tasks_sql.get_task(self._pool, id=task_id)
        return None if row is None else _task(row)

    async def list_tasks(
        self,
        status: TaskStatus | None = None,
        task_type: TaskType | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> tuple[list[AgentTaskRecord], int]:
        wanted, skip = rules.page(limit, offset)
        status_filter = rules.optional_enum(TaskStatus, "status", status)
        type_filter = rules.optional_enum(TaskType, "task_type", task_type)
        # The page and the total in one statement (one snapshot, one round trip): queries/agent_tasks.sql.
        rows = await tasks_sql.list_tasks_page(
            self._pool,
            status=status_filter,
            task_type=type_filter,
            lim=min(wanted, _BIGINT_MAX),
            off=min(skip, _BIGINT_MAX),
        )
        # An empty page is one row with the total and no task (its id NULL; a task's id never is).
        tasks = [_task(cast(_TaskRow, r)) for r in rows if r.id is not None]
        return tasks, rows[0].total

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
        new_status, pct, moment = rules.task_update(task_id, status, progress_pct, texts, now)
        # client-contract §3.4 in one UPDATE (queries/agent_tasks.sql): never a lost update.
        row = await tasks_sql.update_task(
            self._pool,
            id=task_id,
            status=new_status,
            output=output,
            progress_pct=pct,
            current_step=current_step,
            decision_prompt=decision_prompt,
            decision=decision,
            now=moment,
        )
        return None if row is None else _task(row)

    async def get_attention_tasks(self, limit: int = 20) -> tuple[list[AgentTaskRecord], int]:
        wanted, _ = rules.page(limit, 0)
        # The page and the total in one statement (one snapshot, one round trip), as list_tasks.
        rows = await tasks_sql.attention_tasks_page(self._pool, lim=min(wanted, _BIGINT_MAX))
        return [_task(cast(_TaskRow, r)) for r in rows if r.id is not None], rows[0].total

    async def get_task_count(self) -> dict[str, Any]:
        by_status = _by_status(await tasks_sql.task_status_counts(self._pool))
        return {"total": sum(by_status.values()), "by_status": by_status}

    async def get_review_summary(self) -> dict[str, Any]:
        # The counts and the tasks in one statement (one snapshot, one round trip); with no task
        # needing a person, one row carrying the counts and no task (its id NULL).
        rows = await tasks_sql.review_summary(self._pool)
        by_status: dict[str, int] = dict(rows[0].by_status)  # [status, tasks] pairs, in first-seen order
        return {
            "by_status": by_status,
            "needs_attention": [_task(cast(_TaskRow, r)) for r in rows if r.id is not None],
            "total": sum(by_status.values()),
        }

    async def get_usage_summary(self, routing: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
        table = rules.routing_table(routing)
        by_model: dict[str, dict[str, Any]] = {}
        for row in await tasks_sql.usage_by_model(self._pool):
            usage = by_model.setdefault(
                row.model, {"count": 0, "by_status": {}, "last_used": rules.aware_utc(row.last_used).isoformat()}
            )
            usage["count"] += row.tasks
            usage["by_status"][row.status.value] = row.tasks
        return {"by_model": by_model, "routing": table}

    async def get_pipeline_status(
        self, now_utc: datetime | None = None, metrics: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        now = rules.moment("now_utc", now_utc)
        # One statement (one snapshot, one round trip): only the tasks the payload can show, in
        # insertion order, beside the per-phase counts over all tasks (queries/agent_tasks.sql).
        rows = await tasks_sql.pipeline_status(
            self._pool,
            running_lim=pipeline.RUNNING_SHOWN,
            pending_lim=pipeline.PENDING_SHOWN,
            recent_lim=pipeline.RECENT_SHOWN,
        )
        phases: dict[str, int] = rows[0].by_phase
        shown = [_task(cast(_TaskRow, r)) for r in rows if r.id is not None]
        return pipeline.pipeline_status(shown, now, metrics, running_by_phase=phases)

    async def claim_next_task(self, worker: str, *, now: datetime | None = None) -> AgentTaskRecord | None:
        rules.text("worker", worker, rules.NAME_MAX, required=True)
        moment = rules.moment("now", now)
        row = await tasks_sql.claim_next_task(self._pool, worker=worker, now=moment)
        return None if row is None else _task(row)

    async def claim_task(self, task_id: str, worker: str, *, now: datetime | None = None) -> AgentTaskRecord | None:
        rules.key_text("task_id", task_id)
        rules.text("worker", worker, rules.NAME_MAX, required=True)
        moment = rules.moment("now", now)
        row = await tasks_sql.claim_task(self._pool, id=task_id, worker=worker, now=moment)
        return None if row is None else _task(row)

    async def clear(self) -> None:
        await tasks_sql.clear_tasks(self._pool)


def _by_status(rows: Iterable[tasks_sql.TaskStatusCountsRow]) -> dict[str, int]:
    return {row.status.value: row.tasks for row in rows}


def _validated_task(task: AgentTaskRecord) -> AgentTaskRecord:
    task = rules.checked_model(task, AgentTaskRecord, "task")
    rules.task_fields(task)
    return task.model_copy(
        update={
            "task_type": _required_enum(TaskType, "task_type", task.task_type),
            "status": _required_enum(TaskStatus, "status", task.status),
            "context": None if task.context is None else rules.json_object("context", task.context),
            "created_at": rules.aware_utc(task.created_at, "created_at"),
            "updated_at": rules.optional_aware(task.updated_at, "updated_at"),
            "started_at": rules.optional_aware(task.started_at, "started_at"),
            "claimed_at": rules.optional_aware(task.claimed_at, "claimed_at"),
        }
    )


# -- both stores on one pool ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostgresStores:
    """What `connect()` yields: both stores on one pool (the pool is closed when the block ends)."""

    graph: PostgresGraphStore
    tasks: PostgresAgentTaskStore
    pool: Pool


@asynccontextmanager
async def connect(dsn: str | None = None, *, settings: PoolSettings | None = None) -> AsyncIterator[PostgresStores]:
    """Open one pool (`dsn`, else $DATABASE_URL, else the embedded server), check that the schema
    is current (SchemaNotCurrentError otherwise), yield both stores, and close the pool."""
    pool = await create_pool(dsn, settings)
    try:
        try:
            async with pool.acquire() as conn:
                await require_current(cast(Connection, conn))  # the proxy forwards every call
        except CoherenceSQLError:
            raise
        except DRIVER_FAILURES as exc:
            raise translate(exc, "connect") from None
        # With DATABASE_REPLICA_URLS set, the stores run on the read router (coherence_sql.replicas).
        from coherence_sql.replicas.service import routed_reads

        async with routed_reads(pool, settings) as reads:
            yield PostgresStores(graph=PostgresGraphStore(reads), tasks=PostgresAgentTaskStore(reads), pool=pool)
    finally:
        await _close_pool(pool)


async def _close_pool(pool: Pool) -> None:
    """Close gracefully (waiting for connections in use, at most CLOSE_TIMEOUT_S); if that fails or
    takes too long, terminate every connection."""
    try:
        await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
    except DRIVER_FAILURES as exc:
        pool.terminate()
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise translate(exc, "closing the pool") from None
