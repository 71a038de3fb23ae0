"""The journal's state as the hot path asks it (cutover/journal_watch.py): this process's appends
and any drain are seen at once, another process's append within the stated bound."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coherence_sql.cutover.journal import WriteJournal
from coherence_sql.cutover.journal_watch import RECHECK_S, JournalWatch
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.cutover.stores import CutoverCore
from coherence_sql.errors import JournalError

EDGE = {"from_eco": "npm", "from_name": "a", "to_eco": "npm", "to_name": "b"}

APPEND_ELSEWHERE = """
import sys
from pathlib import Path
from coherence_sql.cutover.journal import WriteJournal
WriteJournal(Path(sys.argv[1])).append("graph", "add_dependency", {
    "from_eco": "npm", "from_name": "other", "to_eco": "npm", "to_name": "process"})
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def applied(_: object) -> bool:
    return True


def test_an_append_by_another_process_is_seen_within_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    watch = JournalWatch(WriteJournal(path))
    assert watch.active() is False
    subprocess.run([sys.executable, "-c", APPEND_ELSEWHERE, str(path)], check=True, timeout=60)
    assert WriteJournal(path).pending() == 1
    time.sleep(RECHECK_S)  # the bound, no more
    assert watch.active() is True


def test_between_looks_an_empty_journal_is_not_looked_at(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    clock = Clock()
    watch = JournalWatch(WriteJournal(path), recheck_s=0.5, clock=clock)
    assert watch.active() is False
    WriteJournal(path).append("graph", "add_dependency", EDGE)  # another object: as another process
    clock.now += 0.499
    assert watch.active() is False  # the window the bound allows
    clock.now += 0.001
    assert watch.active() is True


def test_this_process_appends_and_any_drain_are_seen_at_once(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = WriteJournal(path)
    clock = Clock()  # never moves: only exact looks can change the answer
    watch = JournalWatch(journal, recheck_s=3600, clock=clock)
    assert watch.active() is False
    journal.append("graph", "add_dependency", EDGE)
    assert watch.active() is True
    # Drained by another object (as `coherence-sql reconcile` in another process would).
    report = asyncio.run(WriteJournal(path).replay(applied))
    assert report.applied == 1
    assert watch.active() is False
    journal.append("graph", "add_dependency", EDGE)
    assert watch.active() is True


def test_a_journal_that_cannot_be_read_raises_on_every_question(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    watch = JournalWatch(WriteJournal(tmp_path / "a-file" / "j.jsonl"), recheck_s=3600, clock=Clock())
    for _ in range(2):  # never cached as empty
        with pytest.raises(JournalError, match="could not be read"):
            watch.active()


def test_the_cut_over_core_queues_behind_its_own_journal_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    settings = CutoverSettings(dual_write=True, journal_path=path, database_url="postgresql://unused@127.0.0.1/x")
    core = CutoverCore(settings, WriteJournal(path))
    assert core.journal_pending() is False
    core.journal_write("graph", "add_dependency", dict(EDGE), None)
    assert core.journal_pending() is True
    assert core.postgres_behind() is True
