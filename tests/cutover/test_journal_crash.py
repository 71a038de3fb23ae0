"""The journal under real SIGKILLs: writers and replayers killed -9 at random moments, many times.

Writers are forked children appending in a tight loop (big records, so a kill often lands inside
a write and tears it); replayers are forked children draining the journal. After each kill the
journal must hold every complete record in order, a torn tail must end up in the set-aside file
(never deleted), and the next append must work; a killed replay must resume without skipping an
entry and without applying any entry twice except the one in flight when it was killed.
"""

from __future__ import annotations

import asyncio
import os
import random
import select
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coherence_sql.cutover.journal import JournalEntry, WriteJournal, entry_from_record
from coherence_sql.cutover.journal_frames import Record, Unreadable, read_slots

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs directory when there is one: fsync is free there, so kills land inside writes."""
    if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
        with tempfile.TemporaryDirectory(dir="/dev/shm") as directory:
            yield Path(directory)
    else:
        yield tmp_path


# In a forked child: the pipe on which it tells the parent its work has begun.
_ready_fd: int | None = None


def ready() -> None:
    """In a child: say the work has begun, so the parent's kill timer starts now (a loaded machine
    can take longer to schedule a fresh child than the whole random delay)."""
    global _ready_fd
    if _ready_fd is not None:
        os.write(_ready_fd, b"!")
        os.close(_ready_fd)
        _ready_fd = None


Child = tuple[int, int]  # pid, and the read end of its "ready" pipe


def in_child(work: Callable[[], None]) -> Child:
    """Run `work` in a forked child that never returns into the test."""
    global _ready_fd
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_fd)
        _ready_fd = write_fd
        code = 1
        try:
            work()
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def kill_after(child: Child, seconds: float) -> bool:
    """SIGKILL the child `seconds` after it said it began (or ended) unless it has exited by then;
    whether it was killed."""
    pid, ready_fd = child
    began, _, _ = select.select([ready_fd], [], [], 30.0)
    os.close(ready_fd)
    assert began, "the child never began its work"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return False
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == -signal.SIGKILL


def edge(name: str, padding: str) -> dict[str, Any]:
    return {"from_eco": "npm", "from_name": name, "to_eco": "npm", "to_name": padding}


def write_forever(journal: WriteJournal, round_number: int, padding: str) -> Callable[[], None]:
    """Append r<round>-0, r<round>-1, ... until killed."""

    def work() -> None:
        ready()
        index = 0
        while True:
            journal.append("graph", "add_dependency", edge(f"r{round_number}-{index}", padding))
            index += 1

    return work


def entries(path: Path) -> tuple[list[JournalEntry], bytes | None]:
    """The journal's readable entries, and its torn tail (if any); anything else unreadable fails."""
    slots = read_slots(path, "journal")
    tail = None
    if slots and isinstance(slots[-1], Unreadable):
        tail = slots.pop().raw
    assert all(isinstance(slot, Record) for slot in slots), [s for s in slots if isinstance(s, Unreadable)]
    return [entry_from_record(slot) for slot in slots if isinstance(slot, Record)], tail


def test_writers_killed_mid_append_lose_no_complete_record(fast_dir: Path) -> None:
    journal = WriteJournal(fast_dir / "write-journal.jsonl")
    rng = random.Random()
    written: list[str] = []  # every complete record seen so far, in order
    replayed: list[str] = []
    fragments: list[bytes] = []
    rounds = torn = 0

    async def apply(entry: JournalEntry) -> bool:
        replayed.append(entry.kwargs["from_name"])
        return True

    started = time.monotonic()
    while rounds < 30 or (torn < 3 and rounds < 200 and time.monotonic() - started < 8):
        padding = "x" * rng.choice([10, 100_000, 400_000, 1_000_000])
        assert kill_after(in_child(write_forever(journal, rounds, padding)), rng.uniform(0.002, 0.03))
        found, tail = entries(journal.path)
        names = [entry.kwargs["from_name"] for entry in found]
        # Everything complete before stays, in order; this round added a run r<n>-0, r<n>-1, ...
        kept = len(written) - len(replayed)
        assert names[:kept] == written[len(replayed) :]
        added = names[kept:]
        assert added == [f"r{rounds}-{i}" for i in range(len(added))]
        assert all(entry.kwargs["to_name"] == padding for entry in found[kept:])  # content, not just names
        written += added
        if tail is not None:
            torn += 1
            fragments.append(tail)
        if rounds % 2 == 0:  # odd rounds leave the repair to the next writer, which may be killed in it
            before = journal.set_aside_count()
            journal.append("graph", "add_dependency", edge(f"marker{rounds}", ""))
            written.append(f"marker{rounds}")
            after, after_tail = entries(journal.path)
            assert after_tail is None
            assert [e.kwargs["from_name"] for e in after] == written[len(replayed) :]  # not glued onto a fragment
            if tail is not None:
                assert journal.set_aside_count() == before + 1
                assert journal.set_aside_records()[-1].raw.encode("utf-8", "surrogateescape") == tail
            report = asyncio.run(journal.replay(apply))
            assert report.complete
            assert replayed == written
        rounds += 1
    assert torn >= 1, f"no kill tore a record in {rounds} rounds"
    assert asyncio.run(journal.replay(apply)).complete
    assert replayed == written
    # Every fragment seen is in the set-aside file (a kill between setting aside and cutting off may
    # set one aside twice; none is lost).
    aside = {record.raw.encode("utf-8", "surrogateescape") for record in journal.set_aside_records()}
    assert all(fragment in aside for fragment in fragments)
    assert all(record.reason.startswith("torn tail") for record in journal.set_aside_records())


def test_a_replayer_killed_mid_replay_resumes_without_skipping_or_repeating(fast_dir: Path) -> None:
    journal = WriteJournal(fast_dir / "write-journal.jsonl")
    names = [f"e{i}" for i in range(400)]
    for name in names:
        journal.append("graph", "add_dependency", edge(name, "b"))
    lines = journal.path.read_bytes().split(b"\n")
    lines[150] = lines[150].replace(b"e150", b"E150")  # one corrupt record: set aside, not applied
    journal.path.write_bytes(b"\n".join(lines))
    applied_log = fast_dir / "applied.log"

    def replay() -> None:
        async def apply(entry: JournalEntry) -> bool:
            fd = os.open(applied_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, entry.kwargs["from_name"].encode() + b"\n")
            os.close(fd)
            ready()  # one entry applied: every round makes progress, however loaded the machine
            time.sleep(0.0002)  # noqa: ASYNC251 - a round trip to PostgreSQL, blocking on purpose
            return True

        assert asyncio.run(journal.replay(apply)).complete

    kills = 0
    rng = random.Random()
    for _ in range(200):
        if not kill_after(in_child(replay), rng.uniform(0.005, 0.03)):
            break
        kills += 1
    else:
        pytest.fail("the replay never finished")
    assert kills >= 3
    log = applied_log.read_text().split()
    repeats = [i for i in range(1, len(log)) if log[i] == log[i - 1]]
    # Only the entry in flight at a kill can be applied again, right after (the restart).
    assert len(repeats) <= kills
    deduplicated = [name for i, name in enumerate(log) if i not in repeats]
    assert deduplicated == [name for name in names if name != "e150"]
    assert not journal.active()
    assert {record.source for record in journal.set_aside_records()} == {"write-journal.jsonl.replaying record 151"}


def test_dead_letter_writers_killed_mid_append_lose_no_complete_letter(fast_dir: Path) -> None:
    letters = WriteJournal(fast_dir / "write-journal.jsonl").dead_letters
    rng = random.Random()
    complete: list[str] = []
    for round_number in range(15):
        padding = "z" * rng.choice([10, 200_000, 1_000_000])

        def work(round_number: int = round_number, padding: str = padding) -> None:
            ready()
            index = 0
            while True:
                letters.append("graph", "add_dependency", edge(f"r{round_number}-{index}", padding), "refused")
                index += 1

        assert kill_after(in_child(work), rng.uniform(0.002, 0.03))
        names = [letter.kwargs["from_name"] for letter in letters.read()]
        assert names[: len(complete)] == complete
        added = names[len(complete) :]
        assert added == [f"r{round_number}-{i}" for i in range(len(added))]
        complete = names
        if round_number % 3 == 0:  # now and then an operator replays some and removes them
            done = [letter.id for letter in letters.read()[: len(complete) // 2]]
            assert letters.remove(done) == len(done)
            complete = complete[len(done) :]
    assert all(record.reason.startswith("torn tail") for record in letters.set_aside_records())
