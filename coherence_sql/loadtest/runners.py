"""The agent-runners scenario: N runners create tasks, claim them (`claim_next_task`) and update
them until none is pending, then the final state is checked against the database itself.

Each runner creates its share of tasks one at a time, and after each creation claims and works
tasks until the queue is empty; every update writes a value unique to (runner, task, step). At the
end every task a runner was handed must be COMPLETED, claimed by that runner, and hold exactly the
last output and progress that runner wrote: anything else is a lost update. A task handed to two
runners (or twice to one) is a double claim. Every task the run created must have been claimed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from coherence_sql.loadtest.latency import LatencyBook
from coherence_sql.loadtest.report import latency_dict
from coherence_sql.models import AgentTaskRecord, TaskStatus, TaskType
from coherence_sql.redaction import redact_text

DEFAULT_RUNNERS: Final = 64
DEFAULT_TASKS: Final = 2_000
DEFAULT_UPDATES: Final = 3  # progress updates per task before the one that completes it


@dataclass(slots=True)
class _Written:
    runner: str
    output: str
    progress: int


@dataclass(slots=True)
class RunnersReport:
    runners: int
    tasks_created: int
    claims: int
    updates: int
    seconds: float
    latency: LatencyBook
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: dict[str, str] = field(default_factory=dict)
    double_claims: list[str] = field(default_factory=list)
    lost_updates: list[str] = field(default_factory=list)
    never_claimed: list[str] = field(default_factory=list)
    checked: bool = False
    # What the runners saw, for `check_outcome`: task id -> runners it was handed to; the last
    # write each task got; the tasks the run created.
    handed: dict[str, list[str]] = field(default_factory=dict, repr=False)
    written: dict[str, _Written] = field(default_factory=dict, repr=False)
    created: list[str] = field(default_factory=list, repr=False)

    @property
    def correct(self) -> bool:
        problems = self.double_claims or self.lost_updates or self.never_claimed or self.errors
        return self.checked and not problems

    @property
    def updates_per_s(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    @property
    def claims_per_s(self) -> float:
        return self.claims / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "runners": self.runners,
            "tasks_created": self.tasks_created,
            "claims": self.claims,
            "updates": self.updates,
            "seconds": round(self.seconds, 3),
            "updates_per_s": round(self.updates_per_s, 1),
            "claims_per_s": round(self.claims_per_s, 1),
            "checked": self.checked,
            "correct": self.correct,
            "lost_updates": len(self.lost_updates),
            "double_claims": len(self.double_claims),
            "never_claimed": len(self.never_claimed),
            "problems": (self.lost_updates + self.double_claims + self.never_claimed)[:20],
            "errors": dict(self.errors),
            "error_examples": self.error_examples,
            "latency_ms": {name: latency_dict(s) for name, s in self.latency.summaries().items()},
        }


async def run_agent_runners(
    tasks: Any,
    *,
    runners: int = DEFAULT_RUNNERS,
    task_count: int = DEFAULT_TASKS,
    updates_per_task: int = DEFAULT_UPDATES,
    run_tag: str,
) -> RunnersReport:
    """Run the runners on `tasks` (an AgentTaskStore) until no task is pending; `check_outcome`
    then reads the final state."""
    latency = LatencyBook()
    report = RunnersReport(runners, 0, 0, 0, 0.0, latency)
    handed, written, created = report.handed, report.written, report.created
    shares = [task_count // runners + (1 if r < task_count % runners else 0) for r in range(runners)]

    async def timed(name: str, call: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call
        except Exception as exc:
            report.errors[type(exc).__name__] += 1
            report.error_examples.setdefault(type(exc).__name__, redact_text(str(exc))[:300])
            return None
        finally:
            latency.record(name, time.perf_counter() - started)

    async def runner(number: int) -> None:
        worker = f"runner-{run_tag}-{number}"
        for n in range(shares[number]):
            task_id = f"task_run_{run_tag}_{number}_{n}"
            made = await timed("create_task", tasks.create_task(_task(task_id, worker, n)))
            if made is not None:
                created.append(task_id)
                report.tasks_created += 1
            await work_until_empty(worker)
        await work_until_empty(worker)

    async def work_until_empty(worker: str) -> None:
        while True:
            claimed = await timed("claim_next_task", tasks.claim_next_task(worker))
            if claimed is None:
                return
            report.claims += 1
            handed.setdefault(claimed.id, []).append(worker)
            for step in range(updates_per_task + 1):
                last = step == updates_per_task
                output = f"{worker}/{claimed.id}/{step}"
                progress = 100 if last else (step + 1) * 100 // (updates_per_task + 1)
                updated = await timed(
                    "update_task",
                    tasks.update_task(
                        claimed.id,
                        status=TaskStatus.COMPLETED if last else TaskStatus.RUNNING,
                        output=output,
                        progress_pct=progress,
                        current_step=f"step {step}",
                    ),
                )
                report.updates += 1
                if updated is not None:
                    written[claimed.id] = _Written(worker, output, progress)

    started = time.perf_counter()
    await asyncio.gather(*(runner(r) for r in range(runners)))
    report.seconds = time.perf_counter() - started
    return report


def _task(task_id: str, worker: str, n: int) -> AgentTaskRecord:
    return AgentTaskRecord(
        id=task_id,
        direction=f"runner load task {n} by {worker}",
        task_type=TaskType.IMPL,
        model="openrouter/free",
        command=f'aider "runner load {n}"',
        tier="openrouter",
    )


async def check_outcome(report: RunnersReport, check: Any) -> None:
    """Compare what the runners wrote with what `check` (an AgentTaskStore) holds: the database's
    own store, opened after the stores under test closed (a cut-over store's PostgreSQL legs have
    settled), or the in-memory store itself."""
    handed, written, created = report.handed, report.written, report.created
    for task_id, workers in handed.items():
        if len(workers) > 1:
            report.double_claims.append(f"{task_id} handed to {len(workers)} claims: {', '.join(workers)}")
    for task_id in created:
        if task_id not in handed:
            report.never_claimed.append(f"{task_id} created but never claimed")
    for task_id, last in written.items():
        stored = await check.get_task(task_id)
        expected = (TaskStatus.COMPLETED, last.runner, last.output, last.progress)
        actual = None if stored is None else (stored.status, stored.claimed_by, stored.output, stored.progress_pct)
        if actual != expected:
            report.lost_updates.append(f"{task_id}: wrote {expected}, the store holds {actual}")
    report.checked = True
