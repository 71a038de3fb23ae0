"""A journal (or dead-letter file) that cannot be written raises JournalWriteError, never a raw
OSError, and leaves no partial record: tested against real EFBIG (RLIMIT_FSIZE) and real ENOSPC
(a small tmpfs mounted by the test)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coherence_sql.cutover.journal import JournalEntry, WriteJournal
from coherence_sql.cutover.journal_frames import Record, read_slots
from coherence_sql.errors import JournalWriteError


def edge(name: str, padding: str = "b") -> dict[str, Any]:
    return {"from_eco": "npm", "from_name": name, "to_eco": "npm", "to_name": padding}


def all_whole(path: Path) -> list[str]:
    """The names of every record; fails on any unreadable or partial one."""
    slots = read_slots(path, "file")
    assert all(isinstance(slot, Record) for slot in slots)
    assert path.read_bytes().endswith(b"\n")
    return [str(slot.body.get("id") or slot.body["kwargs"]) for slot in slots if isinstance(slot, Record)]


_UNDER_A_FILE_SIZE_LIMIT = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    from pathlib import Path
    from coherence_sql.cutover.journal import WriteJournal

    journal = WriteJournal(Path(sys.argv[1]))
    edge = {"from_eco": "npm", "from_name": "big", "to_eco": "npm", "to_name": "x" * 20000}
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so the write fails with EFBIG, not the process
    limit = max(journal.path.stat().st_size, journal.dead_letters.path.stat().st_size) + 5000
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    outcome = []
    for target in (journal, journal.dead_letters):
        try:
            if target is journal:
                journal.append("graph", "add_dependency", edge)
            else:
                journal.dead_letters.append("graph", "add_dependency", edge, "refused")
            outcome.append(["appended", ""])
        except Exception as exc:
            outcome.append([type(exc).__name__, str(exc)])
    print(json.dumps(outcome))
    """
)


def test_a_write_past_the_file_size_limit_raises_journal_write_error_and_leaves_no_partial_record(
    tmp_path: Path,
) -> None:
    journal = WriteJournal(tmp_path / "write-journal.jsonl")
    for i in range(3):
        journal.append("graph", "add_dependency", edge(f"a{i}"))
        journal.dead_letters.append("graph", "add_dependency", edge(f"d{i}"), "refused")
    before, letters_before = journal.path.read_bytes(), journal.dead_letters.path.read_bytes()
    result = subprocess.run(
        [sys.executable, "-c", _UNDER_A_FILE_SIZE_LIMIT, str(journal.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outcome = json.loads(result.stdout)
    assert [kind for kind, _ in outcome] == ["JournalWriteError", "JournalWriteError"]
    assert outcome[0][1] == f"the write journal {journal.path} could not be written: File too large (errno 27)"
    assert outcome[1][1] == (
        f"the dead-letter file {journal.dead_letters.path} could not be written: File too large (errno 27)"
    )
    # The partial write was cut off again: both files are exactly as before, and go on working.
    assert journal.path.read_bytes() == before
    assert journal.dead_letters.path.read_bytes() == letters_before
    journal.append("graph", "add_dependency", edge("after"))
    assert journal.pending() == 4
    assert journal.dead_letters.count() == 3
    assert journal.set_aside_count() == 0
    all_whole(journal.path)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs mount rights: root in a container that allows it)."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: the EFBIG test covers write failures")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): the EFBIG test covers write failures")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


async def test_a_full_disk_raises_journal_write_error_and_the_journal_recovers(small_tmpfs: Path) -> None:
    journal = WriteJournal(small_tmpfs / "write-journal.jsonl")
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"f" * 32768)
    padding = "y" * 7000
    appended = 0
    failure: JournalWriteError | None = None
    for i in range(1000):
        try:
            journal.append("graph", "add_dependency", edge(f"a{i}", padding))
        except JournalWriteError as exc:
            failure = exc
            break
        appended += 1
    assert str(failure) == f"the write journal {journal.path} could not be written: No space left on device (errno 28)"
    assert 0 < appended < 1000
    with pytest.raises(JournalWriteError, match=r"dead-letter file .* No space left on device"):
        journal.dead_letters.append("graph", "add_dependency", edge("d", padding), "refused")
    # No partial record: every record is whole, and all that were appended are there.
    assert len(all_whole(journal.path)) == appended
    assert journal.pending() == appended
    assert journal.set_aside_count() == 0  # a partial write was cut off, not left as a torn tail
    # The operator frees some space: the replay drains the journal, appends work, nothing was lost.
    filler.unlink()
    seen: list[str] = []

    async def apply(entry: JournalEntry) -> bool:
        seen.append(entry.kwargs["from_name"])
        return True

    report = await journal.replay(apply)
    assert report.complete
    assert seen == [f"a{i}" for i in range(appended)]
    journal.append("graph", "add_dependency", edge("after"))
    journal.dead_letters.append("graph", "add_dependency", edge("d"), "refused")
    assert journal.pending() == 1
    assert journal.dead_letters.count() == 1


def test_a_journal_whose_directory_cannot_exist_raises_journal_write_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    journal = WriteJournal(tmp_path / "a-file" / "write-journal.jsonl")
    with pytest.raises(JournalWriteError, match=r"could not be written: .*\(errno (17|20)\)"):
        journal.append("graph", "add_dependency", edge("a"))
    with pytest.raises(JournalWriteError, match=r"dead-letter file .* could not be written"):
        journal.dead_letters.append("graph", "add_dependency", edge("a"), "refused")
