"""Verify is a gate: any difference fails at the default threshold, a threshold lets sampled runs
through; an edge listed twice in the source and a contributes-to edge to an unknown contributor are
differences with their keys; a journal backlog or a dead letter fails whatever the threshold."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from coherence_sql.commands.render import verify_text
from coherence_sql.cutover.journal import WriteJournal
from coherence_sql.errors import ConfigurationError
from coherence_sql.stores.protocol import DependencyEdge
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import ContributesTo, Snapshot, write_snapshot
from coherence_sql.transfer.verify import (
    DUPLICATE,
    MISSING_IN_POSTGRES,
    UNKNOWN_REFERENCE,
    JournalBacklog,
    verify,
)
from tests.pg import execute

EDGE = {"from_eco": "npm", "from_name": "app", "to_eco": "npm", "to_name": "react"}


def small() -> Snapshot:
    return sample_snapshot(projects=20, edges=40, contributors=5, assets=5, contributions=20, tasks=5, seed=3)


@pytest.fixture
async def loaded(clean_dsn: str) -> tuple[Snapshot, str]:
    snapshot = small()
    await backfill(clean_dsn, snapshot, vacuum=False)
    return snapshot, clean_dsn


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coherence_sql.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=None if env is None else {**os.environ, **env},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def no_journal(tmp_path: Path) -> str:
    """A journal path whose directory does not exist: nothing pending, nothing created."""
    return str(tmp_path / "absent" / "write-journal.jsonl")


# -- the threshold ---------------------------------------------------------------------------------


async def test_a_single_difference_fails_at_the_default_and_passes_above_a_threshold(
    loaded: tuple[Snapshot, str], tmp_path: Path
) -> None:
    snapshot, dsn = loaded
    path = tmp_path / "snapshot.json"
    write_snapshot(path, snapshot)
    task = snapshot.agent_tasks[0]  # type: ignore[index]
    await execute(dsn, "UPDATE agent_tasks SET output = 'drift' WHERE id = $1", task.id)

    report = await verify(snapshot, dsn)
    assert report.mismatch_count == 1
    assert (report.passed, report.exit_code) == (False, 1)
    rate = report.mismatch_percent
    assert 0 < rate < 1

    default = await cli("--database-url", dsn, "verify", str(path), "--journal", no_journal(tmp_path))
    sampled = await cli(
        "--database-url", dsn, "verify", str(path), "--threshold", f"{rate * 1.5}", "--journal", no_journal(tmp_path)
    )
    at_rate = await cli(
        "--database-url", dsn, "verify", str(path), "--threshold", f"{rate / 1.5}", "--journal", no_journal(tmp_path)
    )

    assert default[0] == 1, default[2]
    assert f"agent_tasks {task.id}: output differs: source {task.output!r}, postgres 'drift'" in default[1]
    assert default[1].rstrip().endswith(f"verify: FAILED: 1 mismatched records ({rate:.4f}%) above the 0% threshold")
    assert sampled[0] == 0, sampled[2]
    assert f"agent_tasks {task.id}: output differs" in sampled[1]  # still listed
    assert sampled[1].rstrip().endswith("verify: PASSED")
    assert at_rate[0] == 1
    assert not (tmp_path / "absent").exists()  # a read-only check creates nothing


async def test_help_says_which_threshold_is_for_what() -> None:
    code, out, _ = await cli("verify", "--help")
    text = " ".join(out.split())
    assert code == 0
    assert "default 0: any difference fails; every migration gate uses the default" in text
    assert "is for sampled, scheduled runs" in text
    assert "--journal PATH" in text


async def test_a_negative_threshold_is_refused() -> None:
    snapshot = Snapshot()
    with pytest.raises(ConfigurationError, match="threshold_percent must not be negative, got -1"):
        await verify(snapshot, "postgresql://nobody@127.0.0.1:1/none", threshold_percent=-1)


# -- problems a side holds on its own ----------------------------------------------------------------


async def test_an_edge_listed_twice_in_the_source_is_a_difference_with_its_key(
    loaded: tuple[Snapshot, str], tmp_path: Path
) -> None:
    snapshot, dsn = loaded
    edge = snapshot.edges[0]
    shouting = DependencyEdge(
        edge.from_ecosystem.upper(), edge.from_name.upper(), edge.to_ecosystem.upper(), edge.to_name.title()
    )
    snapshot.edges.append(shouting)  # the same edge by key, in another case
    path = tmp_path / "snapshot.json"
    write_snapshot(path, snapshot)
    key = f"{edge.from_ecosystem}/{edge.from_name} -> {edge.to_ecosystem}/{edge.to_name}".lower()

    report = await verify(path, dsn)

    [duplicate] = report.differences
    assert (duplicate.entity, duplicate.key, duplicate.kind, duplicate.side) == ("edges", key, DUPLICATE, "source")
    assert (duplicate.stated, duplicate.computed) == (2, 1)
    assert report.entities["edges"].problems == 1
    assert (report.mismatch_count, report.problem_count, report.exit_code) == (1, 1, 1)
    assert f"edges {key}: on source: listed 2 times (keys compared case-insensitively); kept once" in (
        verify_text(report)
    )

    code, out, err = await cli("--database-url", dsn, "verify", str(path), "--json", "--journal", no_journal(tmp_path))
    assert code == 1, err
    data = json.loads(out)
    assert data["differences"] == [
        {
            "entity": "edges",
            "key": key,
            "kind": DUPLICATE,
            "side": "source",
            "field": None,
            "stated": 2,
            "computed": 1,
            "reason": "listed 2 times (keys compared case-insensitively); kept once",
        }
    ]
    assert (data["problems"], data["passed"], data["entities"]["edges"]["problems"]) == (1, False, 1)


async def test_a_contributes_to_edge_listed_twice_is_a_difference(loaded: tuple[Snapshot, str]) -> None:
    snapshot, dsn = loaded
    work = snapshot.github_contributes_to[0]
    snapshot.github_contributes_to.append(ContributesTo(work.contributor_id, work.ecosystem.upper(), work.name))

    report = await verify(snapshot, dsn)

    [duplicate] = report.differences
    assert (duplicate.entity, duplicate.key, duplicate.kind) == (
        "github_contributes_to",
        f"{work.contributor_id} -> {work.ecosystem}/{work.name}",
        DUPLICATE,
    )


async def test_an_unknown_contributor_on_both_sides_is_reported_on_each(
    loaded: tuple[Snapshot, str], tmp_path: Path
) -> None:
    snapshot, dsn = loaded
    ghost = ContributesTo("github:ghost", "npm", "left-pad")
    snapshot.github_contributes_to.append(ghost)
    await execute(
        dsn, "INSERT INTO github_contributes_to (contributor_id, ecosystem, name) VALUES ($1, $2, $3)", *ghost
    )
    path = tmp_path / "snapshot.json"
    write_snapshot(path, snapshot)

    report = await verify(snapshot, dsn)

    assert [(d.entity, d.key, d.kind, d.side, d.field, d.stated) for d in report.differences] == [
        (
            "github_contributes_to",
            "github:ghost -> npm/left-pad",
            UNKNOWN_REFERENCE,
            "source",
            "contributor_id",
            "github:ghost",
        ),
        (
            "github_contributes_to",
            "github:ghost -> npm/left-pad",
            UNKNOWN_REFERENCE,
            "postgres",
            "contributor_id",
            "github:ghost",
        ),
    ]
    assert report.entities["github_contributes_to"].problems == 1
    assert (report.mismatch_count, report.problem_count) == (1, 1)  # one record, a problem on each side
    assert "contributor 'github:ghost' is not a known GitHub contributor" in verify_text(report)

    code, out, err = await cli("--database-url", dsn, "verify", str(path), "--json", "--journal", no_journal(tmp_path))
    assert code == 1, err
    data = json.loads(out)
    assert (data["problems"], data["mismatched"]) == (1, 1)
    assert [(d["key"], d["kind"], d["side"], d["reason"]) for d in data["differences"]] == [
        (
            "github:ghost -> npm/left-pad",
            UNKNOWN_REFERENCE,
            side,
            "contributor 'github:ghost' is not a known GitHub contributor",
        )
        for side in ("source", "postgres")
    ]


async def test_an_unknown_contributor_only_in_the_source_is_reported_there(loaded: tuple[Snapshot, str]) -> None:
    snapshot, dsn = loaded
    ghost = ContributesTo("github:ghost", "npm", "left-pad")
    snapshot.github_contributes_to.append(ghost)

    report = await verify(snapshot, dsn, threshold_percent=50)

    assert sorted((d.kind, d.side or "") for d in report.differences) == [
        (MISSING_IN_POSTGRES, ""),
        (UNKNOWN_REFERENCE, "source"),
    ]
    assert report.passed  # a sampled run's threshold covers problems like any difference


# -- the journal -----------------------------------------------------------------------------------


async def test_a_pending_write_in_the_journal_fails_whatever_the_threshold(
    loaded: tuple[Snapshot, str], tmp_path: Path
) -> None:
    snapshot, dsn = loaded
    path = tmp_path / "snapshot.json"
    write_snapshot(path, snapshot)
    journal = tmp_path / "data" / "write-journal.jsonl"
    WriteJournal(journal).append("graph", "add_dependency", EDGE)

    report = await verify(snapshot, dsn, journal=journal, threshold_percent=100)

    assert report.differences == []
    assert report.journal == JournalBacklog(str(journal), exists=True, pending=1, dead_letters=0)
    assert (report.passed, report.ok, report.exit_code) == (False, False, 1)
    code, out, err = await cli(
        "--database-url", dsn, "verify", str(path), "--journal", str(journal), "--threshold", "100"
    )
    assert code == 1, err
    assert (
        f"journal {journal}: 1 pending, 0 dead letters - FAILED: PostgreSQL is behind or missing writes. "
        f"Run `coherence-sql reconcile --journal {journal}`"
    ) in out
    assert 'see docs/runbook.md, "Dead letters"' in out
    assert out.rstrip().endswith("verify: FAILED: the journal holds 1 pending writes and 0 dead letters")

    code, out, err = await cli("--database-url", dsn, "verify", str(path), "--journal", str(journal), "--json")
    assert code == 1, err
    assert json.loads(out)["journal"] == {
        "path": str(journal),
        "exists": True,
        "pending": 1,
        "dead_letters": 0,
        "clean": False,
    }


async def test_a_dead_letter_fails_the_gate(loaded: tuple[Snapshot, str], tmp_path: Path) -> None:
    snapshot, dsn = loaded
    path = tmp_path / "snapshot.json"
    write_snapshot(path, snapshot)
    journal = tmp_path / "data" / "write-journal.jsonl"
    dead = WriteJournal(journal).dead_letters
    dead.append("graph", "add_dependency", EDGE, "check_violation: self-edge")
    dead.append("graph", "add_dependency", {**EDGE, "from_name": "web"}, "check_violation: self-edge")

    report = await verify(snapshot, dsn, journal=journal)

    assert report.journal == JournalBacklog(str(journal), exists=True, pending=0, dead_letters=2)
    assert (report.differences, report.passed) == ([], False)
    code, out, err = await cli("--database-url", dsn, "verify", str(path), "--journal", str(journal), "--json")
    assert code == 1, err
    data = json.loads(out)
    assert (data["journal"]["dead_letters"], data["journal"]["pending"], data["passed"]) == (2, 0, False)
    assert data["differences"] == []


async def test_a_clean_journal_passes_and_is_shown(loaded: tuple[Snapshot, str], tmp_path: Path) -> None:
    snapshot, dsn = loaded
    journal = tmp_path / "data" / "write-journal.jsonl"
    journal.parent.mkdir()

    report = await verify(snapshot, dsn, journal=journal)

    assert report.journal == JournalBacklog(str(journal), exists=False)
    assert (report.passed, report.ok) == (True, True)
    assert f"journal {journal}: none there (nothing pending, no dead letters)" in verify_text(report)
    assert verify_text(report).endswith("verify: PASSED")


async def test_without_journal_the_api_default_is_read(loaded: tuple[Snapshot, str], tmp_path: Path) -> None:
    snapshot, dsn = loaded
    path = tmp_path / "snapshot.json"
    write_snapshot(path, snapshot)
    journal = tmp_path / "env" / "write-journal.jsonl"
    WriteJournal(journal).append("graph", "add_dependency", EDGE)

    code, out, err = await cli("--database-url", dsn, "verify", str(path), env={"COHERENCE_SQL_JOURNAL": str(journal)})

    assert code == 1, err
    assert f"journal {journal}: 1 pending, 0 dead letters - FAILED" in out


async def test_a_journal_that_cannot_be_read_is_one_clear_line(loaded: tuple[Snapshot, str], tmp_path: Path) -> None:
    snapshot, dsn = loaded
    path = tmp_path / "snapshot.json"
    write_snapshot(path, snapshot)
    journal = tmp_path / "data" / "write-journal.jsonl"
    journal.mkdir(parents=True)  # a directory where the journal file should be

    code, out, err = await cli("--database-url", dsn, "verify", str(path), "--journal", str(journal))

    assert code == 2
    assert out == ""
    assert err.startswith("coherence-sql: Journal")
    assert str(journal) in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
