"""The agent task store, for every store (store-level ports of the API's test_agent.py, §4.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coherence_sql.errors import DuplicateError, InvalidValueError
from coherence_sql.models import TaskStatus, TaskType
from tests.stores.conftest import Stores
from tests.stores.records import T0_AWARE, task

NOW = T0_AWARE + timedelta(hours=1)

# -- create ---------------------------------------------------------------------------------------


async def test_created_task_is_stored_as_given(store: Stores) -> None:
    record = task(1, context={"monitor_condition": "api_down", "monitor_issue_id": "issue-7"})
    created = await store.tasks.create_task(record)
    assert created == record
    found = await store.tasks.get_task(record.id)
    assert found == record
    assert found.status == TaskStatus.PENDING
    assert found.context == {"monitor_condition": "api_down", "monitor_issue_id": "issue-7"}
    assert found.created_at.tzinfo is not None


async def test_naive_created_at_is_taken_as_utc(store: Stores) -> None:
    await store.tasks.create_task(task(1, created_at=datetime(2026, 2, 15, 12, 0)))
    found = await store.tasks.get_task(task(1).id)
    assert found.created_at == datetime(2026, 2, 15, 12, 0, tzinfo=UTC)


async def test_direction_of_5000_characters_is_accepted(store: Stores) -> None:
    await store.tasks.create_task(task(1, direction="x" * 5000))
    assert len((await store.tasks.get_task(task(1).id)).direction) == 5000


@pytest.mark.parametrize(
    ("direction", "message"), [("x" * 5001, "at most 5000"), ("   ", "must not be empty"), ("", "must not be empty")]
)
async def test_bad_direction_is_rejected(store: Stores, direction: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        await store.tasks.create_task(task(1, direction=direction))
    assert await store.tasks.get_task_count() == {"total": 0, "by_status": {}}


async def test_task_id_reuse_is_a_duplicate(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    with pytest.raises(DuplicateError, match="an agent task with this id already exists"):
        await store.tasks.create_task(task(1, direction="again"))
    assert (await store.tasks.get_task(task(1).id)).direction == "Do thing 1"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": ""}, "must not be empty"),
        ({"id": "t" * 51}, "longer than 50"),
        ({"progress_pct": 101}, "progress_pct"),
        ({"context": {"bad": float("nan")}}, "context"),
    ],
)
async def test_bad_task_record_is_rejected(store: Stores, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        await store.tasks.create_task(task(1, **fields))
    assert (await store.tasks.get_task_count())["total"] == 0


async def test_returned_task_is_a_copy(store: Stores) -> None:
    created = await store.tasks.create_task(task(1, context={"tags": ["a"]}))
    created.context["tags"].append("mutated")
    created.status = TaskStatus.FAILED
    found = await store.tasks.get_task(task(1).id)
    assert (found.status, found.context) == (TaskStatus.PENDING, {"tags": ["a"]})


async def test_unknown_task_is_none(store: Stores) -> None:
    assert await store.tasks.get_task("task_unknown") is None


# -- list -----------------------------------------------------------------------------------------


async def test_empty_store_lists_nothing(store: Stores) -> None:
    assert await store.tasks.list_tasks() == ([], 0)


async def test_list_filters_by_status_and_type(store: Stores) -> None:
    await store.tasks.create_task(task(1, task_type=TaskType.SPEC))
    await store.tasks.create_task(task(2, task_type=TaskType.IMPL, status=TaskStatus.RUNNING))
    await store.tasks.create_task(task(3, task_type=TaskType.IMPL))
    by_status, total = await store.tasks.list_tasks(status=TaskStatus.PENDING)
    assert ([t.id for t in by_status], total) == ([task(3).id, task(1).id], 2)
    by_type, total = await store.tasks.list_tasks(task_type=TaskType.IMPL)
    assert ([t.id for t in by_type], total) == ([task(3).id, task(2).id], 2)
    both, total = await store.tasks.list_tasks(status="pending", task_type="impl")
    assert ([t.id for t in both], total) == ([task(3).id], 1)


async def test_list_with_invalid_status_is_rejected(store: Stores) -> None:
    with pytest.raises(InvalidValueError, match="status must be one of"):
        await store.tasks.list_tasks(status="invalid")


@pytest.mark.parametrize(("limit", "offset"), [(-1, 0), (1, -1), ("5", 0)])
async def test_list_with_bad_paging_is_rejected(store: Stores, limit: Any, offset: Any) -> None:
    with pytest.raises(InvalidValueError, match="must"):
        await store.tasks.list_tasks(limit=limit, offset=offset)


async def test_list_offset_past_the_end_is_empty_with_total_unchanged(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    await store.tasks.create_task(task(2))
    assert await store.tasks.list_tasks(offset=999) == ([], 2)


async def test_list_limit_one_gives_one_item_and_the_full_total(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    await store.tasks.create_task(task(2))
    items, total = await store.tasks.list_tasks(limit=1)
    assert (len(items), total) == (1, 2)


async def test_list_is_newest_first_and_pages_consistently(store: Stores) -> None:
    for n in range(10):
        await store.tasks.create_task(task(n))
    page, total = await store.tasks.list_tasks(limit=5)
    assert [t.id for t in page] == [task(n).id for n in (9, 8, 7, 6, 5)]
    assert total == 10
    ten, _ = await store.tasks.list_tasks(limit=10)
    second, _ = await store.tasks.list_tasks(offset=5, limit=5)
    assert [t.id for t in second] == [t.id for t in ten[5:10]]
    assert await store.tasks.list_tasks(limit=0) == ([], 10)


async def test_list_total_does_not_depend_on_paging(store: Stores) -> None:
    for n in range(7):
        await store.tasks.create_task(task(n))
    totals = {
        (await store.tasks.list_tasks(limit=limit, offset=offset))[1] for limit, offset in [(1, 0), (3, 6), (20, 0)]
    }
    assert totals == {7}


async def test_list_default_page_is_twenty(store: Stores) -> None:
    for n in range(25):
        await store.tasks.create_task(task(n))
    items, total = await store.tasks.list_tasks()
    assert (len(items), total) == (20, 25)


async def test_list_ties_keep_insertion_order(store: Stores) -> None:
    for n in (3, 1, 2):
        await store.tasks.create_task(task(n, created_at=T0_AWARE))
    items, _ = await store.tasks.list_tasks()
    assert [t.id for t in items] == [task(3).id, task(1).id, task(2).id]


# -- update ---------------------------------------------------------------------------------------


async def test_update_of_unknown_task_is_none(store: Stores) -> None:
    assert await store.tasks.update_task("task_unknown", status=TaskStatus.RUNNING, now=NOW) is None


async def test_update_round_trips_every_field(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    updated = await store.tasks.update_task(
        task(1).id,
        output="done",
        progress_pct=40,
        current_step="writing",
        decision_prompt="Ship it?",
        decision="later",
        now=NOW,
    )
    found = await store.tasks.get_task(task(1).id)
    assert found == updated
    assert (found.output, found.progress_pct, found.current_step, found.decision_prompt, found.decision) == (
        "done",
        40,
        "writing",
        "Ship it?",
        "later",
    )
    assert found.updated_at == NOW


async def test_completed_with_output_sets_updated_at(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    updated = await store.tasks.update_task(task(1).id, status=TaskStatus.COMPLETED, output="ok", now=NOW)
    assert (updated.status, updated.output, updated.updated_at) == (TaskStatus.COMPLETED, "ok", NOW)


async def test_update_without_fields_only_touches_updated_at(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    updated = await store.tasks.update_task(task(1).id, now=NOW)
    assert updated == task(1, updated_at=NOW)


@pytest.mark.parametrize("pct", [0, 100])
async def test_progress_at_the_bounds_is_accepted(store: Stores, pct: int) -> None:
    await store.tasks.create_task(task(1))
    assert (await store.tasks.update_task(task(1).id, progress_pct=pct, now=NOW)).progress_pct == pct


@pytest.mark.parametrize("pct", [-1, 101, 150, "50", 50.0])
async def test_bad_progress_is_rejected_and_nothing_changes(store: Stores, pct: Any) -> None:
    await store.tasks.create_task(task(1))
    with pytest.raises(InvalidValueError, match="progress_pct"):
        await store.tasks.update_task(task(1).id, progress_pct=pct, output="x", now=NOW)
    assert await store.tasks.get_task(task(1).id) == task(1)


async def test_update_with_invalid_status_is_rejected(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    with pytest.raises(InvalidValueError, match="status must be one of"):
        await store.tasks.update_task(task(1).id, status="done", now=NOW)
    assert await store.tasks.get_task(task(1).id) == task(1)


async def test_decision_on_needs_decision_resumes_the_task(store: Stores) -> None:
    await store.tasks.create_task(task(1, status=TaskStatus.NEEDS_DECISION, decision="old"))
    updated = await store.tasks.update_task(task(1).id, decision="yes", now=NOW)
    assert (updated.status, updated.decision) == (TaskStatus.RUNNING, "yes")
    assert updated.started_at is None  # the API does not set started_at on this path


async def test_explicit_status_overrides_the_decision_promotion(store: Stores) -> None:
    await store.tasks.create_task(task(1, status=TaskStatus.NEEDS_DECISION))
    updated = await store.tasks.update_task(task(1).id, decision="no", status=TaskStatus.FAILED, now=NOW)
    assert (updated.status, updated.decision) == (TaskStatus.FAILED, "no")


async def test_first_decision_wins_outside_needs_decision(store: Stores) -> None:
    await store.tasks.create_task(task(1, status=TaskStatus.RUNNING))
    await store.tasks.update_task(task(1).id, decision="first", now=NOW)
    updated = await store.tasks.update_task(task(1).id, decision="second", now=NOW)
    assert (updated.decision, updated.status) == ("first", TaskStatus.RUNNING)


async def test_started_at_is_set_once(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    first = await store.tasks.update_task(task(1).id, status=TaskStatus.RUNNING, now=NOW)
    await store.tasks.update_task(task(1).id, status=TaskStatus.PENDING, now=NOW + timedelta(1))
    again = await store.tasks.update_task(task(1).id, status=TaskStatus.RUNNING, now=NOW + timedelta(2))
    assert first.started_at == again.started_at == NOW
    assert again.updated_at == NOW + timedelta(2)


async def test_any_status_may_follow_any_status(store: Stores) -> None:
    await store.tasks.create_task(task(1, status=TaskStatus.COMPLETED))
    assert (await store.tasks.update_task(task(1).id, status=TaskStatus.PENDING, now=NOW)).status == "pending"
    await store.tasks.update_task(task(1).id, status=TaskStatus.FAILED, now=NOW)
    assert (await store.tasks.update_task(task(1).id, status="running", now=NOW)).status == TaskStatus.RUNNING


async def test_none_leaves_fields_alone(store: Stores) -> None:
    await store.tasks.create_task(task(1, output="kept", current_step="kept step", progress_pct=10))
    updated = await store.tasks.update_task(task(1).id, decision_prompt="new prompt", now=NOW)
    assert (updated.output, updated.current_step, updated.progress_pct) == ("kept", "kept step", 10)


# -- attention, counts, summaries -----------------------------------------------------------------


async def test_attention_lists_needs_decision_and_failed_newest_first(store: Stores) -> None:
    await store.tasks.create_task(task(1, status=TaskStatus.NEEDS_DECISION, decision_prompt="Which?"))
    await store.tasks.create_task(task(2, status=TaskStatus.RUNNING))
    await store.tasks.create_task(task(3, status=TaskStatus.FAILED, output="boom"))
    items, total = await store.tasks.get_attention_tasks()
    assert total == 2
    assert [t.id for t in items] == [task(3).id, task(1).id]
    assert (items[0].output, items[1].decision_prompt) == ("boom", "Which?")
    limited, total = await store.tasks.get_attention_tasks(limit=1)
    assert ([t.id for t in limited], total) == ([task(3).id], 2)


async def test_attention_with_negative_limit_is_rejected(store: Stores) -> None:
    with pytest.raises(InvalidValueError, match="limit"):
        await store.tasks.get_attention_tasks(limit=-1)


async def test_task_count_of_empty_store(store: Stores) -> None:
    assert await store.tasks.get_task_count() == {"total": 0, "by_status": {}}


async def test_task_count_by_status(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    await store.tasks.create_task(task(2, status=TaskStatus.FAILED))
    await store.tasks.create_task(task(3))
    assert await store.tasks.get_task_count() == {"total": 3, "by_status": {"pending": 2, "failed": 1}}


async def test_review_summary_lists_attention_tasks_in_insertion_order(store: Stores) -> None:
    await store.tasks.create_task(task(2, status=TaskStatus.FAILED))
    await store.tasks.create_task(task(1, status=TaskStatus.NEEDS_DECISION))
    await store.tasks.create_task(task(3, status=TaskStatus.COMPLETED))
    summary = await store.tasks.get_review_summary()
    assert summary["total"] == 3
    assert summary["by_status"] == {"failed": 1, "needs_decision": 1, "completed": 1}
    assert [t.id for t in summary["needs_attention"]] == [task(2).id, task(1).id]


async def test_usage_summary_counts_by_model_and_echoes_routing(store: Stores) -> None:
    routing = {"spec": {"model": "openrouter/free", "tier": "openrouter"}}
    assert await store.tasks.get_usage_summary() == {"by_model": {}, "routing": {}}
    await store.tasks.create_task(task(1, model="m1", updated_at=NOW + timedelta(days=5)))
    await store.tasks.create_task(task(2, model="m2"))
    await store.tasks.create_task(task(3, model="m1", status=TaskStatus.FAILED))
    usage = await store.tasks.get_usage_summary(routing)
    assert usage["routing"] == routing
    assert usage["by_model"] == {
        # last_used is the last task iterated (task 3), not the latest time (task 1's updated_at)
        "m1": {"count": 2, "by_status": {"pending": 1, "failed": 1}, "last_used": task(3).created_at.isoformat()},
        "m2": {"count": 1, "by_status": {"pending": 1}, "last_used": task(2).created_at.isoformat()},
    }


# -- pipeline status ------------------------------------------------------------------------------


async def test_pipeline_status_of_empty_store(store: Stores) -> None:
    status = await store.tasks.get_pipeline_status(now_utc=NOW)
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


async def test_pipeline_items_have_the_apis_shape(store: Stores) -> None:
    await store.tasks.create_task(task(1, direction="d" * 150, task_type=TaskType.SPEC))
    status = await store.tasks.get_pipeline_status(now_utc=task(1).created_at + timedelta(seconds=90))
    assert status["pending"] == [
        {
            "id": task(1).id,
            "task_type": TaskType.SPEC,
            "model": "openrouter/free",
            "direction": "d" * 100,
            "created_at": task(1).created_at.isoformat(),
            "updated_at": "None",
            "wait_seconds": 90,
            "running_seconds": None,
            "duration_seconds": None,
        }
    ]
    assert status["running_by_phase"] == {"spec": 1, "impl": 0, "test": 0, "review": 0}


async def test_pipeline_running_phase_counts_skip_heal(store: Stores) -> None:
    await store.tasks.create_task(task(1, task_type=TaskType.HEAL))
    await store.tasks.create_task(task(2, task_type=TaskType.TEST, status=TaskStatus.RUNNING, started_at=T0_AWARE))
    status = await store.tasks.get_pipeline_status(now_utc=NOW)
    assert status["running_by_phase"] == {"spec": 0, "impl": 0, "test": 1, "review": 0}
    assert status["running"][0]["running_seconds"] == 3600
    assert status["latest_request"] == {
        "task_id": task(2).id,
        "status": "running",
        "direction": "Do thing 2",
        "prompt_preview": task(2).command,
    }


async def test_stuck_when_waiting_over_ten_minutes_with_nothing_running(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    start = task(1).created_at
    assert (await store.tasks.get_pipeline_status(now_utc=start + timedelta(seconds=601)))["attention"]["stuck"]
    assert not (await store.tasks.get_pipeline_status(now_utc=start + timedelta(seconds=600)))["attention"]["stuck"]


async def test_not_stuck_when_something_runs_or_nothing_waits(store: Stores) -> None:
    assert not (await store.tasks.get_pipeline_status(now_utc=NOW))["attention"]["stuck"]
    await store.tasks.create_task(task(1))
    await store.tasks.create_task(task(2, status=TaskStatus.RUNNING))
    status = await store.tasks.get_pipeline_status(now_utc=NOW + timedelta(hours=5))
    assert status["attention"]["stuck"] is False


async def test_repeated_failures_when_three_newest_completed_all_failed(store: Stores) -> None:
    await store.tasks.create_task(task(1, status=TaskStatus.COMPLETED, output="ok", updated_at=NOW))
    for n in (2, 3):
        await store.tasks.create_task(task(n, status=TaskStatus.FAILED, output="x", updated_at=NOW + timedelta(n)))
    assert not (await store.tasks.get_pipeline_status(now_utc=NOW))["attention"]["repeated_failures"]
    await store.tasks.create_task(task(4, status=TaskStatus.FAILED, output="x", updated_at=NOW + timedelta(4)))
    status = await store.tasks.get_pipeline_status(now_utc=NOW)
    assert status["attention"]["repeated_failures"] is True
    assert status["attention"]["flags"] == ["repeated_failures"]


async def test_repeated_failures_needs_all_three_failed(store: Stores) -> None:
    for n, st in [(1, TaskStatus.FAILED), (2, TaskStatus.COMPLETED), (3, TaskStatus.FAILED)]:
        await store.tasks.create_task(task(n, status=st, output="x", updated_at=NOW + timedelta(n)))
    assert not (await store.tasks.get_pipeline_status(now_utc=NOW))["attention"]["repeated_failures"]


async def test_recent_completed_newest_first_with_never_updated_first(store: Stores) -> None:
    await store.tasks.create_task(task(1, status=TaskStatus.COMPLETED, output="abc", updated_at=NOW))
    await store.tasks.create_task(task(2, status=TaskStatus.NEEDS_DECISION))  # updated_at "None"
    await store.tasks.create_task(
        task(3, status=TaskStatus.FAILED, started_at=NOW, updated_at=NOW + timedelta(seconds=75))
    )
    status = await store.tasks.get_pipeline_status(now_utc=NOW)
    completed = status["recent_completed"]
    assert [c["id"] for c in completed] == [task(2).id, task(3).id, task(1).id]
    assert [c["output_len"] for c in completed] == [0, 0, 3]
    assert completed[1]["duration_seconds"] == 75
    assert status["latest_request"]["status"] == TaskStatus.NEEDS_DECISION
    assert status["latest_response"] == {
        "task_id": task(2).id,
        "status": TaskStatus.NEEDS_DECISION,
        "output_preview": "",
        "output_len": 0,
    }
    assert status["attention"]["executor_fail"] is True
    assert status["attention"]["output_empty"] is False


async def test_output_empty_flags_a_completed_task_without_output(store: Stores) -> None:
    await store.tasks.create_task(task(1, status=TaskStatus.COMPLETED, updated_at=NOW))
    status = await store.tasks.get_pipeline_status(now_utc=NOW)
    assert status["attention"]["output_empty"] is True
    assert status["attention"]["flags"] == ["output_empty"]


async def test_pending_sorted_oldest_first_and_capped_at_twenty(store: Stores) -> None:
    for n in range(25, 0, -1):
        await store.tasks.create_task(task(n))
    pending = (await store.tasks.get_pipeline_status(now_utc=NOW))["pending"]
    assert [p["id"] for p in pending] == [task(n).id for n in range(1, 21)]


async def test_running_is_first_ten_in_insertion_order(store: Stores) -> None:
    for n in range(12, 0, -1):
        await store.tasks.create_task(task(n, status=TaskStatus.RUNNING))
    running = (await store.tasks.get_pipeline_status(now_utc=NOW))["running"]
    assert [r["id"] for r in running] == [task(n).id for n in range(12, 2, -1)]


@pytest.mark.parametrize(
    ("metrics", "flag"),
    [
        (None, False),
        ({"total": 10, "rate": 0.5}, True),
        ({"total": 9, "rate": 0.1}, False),
        ({"total": 50, "rate": 0.8}, False),
        ({"total": "many", "rate": 0.1}, False),
    ],
)
async def test_low_success_rate_comes_from_metrics(store: Stores, metrics: Any, flag: bool) -> None:
    status = await store.tasks.get_pipeline_status(now_utc=NOW, metrics=metrics)
    assert status["attention"]["low_success_rate"] is flag
    assert ("low_success_rate" in status["attention"]["flags"]) is flag


# -- claims ---------------------------------------------------------------------------------------


async def test_claim_takes_the_oldest_pending_task_ties_by_insertion(store: Stores) -> None:
    await store.tasks.create_task(task(5, created_at=T0_AWARE + timedelta(seconds=9)))
    await store.tasks.create_task(task(2, created_at=T0_AWARE))
    await store.tasks.create_task(task(1, created_at=T0_AWARE))
    await store.tasks.create_task(task(0, status=TaskStatus.RUNNING, created_at=T0_AWARE - timedelta(1)))
    claimed = [await store.tasks.claim_next_task("w1", now=NOW) for _ in range(4)]
    assert [c.id if c else None for c in claimed] == [task(2).id, task(1).id, task(5).id, None]


async def test_claim_marks_the_task_running_for_the_worker(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    claimed = await store.tasks.claim_next_task("worker-a", now=NOW)
    assert claimed == await store.tasks.get_task(task(1).id)
    assert (claimed.status, claimed.claimed_by, claimed.claimed_at, claimed.started_at, claimed.updated_at) == (
        TaskStatus.RUNNING,
        "worker-a",
        NOW,
        NOW,
        NOW,
    )


async def test_claim_keeps_an_earlier_started_at(store: Stores) -> None:
    await store.tasks.create_task(task(1, started_at=T0_AWARE))
    assert (await store.tasks.claim_next_task("w", now=NOW)).started_at == T0_AWARE


async def test_claim_task_claims_that_pending_task_only(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    await store.tasks.create_task(task(2))
    claimed = await store.tasks.claim_task(task(2).id, "w", now=NOW)
    assert (claimed.id, claimed.claimed_by) == (task(2).id, "w")
    assert await store.tasks.claim_task(task(2).id, "other", now=NOW) is None
    assert await store.tasks.claim_task("task_unknown", "w", now=NOW) is None
    assert (await store.tasks.get_task(task(2).id)).claimed_by == "w"


async def test_claim_with_empty_worker_is_rejected(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    with pytest.raises(InvalidValueError, match="worker"):
        await store.tasks.claim_next_task("", now=NOW)
    assert (await store.tasks.get_task(task(1).id)).status == TaskStatus.PENDING


async def test_clear_removes_every_task(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    await store.tasks.clear()
    assert await store.tasks.list_tasks() == ([], 0)
    assert await store.tasks.get_task(task(1).id) is None
