"""Hostile input on every store kind: a typed error naming what was wrong, and nothing written.

Each test runs on every kind of the `store` fixture (memory, PostgreSQL, both behind the sync
facade). Models changed after construction, None or a dict where a model goes, strings where a
sequence goes, NaN/sNaN/huge money and scores, times that overflow UTC, lone surrogates, deep or
non-JSON metadata: each is `InvalidValueError` before anything is written. The property-based
sweep over every public method is in test_hostile_sweep.py; PostgreSQL's all-or-nothing bulk
writes are in test_bulk_writes.py.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from coherence_sql.errors import InvalidValueError
from coherence_sql.models import (
    AgentTaskRecord,
    Asset,
    Contributor,
    GitHubContributor,
    GitHubOrganization,
    Project,
    TaskStatus,
)
from coherence_sql.stores import rules
from coherence_sql.stores.protocol import DependencyEdge
from tests.stores import records
from tests.stores.conftest import Stores

MINUS_ONE = timezone(timedelta(hours=-1))
PLUS_ONE = timezone(timedelta(hours=1))
MAX_BEHIND_UTC = datetime.max.replace(tzinfo=MINUS_ONE)  # past year 9999 in UTC
MIN_AHEAD_OF_UTC = datetime.min.replace(tzinfo=PLUS_ONE)  # before year 1 in UTC


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": [value]}
    return value


def cyclic() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


def changed(model: Any, **fields: Any) -> Any:
    """The model with fields assigned after construction (pydantic does not validate assignment)."""
    for name, value in fields.items():
        setattr(model, name, value)
    return model


async def contents(store: Stores) -> Any:
    """Everything the stores hold, through their public reads (what a half-written call would change)."""
    graph, tasks = store.graph, store.tasks
    projects = {}
    for eco, name in [("npm", "react"), ("npm", "a"), ("npm", "b"), ("npm", "c"), ("npm", "d")]:
        found = await graph.get_project(eco, name)
        projects[(eco, name)] = (found and found.model_dump(), await graph.count_dependents(eco, name))
    return (
        await graph.count_projects(),
        projects,
        [c.model_dump() for c in await graph.list_contributors(1000)],
        [a.model_dump() for a in await graph.list_assets(1000)],
        [c.model_dump() for c in await graph.list_contributions(1000)],
        [g.model_dump() for g in await graph.list_github_contributors(1000)],
        [g.model_dump() for g in await graph.get_project_github_contributors("npm", "react")],
        await tasks.get_task_count(),
        [t.model_dump() for t in (await tasks.list_tasks(limit=1000))[0]],
    )


async def seeded(store: Stores) -> None:
    await store.graph.upsert_project(records.project("react"))
    await store.graph.create_contributor(records.contributor(1))
    await store.graph.create_asset(records.asset(1))
    await store.tasks.create_task(records.task(1))


async def refused(store: Stores, call: Awaitable[Any], *names: str, case: str = "") -> str:
    """`call` raises InvalidValueError whose message names each of `names`; nothing changed."""
    before = await contents(store)
    with pytest.raises(InvalidValueError) as caught:
        await call
    message = str(caught.value)
    for name in names:
        assert name in message, f"{case}: {name!r} not in {message!r}"
    assert await contents(store) == before, f"{case}: the store changed"
    return message


# -- models changed after construction ----------------------------------------------------------

MODEL_CHANGES: list[tuple[str, str, Callable[[], Any], str]] = [
    ("graph", "upsert_project", lambda: changed(records.project("a"), version=None), "version"),
    ("graph", "upsert_project", lambda: changed(records.project("a"), name=5), "name"),
    ("graph", "upsert_project", lambda: changed(records.project("a"), homepage_url=["x"]), "homepage_url"),
    ("graph", "create_contributor", lambda: changed(records.contributor(2), email="not-an-email"), "email"),
    ("graph", "create_contributor", lambda: changed(records.contributor(2), hourly_rate=Decimal("NaN")), "hourly_rate"),
    ("graph", "create_contributor", lambda: changed(records.contributor(2), id="not-a-uuid"), "id"),
    ("graph", "create_contributor", lambda: changed(records.contributor(2), metadata=["x"]), "metadata"),
    ("graph", "create_asset", lambda: changed(records.asset(2), type="BOGUS"), "type"),
    ("graph", "create_asset", lambda: changed(records.asset(2), total_cost=Decimal("sNaN")), "total_cost"),
    ("graph", "create_asset", lambda: changed(records.asset(2), created_at="yesterday"), "created_at"),
    ("graph", "upsert_github_contributor", lambda: changed(records.github_contributor(), login=None), "login"),
    (
        "graph",
        "upsert_github_contributor",
        lambda: changed(records.github_contributor(), contributions_count="many"),
        "contributions_count",
    ),
    ("graph", "upsert_github_organization", lambda: changed(records.github_organization(), type=None), "type"),
    ("tasks", "create_task", lambda: changed(records.task(2), status="bogus"), "status"),
    ("tasks", "create_task", lambda: changed(records.task(2), direction=None), "direction"),
    ("tasks", "create_task", lambda: changed(records.task(2), progress_pct="half"), "progress_pct"),
]


async def test_a_model_changed_after_construction_is_refused_naming_the_field(store: Stores) -> None:
    await seeded(store)
    for side, method, make, field in MODEL_CHANGES:
        call = getattr(getattr(store, side), method)
        await refused(store, call(make()), field, case=f"{method}: {field}")
    # Nothing reached the store, so every later read of those tables still works.
    assert len(await store.graph.list_contributors()) == 1
    assert (await store.tasks.list_tasks())[1] == 1


async def test_one_changed_project_in_a_bulk_upsert_writes_none_of_them(store: Stores) -> None:
    batch = [records.project(f"p{i}") for i in range(20)]
    batch.append(changed(records.project("last"), description=None))
    message = await refused(store, store.graph.upsert_projects(batch), "projects[20]", "description")
    assert "Project" in message
    assert await store.graph.count_projects() == 0


MODEL_METHODS: list[tuple[str, str, type[Any], Callable[[], Any]]] = [
    ("graph", "upsert_project", Project, records.contributor),
    ("graph", "create_contributor", Contributor, records.asset),
    ("graph", "create_asset", Asset, records.project),
    ("graph", "upsert_github_contributor", GitHubContributor, records.github_organization),
    ("graph", "upsert_github_organization", GitHubOrganization, records.github_contributor),
    ("tasks", "create_task", AgentTaskRecord, records.project),
]


async def test_none_a_dict_or_another_type_where_a_model_goes_is_refused(store: Stores) -> None:
    await seeded(store)
    for side, method, cls, other in MODEL_METHODS:
        call = getattr(getattr(store, side), method)
        for value in (None, other().model_dump(), other(), "x", [other()]):
            await refused(store, call(value), cls.__name__, case=f"{method}({rules.shown(value)})")


# -- sequences ----------------------------------------------------------------------------------

EDGE = DependencyEdge("npm", "a", "npm", "b")
NOT_SEQUENCES: list[tuple[str, Callable[[], Any], str]] = [
    ("add_dependencies", lambda: "abcd", "edges"),
    ("add_dependencies", lambda: b"abcd", "edges"),
    ("add_dependencies", lambda: {EDGE: None}, "edges"),
    ("add_dependencies", lambda: {EDGE}, "edges"),
    ("add_dependencies", lambda: (e for e in [EDGE]), "edges"),
    ("add_dependencies", lambda: None, "edges"),
    ("add_dependencies", lambda: ["abcd"], "edges[0]"),
    ("add_dependencies", lambda: [EDGE, "npmcd"], "edges[1]"),
    ("add_dependencies", lambda: [EDGE, ("npm", "c", "npm")], "edges[1]"),
    ("add_dependencies", lambda: [EDGE, ("npm", "c", "npm", "d", "e")], "edges[1]"),
    ("add_dependencies", lambda: [EDGE, ("npm", "c", "npm", 4)], "edges[1].to_name"),
    ("add_dependencies", lambda: [EDGE, ("npm", None, "npm", "d")], "edges[1].from_name"),
    ("add_dependencies", lambda: [EDGE, {"from_ecosystem": "npm"}], "edges[1]"),
    ("upsert_projects", lambda: "ab", "projects"),
    ("upsert_projects", lambda: records.project("a"), "projects"),
    ("upsert_projects", lambda: {records.project("a").name: records.project("a")}, "projects"),
    ("upsert_projects", lambda: [records.project("a"), "b"], "projects[1]"),
    ("upsert_projects", lambda: [records.project("a"), None], "projects[1]"),
    ("upsert_projects", lambda: [records.project("a"), records.project("b").model_dump()], "projects[1]"),
]


async def test_a_string_or_other_non_sequence_is_refused_as_a_bulk_argument(store: Stores) -> None:
    for method, make, named in NOT_SEQUENCES:
        await refused(store, getattr(store.graph, method)(make()), named, case=f"{method}: {named}")
    assert await store.graph.count_projects() == 0
    assert await store.graph.count_dependents("npm", "b") == 0
    assert await store.graph.count_dependents("np", "cd") == 0  # "abcd" as the edge a/b -> c/d


async def test_lists_and_tuples_of_edges_are_still_accepted(store: Stores) -> None:
    await store.graph.add_dependencies((EDGE, ["npm", "c", "npm", "b"]))
    assert await store.graph.count_dependents("npm", "b") == 2
    await store.graph.upsert_projects((records.project("a"),))
    assert await store.graph.count_projects() == 1


# -- money and scores ---------------------------------------------------------------------------

HOSTILE_NUMBERS: list[object] = [
    Decimal("NaN"),
    Decimal("sNaN"),
    Decimal("-sNaN"),
    Decimal("Infinity"),
    Decimal("-Infinity"),
    Decimal("1e999999"),
    Decimal("-1e999999"),
    Decimal("1e-999999999"),
    float("nan"),
    float("inf"),
    -float("inf"),
    1e308,
    10**5000,
    -(10**5000),
    "NaN",
    "sNaN",
    "1e999999",
    None,
    True,
    [1],
    {"amount": 1},
]


async def test_hostile_costs_and_scores_are_refused_naming_the_argument(store: Stores) -> None:
    await seeded(store)
    create = store.graph.create_contribution
    for value in HOSTILE_NUMBERS:
        case = rules.shown(value)
        await refused(store, create(UUID(int=0xC1), UUID(int=0xA1), value, 0.5, {}), "cost_amount", case=case)
        if isinstance(value, Decimal) and value.is_finite() and abs(value) < 1:
            continue  # a tiny score is a valid score (it rounds to 0.00)
        await refused(
            store, create(UUID(int=0xC1), UUID(int=0xA1), Decimal(1), value, {}), "coherence_score", case=case
        )
    assert await store.graph.list_contributions() == []


@pytest.mark.parametrize("score", [-0.0, Decimal("-0"), Decimal("-0.00"), Decimal("1e-999999999"), 0.001])
async def test_a_negative_zero_score_is_stored_and_returned_as_zero(store: Stores, score: object) -> None:
    await seeded(store)
    made = await store.graph.create_contribution(UUID(int=0xC1), UUID(int=0xA1), Decimal("-0.00"), score, {})
    found = await store.graph.get_contribution(made.id)
    for c in (made, found):
        assert c.coherence_score == 0.0
        assert math.copysign(1.0, c.coherence_score) == 1.0, f"{c.coherence_score!r} is a negative zero"
        assert str(c.cost_amount) == "0.00"


async def test_a_hostile_hourly_rate_is_refused(store: Stores) -> None:
    for value in [Decimal("1e999999"), Decimal("NaN"), 10**5000, Decimal("1e-999999999"), Decimal("-0.01")]:
        contributor = changed(records.contributor(2), hourly_rate=value)
        await refused(store, store.graph.create_contributor(contributor), "hourly_rate", case=rules.shown(value))


# -- times --------------------------------------------------------------------------------------

TIME_CALLS: list[tuple[str, Callable[[Stores, Any], Any], str]] = [
    ("update_task now", lambda s, t: s.tasks.update_task(records.task(1).id, output="x", now=t), "now"),
    ("claim_next_task now", lambda s, t: s.tasks.claim_next_task("w", now=t), "now"),
    ("claim_task now", lambda s, t: s.tasks.claim_task(records.task(1).id, "w", now=t), "now"),
    ("get_pipeline_status now_utc", lambda s, t: s.tasks.get_pipeline_status(t), "now_utc"),
    (
        "create_contribution timestamp",
        lambda s, t: s.graph.create_contribution(UUID(int=0xC1), UUID(int=0xA1), Decimal(1), 0.5, {}, timestamp=t),
        "timestamp",
    ),
    (
        "Contributor.created_at",
        lambda s, t: s.graph.create_contributor(records.contributor(2, created_at=t)),
        "created_at",
    ),
    ("Asset.created_at", lambda s, t: s.graph.create_asset(records.asset(2, created_at=t)), "created_at"),
    (
        "GitHubContributor.updated_at",
        lambda s, t: s.graph.upsert_github_contributor(records.github_contributor(updated_at=t)),
        "updated_at",
    ),
    (
        "GitHubOrganization.created_at",
        lambda s, t: s.graph.upsert_github_organization(records.github_organization(created_at=t)),
        "created_at",
    ),
    ("AgentTaskRecord.created_at", lambda s, t: s.tasks.create_task(records.task(2, created_at=t)), "created_at"),
    ("AgentTaskRecord.claimed_at", lambda s, t: s.tasks.create_task(records.task(2, claimed_at=t)), "claimed_at"),
]


async def test_a_time_that_overflows_utc_is_refused(store: Stores) -> None:
    await seeded(store)
    for name, call, field in TIME_CALLS:
        for moment in (MAX_BEHIND_UTC, MIN_AHEAD_OF_UTC):
            await refused(store, call(store, moment), field, "UTC", case=f"{name} = {moment!r}")


async def test_a_time_argument_that_is_not_a_datetime_is_refused(store: Stores) -> None:
    await seeded(store)
    for name, call, field in TIME_CALLS[:5]:
        moment: object
        for moment in ("2026-01-01T00:00:00", 1767225600, date(2026, 1, 1), {}):
            await refused(store, call(store, moment), field, "datetime", case=f"{name} = {moment!r}")


async def test_the_extreme_times_that_fit_utc_are_kept(store: Stores) -> None:
    earliest = datetime.min.replace(tzinfo=UTC)
    latest = datetime.max.replace(tzinfo=UTC)
    await store.tasks.create_task(records.task(3, created_at=earliest, claimed_at=latest))
    found = await store.tasks.get_task(records.task(3).id)
    assert (found.created_at, found.claimed_at) == (earliest, latest)
    created = await store.graph.create_contributor(records.contributor(4, created_at=datetime.max))
    assert created.created_at == datetime.max


# -- lone surrogates in every string argument, keyed reads included -----------------------------

S = "a\ud800b"
SURROGATE_CALLS: list[tuple[str, Callable[[Stores], Any], str]] = [
    ("get_project", lambda s: s.graph.get_project("npm", S), "name"),
    ("get_project eco", lambda s: s.graph.get_project(S, "react"), "ecosystem"),
    ("search", lambda s: s.graph.search(S), "search query"),
    ("count_dependents", lambda s: s.graph.count_dependents(S, "x"), "ecosystem"),
    ("add_dependency", lambda s: s.graph.add_dependency("npm", "a", "npm", S), "name"),
    ("add_dependencies", lambda s: s.graph.add_dependencies([EDGE, ("npm", S, "npm", "b")]), "name"),
    ("upsert_project", lambda s: s.graph.upsert_project(changed(records.project("x"), description=S)), "description"),
    (
        "upsert_projects",
        lambda s: s.graph.upsert_projects([records.project("x"), changed(records.project("y"), name=S)]),
        "name",
    ),
    ("get_contributor", lambda s: s.graph.get_contributor(S), "contributor_id"),
    ("find_contributor_by_email", lambda s: s.graph.find_contributor_by_email(f"{S}@x.io"), "email"),
    ("create_contributor", lambda s: s.graph.create_contributor(changed(records.contributor(5), name=S)), "name"),
    (
        "create_contributor wallet",
        lambda s: s.graph.create_contributor(changed(records.contributor(5), wallet_address=S)),
        "wallet",
    ),
    (
        "create_contributor metadata",
        lambda s: s.graph.create_contributor(changed(records.contributor(5), metadata={S: 1})),
        "metadata",
    ),
    ("get_asset", lambda s: s.graph.get_asset(S), "asset_id"),
    ("create_asset", lambda s: s.graph.create_asset(changed(records.asset(5), description=S)), "description"),
    ("get_contribution", lambda s: s.graph.get_contribution(S), "contribution_id"),
    ("get_asset_contributions", lambda s: s.graph.get_asset_contributions(S), "asset_id"),
    ("get_contributor_contributions", lambda s: s.graph.get_contributor_contributions(S), "contributor_id"),
    (
        "create_contribution metadata",
        lambda s: s.graph.create_contribution(UUID(int=0xC1), UUID(int=0xA1), Decimal(1), 0.5, {"k": S}),
        "metadata",
    ),
    (
        "create_contribution id",
        lambda s: s.graph.create_contribution(UUID(int=0xC1), S, Decimal(1), 0.5, {}),
        "asset_id",
    ),
    (
        "upsert_github_contributor",
        lambda s: s.graph.upsert_github_contributor(changed(records.github_contributor(), login=S)),
        "login",
    ),
    ("get_github_contributor", lambda s: s.graph.get_github_contributor(S), "contributor_id"),
    (
        "upsert_github_organization",
        lambda s: s.graph.upsert_github_organization(changed(records.github_organization(), name=S)),
        "name",
    ),
    ("get_github_organization", lambda s: s.graph.get_github_organization(S), "organization_id"),
    ("add_github_contributes_to", lambda s: s.graph.add_github_contributes_to(S, "npm", "react"), "contributor_id"),
    ("add_github_contributes_to project", lambda s: s.graph.add_github_contributes_to("g", "npm", S), "name"),
    ("get_project_github_contributors", lambda s: s.graph.get_project_github_contributors("npm", S), "name"),
    ("create_task", lambda s: s.tasks.create_task(changed(records.task(6), command=S)), "command"),
    ("create_task context", lambda s: s.tasks.create_task(changed(records.task(6), context={"k": [S]})), "context"),
    ("get_task", lambda s: s.tasks.get_task(S), "task_id"),
    ("list_tasks status", lambda s: s.tasks.list_tasks(status=S), "status"),
    ("list_tasks task_type", lambda s: s.tasks.list_tasks(task_type=S), "task_type"),
    ("update_task id", lambda s: s.tasks.update_task(S, output="x"), "task_id"),
    ("update_task output", lambda s: s.tasks.update_task(records.task(1).id, output=S), "output"),
    ("update_task decision", lambda s: s.tasks.update_task(records.task(1).id, decision=S), "decision"),
    ("update_task status", lambda s: s.tasks.update_task(records.task(1).id, status=S), "status"),
    ("claim_next_task", lambda s: s.tasks.claim_next_task(S), "worker"),
    ("claim_task id", lambda s: s.tasks.claim_task(S, "w"), "task_id"),
    ("claim_task worker", lambda s: s.tasks.claim_task(records.task(1).id, S), "worker"),
]


async def test_a_lone_surrogate_in_any_string_argument_is_refused(store: Stores) -> None:
    # One rule for writes and keyed reads alike: text PostgreSQL cannot hold is InvalidValueError.
    await seeded(store)
    for name, call, field in SURROGATE_CALLS:
        await refused(store, call(store), field, case=name)


# -- metadata and context -----------------------------------------------------------------------

NOT_JSON: list[tuple[str, Callable[[], Any]]] = [
    ("100,000 levels", lambda: deep(100_000)),
    ("65 levels", lambda: deep(33)),  # a dict and a list per level
    ("cyclic", cyclic),
    ("Decimal", lambda: {"x": Decimal("1.5")}),
    ("set", lambda: {"x": {1, 2}}),
    ("object", lambda: {"x": object()}),
    ("bytes", lambda: {"x": b"raw"}),
    ("NaN", lambda: {"x": float("nan")}),
    ("huge int key", lambda: {10**5000: 1}),
    ("tuple key", lambda: {(1, 2): 1}),
    ("a list", lambda: [1, 2]),
    ("a string", lambda: "{}"),
]


async def test_metadata_and_context_that_jsonb_cannot_hold_are_refused(store: Stores) -> None:
    await seeded(store)
    for name, make in NOT_JSON:
        calls = [
            (store.graph.create_contribution(UUID(int=0xC1), UUID(int=0xA1), Decimal(1), 0.5, make()), "metadata"),
            (store.graph.create_contributor(changed(records.contributor(7), metadata=make())), "metadata"),
            (store.graph.create_asset(changed(records.asset(7), metadata=make())), "metadata"),
            (store.tasks.create_task(changed(records.task(7), context=make())), "context"),
        ]
        for call, field in calls:
            await refused(store, call, field, case=name)


async def test_metadata_nested_within_the_limit_round_trips(store: Stores) -> None:
    await seeded(store)
    nested = deep(31)  # 62 containers and the outer object: within 64 levels
    made = await store.graph.create_contribution(UUID(int=0xC1), UUID(int=0xA1), Decimal(1), 0.5, nested)
    assert (await store.graph.get_contribution(made.id)).metadata == nested


# -- the rest of the arguments ------------------------------------------------------------------


async def test_a_routing_table_that_is_not_a_mapping_of_mappings_is_refused(store: Stores) -> None:
    for routing in ([1], "abc", 5, {"model": 5}, {"model": ["x"]}):
        await refused(store, store.tasks.get_usage_summary(routing), "routing", case=repr(routing))
    assert (await store.tasks.get_usage_summary({"m": {"tier": "free"}}))["routing"] == {"m": {"tier": "free"}}


async def test_unusable_metrics_leave_the_success_rate_flag_off(store: Stores) -> None:
    await seeded(store)
    for metrics in ([1], "x", {"total": {}, "rate": "x"}, {"total": 10**5000, "rate": float("nan")}):
        status = await store.tasks.get_pipeline_status(datetime(2026, 3, 1, tzinfo=UTC), metrics)
        assert status["attention"]["low_success_rate"] is False


async def test_limits_are_integers_or_refused(store: Stores) -> None:
    await seeded(store)
    for limit in (10**5000, -(10**5000), "9" * 5000, 1.5e308, float("nan"), None, [], {}, object()):
        for call in (
            store.graph.list_contributors(limit),
            store.graph.search("react", limit),
            store.tasks.list_tasks(limit=limit),
            store.tasks.get_attention_tasks(limit),
        ):
            message = ""
            try:
                await call
            except InvalidValueError as exc:
                message = str(exc)
            assert not message or "limit" in message


async def test_update_task_refuses_a_status_that_is_not_a_status(store: Stores) -> None:
    await seeded(store)
    status: object
    for status in ({}, [], 5, "RUNNING"):
        await refused(store, store.tasks.update_task(records.task(1).id, status=status), "status")
    updated = await store.tasks.update_task(records.task(1).id, status="running")
    assert updated.status == TaskStatus.RUNNING
