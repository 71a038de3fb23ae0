"""The agent-runners check can fail: a lost update, a double claim and a task never claimed are
each found and named (on the in-memory stores: the check reads whatever store it is given)."""

from __future__ import annotations

from coherence_sql.loadtest.runners import check_outcome, run_agent_runners
from coherence_sql.models import TaskStatus
from coherence_sql.stores.memory import MemoryAgentTaskStore


async def test_runners_on_a_correct_store_lose_nothing_and_claim_each_task_once() -> None:
    store = MemoryAgentTaskStore()
    report = await run_agent_runners(store, runners=8, task_count=50, updates_per_task=2, run_tag="ok")
    await check_outcome(report, store)
    assert (report.tasks_created, report.claims, report.updates) == (50, 50, 150)
    assert report.correct, report.as_dict()["problems"]
    assert report.as_dict()["lost_updates"] == 0


async def test_an_overwritten_update_is_reported_as_lost() -> None:
    store = MemoryAgentTaskStore()
    report = await run_agent_runners(store, runners=4, task_count=10, updates_per_task=1, run_tag="lost")
    victim = sorted(report.written)[0]
    await store.update_task(victim, status=TaskStatus.RUNNING, output="someone else's write")
    await check_outcome(report, store)
    assert not report.correct
    assert len(report.lost_updates) == 1
    assert report.lost_updates[0].startswith(f"{victim}: wrote (<TaskStatus.COMPLETED")
    assert "someone else's write" in report.lost_updates[0]


async def test_a_task_handed_out_twice_and_a_task_never_claimed_are_reported() -> None:
    store = MemoryAgentTaskStore()
    report = await run_agent_runners(store, runners=2, task_count=4, updates_per_task=0, run_tag="dbl")
    first = sorted(report.handed)[0]
    report.handed[first].append("runner-intruder")
    report.created.append("task_never_made")
    await check_outcome(report, store)
    assert report.double_claims == [f"{first} handed to 2 claims: {report.handed[first][0]}, runner-intruder"]
    assert report.never_claimed == ["task_never_made created but never claimed"]
    assert not report.correct
