"""Concurrent dual-write traffic through the cut-over stores, timed call by call, around a fault.

`run_through_fault` keeps writers (tests/cutover/workload.py) and readers busy while it injects a
fault, holds it, lifts it and lets traffic go on; every store call's duration and every failure a
caller saw are recorded. `reconcile_until_complete` and `assert_nothing_lost` finish the story.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coherence_sql.cutover.journal import ReplayReport
from coherence_sql.cutover.service import CutoverStores
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.errors import CoherenceSQLError
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore
from coherence_sql.transfer.verify import verify_memory
from tests.cutover.workload import Workload, differences

BUDGET_S = 0.5  # CutoverSettings.postgres_budget_s under test (the default)
# Why 1 s on top of the budget: a write whose key another write holds waits for that one's leg
# first (at most one more budget, since the journal takes every write once one failed), and the
# event loop on 2 shared cores adds tens of milliseconds of lag under 6 busy callers.
MARGIN_S = 1.0

WRITERS = 4
READERS = 2
PACE_S = 0.02  # between one caller's calls: a few hundred writes over a few seconds
WARMUP_WRITES = 40  # healthy writes before the fault
AFTER_WRITES = 40  # writes after the fault is lifted
FAULT_HOLD_S = 1.5  # how long a fault lasts (at least 3 budgets of 0.5 s)
FAULT_MIN_WRITES = 40  # writes made while the fault is on
SETTLE_S = 0.2  # for the pool to see the sessions a fault ended before callers go on
PHASE_TIMEOUT_S = 20.0  # no phase of the traffic may take longer than this


@dataclass
class CallLog:
    """Every call a caller made: its duration, and the failures callers saw."""

    durations: list[tuple[str, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    in_flight: int = 0  # calls started and not yet returned

    @property
    def slowest(self) -> tuple[str, float]:
        return max(self.durations, key=lambda item: item[1], default=("none", 0.0))

    def over(self, limit_s: float) -> list[tuple[str, float]]:
        return sorted((d for d in self.durations if d[1] >= limit_s), key=lambda item: -item[1])


class Timed:
    """A store whose every coroutine method is timed into a CallLog (failures are logged, then raised)."""

    def __init__(self, store: Any, log: CallLog) -> None:
        self._store = store
        self._log = log

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            self._log.in_flight += 1
            try:
                return await attribute(*args, **kwargs)
            except Exception as exc:
                self._log.failures.append(f"{name}: {type(exc).__name__}: {exc}")
                raise
            finally:
                self._log.in_flight -= 1
                self._log.durations.append((name, time.perf_counter() - started))

        return timed


@dataclass
class Traffic:
    log: CallLog
    workloads: list[Workload]
    writes_before: int = 0
    writes_during: int = 0
    writes_after: int = 0
    reads: int = 0


async def _read_once(load: Workload, graph: Any, tasks: Any, r: random.Random) -> None:
    """One read of something the writers touched, keyed or not (half are routed to PostgreSQL)."""
    touched = load.touched
    choice = r.randrange(6)
    if choice == 0 and touched.projects:
        eco, name = r.choice(sorted(touched.projects))
        await graph.get_project(eco, name)
    elif choice == 1 and touched.projects:
        eco, name = r.choice(sorted(touched.projects))
        await graph.count_dependents(eco, name)
    elif choice == 2 and touched.assets:
        await graph.get_asset(r.choice(touched.assets))
    elif choice == 3 and touched.tasks:
        await tasks.get_task(r.choice(touched.tasks))
    elif choice == 4:
        await tasks.list_tasks(limit=10)
    else:
        await graph.count_projects()


async def run_through_fault(
    stores: CutoverStores,
    inject: Callable[[], Awaitable[None]],
    lift: Callable[[], Awaitable[None]],
    *,
    hold_s: float = FAULT_HOLD_S,
    seed: int = 0,
    between_calls: bool = False,
) -> Traffic:
    """Healthy traffic, then `inject()`, the fault held `hold_s` (and FAULT_MIN_WRITES writes),
    then `lift()`, then more traffic. Writers and readers never stop while the operator acts.

    `between_calls` injects while no call is in flight (callers wait a moment): the first error the
    stores then meet is the fault's own (a refused login, a read-only server...), not the "connection
    closed" of a call the fault cut, after which every later write is journaled anyway.
    """
    log = CallLog()
    graph, tasks = Timed(stores.graph, log), Timed(stores.tasks, log)
    # Names stay short: the workload cuts task ids at 21 characters.
    workloads = [Workload(graph, tasks, seed=seed * 100 + i, name=f"w{i}") for i in range(WRITERS)]
    traffic = Traffic(log=log, workloads=workloads)
    stop = asyncio.Event()
    calling = asyncio.Event()  # cleared while the operator needs no call in flight
    calling.set()

    def written() -> int:
        return sum(w.counter for w in workloads)

    async def writer(load: Workload) -> None:
        while not stop.is_set():
            await calling.wait()
            with contextlib.suppress(Exception):  # Timed logged it; the test counts failed callers
                await load.step()
            await asyncio.sleep(PACE_S)

    async def reader(index: int) -> None:
        r = random.Random(seed * 100 + 50 + index)
        while not stop.is_set():
            await calling.wait()
            try:
                await _read_once(r.choice(workloads), graph, tasks, r)
                traffic.reads += 1
            except Exception:
                pass
            await asyncio.sleep(PACE_S)

    async def until(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"traffic stuck {what}: {written()} writes, {len(log.failures)} failures")
            await asyncio.sleep(0.01)

    lifted = False

    async def operator() -> None:
        nonlocal lifted
        try:
            await until(lambda: written() >= WARMUP_WRITES, "before the fault")
            traffic.writes_before = written()
            if between_calls:
                calling.clear()
                await until(lambda: log.in_flight == 0, "waiting for calls in flight")
                await inject()
                await asyncio.sleep(SETTLE_S)
                calling.set()
            else:
                await inject()
            injected_at, at_inject = time.monotonic(), written()
            await until(
                lambda: time.monotonic() - injected_at >= hold_s and written() - at_inject >= FAULT_MIN_WRITES,
                "during the fault",
            )
            await lift()
            lifted = True
            traffic.writes_during = written() - traffic.writes_before
            at_lift = written()
            await until(lambda: written() - at_lift >= AFTER_WRITES, "after the fault")
            traffic.writes_after = written() - at_lift
        finally:
            stop.set()

    callers = [asyncio.ensure_future(writer(w)) for w in workloads]
    callers += [asyncio.ensure_future(reader(i)) for i in range(READERS)]
    try:
        await operator()
    finally:
        stop.set()
        calling.set()
        if not lifted:  # the traffic got stuck under the fault: a blocked call may need it lifted to end
            await lift()
        # A call the stores never return from must fail the test, not hang it.
        _, blocked = await asyncio.wait(callers, timeout=PHASE_TIMEOUT_S)
        for task in blocked:
            task.cancel()
        if blocked:
            log.failures.append(f"{len(blocked)} caller(s) still blocked {PHASE_TIMEOUT_S} s after the traffic ended")
            _, unended = await asyncio.wait(blocked, timeout=PHASE_TIMEOUT_S)
            if unended:
                log.failures.append(f"{len(unended)} caller(s) did not even end when cancelled")
        await asyncio.gather(*(task for task in callers if task.done()), return_exceptions=True)
    return traffic


async def reconcile_until_complete(stores: CutoverStores, attempts: int = 40, pause_s: float = 0.25) -> ReplayReport:
    """Replay until the journal is empty: the pool's first connections may have died with the
    fault, so a few attempts may meet them (bounded: attempts * pause_s, plus the replays)."""
    report = ReplayReport(error="never ran")
    for _ in range(attempts):
        try:
            report = await stores.reconcile()
        except CoherenceSQLError as exc:
            report = ReplayReport(error=f"{type(exc).__name__}: {exc}")
        if report.complete:
            return report
        await asyncio.sleep(pause_s)
    raise AssertionError(f"the journal did not drain after {attempts} replays: {report}")


async def assert_nothing_lost(stores: CutoverStores, workloads: list[Workload], dsn: str) -> None:
    """Memory and PostgreSQL read back the same everywhere the writers wrote, and verify (from a
    connection of its own) finds no difference at threshold zero."""
    assert stores.postgres is not None
    await stores.postgres.pool.expire_connections()  # ones the fault killed are not what we test here
    found: list[str] = []
    for load in workloads:
        found += await differences(
            stores.graph.memory, stores.tasks.memory, stores.postgres.graph, stores.postgres.tasks, load.touched
        )
    assert found == [], f"{len(found)} read-backs differ, e.g. {found[:5]}"
    memory_graph, memory_tasks = stores.graph.memory, stores.tasks.memory
    assert isinstance(memory_graph, MemoryGraphStore)
    assert isinstance(memory_tasks, MemoryAgentTaskStore)
    report = await verify_memory(dsn, memory_graph, memory_tasks, threshold_percent=0.0)
    assert report.compared_count > 0
    assert report.differences == [], f"verify: {len(report.differences)} difference(s), e.g. {report.differences[:10]}"
    assert report.mismatch_count == 0
    assert report.passed


def dual_write_settings(dsn: str, journal: Path, **overrides: object) -> CutoverSettings:
    """Phase 1-2 settings with half of the reads routed to PostgreSQL and the budget under test."""
    values: dict[str, object] = {
        "dual_write": True,
        "read_from_postgres_percent": 50,
        "journal_path": journal,
        "database_url": dsn,
        "postgres_budget_s": BUDGET_S,
    }
    values.update(overrides)
    return CutoverSettings(**values)  # type: ignore[arg-type]
