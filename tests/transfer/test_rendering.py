"""The library returns data and takes a progress callback; the command line renders: progress only on
a terminal, plain results on a pipe, JSON (errors included) with --json. Verify sees both sides
through one projection, and the export builds its models with the PostgreSQL store's mappers."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import asyncpg
import pytest
from rich.table import Table

from coherence_sql.commands import render
from coherence_sql.stores.postgres import connect
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.export import export_snapshot
from coherence_sql.transfer.postgres_reader import TABLES
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import Snapshot, write_snapshot
from coherence_sql.transfer.verify import AGGREGATE, DUPLICATE, FIELD, INVARIANT, verify

WRONG_DSN = "postgresql://nobody:S3cretPw@127.0.0.1:9/none"


def small_snapshot() -> Snapshot:
    return sample_snapshot(projects=30, edges=80, contributors=12, assets=10, contributions=90, tasks=12, seed=21)


async def cli(*args: str) -> tuple[int, str, str]:
    """The command as an operator runs it into a pipe (stdout and stderr are not terminals)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coherence_sql.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COHERENCE_SQL_JOURNAL": "/nonexistent-dir/journal.jsonl"},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
def snapshot_file(tmp_path: Path) -> Path:
    path = tmp_path / "snapshot.json"
    write_snapshot(path, small_snapshot())
    return path


# -- progress ------------------------------------------------------------------------------------


async def test_backfill_and_verify_report_progress_to_a_callback_and_print_nothing(
    clean_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = small_snapshot()
    sections: dict[str, tuple[int, int]] = {}
    steps: list[tuple[str, int, int]] = []

    report = await backfill(clean_dsn, snapshot, progress=lambda s, d, t: sections.__setitem__(s, (d, t)))
    checked = await verify(snapshot, clean_dsn, progress=lambda s, d, t: steps.append((s, d, t)))

    assert sections["contributions"] == (len(snapshot.contributions), len(snapshot.contributions))
    assert sum(done for done, _ in sections.values()) == report.records
    assert steps[0] == ("read edges", 0, TABLES)  # edges first: out-degrees before the counts that state them
    assert steps[-1][1:] == (TABLES, TABLES)
    assert [done for _, done, _ in steps] == sorted(done for _, done, _ in steps)
    assert checked.ok
    assert capsys.readouterr() == ("", "")  # the library prints nothing


def test_a_progress_bar_shows_rate_and_eta_and_is_none_when_disabled(capsys: pytest.CaptureFixture[str]) -> None:
    with render.section_progress("backfill", enabled=False) as none:
        assert none is None
    with render.section_progress("backfill", enabled=True) as progress:
        assert progress is not None
        progress("contributors", 0, 100)
        progress("assets", 50, 50)
        progress("contributors", 100, 100)
    err = capsys.readouterr().err
    assert "150/150" in err
    assert "rows/s" in err
    assert "0:00:00" in err  # elapsed and remaining


def test_on_a_pipe_progress_is_off() -> None:
    assert not render.interactive()  # pytest captures both streams: neither is a terminal


async def test_backfill_and_verify_into_a_pipe_print_the_result_alone(clean_dsn: str, snapshot_file: Path) -> None:
    code, out, err = await cli("--database-url", clean_dsn, "backfill", str(snapshot_file))
    assert (code, err) == (0, "")
    assert "\r" not in out  # no progress bar
    assert "\x1b[" not in out  # no colour
    assert out.startswith("database: ")
    assert "foreign keys: checked per" in out
    row = next(line for line in out.splitlines() if "contributions" in line)
    assert "90" in row

    code, out, err = await cli("--database-url", clean_dsn, "verify", str(snapshot_file))
    assert (code, err) == (0, "")
    assert "\r" not in out
    assert "\x1b[" not in out
    assert out.rstrip().endswith("verify: PASSED")


# -- JSON, errors included -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["backfill", "SNAPSHOT"], ["verify", "SNAPSHOT"], ["rollback", "--phase", "3", "--out", "OUT"]],
    ids=lambda c: c[0],
)
async def test_an_error_with_json_is_json_on_stdout_with_the_same_exit_code(
    command: list[str], snapshot_file: Path, tmp_path: Path
) -> None:
    args = [{"SNAPSHOT": str(snapshot_file), "OUT": str(tmp_path / "out.json")}.get(a, a) for a in command]
    code, out, err = await cli("--database-url", WRONG_DSN, *args, "--json")
    plain_code, plain_out, plain_err = await cli("--database-url", WRONG_DSN, *args)

    assert code == plain_code == 2
    assert err == ""
    assert plain_out == ""
    error = json.loads(out)["error"]
    assert error["type"] == "DatabaseUnavailableError"
    assert error["message"].startswith("cannot connect to postgresql://nobody:***@127.0.0.1:9/none")
    assert "S3cretPw" not in out + plain_err
    assert plain_err.startswith(f"coherence-sql: DatabaseUnavailableError: {error['message']}")


async def test_a_usage_error_of_rollback_with_json_is_json(tmp_path: Path) -> None:
    code, out, err = await cli("--database-url", WRONG_DSN, "rollback", "--phase", "3", "--json")
    assert (code, err) == (2, "")
    assert json.loads(out) == {
        "error": {"type": "UsageError", "message": "phase 3 needs --out PATH for the snapshot (or --check-only)"}
    }


# -- one projection, the store's mappers ---------------------------------------------------------


async def test_an_edge_postgresql_holds_twice_is_a_duplicate_on_its_side(clean_dsn: str) -> None:
    snapshot = small_snapshot()
    await backfill(clean_dsn, snapshot, vacuum=False)
    indexed = {(p.ecosystem.lower(), p.name.lower()) for p in snapshot.projects}
    key = next(
        (e.from_ecosystem.lower(), e.from_name.lower(), e.to_ecosystem.lower(), e.to_name.lower())
        for e in snapshot.edges
        if (e.to_ecosystem.lower(), e.to_name.lower()) in indexed
        and (e.from_ecosystem.lower(), e.from_name.lower()) in indexed
    )
    conn = await asyncpg.connect(clean_dsn)
    try:
        await conn.execute(
            "INSERT INTO pending_dependencies (from_ecosystem, from_name, to_ecosystem, to_name) "
            "VALUES ($1, $2, $3, $4)",
            *key,
        )
    finally:
        await conn.close()

    report = await verify(snapshot, clean_dsn)

    edge = f"{key[0]}/{key[1]} -> {key[2]}/{key[3]}"
    project = f"{key[0]}/{key[1]}"
    found = {(d.entity, d.key, d.kind, d.side) for d in report.differences}
    assert found == {
        ("edges", edge, DUPLICATE, "postgres"),
        ("edges", edge, INVARIANT, "postgres"),
        # The second row raised the stored count: it is one more than the edges PostgreSQL holds.
        ("projects", project, FIELD, None),
        ("projects", project, AGGREGATE, "postgres"),
    }
    [duplicate] = [d for d in report.differences if d.kind == DUPLICATE]
    assert (duplicate.stated, duplicate.computed) == (2, 1)
    [aggregate] = [d for d in report.differences if d.kind == AGGREGATE]
    assert aggregate.stated == aggregate.computed + 1
    assert report.mismatch_count == 2


async def test_the_export_builds_the_models_the_postgresql_store_reads(clean_dsn: str) -> None:
    snapshot = small_snapshot()
    await backfill(clean_dsn, snapshot, vacuum=False)

    exported = await export_snapshot(clean_dsn)

    async with connect(clean_dsn) as stores:
        project = snapshot.projects[0]
        assert exported.projects[0] == await stores.graph.get_project(project.ecosystem, project.name)
        contribution = exported.contributions[0]
        assert [c for c in exported.contributions if c.asset_id == contribution.asset_id] == (
            await stores.graph.get_asset_contributions(contribution.asset_id)
        )
        assert exported.agent_tasks is not None
        assert exported.agent_tasks[0] == await stores.tasks.get_task(exported.agent_tasks[0].id)
    assert exported.contributions == snapshot.contributions


def test_text_of_never_wraps_a_wide_table() -> None:
    table = Table("a", "b")
    table.add_row("x" * 150, "y")
    [row] = [line for line in render.text_of(table).splitlines() if "xxx" in line]
    assert row.endswith("│ y │")
