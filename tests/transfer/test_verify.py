"""Verify finds every kind of difference between the in-memory side and PostgreSQL, names the
record and both values, checks the aggregates on both sides, and exits by the threshold."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import pytest

from coherence_sql.commands.render import verify_text
from coherence_sql.models import TaskType
from coherence_sql.stores.memory import MemoryStores
from coherence_sql.stores.postgres import connect
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import Snapshot, restore_snapshot, write_snapshot
from coherence_sql.transfer.verify import (
    AGGREGATE,
    FIELD,
    INVARIANT,
    MISSING_IN_POSTGRES,
    MISSING_IN_SOURCE,
    UNKNOWN_REFERENCE,
    Difference,
    VerifyReport,
    verify,
    verify_memory,
)
from tests.pg import execute
from tests.stores.records import task

ROOT = Path(__file__).resolve().parents[2]


def small_snapshot() -> Snapshot:
    return sample_snapshot(projects=40, edges=120, contributors=20, assets=15, contributions=200, tasks=30, seed=11)


@pytest.fixture
async def loaded(clean_dsn: str) -> tuple[Snapshot, str]:
    """A snapshot and a database the backfill made equal to it."""
    snapshot = small_snapshot()
    await backfill(clean_dsn, snapshot, vacuum=False)
    return snapshot, clean_dsn


def only(report: VerifyReport, kind: str) -> list[Difference]:
    return [d for d in report.differences if d.kind == kind]


async def cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coherence_sql.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# -- equal sides -----------------------------------------------------------------------------------


async def test_equal_sides_show_no_difference_from_the_snapshot_or_the_memory_stores(
    loaded: tuple[Snapshot, str],
) -> None:
    snapshot, dsn = loaded
    stores = MemoryStores()
    await restore_snapshot(snapshot, stores.graph, stores.tasks)

    from_snapshot = await verify(snapshot, dsn, threshold_percent=0.0)
    from_memory = await verify(stores, dsn, threshold_percent=0.0)
    from_graph = await verify_memory(dsn, stores.graph)  # tasks not given: not compared

    for report in (from_snapshot, from_memory):
        assert report.ok
        assert report.passed
        assert report.exit_code == 0
        assert report.compared_count == sum(c.compared for c in report.entities.values()) > 0
        assert report.entities["contributions"].compared == len(snapshot.contributions)
    assert from_graph.ok
    assert from_graph.not_compared == ["agent_tasks"]


# -- each kind of difference -----------------------------------------------------------------------


async def test_a_record_missing_in_postgresql_is_reported_with_its_values(loaded: tuple[Snapshot, str]) -> None:
    snapshot, dsn = loaded
    gone = snapshot.github_contributors[0]
    await execute(dsn, "DELETE FROM github_contributors WHERE id = $1", gone.id)

    report = await verify(snapshot, dsn)

    difference, *orphaned = report.differences
    assert (difference.entity, difference.key, difference.kind) == ("github_contributors", gone.id, MISSING_IN_POSTGRES)
    assert difference.source["login"] == gone.login
    assert report.entities["github_contributors"].missing_in_postgres == 1
    works = [w for w in snapshot.github_contributes_to if w.contributor_id == gone.id]
    # Its contributes-to edges stay in PostgreSQL, pointing at nobody there.
    assert sorted((d.entity, d.key, d.kind, d.side) for d in orphaned) == sorted(
        ("github_contributes_to", f"{gone.id} -> {w.ecosystem}/{w.name}", UNKNOWN_REFERENCE, "postgres") for w in works
    )
    assert report.mismatch_count == 1 + len(works)


async def test_a_record_missing_in_the_source_is_reported_with_its_values(loaded: tuple[Snapshot, str]) -> None:
    snapshot, dsn = loaded
    extra = task(999, direction="Only PostgreSQL has this one", task_type=TaskType.HEAL)
    async with connect(dsn) as stores:
        await stores.tasks.create_task(extra)

    report = await verify(snapshot, dsn)

    [difference] = report.differences
    assert (difference.entity, difference.key, difference.kind) == ("agent_tasks", extra.id, MISSING_IN_SOURCE)
    assert difference.postgres["direction"] == "Only PostgreSQL has this one"
    assert difference.postgres["task_type"] == "heal"


async def test_a_changed_field_is_reported_with_both_values(loaded: tuple[Snapshot, str]) -> None:
    snapshot, dsn = loaded
    project = snapshot.projects[3]
    key = (project.ecosystem.lower(), project.name.lower())
    await execute(
        dsn,
        "UPDATE projects SET version = '0.0.0-drift', display_name = upper(display_name) "
        "WHERE ecosystem = $1 AND name = $2",
        *key,
    )

    report = await verify(snapshot, dsn)

    assert [(d.entity, d.key, d.kind, d.field) for d in report.differences] == [
        ("projects", f"{key[0]}/{key[1]}", FIELD, "name"),
        ("projects", f"{key[0]}/{key[1]}", FIELD, "version"),
    ]
    name, version = report.differences
    assert (name.source, name.postgres) == (project.name, project.name.upper())  # display case is compared
    assert (version.source, version.postgres) == (project.version, "0.0.0-drift")
    assert report.entities["projects"].differing == 1
    assert report.mismatch_count == 1  # one record, two fields


async def test_a_changed_contribution_shows_in_the_field_and_in_the_aggregate(loaded: tuple[Snapshot, str]) -> None:
    snapshot, dsn = loaded
    changed = snapshot.contributions[0]
    await execute(dsn, "UPDATE contributions SET cost_amount = cost_amount + 1 WHERE id = $1", changed.id)

    report = await verify(snapshot, dsn)

    [field] = only(report, FIELD)
    assert (field.entity, field.key, field.field) == ("contributions", str(changed.id), "cost_amount")
    assert Decimal(field.postgres) == Decimal(field.source) + 1
    [aggregate] = only(report, AGGREGATE)
    assert (aggregate.entity, aggregate.key, aggregate.side) == ("assets", str(changed.asset_id), "postgres")
    assert Decimal(aggregate.computed) == Decimal(aggregate.stated) + 1


async def test_a_wrong_total_cost_is_reported_on_the_postgresql_side(loaded: tuple[Snapshot, str]) -> None:
    snapshot, dsn = loaded
    asset = snapshot.assets[2]
    await execute(dsn, "UPDATE assets SET total_cost = total_cost + 1 WHERE id = $1", asset.id)

    report = await verify(snapshot, dsn)

    [field] = only(report, FIELD)
    assert (field.entity, field.key, field.field) == ("assets", str(asset.id), "total_cost")
    assert (Decimal(field.source), Decimal(field.postgres)) == (asset.total_cost, asset.total_cost + 1)
    [aggregate] = only(report, AGGREGATE)
    assert (aggregate.side, aggregate.field) == ("postgres", "total_cost")
    assert (Decimal(aggregate.stated), Decimal(aggregate.computed)) == (asset.total_cost + 1, asset.total_cost)
    assert report.mismatch_count == 1
    assert "total_cost on postgres: stored" in verify_text(report)


async def test_a_wrong_dependency_count_is_reported_on_the_postgresql_side(loaded: tuple[Snapshot, str]) -> None:
    snapshot, dsn = loaded
    project = next(p for p in snapshot.projects if p.dependency_count)
    key = (project.ecosystem.lower(), project.name.lower())
    await execute(
        dsn, "UPDATE projects SET dependency_count = dependency_count + 2 WHERE ecosystem = $1 AND name = $2", *key
    )

    report = await verify(snapshot, dsn)

    [field] = only(report, FIELD)
    assert (field.field, field.source, field.postgres) == (
        "dependency_count",
        project.dependency_count,
        project.dependency_count + 2,
    )
    [aggregate] = only(report, AGGREGATE)
    assert (aggregate.key, aggregate.side, aggregate.stated, aggregate.computed) == (
        f"{key[0]}/{key[1]}",
        "postgres",
        project.dependency_count + 2,
        project.dependency_count,
    )


async def test_a_pending_edge_whose_projects_both_exist_is_reported(loaded: tuple[Snapshot, str]) -> None:
    snapshot, dsn = loaded
    a, b = ((p.ecosystem.lower(), p.name.lower()) for p in snapshot.projects[:2])
    edges = {(e.from_ecosystem, e.from_name, e.to_ecosystem, e.to_name) for e in snapshot.edges}
    source, target = (b, a) if (*a, *b) in edges else (a, b)
    await execute(
        dsn,
        "INSERT INTO pending_dependencies (from_ecosystem, from_name, to_ecosystem, to_name) VALUES ($1, $2, $3, $4)",
        *source,
        *target,
    )

    report = await verify(snapshot, dsn)

    kinds = {(d.entity, d.kind) for d in report.differences}
    assert ("edges", INVARIANT) in kinds
    assert ("edges", MISSING_IN_SOURCE) in kinds
    [invariant] = only(report, INVARIANT)
    assert invariant.key == f"{source[0]}/{source[1]} -> {target[0]}/{target[1]}"


async def test_totals_the_snapshot_itself_gets_wrong_are_reported_on_the_source_side(
    loaded: tuple[Snapshot, str],
) -> None:
    snapshot, dsn = loaded
    asset = snapshot.assets[1]
    snapshot.assets[1] = asset.model_copy(update={"total_cost": asset.total_cost + Decimal("5.00")})

    report = await verify(snapshot, dsn)

    [aggregate] = report.differences  # the backfill ignores a stated total: PostgreSQL is right
    assert (aggregate.entity, aggregate.key, aggregate.kind, aggregate.side) == (
        "assets",
        str(asset.id),
        AGGREGATE,
        "source",
    )
    assert (Decimal(aggregate.stated), Decimal(aggregate.computed)) == (
        asset.total_cost + Decimal("5.00"),
        asset.total_cost,
    )


async def test_memory_stores_changed_after_the_backfill_are_compared_live(loaded: tuple[Snapshot, str]) -> None:
    snapshot, dsn = loaded
    stores = MemoryStores()
    await restore_snapshot(snapshot, stores.graph, stores.tasks)
    await stores.tasks.update_task(snapshot.agent_tasks[0].id, output="new output")  # type: ignore[index]

    report = await verify(stores, dsn)

    output, updated_at = report.differences  # update_task always sets updated_at
    assert (output.entity, output.field, output.source, output.postgres) == (
        "agent_tasks",
        "output",
        "new output",
        snapshot.agent_tasks[0].output,  # type: ignore[index]
    )
    assert (updated_at.field, updated_at.key) == ("updated_at", output.key)
    assert report.mismatch_count == 1


# -- sampling --------------------------------------------------------------------------------------


async def test_a_sample_compares_a_stable_share_of_keys(loaded: tuple[Snapshot, str]) -> None:
    snapshot, dsn = loaded
    total = (await verify(snapshot, dsn)).compared_count

    first = await verify(snapshot, dsn, sample_percent=30)
    second = await verify(snapshot, dsn, sample_percent=30)

    assert first.entities["contributions"].compared == second.entities["contributions"].compared
    assert 0.15 * total < first.compared_count < 0.45 * total
    for asset in snapshot.assets:  # drift in every asset: only the sampled ones are reported
        await execute(dsn, "UPDATE assets SET description = 'drift' WHERE id = $1", asset.id)
    drifted = await verify(snapshot, dsn, sample_percent=30)
    assert drifted.entities["assets"].differing == drifted.entities["assets"].compared < len(snapshot.assets)


# -- threshold and the command line ------------------------------------------------------------------


async def test_the_exit_status_follows_the_threshold_and_every_mismatch_is_listed(
    loaded: tuple[Snapshot, str], tmp_path: Path
) -> None:
    snapshot, dsn = loaded
    path = tmp_path / "snapshot.json"
    write_snapshot(path, snapshot)
    journal = str(tmp_path / "journal" / "write-journal.jsonl")  # absent: nothing pending
    gone = snapshot.contributions[5]
    await execute(dsn, "DELETE FROM contributions WHERE id = $1", gone.id)  # 1 missing row + 1 wrong total
    report = await verify(snapshot, dsn)
    rate = report.mismatch_percent
    assert report.mismatch_count == 2
    assert 0 < rate < 1
    assert (report.threshold_percent, report.passed, report.exit_code) == (0.0, False, 1)

    default = await cli("--database-url", dsn, "verify", str(path), "--journal", journal)  # threshold 0
    below = await cli("verify", str(path), "--database-url", dsn, "--threshold", f"{rate / 2}", "--journal", journal)
    above = await cli("--database-url", dsn, "verify", str(path), "--threshold", f"{rate * 2}", "--journal", journal)
    machine = await cli("--database-url", dsn, "verify", str(path), "--json", "--journal", journal)
    script = await cli_script(str(path), "--database-url", dsn, "--threshold", f"{rate * 2}", "--journal", journal)

    assert default[0] == 1, default[2]
    assert "ABOVE THE THRESHOLD (threshold 0%)" in default[1]
    assert default[1].rstrip().endswith(f"verify: FAILED: 2 mismatched records ({rate:.4f}%) above the 0% threshold")
    assert below[0] == 1
    assert above[0] == 0, above[2]
    assert str(gone.id) in above[1]  # listed although under the threshold
    assert "missing in PostgreSQL" in above[1]
    assert above[1].rstrip().endswith("verify: PASSED")
    assert machine[0] == 1
    data = json.loads(machine[1])
    assert {(d["entity"], d["kind"]) for d in data["differences"]} == {
        ("contributions", MISSING_IN_POSTGRES),
        ("assets", AGGREGATE),
    }
    assert (data["mismatched"], data["threshold_percent"], data["passed"]) == (2, 0.0, False)
    assert script[0] == 0, script[2]


async def cli_script(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "verify_data_consistency.py"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_verify_reads_the_full_sizes_in_a_few_seconds(
    database_factory: Callable[[], Awaitable[str]],
) -> None:
    """Not a timing test (the machine is shared): one size up from the other tests, nothing lost."""
    from coherence_sql.schema import migrate

    dsn = await database_factory()
    await migrate(dsn)
    snapshot = sample_snapshot(projects=500, edges=2000, contributors=300, assets=300, contributions=5000, tasks=300)
    await backfill(dsn, snapshot, vacuum=False)

    report = await verify(snapshot, dsn, page_size=700)  # several keyset pages per table

    assert report.ok
    assert report.entities["contributions"].compared == 5000
    assert report.entities["edges"].compared == 2000
