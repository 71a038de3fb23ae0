"""Differential test: the in-memory reference store and the PostgreSQL store give identical answers.

A Hypothesis state machine applies every store operation, with valid and invalid inputs, to both
stores and demands the same result (compared field by field in JSON form, so `1` vs `1.00` or a
naive vs an aware time differ) or the same error type; after every step it checks the invariants
(total_cost is the sum of the asset's contributions, dependency_count is the out-degree, counts
agree). The machine owns its asyncio loop (prior-art §6.2): Hypothesis cannot run async rules.

Text is drawn from ASCII letters, digits and `%_\\-. `: there Python's `str.lower()` (which makes
the keys) and PostgreSQL's `lower()`/`ILIKE` (display CHECK, description search) agree under every
locale, and the LIKE wildcards are exercised. NUL and surrogates, which PostgreSQL text cannot hold,
never appear; the suite's unit tests cover their rejection.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar
from uuid import UUID, uuid4

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from pydantic import BaseModel

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
from coherence_sql.stores import rules
from coherence_sql.stores.memory import MemoryGraphStore, MemoryStores, memory_stores
from coherence_sql.stores.protocol import DependencyEdge
from tests.stores.conftest import postgres_connect

# -- strategies -------------------------------------------------------------------------------------

TEXT = "aAbB1%_\\-. "  # a small alphabet, so keys collide and queries match (see the docstring)
T0 = datetime(2026, 2, 15, 10, 30)
PLUS_TWO = timezone(timedelta(hours=2))
GRAPH_TIMES = [
    T0,
    T0 + timedelta(seconds=1),
    T0 + timedelta(seconds=2),
    (T0 + timedelta(hours=2)).replace(tzinfo=PLUS_TWO),
]
TASK_TIMES = [t.replace(tzinfo=UTC) for t in GRAPH_TIMES[:3]] + [T0 + timedelta(minutes=20)]  # last: naive
CASES: list[Callable[[str], str]] = [str, str.lower, str.upper, str.swapcase]


def mostly(valid: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` nine times in ten, else `rare` (an invalid input), so a batch is not always refused."""
    return st.integers(0, 9).flatmap(lambda n: rare if n == 0 else valid)


names = mostly(st.text(alphabet=TEXT, min_size=1, max_size=3), st.just(""))  # '' is an invalid key
ecosystems = mostly(st.sampled_from(["npm", "PyPI", "cargo"]), st.just(""))
descriptions = st.text(alphabet=TEXT, max_size=5)
queries = st.one_of(st.none(), st.text(alphabet=TEXT, max_size=3))
limits = st.one_of(st.integers(min_value=-2, max_value=6), st.sampled_from(["3", "x"]))
picks = st.integers(min_value=0, max_value=9)  # 0 means "something that does not exist"
graph_times = st.sampled_from(GRAPH_TIMES)
task_times = st.sampled_from(TASK_TIMES)
good_costs = st.sampled_from(["0.00", "1.00", "2.50", "100.10", "0.01", "9999999999999.99"])
good_scores = st.sampled_from([0, 0.125, 0.5, 0.9, 1, 0.135])
good_metadatas = st.sampled_from([{}, {"a": 1}, {"tags": ["x"], "n": None}, None])
costs = st.one_of(good_costs, st.sampled_from(["1.005", "-1.00", "NaN", "10000000000000.00"]))
scores = st.one_of(good_scores, st.sampled_from([1.01, -0.1, float("nan")]))
metadatas = st.one_of(good_metadatas, st.sampled_from([["x"], {"x": float("nan")}, {"x": "\x00"}]))
emails = st.sampled_from(["alice@x.io", "Alice@X.io", "bob@x.io", "carol@y.org", "BOB@x.io"])
people = mostly(st.sampled_from(["Alice", "Bob"]), st.just(""))
rates = mostly(
    st.sampled_from([None, Decimal("0"), Decimal("10.5")]), st.sampled_from([Decimal("1.005"), Decimal("-1")])
)
logins = st.sampled_from(["octo", "Octo", "cat", ""])
statuses = st.one_of(st.none(), st.sampled_from(TaskStatus), st.just("bogus"))
task_types = st.one_of(st.none(), st.sampled_from(TaskType))
directions = mostly(st.sampled_from(["do it", "  fix  ", "y" * 5000]), st.sampled_from(["   ", "", "x" * 5001]))
maybe_text = st.sampled_from([None, "", "out", "done"])
progress = st.sampled_from([None, 0, 50, 100, -1, 101])
workers = st.sampled_from(["w1", "w2", ""])


def normalized(value: Any) -> Any:
    """A strict, comparable form: models by type and JSON dump, enums by type, times with offsets."""
    assert not inspect.isawaitable(value), f"a store returned an awaitable: {value!r}"
    if isinstance(value, BaseModel):
        return (type(value).__name__, value.model_dump(mode="json"))
    if isinstance(value, Enum):
        return (type(value).__name__, value.value)
    if isinstance(value, datetime | Decimal | UUID):
        return (type(value).__name__, str(value))
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalized(v) for v in value]
    return value


# -- the machine --------------------------------------------------------------------------------------


class StoreEquivalence(RuleBasedStateMachine):
    """Memory (the reference) against `open_other()`: every call on both, answers compared."""

    open_other: ClassVar[Callable[[], AbstractAsyncContextManager[Any]]]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.reference = MemoryStores()
        self._other_cm = type(self).open_other()
        self.other = self.loop.run_until_complete(self._other_cm.__aenter__())
        self.keys: list[tuple[str, str]] = []  # project keys as first written (any case)
        self.edges: set[tuple[tuple[str, str], tuple[str, str]]] = set()  # the out-degree model
        self.contributors: list[UUID] = []
        self.assets: list[UUID] = []
        self.contributions: list[UUID] = []
        self.github_ids: list[str] = []
        self.tasks: list[str] = []

    def teardown(self) -> None:
        try:
            self.loop.run_until_complete(self._other_cm.__aexit__(None, None, None))
        finally:
            self.loop.close()

    # -- running one call on both stores -----------------------------------------------------

    def _outcome(self, call: Callable[[], Any]) -> tuple[str, Any]:
        try:
            result = self.loop.run_until_complete(call())
        except Exception as exc:  # compared by type: a raw driver error shows up as a mismatch
            return ("error", type(exc).__name__)
        return ("ok", normalized(result))

    def both(self, side: str, method: str, *args: Any, **kwargs: Any) -> bool:
        """Call `method` on both stores' `side` ("graph"/"tasks"); True when it succeeded."""
        expected = self._outcome(lambda: getattr(getattr(self.reference, side), method)(*args, **kwargs))
        actual = self._outcome(lambda: getattr(getattr(self.other, side), method)(*args, **kwargs))
        assert actual == expected, f"{method}(*{args!r}, **{kwargs!r}):\n  memory: {expected}\n  other:  {actual}"
        return expected[0] == "ok"

    @staticmethod
    def _pick(pool: list[Any], pick: int, missing: Any) -> Any:
        return missing if pick == 0 or not pool else pool[pick % len(pool)]

    @staticmethod
    def _mostly_fresh(pool: list[Any], pick: int, fresh: Any) -> Any:
        """A new id, except when `pick` is 0: then the last one used (a duplicate)."""
        return pool[-1] if pick == 0 and pool else fresh

    def _key(self, pick: int, case: int, fresh_eco: str, fresh_name: str) -> tuple[str, str]:
        eco, name = self._pick(self.keys, pick, (fresh_eco, fresh_name))
        return CASES[case](eco), CASES[case](name)

    def _remember_key(self, eco: str, name: str) -> None:
        if (eco, name) not in self.keys:
            self.keys.append((eco, name))

    # -- projects and edges ----------------------------------------------------------------------

    @rule(
        pick=picks,
        case=st.integers(0, 3),
        eco=ecosystems,
        name=names,
        description=descriptions,
        version=st.sampled_from(["1", "2.0"]),
        url=mostly(st.sampled_from([None, "https://x.io"]), st.just("h" * 501)),
        count=st.integers(0, 3),
    )
    def upsert_project(
        self, pick: int, case: int, eco: str, name: str, description: str, version: str, url: str | None, count: int
    ) -> None:
        eco, name = self._key(pick, case, eco, name)
        p = Project(
            name=name, ecosystem=eco, version=version, description=description, homepage_url=url, dependency_count=count
        )
        if self.both("graph", "upsert_project", p):
            self._remember_key(eco, name)

    @rule(batch=st.lists(st.tuples(picks, st.integers(0, 3), ecosystems, names, descriptions), max_size=3))
    def upsert_projects(self, batch: list[tuple[int, int, str, str, str]]) -> None:
        projects = []
        for pick, case, eco, name, description in batch:
            eco, name = self._key(pick, case, eco, name)
            projects.append(Project(name=name, ecosystem=eco, version="1", description=description))
        if self.both("graph", "upsert_projects", projects):
            for p in projects:
                self._remember_key(p.ecosystem, p.name)

    def _edge(self, src: tuple[int, int, str, str], dst: tuple[int, int, str, str]) -> DependencyEdge:
        return DependencyEdge(*self._key(*src), *self._key(*dst))

    def _model_edge(self, edge: DependencyEdge) -> None:
        self.edges.add((rules.project_key(edge[0], edge[1]), rules.project_key(edge[2], edge[3])))
        self._remember_key(edge[0], edge[1])
        self._remember_key(edge[2], edge[3])

    key_args = st.tuples(picks, st.integers(0, 3), ecosystems, names)

    @rule(src=key_args, dst=key_args)
    def add_dependency(self, src: tuple[int, int, str, str], dst: tuple[int, int, str, str]) -> None:
        edge = self._edge(src, dst)
        if self.both("graph", "add_dependency", *edge):
            self._model_edge(edge)

    @rule(pairs=st.lists(st.tuples(key_args, key_args), max_size=3))
    def add_dependencies(self, pairs: list[Any]) -> None:
        edges = [self._edge(src, dst) for src, dst in pairs]
        if self.both("graph", "add_dependencies", edges):
            for edge in edges:
                self._model_edge(edge)

    @rule(key=key_args)
    def get_project(self, key: tuple[int, int, str, str]) -> None:
        self.both("graph", "get_project", *self._key(*key))

    @rule(key=key_args)
    def count_dependents(self, key: tuple[int, int, str, str]) -> None:
        self.both("graph", "count_dependents", *self._key(*key))

    @rule(query=queries, limit=limits)
    def search(self, query: str | None, limit: Any) -> None:
        self.both("graph", "search", query, limit)

    # -- contributors and assets -----------------------------------------------------------------

    @rule(pick=picks, email=emails, name=people, rate=rates, created=graph_times)
    def create_contributor(self, pick: int, email: str, name: str, rate: Decimal | None, created: datetime) -> None:
        cid = self._mostly_fresh(self.contributors, pick, uuid4())
        c = Contributor(
            id=cid,
            type=ContributorType.HUMAN,
            name=name,
            email=email,
            hourly_rate=rate,
            created_at=created,
            metadata={"k": [1, 2]},
        )
        if self.both("graph", "create_contributor", c):
            self.contributors.append(cid)

    @rule(pick=picks)
    def get_contributor(self, pick: int) -> None:
        self.both("graph", "get_contributor", self._pick(self.contributors, pick, uuid4()))

    @rule(email=emails)
    def find_contributor_by_email(self, email: str) -> None:
        self.both("graph", "find_contributor_by_email", email)

    @rule(limit=limits)
    def list_contributors(self, limit: Any) -> None:
        self.both("graph", "list_contributors", limit)

    @rule(pick=picks, description=descriptions, total=st.sampled_from(["0.00", "5.00"]), created=graph_times)
    def create_asset(self, pick: int, description: str, total: str, created: datetime) -> None:
        aid = self._mostly_fresh(self.assets, pick, uuid4())
        a = Asset(id=aid, type=AssetType.CODE, description=description, total_cost=Decimal(total), created_at=created)
        if self.both("graph", "create_asset", a):
            self.assets.append(aid)

    @rule(pick=picks)
    def get_asset(self, pick: int) -> None:
        self.both("graph", "get_asset", self._pick(self.assets, pick, uuid4()))

    @rule(limit=limits)
    def list_assets(self, limit: Any) -> None:
        self.both("graph", "list_assets", limit)

    # -- contributions -----------------------------------------------------------------------------

    @initialize(email=emails, created=graph_times, description=descriptions)
    def seed_contributor_and_asset(self, email: str, created: datetime, description: str) -> None:
        """Every run starts with a contributor and an asset, so contributions mostly have parents."""
        self.create_contributor(pick=9, email=email, name="Seed", rate=None, created=created)
        self.create_asset(pick=9, description=description, total="0.00", created=created)

    @rule(
        who=picks,
        what=picks,
        reuse=picks,
        cost=good_costs,
        score=good_scores,
        metadata=good_metadatas,
        when=graph_times,
    )
    def create_contribution(
        self, who: int, what: int, reuse: int, cost: str, score: float, metadata: Any, when: datetime
    ) -> None:
        self._contribute(who, what, reuse, cost, score, metadata, when)

    @rule(who=picks, what=picks, reuse=picks, cost=costs, score=scores, metadata=metadatas, when=graph_times)
    def create_contribution_with_any_input(
        self, who: int, what: int, reuse: int, cost: str, score: float, metadata: Any, when: datetime
    ) -> None:
        self._contribute(who, what, reuse, cost, score, metadata, when)

    def _contribute(
        self, who: int, what: int, reuse: int, cost: str, score: float, metadata: Any, when: datetime
    ) -> None:
        contribution_id = self._mostly_fresh(self.contributions, reuse, uuid4())
        if self.both(
            "graph",
            "create_contribution",
            self._pick(self.contributors, who, uuid4()),
            self._pick(self.assets, what, uuid4()),
            Decimal(cost),
            score,
            metadata,
            id=contribution_id,
            timestamp=when,
        ):
            self.contributions.append(contribution_id)

    @rule(pick=picks)
    def get_contribution(self, pick: int) -> None:
        self.both("graph", "get_contribution", self._pick(self.contributions, pick, uuid4()))

    @rule(limit=limits)
    def list_contributions(self, limit: Any) -> None:
        self.both("graph", "list_contributions", limit)

    @rule(pick=picks)
    def get_asset_contributions(self, pick: int) -> None:
        self.both("graph", "get_asset_contributions", self._pick(self.assets, pick, uuid4()))

    @rule(pick=picks)
    def get_contributor_contributions(self, pick: int) -> None:
        self.both("graph", "get_contributor_contributions", self._pick(self.contributors, pick, uuid4()))

    # -- GitHub --------------------------------------------------------------------------------

    @rule(
        login=logins,
        name=st.sampled_from([None, "Octo Cat"]),
        count=st.sampled_from([0, 5, -1]),
        created=graph_times,
        updated=st.one_of(st.none(), graph_times),
    )
    def upsert_github_contributor(
        self, login: str, name: str | None, count: int, created: datetime, updated: datetime | None
    ) -> None:
        gid = f"github:{login}" if login else ""
        gc = GitHubContributor(
            id=gid, login=login, name=name, contributions_count=count, created_at=created, updated_at=updated
        )
        if self.both("graph", "upsert_github_contributor", gc) and gid not in self.github_ids:
            self.github_ids.append(gid)

    @rule(login=logins)
    def get_github_contributor(self, login: str) -> None:
        self.both("graph", "get_github_contributor", f"github:{login}")

    @rule(limit=limits)
    def list_github_contributors(self, limit: Any) -> None:
        self.both("graph", "list_github_contributors", limit)

    @rule(login=logins, kind=st.sampled_from(["Organization", "User", "Team"]), created=graph_times)
    def upsert_github_organization(self, login: str, kind: str, created: datetime) -> None:
        org = GitHubOrganization(id=f"github:{login}" if login else "", login=login, type=kind, created_at=created)
        self.both("graph", "upsert_github_organization", org)

    @rule(login=logins)
    def get_github_organization(self, login: str) -> None:
        self.both("graph", "get_github_organization", f"github:{login}")

    @rule(login=logins, key=key_args)
    def add_github_contributes_to(self, login: str, key: tuple[int, int, str, str]) -> None:
        self.both("graph", "add_github_contributes_to", f"github:{login}", *self._key(*key))

    @rule(key=key_args)
    def get_project_github_contributors(self, key: tuple[int, int, str, str]) -> None:
        self.both("graph", "get_project_github_contributors", *self._key(*key))

    # -- agent tasks ---------------------------------------------------------------------------------

    @rule(
        reuse=picks,
        direction=directions,
        task_type=st.sampled_from(TaskType),
        status=st.sampled_from(TaskStatus),
        created=task_times,
        model=st.sampled_from(["m1", "m2"]),
        output=maybe_text,
        context=st.sampled_from([None, {}, {"source": "x"}]),
    )
    def create_task(
        self,
        reuse: int,
        direction: str,
        task_type: TaskType,
        status: TaskStatus,
        created: datetime,
        model: str,
        output: str | None,
        context: dict[str, Any] | None,
    ) -> None:
        task_id = self._mostly_fresh(self.tasks, reuse, f"task_{len(self.tasks):016x}")
        record = AgentTaskRecord(
            id=task_id,
            direction=direction,
            task_type=task_type,
            status=status,
            model=model,
            command=f'aider "{direction[:20]}"',
            tier="openrouter",
            context=context,
            output=output,
            created_at=created,
        )
        if self.both("tasks", "create_task", record):
            self.tasks.append(task_id)

    @rule(pick=picks)
    def get_task(self, pick: int) -> None:
        self.both("tasks", "get_task", self._pick(self.tasks, pick, "task_missing"))

    @rule(status=statuses, task_type=task_types, limit=st.integers(-1, 4), offset=st.integers(-1, 4))
    def list_tasks(self, status: Any, task_type: Any, limit: int, offset: int) -> None:
        self.both("tasks", "list_tasks", status, task_type, limit, offset)

    @rule(
        pick=picks,
        status=statuses,
        output=maybe_text,
        pct=progress,
        step=maybe_text,
        prompt=maybe_text,
        decision=st.sampled_from([None, "yes", "no"]),
        now=task_times,
    )
    def update_task(
        self,
        pick: int,
        status: Any,
        output: str | None,
        pct: int | None,
        step: str | None,
        prompt: str | None,
        decision: str | None,
        now: datetime,
    ) -> None:
        task_id = self._pick(self.tasks, pick, "task_missing")
        self.both("tasks", "update_task", task_id, status, output, pct, step, prompt, decision, now=now)

    @rule(limit=st.integers(-1, 4))
    def get_attention_tasks(self, limit: int) -> None:
        self.both("tasks", "get_attention_tasks", limit)

    @rule()
    def get_review_summary(self) -> None:
        self.both("tasks", "get_review_summary")

    @rule(routing=st.sampled_from([None, {"spec": {"model": "m1", "tier": "t"}}]))
    def get_usage_summary(self, routing: Any) -> None:
        self.both("tasks", "get_usage_summary", routing)

    @rule(now=task_times, metrics=st.sampled_from([None, {"total": 10, "rate": 0.5}, {"total": 3, "rate": 0.1}]))
    def get_pipeline_status(self, now: datetime, metrics: Any) -> None:
        self.both("tasks", "get_pipeline_status", now, metrics)

    @rule(worker=workers, now=task_times)
    def claim_next_task(self, worker: str, now: datetime) -> None:
        self.both("tasks", "claim_next_task", worker, now=now)

    @rule(pick=picks, worker=workers, now=task_times)
    def claim_task(self, pick: int, worker: str, now: datetime) -> None:
        self.both("tasks", "claim_task", self._pick(self.tasks, pick, "task_missing"), worker, now=now)

    # -- invariants, on both stores after every step --------------------------------------------------

    @invariant()
    def counts_and_whole_lists_agree(self) -> None:
        self.both("graph", "count_projects")
        self.both("tasks", "get_task_count")
        for method in ("list_contributors", "list_assets", "list_contributions", "list_github_contributors"):
            self.both("graph", method)
        self.both("tasks", "list_tasks", limit=100)

    @invariant()
    def total_cost_is_the_sum_of_contributions(self) -> None:
        for aid in self.assets:
            self.both("graph", "get_asset", aid)
            self.both("graph", "get_asset_contributions", aid)
            found = self.loop.run_until_complete(self.reference.graph.get_asset(aid))
            listed = self.loop.run_until_complete(self.reference.graph.get_asset_contributions(aid))
            total = sum((c.cost_amount for c in listed), Decimal("0.00"))
            assert found.total_cost == total, f"get_asset({aid}).total_cost {found.total_cost} != sum {total}"

    @invariant()
    def dependency_count_is_the_out_degree(self) -> None:
        for eco, name in self.keys:
            self.both("graph", "get_project", eco, name)  # the other store agrees with the reference...
            found = self.loop.run_until_complete(self.reference.graph.get_project(eco, name))
            if found is None:  # a key known only from an edge
                continue
            key = rules.project_key(eco, name)
            degree = sum(1 for source, _ in self.edges if source == key)
            # ...and the reference agrees with the model.
            assert found.dependency_count == degree, (
                f"get_project{key}.dependency_count {found.dependency_count} != out-degree {degree}"
            )


# -- running it ----------------------------------------------------------------------------------------

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
STEPS = {"ci": 30, "deep": 60}.get(PROFILE, 30)


def machine_against(open_other: Callable[[], AbstractAsyncContextManager[Any]]) -> type[StoreEquivalence]:
    return type("StoreEquivalenceRun", (StoreEquivalence,), {"open_other": staticmethod(open_other)})


@asynccontextmanager
async def fresh_postgres(connect: Callable[..., Any], dsn: str, truncate_sql: str) -> AsyncIterator[Any]:
    """The migrated test database, emptied, for one example."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(truncate_sql)
    finally:
        await conn.close()
    async with connect(dsn) as stores:
        yield stores


def test_memory_and_postgres_stores_agree(request: pytest.FixtureRequest) -> None:
    connect = postgres_connect()  # fails (never skips) while the PostgreSQL store is missing
    dsn: str = request.getfixturevalue("migrated_dsn")
    truncate_sql: str = request.getfixturevalue("_truncate_sql")
    machine = machine_against(lambda: fresh_postgres(connect, dsn, truncate_sql))
    run_state_machine_as_test(machine, settings=settings(stateful_step_count=STEPS))


def test_memory_store_agrees_with_itself() -> None:
    """The machine's own sanity: two correct memory stores never disagree."""
    run_state_machine_as_test(machine_against(memory_stores), settings=settings(stateful_step_count=STEPS))


# -- the machine has teeth: small injected bugs are found ----------------------------------------------


class OffByOneContributorLimit(MemoryGraphStore):
    async def list_contributors(self, limit: int = 100) -> list[Contributor]:
        return await super().list_contributors(rules.list_limit(limit) + 1)


class AscendingContributions(MemoryGraphStore):
    async def list_contributions(self, limit: int = 100) -> list[Any]:
        oldest = heapq.nsmallest(rules.list_limit(limit), self._contributions.values(), key=lambda c: c.timestamp)
        return [c.model_copy(deep=True) for c in oldest]


class CaseSensitiveGetProject(MemoryGraphStore):
    async def get_project(self, ecosystem: str, name: str) -> Project | None:
        key = rules.project_key(ecosystem, name)
        stored = self._projects.get((ecosystem, name))  # the injected bug: the key's case fold is lost
        return None if stored is None else self._project_out(key, stored)


@asynccontextmanager
async def buggy(graph_class: type[MemoryGraphStore]) -> AsyncIterator[MemoryStores]:
    yield MemoryStores(graph=graph_class())


@pytest.mark.parametrize(
    ("graph_class", "method"),
    [
        (OffByOneContributorLimit, "list_contributors"),
        (AscendingContributions, "list_contributions"),
        (CaseSensitiveGetProject, "get_project"),
    ],
)
def test_the_machine_finds_an_injected_bug(graph_class: type[MemoryGraphStore], method: str) -> None:
    machine = machine_against(lambda: buggy(graph_class))
    # Random, not derandomized: each bug is typically found within 100 examples (measured), so
    # missing all 1000 is vanishingly unlikely while a fixed seed could sit on an unlucky stretch.
    teeth = settings(
        max_examples=1000,
        stateful_step_count=60,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        report_multiple_bugs=False,
        print_blob=False,
        phases=[Phase.generate],  # finding is the point; shrinking the program would only cost time
    )
    with pytest.raises(AssertionError) as caught:
        run_state_machine_as_test(machine, settings=teeth)
    assert method in str(caught.value)
