"""Journal framing: torn tails and corrupt records are set aside, never dropped, never blocking."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from coherence_sql.cutover.journal import JournalEntry, WriteJournal
from coherence_sql.cutover.journal_frames import frame, raw_text

TORN = "torn tail: the record was cut off while being written"
FAST_DIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # fsync is free on tmpfs


def edge(name: str) -> dict[str, Any]:
    return {"from_eco": "npm", "from_name": name, "to_eco": "npm", "to_name": "b"}


def journal_with(tmp_path: Path, names: list[str]) -> WriteJournal:
    journal = WriteJournal(tmp_path / "write-journal.jsonl")
    for name in names:
        journal.append("graph", "add_dependency", edge(name))
    return journal


async def drain(journal: WriteJournal) -> tuple[list[str], Any]:
    seen: list[str] = []

    async def apply(entry: JournalEntry) -> bool:
        seen.append(entry.kwargs["from_name"])
        return True

    report = await journal.replay(apply)
    return seen, report


def cut(path: Path, keep: int) -> bytes:
    """Cut the file `keep` bytes into its last record, as a writer killed mid-append would."""
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: start + keep])
    return data[start : start + keep]


async def test_a_torn_tail_is_set_aside_and_everything_before_replays(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, ["a0", "a1", "a2"])
    fragment = cut(journal.path, 40)
    assert journal.pending() == 2
    seen, report = await drain(journal)
    assert seen == ["a0", "a1"]
    assert (report.applied, report.set_aside, report.complete) == (2, 1, True)
    [kept] = journal.set_aside_records()
    assert kept.raw.encode("utf-8", "surrogateescape") == fragment
    assert kept.reason == TORN
    assert kept.source == "write-journal.jsonl"
    assert kept.set_aside_at.startswith("20")
    assert journal.set_aside.path == tmp_path / "write-journal.jsonl.set-aside"
    assert journal.set_aside_count() == 1


async def test_the_next_append_after_a_torn_tail_is_never_glued_onto_it(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, ["a0", "a1"])
    fragment = cut(journal.path, 25)
    journal.append("graph", "add_dependency", edge("after"))
    assert journal.path.read_bytes().count(fragment) == 0  # the fragment left the journal...
    assert journal.set_aside_records()[0].raw == raw_text(fragment)  # ...for the set-aside file
    assert journal.pending() == 2
    seen, report = await drain(journal)
    assert seen == ["a0", "after"]
    assert report.set_aside == 0  # set aside by the append already


async def test_a_whole_record_that_only_lost_its_newline_is_kept(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, ["a0", "a1"])
    journal.path.write_bytes(journal.path.read_bytes().rstrip(b"\n"))
    assert journal.pending() == 2
    journal.append("graph", "add_dependency", edge("a2"))
    seen, _ = await drain(journal)
    assert seen == ["a0", "a1", "a2"]
    assert journal.set_aside_count() == 0


async def test_corrupt_records_in_the_middle_are_set_aside_and_the_rest_replays(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, ["a0", "a1", "a2", "a3", "a4"])
    lines = journal.path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"a1", b"x1")  # checksum no longer matches
    lines[3] = b"\x00\x00\x00\xff garbage"  # a disk block of zeros, binary garbage
    journal.path.write_bytes(b"\n".join(lines))
    assert journal.pending() == 3
    seen, report = await drain(journal)
    assert seen == ["a0", "a2", "a4"]
    assert (report.applied, report.set_aside, report.complete) == (3, 2, True)
    records = journal.set_aside_records()
    assert [r.reason for r in records] == ["checksum mismatch", "not a journal record (no J1 frame)"]
    assert [r.source for r in records] == [
        "write-journal.jsonl.replaying record 2",
        "write-journal.jsonl.replaying record 4",
    ]
    assert records[1].raw.encode("utf-8", "surrogateescape") == b"\x00\x00\x00\xff garbage"
    assert not journal.active()


async def test_an_undecodable_record_with_a_good_frame_never_blocks_the_ones_after(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, ["a0"])
    # Framed correctly, but no such operation / no such model.
    unknown_op = {"store": "graph", "op": "drop_everything", "kwargs": ["d", 0], "recorded_at": "t"}
    unknown_model = {
        "store": "graph",
        "op": "create_asset",
        "kwargs": ["d", 1, "s", "asset", "m", "Gold", 0, 0],
        "recorded_at": "t",
    }
    journal.path.write_text(journal.path.read_text() + _framed(unknown_op) + _framed(unknown_model))
    journal.append("graph", "add_dependency", edge("a3"))
    seen, report = await drain(journal)
    assert seen == ["a0", "a3"]
    assert report.set_aside == 2
    reasons = [r.reason for r in journal.set_aside_records()]
    assert "graph.drop_everything is not a store method" in reasons[0]
    assert "undecodable value: KeyError: 'Gold'" in reasons[1]


def _framed(body: dict[str, Any]) -> str:
    return frame(body).decode("ascii")


async def test_a_journal_of_the_first_format_replays(tmp_path: Path) -> None:
    path = tmp_path / "write-journal.jsonl"
    lines = [
        json.dumps(
            {
                "store": "graph",
                "op": "add_dependency",
                "kwargs": edge(name),
                "recorded_at": "2026-01-01T00:00:00+00:00",
            },
            separators=(",", ":"),
            sort_keys=True,
        )
        for name in ["old0", "old1"]
    ]
    path.write_text("\n".join(lines) + "\n")
    journal = WriteJournal(path)
    journal.append("graph", "add_dependency", edge("new"))
    assert journal.pending() == 3
    seen, report = await drain(journal)
    assert seen == ["old0", "old1", "new"]
    assert report.complete


async def test_a_stale_progress_count_never_skips_entries_of_a_new_round(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, ["a0", "a1", "a2"])
    journal.progress.write_text("2")  # left by a replayer killed after finishing its round
    seen, _ = await drain(journal)
    assert seen == ["a0", "a1", "a2"]


async def test_a_replay_resumes_from_its_progress_after_a_crash(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, ["a0", "a1", "a2", "a3"])
    journal.path.rename(journal.replaying)  # as a replayer killed after applying two entries left it
    journal.progress.write_text("2")
    journal.append("graph", "add_dependency", edge("late"))
    assert journal.pending() == 3
    seen, report = await drain(journal)
    assert seen == ["a2", "a3", "late"]
    assert report.complete
    assert not journal.progress.exists()


@given(
    actions=st.lists(
        st.tuples(
            st.sampled_from(["keep", "flip", "split", "garbage", "merge"]), st.integers(0, 10**4), st.integers(1, 255)
        ),
        min_size=1,
        max_size=10,
    ),
    torn_at=st.none() | st.integers(1, 10**4),
)
def test_whatever_damage_the_file_takes_every_untouched_record_replays_in_order(
    actions: list[tuple[str, int, int]], torn_at: int | None
) -> None:
    with tempfile.TemporaryDirectory(dir=FAST_DIR) as directory:
        journal = journal_with(Path(directory), [f"a{i}" for i in range(len(actions))])
        lines = [bytearray(line) for line in journal.path.read_bytes().split(b"\n")[:-1]]
        damaged: set[int] = set()
        pieces: list[bytes] = []
        for index, (line, (action, where, value)) in enumerate(zip(lines, actions, strict=True)):
            position = 1 + where % (len(line) - 1)  # at 0, a split would restore a merged boundary
            if action == "flip" and line[position] ^ value != ord("\n"):
                line[position] ^= value  # CRC32 catches every single-byte change
                damaged.add(index)
            elif action == "split":
                line[position] = ord("\n")
                damaged.add(index)
            if torn_at is not None and index == len(lines) - 1:  # a writer killed in the last record
                pieces.append(bytes(line[: 1 + torn_at % (len(line) - 1)]))
                damaged.add(index)
                break
            pieces.append(bytes(line))
            if action == "merge" and index + 1 < len(lines):
                damaged.update((index, index + 1))  # its newline is lost: two records in one line
            else:
                pieces.append(b"\n")
            if action == "garbage":
                pieces.append(b"\x00garbage %d\n" % value)
        data = b"".join(pieces)
        journal.path.write_bytes(data)
        seen, report = asyncio.run(drain(journal))
        assert report.complete
        assert seen == [f"a{i}" for i in range(len(lines)) if i not in damaged]  # none lost, none invented
        assert not journal.active()
        assert journal.set_aside_count() == report.set_aside
        assert (report.set_aside == 0) == (not damaged and b"garbage" not in data)
