"""The dead-letter file: durable, exact, listable, removable atomically, torn records set aside."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from coherence_sql.cutover.deadletters import DeadLetterFile
from coherence_sql.cutover.journal import WriteJournal
from coherence_sql.errors import JournalError
from coherence_sql.models import AgentTaskRecord, TaskStatus, TaskType

TASK = AgentTaskRecord(
    id="task_1",
    direction="d",
    task_type=TaskType.SPEC,
    model="m",
    command="c",
    created_at=datetime(2026, 2, 15, tzinfo=UTC),
)
CONTRIBUTION = {
    "contributor_id": "{0123456789abcdef0123456789abcdef}",
    "asset_id": UUID(int=2),
    "cost_amount": Decimal("100.10"),
    "coherence_score": Decimal("0.13"),
    "metadata": None,
}


def test_the_journal_keeps_its_dead_letters_beside_it(tmp_path: Path) -> None:
    journal = WriteJournal(tmp_path / "write-journal.jsonl")
    assert journal.dead_letters.path == tmp_path / "write-journal.jsonl.dead-letters"
    assert journal.dead_letters.count() == 0
    assert journal.dead_letters.read() == []


def test_dead_letters_read_back_exactly_with_their_error_and_a_stable_id(tmp_path: Path) -> None:
    letters = DeadLetterFile(tmp_path / "j.dead-letters")
    first = letters.append("graph", "create_contribution", CONTRIBUTION, "invalid: score out of range \ud800")
    second = letters.append("tasks", "create_task", {"task": TASK}, "duplicate key")
    again = DeadLetterFile(tmp_path / "j.dead-letters").read()  # another process, later
    assert [letter.id for letter in again] == [first.id, second.id]
    assert len({first.id, second.id}) == 2
    assert again[0] == first
    assert again[0].kwargs == CONTRIBUTION
    assert type(again[0].kwargs["coherence_score"]) is Decimal
    assert str(again[0].kwargs["coherence_score"]) == "0.13"
    assert again[0].error == "invalid: score out of range \ud800"
    assert again[1].kwargs["task"] == TASK
    assert (again[1].store, again[1].op) == ("tasks", "create_task")
    assert again[1].recorded_at.startswith("20")
    assert letters.count() == 2


def test_remove_rewrites_the_file_without_the_ones_given(tmp_path: Path) -> None:
    letters = DeadLetterFile(tmp_path / "j.dead-letters")
    ids = [
        letters.append("tasks", "update_task", {"task_id": f"t{i}", "status": TaskStatus.FAILED}, "e").id
        for i in range(4)
    ]
    inode = os.stat(letters.path).st_ino
    assert letters.remove([ids[1], ids[3], "no-such-id"]) == 2
    assert [letter.id for letter in letters.read()] == [ids[0], ids[2]]
    assert os.stat(letters.path).st_ino != inode  # replaced whole, never edited in place
    assert not letters.path.with_name(letters.path.name + ".tmp").exists()
    assert letters.remove([]) == 0
    letters.append("tasks", "clear", {}, "e")
    assert letters.count() == 3


def test_a_torn_dead_letter_is_set_aside_and_the_rest_stay_readable(tmp_path: Path) -> None:
    letters = DeadLetterFile(tmp_path / "j.dead-letters")
    kept = letters.append("tasks", "create_task", {"task": TASK}, "e1")
    letters.append("tasks", "create_task", {"task": TASK}, "e2")
    data = letters.path.read_bytes()
    letters.path.write_bytes(data[:-30])  # the second one cut off mid-write
    later = letters.append("tasks", "clear", {}, "e3")
    assert [letter.id for letter in letters.read()] == [kept.id, later.id]
    [aside] = letters.set_aside_records()
    assert aside.reason == "torn tail: the record was cut off while being written"
    assert letters.set_aside.path == tmp_path / "j.dead-letters.set-aside"


def test_a_corrupt_dead_letter_in_the_middle_is_moved_aside_on_read(tmp_path: Path) -> None:
    letters = DeadLetterFile(tmp_path / "j.dead-letters")
    ids = [letters.append("tasks", "clear", {}, f"e{i}").id for i in range(3)]
    lines = letters.path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"e1", b"E1")
    letters.path.write_bytes(b"\n".join(lines))
    assert letters.count() == 2
    assert [letter.id for letter in letters.read()] == [ids[0], ids[2]]
    assert [r.reason for r in letters.set_aside_records()] == ["checksum mismatch"]
    assert letters.read()[1].id == ids[2]
    assert letters.set_aside_count() == 1  # moved once, not again on every read


def test_a_dead_letter_the_codec_cannot_keep_is_refused_when_written(tmp_path: Path) -> None:
    letters = DeadLetterFile(tmp_path / "j.dead-letters")
    with pytest.raises(JournalError, match=r"type builtins.object cannot be journaled"):
        letters.append("graph", "create_contribution", {**CONTRIBUTION, "metadata": {"x": object()}}, "e")
    with pytest.raises(JournalError, match=r"is not a write"):
        letters.append("nowhere", "clear", {}, "e")
    assert letters.count() == 0
