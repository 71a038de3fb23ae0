"""The agent pipeline's status payload (client-contract §3.5), written once for both task stores.

`pipeline_status` is a pure function over task records: the in-memory store passes every task, the
PostgreSQL store only those the payload can show (chosen in SQL, in insertion order, by one
statement: queries/agent_tasks.sql `pipeline_status`) together with its per-phase counts over all
tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from coherence_sql.models import AgentTaskRecord, TaskStatus

# How many tasks of each list the payload shows (the API's slices).
RUNNING_SHOWN: Final = 10
PENDING_SHOWN: Final = 20
RECENT_SHOWN: Final = 10
PHASES: Final = ("spec", "impl", "test", "review")
_STUCK_AFTER_S: Final = 600
_LOW_SUCCESS_MIN_TASKS: Final = 10
_LOW_SUCCESS_RATE: Final = 0.8


def pipeline_status(
    tasks: Iterable[AgentTaskRecord],
    now: datetime,
    metrics: Mapping[str, Any] | None = None,
    *,
    running_by_phase: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The API's get_pipeline_status payload at `now` (aware UTC).

    `tasks` in insertion order: every task, or at least the first RUNNING_SHOWN running ones in
    insertion order, the PENDING_SHOWN oldest pending and the RECENT_SHOWN most recently updated
    finished ones; then `running_by_phase` must count running plus pending tasks of all tasks by
    task type (without it they are counted from `tasks`).
    """
    by_id: dict[str, AgentTaskRecord] = {}
    running: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    finished: list[dict[str, Any]] = []
    for t in tasks:
        by_id[t.id] = t
        item = _item(t, now)
        status = t.status.value
        (running if status == "running" else pending if status == "pending" else finished).append(item)
    # Sorted by ISO strings as the API does ("None" sorts after every date); stable, so ties keep insertion.
    finished.sort(key=lambda x: x["updated_at"] or x["created_at"], reverse=True)
    pending.sort(key=lambda x: x["created_at"])
    recent = [by_id[item["id"]] for item in finished[:RECENT_SHOWN]]

    latest_request: dict[str, Any] | None = None
    latest_response: dict[str, Any] | None = None
    if running:
        first = by_id[running[0]["id"]]
        latest_request = {
            "task_id": first.id,
            "status": "running",
            "direction": first.direction,
            "prompt_preview": first.command[:500],
        }
    if recent:
        last = recent[0]
        if latest_request is None:
            latest_request = {
                "task_id": last.id,
                "status": last.status,
                "direction": last.direction,
                "prompt_preview": last.command[:500],
            }
        out = last.output or ""
        latest_response = {
            "task_id": last.id,
            "status": last.status,
            "output_preview": out[:2000],
            "output_len": len(out),
        }

    # The oldest pending task waits longest, and the list is oldest first.
    stuck = bool(pending) and not running and pending[0]["wait_seconds"] > _STUCK_AFTER_S
    attention: dict[str, Any] = {
        "stuck": stuck,
        "repeated_failures": len(recent) >= 3 and all(t.status == TaskStatus.FAILED for t in recent[:3]),
        "output_empty": any(not t.output and t.status == TaskStatus.COMPLETED for t in recent[:5]),
        "executor_fail": any(not t.output and t.status == TaskStatus.FAILED for t in recent[:5]),
        "low_success_rate": _low_success_rate(metrics),
    }
    attention["flags"] = [name for name, on in attention.items() if on]

    if running_by_phase is None:
        running_by_phase = _count_by_phase(by_id[item["id"]] for item in running + pending)
    return {
        "running": running[:RUNNING_SHOWN],
        "pending": pending[:PENDING_SHOWN],
        "running_by_phase": {phase: running_by_phase.get(phase, 0) for phase in PHASES},
        "recent_completed": [
            {**item, "output_len": len(t.output or "")} for item, t in zip(finished[:RECENT_SHOWN], recent, strict=True)
        ],
        "latest_request": latest_request,
        "latest_response": latest_response,
        "attention": attention,
    }


def _item(t: AgentTaskRecord, now: datetime) -> dict[str, Any]:
    status = t.status.value
    return {
        "id": t.id,
        "task_type": t.task_type,
        "model": t.model,
        "direction": t.direction[:100],
        "created_at": t.created_at.isoformat(),
        "updated_at": str(None) if t.updated_at is None else t.updated_at.isoformat(),  # the API's "None"
        "wait_seconds": int((now - t.created_at).total_seconds()) if status == "pending" else None,
        "running_seconds": (
            int((now - t.started_at).total_seconds()) if status == "running" and t.started_at else None
        ),
        "duration_seconds": (
            int((t.updated_at - t.started_at).total_seconds())
            if status in ("completed", "failed") and t.started_at and t.updated_at
            else None
        ),
    }


def _low_success_rate(metrics: Mapping[str, Any] | None) -> bool:
    if metrics is None:
        return False
    try:  # as the API: unusable metrics leave the flag off
        low: bool = (metrics.get("total", 0) or 0) >= _LOW_SUCCESS_MIN_TASKS and float(
            metrics.get("rate", 0) or 0
        ) < _LOW_SUCCESS_RATE
        return low
    except (TypeError, ValueError, AttributeError):
        return False


def _count_by_phase(tasks: Iterable[AgentTaskRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t.task_type.value] = counts.get(t.task_type.value, 0) + 1
    return counts
