"""Hypothesis over every public method of every store kind, with hostile types and hostile content.

For each method, arguments are drawn from the method's valid values mixed with hostile ones (None,
dicts, strings where sequences go, NUL and lone surrogates, huge/NaN/sNaN/infinite numbers, times
that overflow UTC, mutated models, non-JSON and deep metadata, generators, sets...). The same call
goes to every store kind (memory, PostgreSQL, and both behind the sync facade); each must return a
result or raise a `CoherenceSQLError` subclass, all kinds must agree on accept vs refuse and on the
error class, an `InvalidValueError` must name one of the hostile arguments, and after every failed
call the store's whole content (PostgreSQL: every table; memory: every record) is unchanged.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from coherence_sql.cutover.service import open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.errors import CoherenceSQLError, InvalidValueError
from coherence_sql.models import (
    AgentTaskRecord,
    Asset,
    Contributor,
    GitHubContributor,
    GitHubOrganization,
    Project,
    TaskStatus,
    TaskType,
)
from coherence_sql.schema import migrate
from coherence_sql.stores import rules
from coherence_sql.stores.memory import MemoryStores
from coherence_sql.stores.postgres import connect
from coherence_sql.stores.protocol import DependencyEdge
from coherence_sql.stores.sync import SyncStores
from tests.stores import records
from tests.stores.conftest import MIGRATING_KINDS, STORE_KINDS

Factory = Callable[[], Any]

# -- hostile values (factories: each store kind gets a fresh value) ---------------------------------

MINUS_ONE = timezone(timedelta(hours=-1))
PLUS_ONE = timezone(timedelta(hours=1))


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"k": [value]}
    return value


def _cyclic() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def _changed(make: Factory, **fields: Any) -> Factory:
    def build() -> Any:
        model = make()
        for name, value in fields.items():
            setattr(model, name, value)
        return model

    return build


HOSTILE: list[tuple[str, Factory]] = [
    ("None", lambda: None),
    ("empty string", lambda: ""),
    ("lone surrogate", lambda: "a\ud800"),
    ("NUL", lambda: "a\x00b"),
    ("long string", lambda: "x" * 5001),
    ("huge int", lambda: 10**5000),
    ("negative int", lambda: -1),
    ("bool", lambda: True),
    ("float", lambda: 1.5),
    ("float nan", lambda: float("nan")),
    ("float inf", lambda: float("-inf")),
    ("negative zero", lambda: -0.0),
    ("Decimal NaN", lambda: Decimal("NaN")),
    ("Decimal sNaN", lambda: Decimal("sNaN")),
    ("Decimal inf", lambda: Decimal("Infinity")),
    ("Decimal huge", lambda: Decimal("1e999999")),
    ("Decimal tiny", lambda: Decimal("1e-999999999")),
    ("datetime max at -1h", lambda: datetime.max.replace(tzinfo=MINUS_ONE)),
    ("datetime min at +1h", lambda: datetime.min.replace(tzinfo=PLUS_ONE)),
    ("date", lambda: date(2026, 1, 1)),
    ("bytes", lambda: b"abcd"),
    ("empty dict", dict),
    ("empty list", list),
    ("set", lambda: {"a", "b"}),
    ("generator", lambda: (x for x in ["npm", "a", "npm", "b"])),
    ("string of four", lambda: "abcd"),
    ("object", object),
    ("dict with object", lambda: {"k": object()}),
    ("dict with Decimal", lambda: {"k": Decimal("1.5")}),
    ("deep dict", lambda: _deep(100)),
    ("cyclic list", _cyclic),
    ("uuid text in braces", lambda: "{" + UUID(int=0xC1).hex + "}"),
    ("status text", lambda: "RUNNING"),
    ("project, version None", _changed(records.project, version=None)),
    ("contributor, bad email", _changed(lambda: records.contributor(20), email="not-an-email")),
    ("asset, bad type", _changed(lambda: records.asset(20), type="BOGUS")),
    ("github contributor, login None", _changed(records.github_contributor, login=None)),
    ("organization, created_at text", _changed(records.github_organization, created_at="now")),
    ("task, bad status", _changed(lambda: records.task(20), status="bogus")),
    ("task, huge progress", _changed(lambda: records.task(21), progress_pct=10**30)),
    ("project, surrogate name", _changed(records.project, name="a\ud800")),
    ("project, NUL description", _changed(records.project, description="a\x00")),
    ("contributor, huge rate", _changed(lambda: records.contributor(22), hourly_rate=Decimal("1e999999"))),
    ("contributor, deep metadata", _changed(lambda: records.contributor(23), metadata=_deep(1000))),
    ("asset, time past UTC", _changed(lambda: records.asset(22), created_at=datetime.max.replace(tzinfo=MINUS_ONE))),
    ("github contributor, int8 count", _changed(records.github_contributor, contributions_count=2**40)),
    ("organization, type Bot", _changed(records.github_organization, type="Bot")),
    ("task, non-JSON context", _changed(lambda: records.task(22), context={"k": {1, 2}})),
    ("task, empty direction", _changed(lambda: records.task(23), direction="   ")),
    ("model as dict", lambda: records.project("dict").model_dump()),
    ("edges, self-edge", lambda: [DependencyEdge("npm", "a", "npm", "b"), DependencyEdge("npm", "x", "NPM", "X")]),
    ("edges, NUL key", lambda: [DependencyEdge("npm", "a", "npm", "b"), DependencyEdge("npm", "x\x00", "npm", "y")]),
    ("list with a bad element", lambda: [DependencyEdge("npm", "a", "npm", "b"), ("npm", "a", "npm")]),
    ("list of strings", lambda: ["abcd"]),
]

# -- each method's valid arguments and the words an error about each argument may use --------------

C1, A1 = UUID(int=0xC1), UUID(int=0xA1)
T0 = records.T0
T0_AWARE = records.T0_AWARE


def good(*values: Any) -> st.SearchStrategy[Factory]:
    return st.sampled_from([(lambda v=v: v) for v in values])


def built(*makers: Factory) -> st.SearchStrategy[Factory]:
    return st.sampled_from(makers)


ECO = good("npm", "PyPI")
NAME = good("react", "a", "b", "Left-Pad")
LIMIT = good(0, 1, 5, "3")  # graph lists take the API's int(limit)
PAGE = good(0, 1, 5)  # agent task paging takes integers only


@dataclass(frozen=True)
class Param:
    name: str
    valid: st.SearchStrategy[Factory]
    hints: tuple[str, ...] = ()
    keyword: bool = False

    @property
    def words(self) -> tuple[str, ...]:
        return (self.name, *self.hints)


@dataclass(frozen=True)
class Method:
    side: str  # "graph" or "tasks"
    name: str
    params: tuple[Param, ...] = field(default_factory=tuple)


def param(name: str, valid: st.SearchStrategy[Factory], *hints: str, keyword: bool = False) -> Param:
    return Param(name, valid, hints, keyword)


def model_param(name: str, valid: st.SearchStrategy[Factory], cls: type[BaseModel]) -> Param:
    """A model argument: an error may name the argument, the class or one of its fields."""
    return Param(name, valid, (cls.__name__, *cls.model_fields))


PROJECTS = built(
    lambda: records.project("react"),
    lambda: records.project("Left-Pad", "NPM"),
    lambda: records.project("b", "PyPI", homepage_url="https://b.example"),
)
EDGES = built(
    lambda: [DependencyEdge("npm", "react", "npm", "a")],
    lambda: (DependencyEdge("PyPI", "b", "npm", "Left-Pad"), ["npm", "a", "npm", "b"]),
    list,
)
GITHUB_IDS = good("github:octocat", "github:nobody")
TASK_IDS = good(records.task(1).id, records.task(2).id, "task_missing")

METHODS: list[Method] = [
    Method("graph", "get_project", (param("ecosystem", ECO), param("name", NAME))),
    Method("graph", "search", (param("query", good("react", "a", "", "pad")), param("limit", LIMIT))),
    Method("graph", "upsert_project", (model_param("project", PROJECTS, Project),)),
    Method(
        "graph",
        "add_dependency",
        (
            param("from_eco", ECO, "ecosystem", "itself"),
            param("from_name", NAME, "name", "itself"),
            param("to_eco", ECO, "ecosystem", "itself"),
            param("to_name", NAME, "name", "itself"),
        ),
    ),
    Method("graph", "count_projects"),
    Method("graph", "count_dependents", (param("ecosystem", ECO), param("name", NAME))),
    Method(
        "graph",
        "upsert_projects",
        (param("projects", st.lists(PROJECTS, max_size=3).map(lambda fs: lambda: [f() for f in fs])),),
    ),
    Method("graph", "add_dependencies", (param("edges", EDGES, "itself", "ecosystem", "name"),)),
    Method("graph", "get_contributor", (param("contributor_id", good(C1, str(C1), UUID(int=7))),)),
    Method(
        "graph",
        "create_contributor",
        (model_param("contributor", built(*(lambda n=n: records.contributor(n) for n in range(2, 6))), Contributor),),
    ),
    Method("graph", "list_contributors", (param("limit", LIMIT),)),
    Method(
        "graph",
        "find_contributor_by_email",
        (param("email", good("person1@coherence.network", "PERSON1@coherence.network", "x@y.z")),),
    ),
    Method("graph", "get_asset", (param("asset_id", good(A1, UUID(int=9))),)),
    Method(
        "graph",
        "create_asset",
        (model_param("asset", built(*(lambda n=n: records.asset(n) for n in range(2, 6))), Asset),),
    ),
    Method("graph", "list_assets", (param("limit", LIMIT),)),
    Method(
        "graph",
        "create_contribution",
        (
            param("contributor_id", good(C1, UUID(int=7))),
            param("asset_id", good(A1)),
            param("cost_amount", good(Decimal("1.00"), "2.50", 3)),
            param("coherence_score", good(0.5, 1, Decimal("0.25"))),
            param("metadata", good({}, {"a": [1, "x"]}, None)),
            param("id", good(None), keyword=True),
            param("timestamp", good(None, T0, T0_AWARE), keyword=True),
        ),
    ),
    Method("graph", "get_contribution", (param("contribution_id", good(UUID(int=0xB1), str(UUID(int=5)))),)),
    Method("graph", "list_contributions", (param("limit", LIMIT),)),
    Method("graph", "get_asset_contributions", (param("asset_id", good(A1)),)),
    Method("graph", "get_contributor_contributions", (param("contributor_id", good(C1)),)),
    Method(
        "graph",
        "upsert_github_contributor",
        (
            model_param(
                "github_contributor",
                built(records.github_contributor, lambda: records.github_contributor("hubot")),
                GitHubContributor,
            ),
        ),
    ),
    Method("graph", "get_github_contributor", (param("contributor_id", GITHUB_IDS),)),
    Method("graph", "list_github_contributors", (param("limit", LIMIT),)),
    Method(
        "graph",
        "upsert_github_organization",
        (
            model_param(
                "organization",
                built(records.github_organization, lambda: records.github_organization("acme")),
                GitHubOrganization,
            ),
        ),
    ),
    Method("graph", "get_github_organization", (param("organization_id", good("github:coherence", "github:none")),)),
    Method(
        "graph",
        "add_github_contributes_to",
        (param("contributor_id", GITHUB_IDS), param("ecosystem", ECO), param("project_name", NAME, "name")),
    ),
    Method("graph", "get_project_github_contributors", (param("ecosystem", ECO), param("project_name", NAME, "name"))),
    Method(
        "tasks",
        "create_task",
        (model_param("task", built(*(lambda n=n: records.task(n) for n in range(3, 7))), AgentTaskRecord),),
    ),
    Method("tasks", "get_task", (param("task_id", TASK_IDS),)),
    Method(
        "tasks",
        "list_tasks",
        (
            param("status", good(None, TaskStatus.PENDING, "running")),
            param("task_type", good(None, TaskType.IMPL)),
            param("limit", PAGE),
            param("offset", good(0, 2)),
        ),
    ),
    Method(
        "tasks",
        "update_task",
        (
            param("task_id", TASK_IDS),
            param("status", good(None, TaskStatus.RUNNING, "completed")),
            param("output", good(None, "done")),
            param("progress_pct", good(None, 0, 100)),
            param("current_step", good(None, "step")),
            param("decision_prompt", good(None, "ok?")),
            param("decision", good(None, "yes")),
            param("now", good(None, T0_AWARE, T0), keyword=True),
        ),
    ),
    Method("tasks", "get_attention_tasks", (param("limit", PAGE),)),
    Method("tasks", "get_task_count"),
    Method("tasks", "get_review_summary"),
    Method("tasks", "get_usage_summary", (param("routing", good(None, {"openrouter/free": {"tier": "free"}})),)),
    Method(
        "tasks",
        "get_pipeline_status",
        (
            param("now_utc", good(None, T0_AWARE + timedelta(hours=1))),
            param("metrics", good(None, {"total": 20, "rate": 0.5})),
        ),
    ),
    Method(
        "tasks",
        "claim_next_task",
        (param("worker", good("w1", "w2")), param("now", good(None, T0_AWARE), keyword=True)),
    ),
    Method(
        "tasks",
        "claim_task",
        (param("task_id", TASK_IDS), param("worker", good("w1")), param("now", good(None, T0_AWARE), keyword=True)),
    ),
]
# `clear` is left out: it empties the task store on purpose.

# -- the stores -------------------------------------------------------------------------------------

TABLES = (
    "projects",
    "project_dependencies",
    "pending_dependencies",
    "contributors",
    "assets",
    "contributions",
    "github_contributors",
    "github_organizations",
    "github_contributes_to",
    "agent_tasks",
)


class Kind:
    """One store kind: call a method, dump everything it holds."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.name = name
        self.loop = loop
        self.graph: Any = None
        self.tasks: Any = None
        self.sync = name.startswith("sync-")
        self.dump_conn: asyncpg.Connection | None = None
        self.memory: MemoryStores | None = None
        self._close: list[Callable[[], None]] = []

    def call(self, side: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        bound = getattr(getattr(self, side), method)
        if self.sync:
            return bound(*args, **kwargs)
        return self.loop.run_until_complete(bound(*args, **kwargs))

    def dump(self) -> Any:
        """Every table the kind writes (a cut-over kind writes both: PostgreSQL's, then memory's)."""
        dumped: list[Any] = []
        if self.dump_conn is not None:
            conn = self.dump_conn
            dumped += [
                [tuple(map(str, r)) for r in self.loop.run_until_complete(conn.fetch(f"SELECT * FROM {t} ORDER BY 1"))]
                for t in TABLES
            ]
        if self.memory is not None:
            dumped += self._memory_dump(self.memory)
        return dumped

    @staticmethod
    def _memory_dump(memory: MemoryStores) -> list[Any]:
        g, t = memory.graph, memory.tasks
        parts: list[Any] = [
            g.all_projects(),
            g.all_edges(),
            g.all_contributors(),
            g.all_assets(),
            g.all_contributions(),
            g.all_github_contributors(),
            g.all_github_organizations(),
            g.all_github_contributes_to(),
            t.all_tasks(),
        ]
        return [[x.model_dump() if hasattr(x, "model_dump") else x for x in part] for part in parts]

    def close(self) -> None:
        for close in reversed(self._close):
            close()


def open_kind(name: str, loop: asyncio.AbstractEventLoop, dsn: str | None) -> Kind:
    kind = Kind(name, loop)
    if name == "memory":
        kind.memory = MemoryStores()
        kind.graph, kind.tasks = kind.memory.graph, kind.memory.tasks
    elif name == "sync-memory":
        sync = SyncStores.memory()
        kind._close.append(sync.close)
        kind.graph, kind.tasks = sync.graph, sync.tasks
        kind.memory = MemoryStores(graph=sync.graph.store, tasks=sync.tasks.store)  # type: ignore[arg-type]
    elif name in MIGRATING_KINDS:
        assert dsn is not None
        cutover = CutoverSettings(
            dual_write=True,
            postgres_primary=name == "postgres-primary",
            read_from_postgres_percent=50 if name == "dual-write" else 0,
            journal_path=Path(tempfile.mkdtemp(prefix="hostile-sweep-")) / "journal.jsonl",
            database_url=dsn,
            postgres_budget_s=30.0,
        )
        migrating = open_cutover_stores(cutover, reconcile_interval_s=None)
        opened = loop.run_until_complete(migrating.__aenter__())

        def close_migrating() -> None:
            loop.run_until_complete(migrating.__aexit__(None, None, None))

        kind._close.append(close_migrating)
        kind.graph, kind.tasks = opened.graph, opened.tasks
        kind.memory = MemoryStores(graph=opened.graph.memory, tasks=opened.tasks.memory)  # type: ignore[arg-type]
        kind.dump_conn = loop.run_until_complete(asyncpg.connect(dsn))
        dump_conn = kind.dump_conn
        kind._close.append(lambda: loop.run_until_complete(dump_conn.close()))
    else:
        assert dsn is not None
        if name == "postgres":
            manager = connect(dsn)
            stores = loop.run_until_complete(manager.__aenter__())
            kind._close.append(lambda: (loop.run_until_complete(manager.__aexit__(None, None, None)), None)[1])
            kind.graph, kind.tasks = stores.graph, stores.tasks
        else:
            sync = SyncStores.open(dsn)
            kind._close.append(sync.close)
            kind.graph, kind.tasks = sync.graph, sync.tasks
        kind.dump_conn = loop.run_until_complete(asyncpg.connect(dsn))
        conn = kind.dump_conn
        kind._close.append(lambda: loop.run_until_complete(conn.close()))
    return kind


def seed(kind: Kind) -> None:
    seeds: list[tuple[str, str, list[Any]]] = [
        ("graph", "upsert_project", [records.project("react")]),
        ("graph", "upsert_project", [records.project("a")]),
        ("graph", "create_contributor", [records.contributor(1)]),
        ("graph", "create_asset", [records.asset(1)]),
        ("graph", "upsert_github_contributor", [records.github_contributor()]),
        ("graph", "upsert_github_organization", [records.github_organization()]),
        ("tasks", "create_task", [records.task(1)]),
        ("tasks", "create_task", [records.task(2, status=TaskStatus.NEEDS_DECISION)]),
    ]
    for side, method, args in seeds:
        kind.call(side, method, args, {})
    kind.call(
        "graph", "create_contribution", [C1, A1, Decimal("1.00"), 0.5, {}], {"id": UUID(int=0xB1), "timestamp": T0}
    )


KINDS = ["memory", *(k for k in STORE_KINDS if k != "memory")]  # memory is the reference, always


@pytest.fixture(scope="module")
def kinds(request: pytest.FixtureRequest) -> Iterator[list[Kind]]:
    loop = asyncio.new_event_loop()
    opened: list[Kind] = []
    try:
        for name in KINDS:
            dsn = None
            if name not in ("memory", "sync-memory"):
                factory = request.getfixturevalue("database_factory")
                dsn = loop.run_until_complete(factory())
                loop.run_until_complete(migrate(dsn))
            kind = open_kind(name, loop, dsn)
            opened.append(kind)
            seed(kind)
        yield opened
    finally:
        for kind in opened:
            kind.close()
        loop.close()


# -- the property -----------------------------------------------------------------------------------

EXAMPLES = int(os.environ.get("HOSTILE_SWEEP_EXAMPLES", "12"))
HOSTILE_VALUES = st.sampled_from(HOSTILE)


@st.composite
def calls(draw: st.DrawFn, method: Method) -> tuple[list[tuple[Param, Factory, str | None]], bool]:
    """Per parameter: (param, factory, hostile label or None); at least one hostile when there are any."""
    chosen: list[tuple[Param, Factory, str | None]] = []
    for param in method.params:
        if draw(st.booleans()):
            label, make = draw(HOSTILE_VALUES)
            chosen.append((param, make, label))
        else:
            chosen.append((param, draw(param.valid), None))
    if method.params and all(label is None for _, _, label in chosen):
        i = draw(st.integers(0, len(chosen) - 1))
        label, make = draw(HOSTILE_VALUES)
        chosen[i] = (chosen[i][0], make, label)
    return chosen, True


def outcome(kind: Kind, method: Method, chosen: list[tuple[Param, Factory, str | None]]) -> tuple[str, Any]:
    args = [make() for param, make, _ in chosen if not param.keyword]
    kwargs = {param.name: make() for param, make, _ in chosen if param.keyword}
    try:
        kind.call(method.side, method.name, args, kwargs)
    except CoherenceSQLError as exc:
        return "error", exc
    except BaseException as exc:
        hostile = {p.name: label for p, _, label in chosen if label}
        raise AssertionError(
            f"{kind.name}: {method.name} with {hostile} raised {type(exc).__name__}: {rules.shown(str(exc))}"
        ) from exc
    return "ok", None


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_every_method_refuses_hostile_input_the_same_way_and_writes_nothing(kinds: list[Kind], method: Method) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(drawn=calls(method))
    def check(drawn: tuple[list[tuple[Param, Factory, str | None]], bool]) -> None:
        chosen, _ = drawn
        hostile = {p.name: label for p, _, label in chosen if label}
        results = []
        for kind in kinds:
            before = kind.dump()
            status, error = outcome(kind, method, chosen)
            if status == "error":
                assert kind.dump() == before, f"{kind.name}: failed {method.name} {hostile} changed the store"
                if isinstance(error, InvalidValueError):
                    words = [w for p, _, label in chosen if label for w in p.words]
                    message = str(error)
                    assert message.strip(), f"{kind.name}: {method.name} {hostile}: an empty message"
                    assert any(w in message for w in words), (
                        f"{kind.name}: {method.name} {hostile}: {message!r} names none of {words}"
                    )
            results.append((kind.name, status, type(error).__name__ if error is not None else None))
        reference = results[0][1:]
        for name, *rest in results[1:]:
            assert tuple(rest) == reference, f"{method.name} {hostile}: {name} gave {rest}, memory gave {reference}"

    check()
