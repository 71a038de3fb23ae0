"""The write journal: exact round trips, order, resumable replay, and refusal of bad entries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from coherence_sql.cutover.journal import JournalEntry, WriteJournal, decode, encode
from coherence_sql.errors import DatabaseUnavailableError, JournalError
from coherence_sql.models import AgentTaskRecord, Contributor, ContributorType, TaskStatus, TaskType

CONTRIBUTOR = Contributor(
    id=UUID("00000000-0000-4000-8000-000000000001"),
    type=ContributorType.HUMAN,
    name="Ada",
    email="ada@coherence.dev",
    hourly_rate=Decimal("12.50"),
    created_at=datetime(2026, 2, 15, 10, 30, 0, 123456),
)


def test_a_contribution_write_round_trips_with_exact_types() -> None:
    kwargs = {
        "contributor_id": CONTRIBUTOR.id,
        "asset_id": UUID("00000000-0000-4000-8000-000000000002"),
        "cost_amount": Decimal("100.10"),
        "coherence_score": 0.9,
        "metadata": {"has_tests": True},
        "id": UUID("00000000-0000-4000-8000-000000000003"),
        "timestamp": datetime(2026, 2, 15, 10, 30, 0, 654321),
    }
    entry = decode(encode("graph", "create_contribution", kwargs), "t")
    assert entry.kwargs == kwargs
    assert isinstance(entry.kwargs["cost_amount"], Decimal)
    assert entry.kwargs["timestamp"].tzinfo is None


def test_models_and_aware_times_round_trip() -> None:
    task = AgentTaskRecord(
        id="task_0123456789abcdef",
        direction="write the spec",
        task_type=TaskType.SPEC,
        model="openrouter/free",
        command="aider ...",
        tier="openrouter",
        created_at=datetime(2026, 2, 15, 22, 41, 12, 437396, tzinfo=UTC),
    )
    entry = decode(encode("tasks", "create_task", {"task": task}), "t")
    assert entry.kwargs["task"] == task
    assert entry.kwargs["task"].created_at.tzinfo is not None
    update = decode(
        encode(
            "tasks",
            "update_task",
            {"task_id": task.id, "status": TaskStatus.RUNNING, "now": datetime(2026, 2, 16, tzinfo=UTC)},
        ),
        "t",
    )
    assert update.kwargs["status"] is TaskStatus.RUNNING
    # Exactly the arguments given: no defaults filled in (the method supplies them at replay).
    assert set(update.kwargs) == {"task_id", "status", "now"}


def test_an_unknown_operation_is_refused_when_written() -> None:
    with pytest.raises(JournalError, match=r"graph.drop_everything is not a store method"):
        encode("graph", "drop_everything", {})


def test_arguments_the_method_does_not_take_are_refused_when_written() -> None:
    with pytest.raises(JournalError, match=r"graph.add_dependency does not take these arguments"):
        encode("graph", "add_dependency", {"from_eco": "npm"})
    with pytest.raises(JournalError, match=r"tasks.clear does not take these arguments"):
        encode("tasks", "clear", {"everything": True})


def test_a_corrupt_line_is_refused_naming_where() -> None:
    line = encode("graph", "create_contributor", {"contributor": CONTRIBUTOR})
    with pytest.raises(JournalError, match=r"j.jsonl:2: unreadable entry: checksum mismatch"):
        decode(line.replace("Ada", "Ava"), "j.jsonl:2")
    with pytest.raises(JournalError, match=r"j.jsonl:3: unreadable entry: length mismatch"):
        decode(line[:-5], "j.jsonl:3")
    with pytest.raises(JournalError, match=r"j.jsonl:4: unreadable entry: not text a journal file can hold"):
        decode("\ud800", "j.jsonl:4")


async def test_replay_applies_in_order_and_empties_the_journal(tmp_path: Path) -> None:
    journal = WriteJournal(tmp_path / "j.jsonl")
    for i in range(5):
        journal.append(
            "graph", "add_dependency", {"from_eco": "npm", "from_name": f"a{i}", "to_eco": "npm", "to_name": "b"}
        )
    assert journal.active()
    assert journal.pending() == 5
    seen: list[str] = []

    async def apply(entry: JournalEntry) -> bool:
        seen.append(entry.kwargs["from_name"])
        return entry.kwargs["from_name"] != "a3"

    report = await journal.replay(apply)
    assert seen == ["a0", "a1", "a2", "a3", "a4"]
    assert (report.applied, report.already_applied, report.complete) == (4, 1, True)
    assert not journal.active()
    assert journal.pending() == 0


async def test_an_interrupted_replay_resumes_where_it_stopped(tmp_path: Path) -> None:
    journal = WriteJournal(tmp_path / "j.jsonl")
    for i in range(6):
        journal.append(
            "graph", "add_dependency", {"from_eco": "npm", "from_name": f"a{i}", "to_eco": "npm", "to_name": "b"}
        )
    seen: list[str] = []

    async def down_at_a3(entry: JournalEntry) -> bool:
        if entry.kwargs["from_name"] == "a3":
            raise DatabaseUnavailableError("connection refused")
        seen.append(entry.kwargs["from_name"])
        return True

    first = await journal.replay(down_at_a3)
    assert not first.complete
    assert first.remaining == 3
    assert "connection refused" in (first.error or "")
    # Writes made meanwhile queue behind the unfinished replay.
    journal.append("graph", "add_dependency", {"from_eco": "npm", "from_name": "late", "to_eco": "npm", "to_name": "b"})
    assert journal.pending() == 4

    async def up(entry: JournalEntry) -> bool:
        seen.append(entry.kwargs["from_name"])
        return True

    second = await journal.replay(up)
    assert second.complete
    assert seen == ["a0", "a1", "a2", "a3", "a4", "a5", "late"]
    assert not journal.active()


async def test_a_second_replay_while_one_runs_applies_nothing(tmp_path: Path) -> None:
    journal = WriteJournal(tmp_path / "j.jsonl")
    for i in range(3):
        journal.append(
            "graph", "add_dependency", {"from_eco": "npm", "from_name": f"a{i}", "to_eco": "npm", "to_name": "b"}
        )
    applied: list[str] = []
    inside = asyncio.Event()
    finish = asyncio.Event()

    async def slow(entry: JournalEntry) -> bool:
        inside.set()
        await finish.wait()
        applied.append(entry.kwargs["from_name"])
        return True

    first = asyncio.create_task(journal.replay(slow))
    await inside.wait()
    second = await journal.replay(slow)
    assert second.error == "another replay of this journal is under way"
    assert second.applied == 0
    finish.set()
    report = await first
    assert report.complete
    assert applied == ["a0", "a1", "a2"]
