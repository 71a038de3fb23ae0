"""The PostgreSQL stores against a real server: every method, the contract's edges, every typed error.

The shared behavioural suite (tests/stores/) compares the stores with each other; this file pins
what is particular to PostgreSQL: keys and display case, pending edges, money and score precision,
atomic writes, snapshots, claims under concurrency, the pool's failure paths.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from coherence_sql.db import DEFAULT_SERVER_SETTINGS, Pool, PoolSettings, create_pool
from coherence_sql.errors import (
    DatabaseUnavailableError,
    DuplicateError,
    InvalidValueError,
    QueryTimeoutError,
    SchemaNotCurrentError,
    UnknownReferenceError,
)
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
from coherence_sql.stores.postgres import (
    BULK_KEYS_PER_TRANSACTION,
    PostgresAgentTaskStore,
    PostgresGraphStore,
    connect,
)
from coherence_sql.stores.protocol import AgentTaskStore, DependencyEdge, GraphStore

T0 = datetime(2026, 2, 15, 10, 30, 0, 123456)  # naive UTC, as the graph models carry it
A0 = T0.replace(tzinfo=UTC)  # aware UTC, as agent tasks carry it


# The stores' tables, emptied before each test with DELETE: on a few rows far cheaper than the
# TRUNCATE of `clean_dsn`, which creates new files for every table (slow on PG 15 on ext4).
EMPTY_STORE_TABLES = """
DELETE FROM contributions; DELETE FROM contributors; DELETE FROM assets;
DELETE FROM project_dependencies; DELETE FROM pending_dependencies; DELETE FROM projects;
DELETE FROM github_contributes_to; DELETE FROM github_contributors; DELETE FROM github_organizations;
DELETE FROM agent_tasks;
"""


@pytest.fixture(scope="module")
async def pool(migrated_dsn: str) -> AsyncIterator[Pool]:
    pool = await create_pool(migrated_dsn, PoolSettings(min_size=1, max_size=6))
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def fresh_dsn(migrated_dsn: str, pool: Pool) -> str:
    """The migrated database with the stores' tables empty."""
    await pool.execute(EMPTY_STORE_TABLES)
    return migrated_dsn


@pytest.fixture
def graph(fresh_dsn: str, pool: Pool) -> PostgresGraphStore:
    return PostgresGraphStore(pool)


@pytest.fixture
def tasks(fresh_dsn: str, pool: Pool) -> PostgresAgentTaskStore:
    return PostgresAgentTaskStore(pool)


def project(eco: str, name: str, description: str = "", version: str = "1.0") -> Project:
    return Project(ecosystem=eco, name=name, version=version, description=description)


def contributor(email: str = "alice@coherence.dev", **fields: Any) -> Contributor:
    return Contributor(type=ContributorType.HUMAN, name="Alice", email=email, **fields)


def task(task_id: str, **fields: Any) -> AgentTaskRecord:
    values: dict[str, Any] = {
        "direction": "Do the thing",
        "task_type": TaskType.IMPL,
        "model": "openrouter/free",
        "command": "aider --yes",
        "tier": "openrouter",
        "created_at": A0,
    }
    values.update(fields)
    return AgentTaskRecord(id=task_id, **values)


async def pending_edge_count(pool: Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM pending_dependencies")
    return count


def test_the_stores_satisfy_the_protocols(graph: PostgresGraphStore, tasks: PostgresAgentTaskStore) -> None:
    assert isinstance(graph, GraphStore)
    assert isinstance(tasks, AgentTaskStore)


# -- projects ------------------------------------------------------------------------------------


async def test_project_keys_match_case_insensitively_and_keep_the_latest_spelling(graph: PostgresGraphStore) -> None:
    await graph.upsert_project(project("NPM", "React", "UI"))
    first = await graph.get_project("npm", "REACT")
    assert first is not None
    assert (first.ecosystem, first.name, first.description) == ("NPM", "React", "UI")

    await graph.upsert_project(project("npm", "REACT", "UI library", version="19"))
    latest = await graph.get_project("Npm", "react")
    assert latest is not None
    assert (latest.ecosystem, latest.name, latest.version, latest.description) == ("npm", "REACT", "19", "UI library")
    assert await graph.count_projects() == 1
    assert await graph.get_project("pypi", "react") is None


async def test_count_projects_counts_distinct_keys(graph: PostgresGraphStore) -> None:
    assert await graph.count_projects() == 0
    await graph.upsert_project(project("npm", "a"))
    assert await graph.count_projects() == 1
    await graph.upsert_project(project("npm", "b"))
    await graph.upsert_project(project("NPM", "B"))
    assert await graph.count_projects() == 2


async def test_an_empty_or_overlong_key_is_rejected(graph: PostgresGraphStore) -> None:
    with pytest.raises(InvalidValueError):
        await graph.upsert_project(project("", "react"))
    with pytest.raises(InvalidValueError):
        await graph.get_project("npm", "")
    with pytest.raises(InvalidValueError):
        await graph.upsert_project(project("npm", "x" * 256))
    assert await graph.count_projects() == 0


async def test_dependency_count_is_the_out_degree_and_ignores_the_callers_value(graph: PostgresGraphStore) -> None:
    await graph.upsert_project(Project(ecosystem="npm", name="app", version="1", description="", dependency_count=7))
    await graph.upsert_project(project("npm", "react"))
    await graph.add_dependency("npm", "app", "npm", "react")
    await graph.add_dependency("NPM", "App", "npm", "REACT")  # the same edge: a no-op
    app = await graph.get_project("npm", "app")
    assert app is not None
    assert app.dependency_count == 1
    assert await graph.count_dependents("npm", "react") == 1
    assert await graph.count_dependents("npm", "app") == 0


async def test_edges_recorded_before_their_projects_count_and_resolve(graph: PostgresGraphStore, pool: Pool) -> None:
    await graph.add_dependency("npm", "app", "npm", "react")
    await graph.add_dependency("npm", "app", "npm", "lodash")
    assert await graph.count_dependents("npm", "react") == 1  # pending edges count

    await graph.upsert_project(project("npm", "app"))
    app = await graph.get_project("npm", "app")
    assert app is not None
    assert app.dependency_count == 2  # both endpoints missing: still counted
    assert await pending_edge_count(pool) == 2

    await graph.upsert_project(project("npm", "React"))
    await graph.upsert_project(project("npm", "lodash"))
    assert await pending_edge_count(pool) == 0
    assert await pool.fetchval("SELECT count(*) FROM project_dependencies") == 2
    app = await graph.get_project("npm", "app")
    assert app is not None
    assert app.dependency_count == 2
    assert await graph.count_dependents("npm", "react") == 1


async def test_both_endpoints_arriving_at_once_resolve_every_pending_edge(
    graph: PostgresGraphStore, pool: Pool
) -> None:
    # Each endpoint's insert cannot see the other's uncommitted row; resolutions must take turns.
    await graph.add_dependencies([DependencyEdge("npm", f"a{i}", "npm", f"b{i}") for i in range(150)])
    await asyncio.gather(*(graph.upsert_project(project("npm", f"{x}{i}")) for i in range(150) for x in "ab"))
    assert await pending_edge_count(pool) == 0
    assert await pool.fetchval("SELECT count(*) FROM project_dependencies") == 150
    for i in (0, 77, 149):
        found = await graph.get_project("npm", f"a{i}")
        assert found is not None
        assert found.dependency_count == 1
        assert await graph.count_dependents("npm", f"b{i}") == 1
    await graph.add_dependency("npm", "a0", "npm", "b0")  # re-adding a resolved edge changes nothing
    assert await graph.count_dependents("npm", "b0") == 1


async def test_a_bulk_upsert_that_updates_a_project_and_resolves_an_edge_cannot_deadlock_a_resolver(
    graph: PostgresGraphStore, pool: Pool, fresh_dsn: str
) -> None:
    # The resolver (another transaction that already resolved a pending edge, so holds the
    # resolution lock) next resolves "s -> p1" and so updates s's row. The bulk upsert updates s and
    # inserts p2, whose pending edge needs the resolution lock. Taken in that order by both, that is
    # a cycle; the bulk upsert must take the resolution lock before it writes any row.
    await graph.upsert_project(project("npm", "s"))
    await graph.add_dependencies([DependencyEdge("npm", "s", "npm", "p1"), DependencyEdge("npm", "x", "npm", "p2")])
    resolver = await asyncpg.connect(fresh_dsn)
    try:
        async with resolver.transaction():
            await resolver.execute("SELECT lock_pending_resolution()")
            bulk = asyncio.ensure_future(
                graph.upsert_projects([project("npm", "s", version="2.0"), project("npm", "p2")])
            )
            for _ in range(100):  # until the bulk upsert waits on a lock
                waiting = await resolver.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if waiting:
                    break
                await asyncio.sleep(0.02)
            assert waiting
            await resolver.execute(
                "INSERT INTO projects (ecosystem, name, display_ecosystem, display_name, version, description) "
                "VALUES ('npm', 'p1', 'npm', 'p1', '1.0', '')"
            )
        await asyncio.wait_for(bulk, timeout=30)
    finally:
        await resolver.close()
    assert await pending_edge_count(pool) == 1  # x -> p2: x is still unknown
    s = await graph.get_project("npm", "s")
    assert s is not None
    assert (s.version, s.dependency_count) == ("2.0", 1)
    assert await graph.count_dependents("npm", "p1") == 1


async def test_a_self_dependency_is_rejected_whatever_the_case(graph: PostgresGraphStore) -> None:
    with pytest.raises(InvalidValueError, match="itself"):
        await graph.add_dependency("npm", "app", "NPM", "App")
    with pytest.raises(InvalidValueError):
        await graph.add_dependencies([DependencyEdge("npm", "a", "npm", "b"), DependencyEdge("npm", "c", "npm", "C")])
    assert await graph.count_dependents("npm", "b") == 0  # the valid edge of the batch was not written


async def test_bulk_upserts_keep_the_callers_order_and_the_latest_spelling(graph: PostgresGraphStore) -> None:
    many = [project("pypi", f"pkg-{i:04d}", "shared words") for i in range(BULK_KEYS_PER_TRANSACTION + 20)]
    many.reverse()  # insertion order must follow the caller, not the key order
    await graph.upsert_projects([*many, project("PyPI", "PKG-0000", "shared words, renamed")])
    assert await graph.count_projects() == len(many)
    renamed = await graph.get_project("pypi", "pkg-0000")
    assert renamed is not None
    assert (renamed.ecosystem, renamed.name) == ("PyPI", "PKG-0000")
    found = await graph.search("shared words", limit=3)  # all rank 3: ties in insertion order
    assert [p.name for p in found] == [many[0].name, many[1].name, many[2].name]


async def test_bulk_dependencies_count_like_single_ones(graph: PostgresGraphStore) -> None:
    await graph.upsert_projects([project("npm", "app"), project("npm", "lib")])
    edges = [DependencyEdge("npm", "app", "npm", f"dep-{i}") for i in range(BULK_KEYS_PER_TRANSACTION)]
    await graph.add_dependencies([*edges, DependencyEdge("npm", "lib", "NPM", "App"), edges[0]])
    app = await graph.get_project("npm", "app")
    assert app is not None
    assert app.dependency_count == len(edges)
    assert await graph.count_dependents("npm", "app") == 1
    assert await graph.count_dependents("npm", "dep-7") == 1


async def test_search_ranks_exact_prefix_contains_then_description(graph: PostgresGraphStore) -> None:
    await graph.upsert_project(project("npm", "lodash", "React utils"))
    await graph.upsert_project(project("npm", "preact", "tiny"))
    await graph.upsert_project(project("npm", "react-dom", "DOM"))
    await graph.upsert_project(project("npm", "react-native", "mobile"))
    await graph.upsert_project(project("NPM", "React", "UI"))
    await graph.upsert_project(project("npm", "vue", "not this one"))
    found = await graph.search("  REACT ")
    assert [(p.ecosystem, p.name) for p in found] == [
        ("NPM", "React"),
        ("npm", "react-dom"),
        ("npm", "react-native"),
        ("npm", "preact"),
        ("npm", "lodash"),
    ]
    assert found[-1].description == "React utils"


async def test_search_takes_percent_underscore_and_backslash_literally(graph: PostgresGraphStore) -> None:
    await graph.upsert_project(project("npm", "100%_done"))
    await graph.upsert_project(project("npm", "100x-done"))
    await graph.upsert_project(project("npm", "back\\slash"))
    await graph.upsert_project(project("npm", "plain", "50% off_today"))
    assert [p.name for p in await graph.search("%")] == ["100%_done", "plain"]
    assert [p.name for p in await graph.search("0%_")] == ["100%_done"]
    assert [p.name for p in await graph.search("_")] == ["100%_done", "plain"]
    assert [p.name for p in await graph.search("\\")] == ["back\\slash"]
    assert await graph.search("100_") == []


async def test_search_limits(graph: PostgresGraphStore) -> None:
    for name in ("react", "react-dom", "preact"):
        await graph.upsert_project(project("npm", name))
    assert await graph.search("react", limit=0) == []  # decision: the API's "one item" is a bug
    assert await graph.search("react", limit=-5) == []
    assert [p.name for p in await graph.search("react", limit="1")] == ["react"]  # type: ignore[arg-type]
    assert len(await graph.search("react", limit=10**30)) == 3
    assert await graph.search("   ") == []
    assert await graph.search(None) == []  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError):
        await graph.search("react", limit="many")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError):
        await graph.search("re\x00act")


# -- contributors and assets ---------------------------------------------------------------------


async def test_contributors_round_trip_with_naive_utc_and_two_place_rates(graph: PostgresGraphStore) -> None:
    aware = datetime(2026, 2, 15, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    created = await graph.create_contributor(
        contributor(hourly_rate=Decimal("12.5"), created_at=aware, metadata={"team": ["a", 1]})
    )
    assert created.created_at == datetime(2026, 2, 15, 10, 30)
    assert created.created_at.tzinfo is None
    assert created.hourly_rate == Decimal("12.50")
    fetched = await graph.get_contributor(created.id)
    assert fetched == created
    assert await graph.get_contributor(str(created.id)) == created  # type: ignore[arg-type]
    assert await graph.get_contributor(uuid4()) is None
    with pytest.raises(InvalidValueError):
        await graph.get_contributor("not-a-uuid")  # type: ignore[arg-type]


async def test_hourly_rate_precision_and_sign_are_checked(graph: PostgresGraphStore) -> None:
    with pytest.raises(InvalidValueError, match="decimal places"):
        await graph.create_contributor(contributor(hourly_rate=Decimal("1.234")))
    with pytest.raises(InvalidValueError, match="negative"):
        await graph.create_contributor(contributor(hourly_rate=Decimal("-1")))
    zero = await graph.create_contributor(contributor(hourly_rate=Decimal("0")))
    assert zero.hourly_rate == Decimal("0.00")  # not NULL, as upstream's truthiness test made it


async def test_duplicate_contributor_ids_and_emails_are_rejected(graph: PostgresGraphStore) -> None:
    first = await graph.create_contributor(contributor("Alice@coherence.dev"))
    with pytest.raises(DuplicateError, match="id"):
        await graph.create_contributor(contributor("other@coherence.dev", id=first.id))
    with pytest.raises(DuplicateError, match="email"):
        await graph.create_contributor(contributor("ALICE@Coherence.dev"))
    assert len(await graph.list_contributors()) == 1


async def test_find_contributor_by_email_ignores_case(graph: PostgresGraphStore) -> None:
    created = await graph.create_contributor(contributor("Alice@coherence.dev"))
    assert await graph.find_contributor_by_email("alice@COHERENCE.DEV") == created
    assert await graph.find_contributor_by_email("bob@coherence.dev") is None


async def test_lists_are_newest_first_with_ties_in_insertion_order(graph: PostgresGraphStore) -> None:
    older = await graph.create_contributor(contributor("a@coherence.dev", created_at=T0 - timedelta(days=1)))
    tie_1 = await graph.create_contributor(contributor("b@coherence.dev", created_at=T0))
    tie_2 = await graph.create_contributor(contributor("c@coherence.dev", created_at=T0))
    assert [c.id for c in await graph.list_contributors()] == [tie_1.id, tie_2.id, older.id]
    assert [c.id for c in await graph.list_contributors(limit="2")] == [tie_1.id, tie_2.id]  # type: ignore[arg-type]
    assert await graph.list_contributors(limit=0) == []
    assert await graph.list_contributors(limit=-3) == []
    with pytest.raises(InvalidValueError):
        await graph.list_contributors(limit=None)  # type: ignore[arg-type]


async def test_assets_start_at_zero_whatever_the_caller_says(graph: PostgresGraphStore) -> None:
    asset = await graph.create_asset(Asset(type=AssetType.CODE, description="repo", total_cost=Decimal("5.00")))
    assert asset.total_cost == Decimal("0.00")
    assert asset.name == "repo"
    assert asset.created_at.tzinfo is None
    assert await graph.get_asset(asset.id) == asset
    assert await graph.list_assets(limit=5) == [asset]
    assert await graph.list_assets(limit=0) == []
    with pytest.raises(DuplicateError):
        await graph.create_asset(Asset(id=asset.id, type=AssetType.DATA, description="again"))


# -- contributions -------------------------------------------------------------------------------


@pytest.fixture
async def parties(graph: PostgresGraphStore) -> tuple[UUID, UUID]:
    who = await graph.create_contributor(contributor())
    what = await graph.create_asset(Asset(type=AssetType.CODE, description="repo"))
    return who.id, what.id


async def test_contributions_add_to_total_cost_with_decimal_precision(
    graph: PostgresGraphStore, parties: tuple[UUID, UUID]
) -> None:
    who, what = parties
    first = await graph.create_contribution(who, what, Decimal("100.1"), 0.9, {"has_tests": True})
    assert first.cost_amount == Decimal("100.10")
    assert first.coherence_score == 0.9
    assert first.timestamp.tzinfo is None
    await graph.create_contribution(who, what, Decimal("0.01"), 0.5, {})
    await graph.create_contribution(who, what, 0.1, 0.5, {})  # type: ignore[arg-type]
    asset = await graph.get_asset(what)
    assert asset is not None
    assert asset.total_cost == Decimal("100.21")
    assert await graph.get_contribution(first.id) == first
    assert await graph.get_contribution(uuid4()) is None


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        (Decimal("1.001"), "decimal places"),
        (Decimal("-5"), "negative"),
        (Decimal("10000000000000"), "out of range"),
        ("not-a-number", "decimal amount"),
        (Decimal("NaN"), "finite"),
    ],
)
async def test_bad_amounts_are_rejected_and_write_nothing(
    graph: PostgresGraphStore, parties: tuple[UUID, UUID], amount: Any, reason: str
) -> None:
    who, what = parties
    with pytest.raises(InvalidValueError, match=reason):
        await graph.create_contribution(who, what, amount, 0.5, {})
    assert await graph.list_contributions() == []


async def test_a_total_cost_overflow_rolls_the_contribution_back(
    graph: PostgresGraphStore, parties: tuple[UUID, UUID]
) -> None:
    who, what = parties
    await graph.create_contribution(who, what, Decimal("9999999999999.99"), 0.5, {})
    with pytest.raises(InvalidValueError):
        await graph.create_contribution(who, what, Decimal("0.01"), 0.5, {})
    assert len(await graph.list_contributions()) == 1
    asset = await graph.get_asset(what)
    assert asset is not None
    assert asset.total_cost == Decimal("9999999999999.99")


@pytest.mark.parametrize(("given", "stored"), [(0.125, 0.12), (0.135, 0.14), (1, 1.0), (Decimal("0.505"), 0.5)])
async def test_scores_are_rounded_half_even_to_two_places(
    graph: PostgresGraphStore, parties: tuple[UUID, UUID], given: Any, stored: float
) -> None:
    made = await graph.create_contribution(*parties, Decimal("1"), given, {})
    assert made.coherence_score == stored
    assert isinstance(made.coherence_score, float)


@pytest.mark.parametrize("score", [1.01, -0.01, float("nan"), "0.5", True])
async def test_scores_outside_zero_to_one_are_rejected(
    graph: PostgresGraphStore, parties: tuple[UUID, UUID], score: Any
) -> None:
    with pytest.raises(InvalidValueError):
        await graph.create_contribution(*parties, Decimal("1"), score, {})


async def test_unknown_contributor_or_asset_writes_nothing(
    graph: PostgresGraphStore, parties: tuple[UUID, UUID]
) -> None:
    who, what = parties
    ghost = uuid4()
    with pytest.raises(UnknownReferenceError, match=f"contributor does not exist: {ghost}"):
        await graph.create_contribution(ghost, uuid4(), Decimal("1"), 0.5, {})  # contributor checked first
    with pytest.raises(UnknownReferenceError, match=f"asset does not exist: {ghost}"):
        await graph.create_contribution(who, ghost, Decimal("1"), 0.5, {})
    assert await graph.list_contributions() == []
    asset = await graph.get_asset(what)
    assert asset is not None
    assert asset.total_cost == Decimal("0.00")


async def test_given_ids_and_timestamps_are_kept_and_a_repeated_id_is_rejected(
    graph: PostgresGraphStore, parties: tuple[UUID, UUID]
) -> None:
    who, what = parties
    chosen = uuid4()
    made = await graph.create_contribution(
        who, what, Decimal("2"), 0.5, {}, id=chosen, timestamp=datetime(2026, 1, 1, 1, tzinfo=UTC)
    )
    assert made.id == chosen
    assert made.timestamp == datetime(2026, 1, 1, 1)
    with pytest.raises(DuplicateError):
        await graph.create_contribution(who, what, Decimal("3"), 0.5, {}, id=chosen)
    asset = await graph.get_asset(what)
    assert asset is not None
    assert asset.total_cost == Decimal("2.00")


async def test_contribution_lists_and_their_orders(graph: PostgresGraphStore, parties: tuple[UUID, UUID]) -> None:
    who, what = parties
    other = await graph.create_asset(Asset(type=AssetType.DATA, description="other"))
    late = await graph.create_contribution(who, what, Decimal("1"), 0.5, {}, timestamp=T0 + timedelta(hours=1))
    tie_1 = await graph.create_contribution(who, what, Decimal("1"), 0.5, {}, timestamp=T0)
    tie_2 = await graph.create_contribution(who, other.id, Decimal("1"), 0.5, {}, timestamp=T0)
    assert [c.id for c in await graph.list_contributions()] == [late.id, tie_1.id, tie_2.id]
    assert [c.id for c in await graph.list_contributions(limit=1)] == [late.id]
    assert await graph.list_contributions(limit=-1) == []
    assert [c.id for c in await graph.get_asset_contributions(what)] == [tie_1.id, late.id]
    assert [c.id for c in await graph.get_contributor_contributions(who)] == [tie_1.id, tie_2.id, late.id]
    assert await graph.get_asset_contributions(uuid4()) == []
    assert await graph.get_contributor_contributions(uuid4()) == []


# -- GitHub --------------------------------------------------------------------------------------


def gh(login: str, **fields: Any) -> GitHubContributor:
    return GitHubContributor(id=f"github:{login}", login=login, created_at=T0, **fields)


async def test_github_contributor_upserts_replace_fields_but_keep_position(graph: PostgresGraphStore) -> None:
    await graph.upsert_github_contributor(gh("alice", name="Alice"))
    await graph.upsert_github_contributor(gh("bob"))
    replaced = await graph.upsert_github_contributor(gh("alice", contributions_count=5, updated_at=A0))
    assert replaced.name is None
    assert replaced.updated_at == T0
    assert await graph.get_github_contributor("github:alice") == replaced
    assert await graph.get_github_contributor("github:ALICE") is None  # ids are exact
    assert [c.login for c in await graph.list_github_contributors()] == ["alice", "bob"]
    assert len(await graph.list_github_contributors(limit=1)) == 1
    assert await graph.list_github_contributors(limit=0) == []
    with pytest.raises(InvalidValueError):
        await graph.upsert_github_contributor(gh("carol", contributions_count=-1))


async def test_project_github_contributors_follow_edge_order_and_skip_unknown_ids(graph: PostgresGraphStore) -> None:
    await graph.upsert_github_contributor(gh("alice"))
    await graph.upsert_github_contributor(gh("bob"))
    await graph.add_github_contributes_to("github:bob", "npm", "React")
    await graph.add_github_contributes_to("github:ghost", "npm", "react")
    await graph.add_github_contributes_to("github:alice", "NPM", "react")
    await graph.add_github_contributes_to("github:bob", "npm", "REACT")  # repeated: once
    found = await graph.get_project_github_contributors("npm", "react")
    assert [c.login for c in found] == ["bob", "alice"]
    assert await graph.get_project_github_contributors("npm", "vue") == []


async def test_github_organizations(graph: PostgresGraphStore) -> None:
    org = GitHubOrganization(id="github:acme", login="acme", type="Organization", created_at=T0)
    assert await graph.upsert_github_organization(org) == org
    renamed = await graph.upsert_github_organization(org.model_copy(update={"name": "ACME", "type": "User"}))
    assert await graph.get_github_organization("github:acme") == renamed
    assert await graph.get_github_organization("github:nobody") is None
    with pytest.raises(InvalidValueError):
        await graph.upsert_github_organization(org.model_copy(update={"id": "github:x", "type": "Team"}))


# -- agent tasks ---------------------------------------------------------------------------------


async def test_tasks_are_stored_as_given_with_aware_utc(tasks: PostgresAgentTaskStore) -> None:
    given = task("task_1", context={"monitor_issue_id": 7, "nested": {"ok": True}}, created_at=T0)
    stored = await tasks.create_task(given)
    assert stored.created_at == A0
    assert stored.created_at.tzinfo is not None
    assert stored.context == {"monitor_issue_id": 7, "nested": {"ok": True}}
    assert stored.status is TaskStatus.PENDING
    assert await tasks.get_task("task_1") == stored
    assert await tasks.get_task("task_404") is None
    assert (await tasks.create_task(task("task_2", direction="x" * 5000))).direction == "x" * 5000
    assert (await tasks.create_task(task("task_3", direction="  kept as given "))).direction == "  kept as given "


@pytest.mark.parametrize(
    "bad",
    [
        {"direction": "   "},
        {"direction": "x" * 5001},
        {"progress_pct": 101},
        {"id": ""},
        {"model": "m" * 101},
        {"output": "nul\x00byte"},
    ],
)
async def test_bad_tasks_are_rejected(tasks: PostgresAgentTaskStore, bad: dict[str, Any]) -> None:
    fields = dict(bad)
    task_id = fields.pop("id", "task_bad")
    with pytest.raises(InvalidValueError):
        await tasks.create_task(task(task_id, **fields))
    assert (await tasks.get_task_count())["total"] == 0


async def test_a_repeated_task_id_is_a_duplicate(tasks: PostgresAgentTaskStore) -> None:
    await tasks.create_task(task("task_1"))
    with pytest.raises(DuplicateError):
        await tasks.create_task(task("task_1"))


async def test_list_tasks_filters_pages_and_counts_before_paging(tasks: PostgresAgentTaskStore) -> None:
    for i in range(6):
        created = A0 + timedelta(minutes=i // 2)  # pairs share a created_at: ties by insertion
        await tasks.create_task(task(f"task_{i}", created_at=created, task_type=TaskType.SPEC if i % 2 else "impl"))
    items, total = await tasks.list_tasks()
    assert total == 6
    assert [t.id for t in items] == ["task_4", "task_5", "task_2", "task_3", "task_0", "task_1"]
    items, total = await tasks.list_tasks(limit=2, offset=2)
    assert ([t.id for t in items], total) == (["task_2", "task_3"], 6)
    items, total = await tasks.list_tasks(task_type=TaskType.SPEC)
    assert ([t.id for t in items], total) == (["task_5", "task_3", "task_1"], 3)
    items, total = await tasks.list_tasks(status="pending", offset=999)  # type: ignore[arg-type]
    assert (items, total) == ([], 6)
    assert await tasks.list_tasks(status=TaskStatus.FAILED) == ([], 0)
    for bad in ({"limit": -1}, {"offset": -1}, {"limit": "5"}, {"status": "bogus"}, {"task_type": "chore"}):
        with pytest.raises(InvalidValueError):
            await tasks.list_tasks(**bad)


async def test_update_task_follows_the_api(tasks: PostgresAgentTaskStore) -> None:
    await tasks.create_task(task("task_1"))
    assert await tasks.update_task("task_404", output="x") is None

    t1 = A0 + timedelta(minutes=1)
    running = await tasks.update_task("task_1", status=TaskStatus.RUNNING, progress_pct=10, now=t1)
    assert running is not None
    assert (running.status, running.started_at, running.updated_at, running.progress_pct) == (
        TaskStatus.RUNNING,
        t1,
        t1,
        10,
    )

    t2 = A0 + timedelta(minutes=2)
    paused = await tasks.update_task(
        "task_1", status=TaskStatus.NEEDS_DECISION, decision_prompt="Ship it?", current_step="review", now=t2
    )
    assert paused is not None
    assert (paused.progress_pct, paused.started_at, paused.updated_at) == (10, t1, t2)  # None leaves fields alone

    resumed = await tasks.update_task("task_1", decision="yes", now=A0 + timedelta(minutes=3))
    assert resumed is not None
    assert (resumed.status, resumed.decision) == (TaskStatus.RUNNING, "yes")
    assert resumed.started_at == t1  # set once

    again = await tasks.update_task("task_1", decision="no")  # not needs_decision: first decision wins
    assert again is not None
    assert again.decision == "yes"
    assert again.updated_at is not None
    assert again.updated_at > resumed.updated_at  # type: ignore[operator]

    await tasks.update_task("task_1", status=TaskStatus.NEEDS_DECISION)
    overridden = await tasks.update_task("task_1", decision="stop", status=TaskStatus.FAILED)
    assert overridden is not None
    assert (overridden.status, overridden.decision) == (TaskStatus.FAILED, "stop")

    back = await tasks.update_task("task_1", status="pending", output="done")  # type: ignore[arg-type]
    assert back is not None
    assert (back.status, back.output, back.started_at) == (TaskStatus.PENDING, "done", t1)

    for bad in ({"progress_pct": 101}, {"progress_pct": "50"}, {"status": "bogus"}, {"output": "a\x00b"}):
        with pytest.raises(InvalidValueError):
            await tasks.update_task("task_1", **bad)


async def test_update_task_starts_a_pending_task_without_started_at(tasks: PostgresAgentTaskStore) -> None:
    await tasks.create_task(task("task_1", status=TaskStatus.NEEDS_DECISION))
    resumed = await tasks.update_task("task_1", decision="go")
    assert resumed is not None
    assert resumed.status is TaskStatus.RUNNING
    assert resumed.started_at is None  # the decision path does not set it (client-contract §3.4)


async def test_concurrent_updates_are_never_lost(tasks: PostgresAgentTaskStore) -> None:
    await tasks.create_task(task("task_1"))
    await asyncio.gather(
        tasks.update_task("task_1", output="out"),
        tasks.update_task("task_1", current_step="step"),
        tasks.update_task("task_1", decision_prompt="prompt"),
        tasks.update_task("task_1", progress_pct=50),
        tasks.update_task("task_1", decision="first"),
    )
    final = await tasks.get_task("task_1")
    assert final is not None
    assert (final.output, final.current_step, final.decision_prompt, final.progress_pct, final.decision) == (
        "out",
        "step",
        "prompt",
        50,
        "first",
    )


async def test_attention_counts_and_summaries(tasks: PostgresAgentTaskStore) -> None:
    assert await tasks.get_task_count() == {"total": 0, "by_status": {}}
    assert await tasks.get_attention_tasks() == ([], 0)
    await tasks.create_task(task("task_1", model="m1", status=TaskStatus.FAILED, created_at=A0))
    await tasks.create_task(task("task_2", model="m2", created_at=A0 + timedelta(seconds=1)))
    await tasks.create_task(task("task_3", model="m1", status="needs_decision", created_at=A0 + timedelta(seconds=2)))
    await tasks.create_task(task("task_4", model="m1", created_at=A0 - timedelta(days=1), updated_at=A0))

    items, total = await tasks.get_attention_tasks(limit=1)
    assert ([t.id for t in items], total) == (["task_3"], 2)
    with pytest.raises(InvalidValueError):
        await tasks.get_attention_tasks(limit=-1)

    assert await tasks.get_task_count() == {"total": 4, "by_status": {"failed": 1, "pending": 2, "needs_decision": 1}}
    review = await tasks.get_review_summary()
    assert review["total"] == 4
    assert [t.id for t in review["needs_attention"]] == ["task_1", "task_3"]  # insertion order

    usage = await tasks.get_usage_summary({"impl": {"model": "openrouter/free", "tier": "openrouter"}})
    assert usage["routing"] == {"impl": {"model": "openrouter/free", "tier": "openrouter"}}
    assert list(usage["by_model"]) == ["m1", "m2"]
    m1 = usage["by_model"]["m1"]
    assert m1["count"] == 3
    assert m1["by_status"] == {"failed": 1, "needs_decision": 1, "pending": 1}
    assert m1["last_used"] == A0.isoformat()  # the last task inserted (task_4), not the latest time
    assert (await tasks.get_usage_summary())["routing"] == {}


async def test_pipeline_status_of_an_empty_store_has_every_key(tasks: PostgresAgentTaskStore) -> None:
    status = await tasks.get_pipeline_status()
    assert status == {
        "running": [],
        "pending": [],
        "running_by_phase": {"spec": 0, "impl": 0, "test": 0, "review": 0},
        "recent_completed": [],
        "latest_request": None,
        "latest_response": None,
        "attention": {
            "stuck": False,
            "repeated_failures": False,
            "output_empty": False,
            "executor_fail": False,
            "low_success_rate": False,
            "flags": [],
        },
    }


async def test_pipeline_status_flags_and_previews(tasks: PostgresAgentTaskStore) -> None:
    now = A0 + timedelta(minutes=30)
    await tasks.create_task(task("task_p1", task_type=TaskType.SPEC, created_at=A0 + timedelta(minutes=5)))
    await tasks.create_task(task("task_p0", task_type=TaskType.HEAL, created_at=A0))
    for i in range(3):
        await tasks.create_task(
            task(f"task_f{i}", status=TaskStatus.FAILED, updated_at=A0 + timedelta(minutes=10 + i), output="")
        )
    await tasks.create_task(task("task_c", status=TaskStatus.COMPLETED, updated_at=A0 + timedelta(minutes=1)))

    status = await tasks.get_pipeline_status(now_utc=now, metrics={"total": 12, "rate": 0.5})
    assert [p["id"] for p in status["pending"]] == ["task_p0", "task_p1"]
    assert status["pending"][0]["wait_seconds"] == 1800
    assert status["running_by_phase"] == {"spec": 1, "impl": 0, "test": 0, "review": 0}
    assert [c["id"] for c in status["recent_completed"]] == ["task_f2", "task_f1", "task_f0", "task_c"]
    assert status["recent_completed"][0]["output_len"] == 0
    assert status["latest_request"]["status"] is TaskStatus.FAILED
    assert status["latest_response"] == {
        "task_id": "task_f2",
        "status": TaskStatus.FAILED,
        "output_preview": "",
        "output_len": 0,
    }
    assert status["attention"]["flags"] == [
        "stuck",
        "repeated_failures",
        "output_empty",
        "executor_fail",
        "low_success_rate",
    ]

    await tasks.claim_next_task("runner", now=now)
    status = await tasks.get_pipeline_status(now_utc=now, metrics={"total": "bad"})
    assert [r["id"] for r in status["running"]] == ["task_p0"]
    assert status["running"][0]["running_seconds"] == 0
    assert status["latest_request"]["status"] == "running"
    assert status["attention"]["flags"] == ["repeated_failures", "output_empty", "executor_fail"]


async def test_a_never_updated_finished_task_sorts_first_as_in_the_api(tasks: PostgresAgentTaskStore) -> None:
    await tasks.create_task(task("task_updated", status=TaskStatus.COMPLETED, updated_at=A0, output="ok"))
    await tasks.create_task(task("task_never", status=TaskStatus.COMPLETED, output="ok"))
    status = await tasks.get_pipeline_status(now_utc=A0)
    assert [c["id"] for c in status["recent_completed"]] == ["task_never", "task_updated"]
    assert status["recent_completed"][0]["updated_at"] == "None"


async def test_claim_next_task_takes_the_oldest_pending_task(tasks: PostgresAgentTaskStore) -> None:
    assert await tasks.claim_next_task("runner") is None
    await tasks.create_task(task("task_new", created_at=A0 + timedelta(seconds=1)))
    await tasks.create_task(task("task_tie_1", created_at=A0))
    await tasks.create_task(task("task_tie_2", created_at=A0))
    claimed = await tasks.claim_next_task("runner-1", now=A0 + timedelta(minutes=1))
    assert claimed is not None
    assert claimed.id == "task_tie_1"
    assert (claimed.status, claimed.claimed_by) == (TaskStatus.RUNNING, "runner-1")
    assert claimed.claimed_at == claimed.started_at == claimed.updated_at == A0 + timedelta(minutes=1)
    for bad in ("", None, "w" * 256):
        with pytest.raises(InvalidValueError):
            await tasks.claim_next_task(bad)  # type: ignore[arg-type]


async def test_concurrent_claimers_never_get_the_same_task(tasks: PostgresAgentTaskStore) -> None:
    for i in range(4):
        await tasks.create_task(task(f"task_{i}", created_at=A0 + timedelta(seconds=i)))
    claims = await asyncio.gather(*(tasks.claim_next_task(f"runner-{i}") for i in range(6)))
    claimed = sorted(c.id for c in claims if c is not None)
    assert claimed == ["task_0", "task_1", "task_2", "task_3"]
    assert claims.count(None) == 2


async def test_claim_task_claims_only_a_pending_task(tasks: PostgresAgentTaskStore) -> None:
    await tasks.create_task(task("task_1", started_at=A0))
    claimed = await tasks.claim_task("task_1", "runner", now=A0 + timedelta(hours=1))
    assert claimed is not None
    assert (claimed.status, claimed.claimed_by, claimed.started_at) == (TaskStatus.RUNNING, "runner", A0)
    assert await tasks.claim_task("task_1", "other") is None
    assert await tasks.claim_task("task_404", "runner") is None


async def test_clear_deletes_every_task(tasks: PostgresAgentTaskStore) -> None:
    await tasks.create_task(task("task_1"))
    await tasks.clear()
    assert await tasks.get_task_count() == {"total": 0, "by_status": {}}


# -- connect, the pool and typed errors ----------------------------------------------------------


async def test_connect_yields_both_stores_and_closes_the_pool(fresh_dsn: str) -> None:
    async with connect(fresh_dsn) as stores:
        await stores.graph.upsert_project(project("npm", "react"))
        await stores.tasks.create_task(task("task_1"))
        assert await stores.graph.count_projects() == 1
        pool = stores.pool
    assert pool.is_closing()
    with pytest.raises(DatabaseUnavailableError):
        await PostgresGraphStore(pool).count_projects()  # a closed pool: typed, never raw asyncpg


async def test_connect_refuses_a_database_whose_schema_is_behind(empty_dsn: str) -> None:
    with pytest.raises(SchemaNotCurrentError):
        async with connect(empty_dsn):
            pytest.fail("connect must not yield")


async def test_connect_to_nothing_is_database_unavailable() -> None:
    with pytest.raises(DatabaseUnavailableError):
        async with connect("postgresql://postgres@127.0.0.1:1/none"):
            pytest.fail("connect must not yield")


async def test_a_lock_wait_past_lock_timeout_is_a_query_timeout(fresh_dsn: str, pool: Pool) -> None:
    tasks = PostgresAgentTaskStore(pool)
    await tasks.create_task(task("task_1"))
    quick = await create_pool(
        fresh_dsn,
        PoolSettings(min_size=1, max_size=1, server_settings={**DEFAULT_SERVER_SETTINGS, "lock_timeout": "50ms"}),
    )
    holder = await asyncpg.connect(fresh_dsn)
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM agent_tasks WHERE id = 'task_1' FOR UPDATE")
            with pytest.raises(QueryTimeoutError, match=r"agent_tasks\.update_task"):
                await PostgresAgentTaskStore(quick).update_task("task_1", output="x")
    finally:
        await holder.close()
        await quick.close()
    unchanged = await tasks.get_task("task_1")
    assert unchanged is not None
    assert unchanged.output is None
