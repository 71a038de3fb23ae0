"""One load test end to end: the data set loaded, each target's stores opened in turn, the
scenario run on them, and one result per target ("leg") as plain data.

    legs = await run_loadtest(LoadTestPlan("mixed", targets_from("postgres,memory", "", 0), dsn, workdir))
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from coherence_sql.errors import CoherenceSQLError, InvalidValueError
from coherence_sql.loadtest.bulk_index import DEFAULT_BATCH, DEFAULT_PROJECTS, DEFAULT_WRITERS, run_bulk_index
from coherence_sql.loadtest.dataset import Dataset, DatasetSize, load_postgres, make_dataset
from coherence_sql.loadtest.operations import DEFAULT_MIX, Operations, parse_mix
from coherence_sql.loadtest.report import open_loop_dict
from coherence_sql.loadtest.runners import (
    DEFAULT_RUNNERS,
    DEFAULT_TASKS,
    DEFAULT_UPDATES,
    check_outcome,
    run_agent_runners,
)
from coherence_sql.loadtest.scheduler import LiveStatus, OpenLoopSettings, run_open_loop
from coherence_sql.loadtest.targets import Target, open_target
from coherence_sql.redaction import redact_text
from coherence_sql.stores.postgres import connect

SCENARIOS: Final = ("mixed", "bulk-index", "agent-runners")


@dataclass(frozen=True, slots=True)
class LoadTestPlan:
    scenario: str
    targets: list[Target]
    dsn: str | None
    workdir: Path
    open_loop: OpenLoopSettings = field(default_factory=lambda: OpenLoopSettings(1000, 60, 64))
    mix: str = DEFAULT_MIX
    dataset: DatasetSize = field(default_factory=DatasetSize)
    runners: int = DEFAULT_RUNNERS
    tasks: int = DEFAULT_TASKS
    updates_per_task: int = DEFAULT_UPDATES
    projects: int = DEFAULT_PROJECTS
    batch_size: int = DEFAULT_BATCH
    writers: int = DEFAULT_WRITERS
    seed: int = 1

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise InvalidValueError(f"scenario must be one of {', '.join(SCENARIOS)}, got {self.scenario!r}")
        parse_mix(self.mix)  # a bad mix fails before anything is loaded
        for name in ("runners", "tasks", "projects", "batch_size", "writers"):
            if getattr(self, name) < 1:
                raise InvalidValueError(f"{name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")
        if self.updates_per_task < 0:
            raise InvalidValueError(f"updates per task must be 0 or more, got {self.updates_per_task}")


@dataclass(slots=True)
class Leg:
    """One target's result: `data` is its JSON; `failed` says the run saw errors or lost writes."""

    target: str
    data: dict[str, Any]
    failed: bool


async def run_loadtest(
    plan: LoadTestPlan,
    *,
    loop_name: str = "asyncio",
    progress: Callable[[str, LiveStatus], None] | None = None,
    notice: Callable[[str], None] | None = None,
) -> list[Leg]:
    """Run `plan.scenario` on each target in turn; `progress(target, status)` during open-loop
    runs, `notice(text)` for what happens between them (loading the data set)."""
    say = notice or (lambda _text: None)
    dataset = None
    loaded: dict[str, Any] | None = None
    if plan.scenario == "mixed":
        dataset = make_dataset(plan.dataset)
        if plan.dsn is not None and any(t.uses_postgres for t in plan.targets):
            say(f"loading the data set into PostgreSQL (reused when already there): {plan.dataset.as_dict()}")
            report = await load_postgres(plan.dsn, dataset)
            loaded = {"rows_inserted": report.rows_inserted, "seconds": round(report.seconds, 3)}
    legs: list[Leg] = []
    for target in plan.targets:
        say(f"{plan.scenario} on {target.name} ({loop_name})")
        data: dict[str, Any] = {"scenario": plan.scenario, "target": target.name, "loop": loop_name}
        if loaded is not None:
            data["dataset"] = {**plan.dataset.as_dict(), "load": loaded}
        try:
            failed = await _leg(plan, target, dataset, data, progress)
        except CoherenceSQLError as exc:  # this target failed; the others still run and report
            data["error"] = {"type": type(exc).__name__, "message": redact_text(str(exc))}
            failed = True
        data["failed"] = failed
        legs.append(Leg(target.name, data, failed))
    return legs


async def _leg(
    plan: LoadTestPlan,
    target: Target,
    dataset: Dataset | None,
    data: dict[str, Any],
    progress: Callable[[str, LiveStatus], None] | None,
) -> bool:
    """Run the scenario on one target, filling `data` as results come (a later failure keeps
    them); True when the run failed."""
    run_tag = secrets.token_hex(4)
    failed = False
    if plan.scenario == "bulk-index" and target.uses_postgres:
        projects_before = await _count_projects(plan.dsn)
    async with open_target(target, plan.dsn, dataset, plan.workdir) as stores:
        if plan.scenario == "mixed":
            assert dataset is not None
            operations = Operations(stores.graph, stores.tasks, dataset.keys, parse_mix(plan.mix), run_tag, plan.seed)
            on_status = None if progress is None else (lambda s, name=target.name: progress(name, s))
            result = await run_open_loop(operations.pick, plan.open_loop, progress=on_status)
            data["result"] = open_loop_dict(result)
            failed = bool(result.error_count or result.dropped or result.unfinished)
        elif plan.scenario == "bulk-index":
            if not target.uses_postgres:
                projects_before = await stores.graph.count_projects()
            bulk = await run_bulk_index(
                stores.graph,
                projects=plan.projects,
                batch_size=plan.batch_size,
                writers=plan.writers,
                run_tag=run_tag,
            )
            if not target.uses_postgres:
                bulk.projects_before, bulk.projects_after = projects_before, await stores.graph.count_projects()
            data["result"] = bulk.as_dict()
        else:
            runners = await run_agent_runners(
                stores.tasks,
                runners=plan.runners,
                task_count=plan.tasks,
                updates_per_task=plan.updates_per_task,
                run_tag=run_tag,
            )
            if not target.uses_postgres:
                await check_outcome(runners, stores.tasks)
            data["result"] = runners.as_dict()  # unchecked yet for PostgreSQL: kept if closing fails
        counters = stores.cutover_counters()
        if counters:
            data["cutover"] = counters
    if plan.scenario == "bulk-index":
        if target.uses_postgres:  # the database itself, once the stores under test have settled
            bulk.projects_before, bulk.projects_after = projects_before, await _count_projects(plan.dsn)
        data["result"] = bulk.as_dict()
        failed = not bulk.all_indexed
    if plan.scenario == "agent-runners":
        if target.uses_postgres:  # the database itself, once the stores under test have settled
            assert plan.dsn is not None
            async with connect(plan.dsn) as database:
                await check_outcome(runners, database.tasks)
        data["result"] = runners.as_dict()
        failed = not runners.correct
    return failed


async def _count_projects(dsn: str | None) -> int:
    assert dsn is not None
    async with connect(dsn) as database:
        return int(await database.graph.count_projects())
