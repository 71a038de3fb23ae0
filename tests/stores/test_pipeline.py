"""The pipeline-status payload as one pure function: what each store hands it gives the same answer.

The in-memory store passes every task; the PostgreSQL store passes only the tasks its `pipeline_*`
queries select (first running by insertion, oldest pending, most recently updated finished) with
the per-phase counts over all. Both must give the payload the API computes from every task.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from coherence_sql.models import AgentTaskRecord, TaskStatus, TaskType
from coherence_sql.stores import pipeline
from coherence_sql.stores.pipeline import pipeline_status

from .records import T0_AWARE, task

NOW = T0_AWARE + timedelta(hours=1)


def postgres_selection(tasks: list[AgentTaskRecord]) -> tuple[list[AgentTaskRecord], dict[str, int]]:
    """What queries/agent_tasks.sql `pipeline_*` return, written here from the SQL's ORDER BY."""
    seq = {t.id: i for i, t in enumerate(tasks)}
    running = [t for t in tasks if t.status is TaskStatus.RUNNING][: pipeline.RUNNING_SHOWN]
    pending = sorted((t for t in tasks if t.status is TaskStatus.PENDING), key=lambda t: (t.created_at, seq[t.id]))
    finished = [t for t in tasks if t.status not in (TaskStatus.RUNNING, TaskStatus.PENDING)]
    # `updated_at IS NULL DESC, updated_at DESC, seq`: never updated first, then the latest update.
    finished.sort(key=lambda t: (t.updated_at is not None, -(t.updated_at or NOW).timestamp(), seq[t.id]))
    phases: dict[str, int] = {}
    for t in tasks:
        if t.status in (TaskStatus.RUNNING, TaskStatus.PENDING):
            phases[t.task_type.value] = phases.get(t.task_type.value, 0) + 1
    shown = running + pending[: pipeline.PENDING_SHOWN] + finished[: pipeline.RECENT_SHOWN]
    return shown, phases


@st.composite
def task_lists(draw: st.DrawFn) -> list[AgentTaskRecord]:
    """Up to 40 tasks with many ties in created_at and updated_at, some never updated or started."""
    count = draw(st.integers(0, 40))
    tasks = []
    for n in range(count):
        status = draw(st.sampled_from(TaskStatus))
        created = T0_AWARE + timedelta(seconds=draw(st.integers(0, 5)) * 300)
        minutes = draw(st.none() | st.integers(0, 5))
        updated = None if minutes is None else created + timedelta(minutes=minutes)
        started = draw(st.none() | st.just(created))
        tasks.append(
            task(
                n,
                status=status,
                task_type=draw(st.sampled_from(TaskType)),
                created_at=created,
                updated_at=updated,
                started_at=started,
                output=draw(st.sampled_from([None, "", "done"])),
            )
        )
    return tasks


METRICS = st.none() | st.fixed_dictionaries({"total": st.integers(0, 20), "rate": st.floats(0, 1)})


@given(tasks=task_lists(), metrics=METRICS)
def test_the_postgres_selection_gives_the_payload_of_every_task(
    tasks: list[AgentTaskRecord], metrics: dict[str, Any] | None
) -> None:
    shown, phases = postgres_selection(tasks)
    assert pipeline_status(shown, NOW, metrics, running_by_phase=phases) == pipeline_status(tasks, NOW, metrics)


def test_the_payload_of_a_known_set_of_tasks() -> None:
    tasks = [
        task(1, status=TaskStatus.PENDING, task_type=TaskType.SPEC),
        task(2, status=TaskStatus.FAILED, started_at=T0_AWARE, updated_at=T0_AWARE + timedelta(seconds=30)),
        task(3, status=TaskStatus.COMPLETED, output="ok", updated_at=T0_AWARE + timedelta(seconds=40)),
        task(4, status=TaskStatus.COMPLETED, task_type=TaskType.HEAL),
    ]
    status = pipeline_status(tasks, NOW, {"total": 10, "rate": 0.5})

    assert status["running"] == []
    assert [p["id"] for p in status["pending"]] == [tasks[0].id]
    assert status["pending"][0]["wait_seconds"] == 3599
    # Never updated ("None") first, then the latest update: the API's sort on ISO text, reversed.
    assert [c["id"] for c in status["recent_completed"]] == [tasks[3].id, tasks[2].id, tasks[1].id]
    assert status["recent_completed"][2]["duration_seconds"] == 30
    assert status["running_by_phase"] == {"spec": 1, "impl": 0, "test": 0, "review": 0}
    assert status["latest_request"]["task_id"] == tasks[3].id
    assert status["latest_response"] == {
        "task_id": tasks[3].id,
        "status": TaskStatus.COMPLETED,
        "output_preview": "",
        "output_len": 0,
    }
    assert status["attention"] == {
        "stuck": True,
        "repeated_failures": False,
        "output_empty": True,
        "executor_fail": True,
        "low_success_rate": True,
        "flags": ["stuck", "output_empty", "executor_fail", "low_success_rate"],
    }


def test_counts_given_by_the_store_replace_the_counts_of_the_tasks_passed() -> None:
    status = pipeline_status([task(1)], NOW, running_by_phase={"impl": 7, "review": 2, "heal": 5})
    assert status["running_by_phase"] == {"spec": 0, "impl": 7, "test": 0, "review": 2}


def test_unusable_metrics_leave_the_success_rate_flag_off() -> None:
    status = pipeline_status([], NOW, {"total": "many", "rate": object()})
    assert status["attention"]["low_success_rate"] is False
