"""Backfill of a JSON snapshot: PostgreSQL ends equal to it, a re-run changes nothing, an interrupted
run resumes to the same end state, a bad record is named and nothing of it is written."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from coherence_sql.commands.render import backfill_text
from coherence_sql.errors import SnapshotError
from coherence_sql.schema import migrate
from coherence_sql.stores.postgres import connect
from coherence_sql.stores.protocol import DependencyEdge
from coherence_sql.transfer.backfill import KEYS_PER_TRANSACTION, BackfillReport, backfill, snapshot_digest
from coherence_sql.transfer.rollback import export_snapshot
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import Snapshot, write_snapshot
from coherence_sql.transfer.verify import verify

ROOT = Path(__file__).resolve().parents[2]
# Tables the backfill writes, and how to order their rows for a digest of their content.
TABLES = {
    "projects": "ecosystem, name",
    "project_dependencies": "from_project_id, to_project_id",
    "pending_dependencies": "from_ecosystem, from_name, to_ecosystem, to_name",
    "contributors": "id",
    "assets": "id",
    "contributions": "id",
    "github_contributors": "id",
    "github_organizations": "id",
    "github_contributes_to": "contributor_id, ecosystem, name",
    "agent_tasks": "id",
}


def small_snapshot(seed: int = 3) -> Snapshot:
    return sample_snapshot(projects=60, edges=200, contributors=30, assets=20, contributions=300, tasks=40, seed=seed)


async def database_state(dsn: str) -> dict[str, Any]:
    """Row counts, the aggregates and an md5 of every row of every table the backfill writes."""
    conn = await asyncpg.connect(dsn)
    try:
        state: dict[str, Any] = {}
        for table, order in TABLES.items():
            state[table] = await conn.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY {order}), '')) AS digest "
                f"FROM {table} AS t"
            )
        state["total_cost"] = await conn.fetchval("SELECT sum(total_cost) FROM assets")
        state["dependency_count"] = await conn.fetchval("SELECT sum(dependency_count) FROM projects")
        return {k: tuple(v) if isinstance(v, asyncpg.Record) else v for k, v in state.items()}
    finally:
        await conn.close()


def content(snapshot: Snapshot) -> dict[str, Any]:
    """A snapshot's JSON with edges as a set: what an export must reproduce whatever the timing."""
    data = snapshot.to_json()
    data["edges"] = sorted(map(json.dumps, data["edges"]))
    return data


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


async def run(*command: str) -> Completed:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return Completed(process.returncode, out.decode(), err.decode())


async def coherence_sql(*args: str) -> Completed:
    """`coherence-sql ARGS` in a subprocess."""
    return await run(sys.executable, "-m", "coherence_sql.cli", *args)


# -- loading ---------------------------------------------------------------------------------------


async def test_backfill_loads_a_snapshot_and_postgresql_then_equals_it(clean_dsn: str) -> None:
    snapshot = small_snapshot()

    report = await backfill(clean_dsn, snapshot, batch_size=64)

    assert report.inserted == report.records == report.staged
    assert report.section("edges").records == len(snapshot.edges)
    checked = await verify(snapshot, clean_dsn, threshold_percent=0.0)
    assert checked.differences == []
    assert checked.compared_count == report.records
    async with connect(clean_dsn) as stores:
        shouting = next(p for p in snapshot.projects if p.name != p.name.lower())
        stored = await stores.graph.get_project(shouting.ecosystem.lower(), shouting.name.lower())
        assert stored is not None
        assert (stored.ecosystem, stored.name) == (shouting.ecosystem, shouting.name)  # display case kept
        assert stored.dependency_count == shouting.dependency_count > 0
        pending = next(e for e in snapshot.edges if e.to_name.startswith("not-indexed"))
        assert await stores.graph.count_dependents(pending.to_ecosystem, pending.to_name) >= 1
        asset = snapshot.assets[0]
        stored_asset = await stores.graph.get_asset(asset.id)
        assert stored_asset is not None
        expected = sum((c.cost_amount for c in snapshot.contributions if c.asset_id == asset.id), Decimal("0.00"))
        assert stored_asset.total_cost == expected == asset.total_cost
        first = snapshot.contributions[0]
        assert await stores.graph.get_contribution(first.id) == first.model_copy(
            update={"coherence_score": round(first.coherence_score, 2)}
        )
        _, total = await stores.tasks.list_tasks(limit=100)
        assert total == len(snapshot.agent_tasks or [])
        # Insertion order survives: ties in time list in the snapshot's order, as in memory.
        newest = await stores.graph.list_contributions(limit=len(snapshot.contributions))
        by_time = sorted(enumerate(snapshot.contributions), key=lambda ic: (-ic[1].timestamp.timestamp(), ic[0]))
        assert [c.id for c in newest] == [c.id for _, c in by_time]
        # The trigger still keeps total_cost for ordinary writes after a backfill.
        contributor = snapshot.contributors[0]
        await stores.graph.create_contribution(contributor.id, asset.id, Decimal("10.05"), 0.5, {})
        after = await stores.graph.get_asset(asset.id)
        assert after is not None
        assert after.total_cost == expected + Decimal("10.05")


async def test_a_snapshot_file_loads_with_jobs_1_and_its_sha256_keys_the_checkpoints(
    clean_dsn: str, tmp_path: Path
) -> None:
    snapshot = small_snapshot(seed=5)
    path = tmp_path / "snapshot.json"
    write_snapshot(path, snapshot)

    report = await backfill(clean_dsn, path, jobs=1, batch_size=1000)

    assert report.snapshot_sha256 == snapshot_digest(snapshot)  # the file write_snapshot writes
    assert [s.section for s in report.sections] == [
        "contributors",
        "assets",
        "contributions",
        "projects",
        "edges",
        "github_contributors",
        "github_organizations",
        "github_contributes_to",
        "agent_tasks",
    ]
    assert (await verify(path, clean_dsn)).ok


async def test_a_key_repeated_in_the_snapshot_loads_as_repeated_upserts_would(clean_dsn: str) -> None:
    snapshot = small_snapshot()
    first, second = snapshot.projects[0], snapshot.projects[1]
    again = first.model_copy(update={"name": first.name.swapcase(), "version": "9.9.9"})
    snapshot.projects = [first, second, again, *snapshot.projects[2:]]
    gh = snapshot.github_contributors[0]
    snapshot.github_contributors.append(gh.model_copy(update={"login": "renamed", "contributions_count": 7}))

    report = await backfill(clean_dsn, snapshot, batch_size=64)

    assert report.section("projects").records == len(snapshot.projects) - 1
    assert (await verify(snapshot, clean_dsn, threshold_percent=0.0)).differences == []
    conn = await asyncpg.connect(clean_dsn)
    try:
        rows = await conn.fetch("SELECT name, display_name, version FROM projects ORDER BY id LIMIT 2")
        login = await conn.fetchval("SELECT login FROM github_contributors WHERE id = $1", gh.id)
    finally:
        await conn.close()
    # The latest record's values, at the first record's position (insertion order: ids).
    assert [tuple(r) for r in rows] == [
        (first.name.lower(), again.name, "9.9.9"),
        (second.name.lower(), second.name, second.version),
    ]
    assert login == "renamed"


async def test_edges_load_in_large_partitions_and_key_locking_edges_in_small_batches_after_them(
    clean_dsn: str,
) -> None:
    snapshot = sample_snapshot(projects=300, edges=6000, contributors=5, assets=5, contributions=10, seed=8)
    keys = {(p.ecosystem.lower(), p.name.lower()) for p in snapshot.projects}
    locking = sum(
        1
        for e in snapshot.edges
        if (e.from_ecosystem.lower(), e.from_name.lower()) not in keys
        or (e.to_ecosystem.lower(), e.to_name.lower()) not in keys
    )
    assert locking > KEYS_PER_TRANSACTION // 2  # more than one batch of them

    await backfill(clean_dsn, snapshot, batch_size=10_000)

    conn = await asyncpg.connect(clean_dsn)
    try:
        rows = await conn.fetch(
            "SELECT section, staged, batches, started_at, updated_at "
            "FROM backfill_checkpoints WHERE section LIKE 'edges/%'"
        )
    finally:
        await conn.close()
    units = {r["section"]: r for r in rows}
    assert set(units) == {*(f"edges/clustered/{i}" for i in range(4)), "edges/locking"}
    # Every source project's count is raised once: one batch per partition.
    assert all(units[f"edges/clustered/{i}"]["batches"] == 1 for i in range(4))
    assert units["edges/locking"]["staged"] == locking
    assert units["edges/locking"]["batches"] == -(-locking // (KEYS_PER_TRANSACTION // 2))
    # The key-locking unit starts once every partition has committed.
    partitions_done = max(units[f"edges/clustered/{i}"]["updated_at"] for i in range(4))
    assert units["edges/locking"]["started_at"] >= partitions_done
    assert (await verify(snapshot, clean_dsn, threshold_percent=0.0)).differences == []


# -- idempotence -----------------------------------------------------------------------------------


async def test_a_second_backfill_changes_nothing(clean_dsn: str) -> None:
    snapshot = small_snapshot()
    await backfill(clean_dsn, snapshot, batch_size=64)
    before = await database_state(clean_dsn)

    resumed = await backfill(clean_dsn, snapshot, batch_size=64)
    again = await backfill(clean_dsn, snapshot, batch_size=64, restart=True)

    assert (resumed.inserted, resumed.staged, resumed.resumed) == (0, 0, resumed.records)
    assert (again.inserted, again.staged) == (0, again.records)  # merged again: all already present
    assert again.section("contributions").already_present == len(snapshot.contributions)
    assert await database_state(clean_dsn) == before


async def test_rows_postgresql_already_has_are_left_as_they_are(clean_dsn: str) -> None:
    snapshot = small_snapshot()
    newer = snapshot.projects[0].model_copy(update={"version": "99.0.0", "name": snapshot.projects[0].name.upper()})
    async with connect(clean_dsn) as stores:
        # Dual-write got there first: a newer version of a project, one contribution already counted.
        await stores.graph.upsert_project(newer)
        contribution = snapshot.contributions[0]
        contributor = next(c for c in snapshot.contributors if c.id == contribution.contributor_id)
        asset = next(a for a in snapshot.assets if a.id == contribution.asset_id)
        await stores.graph.create_contributor(contributor)
        await stores.graph.create_asset(asset)
        await stores.graph.create_contribution(
            contribution.contributor_id,
            contribution.asset_id,
            contribution.cost_amount,
            contribution.coherence_score,
            contribution.metadata,
            id=contribution.id,
            timestamp=contribution.timestamp,
        )

        report = await backfill(clean_dsn, snapshot)

        assert report.section("projects").already_present == 1
        assert report.section("contributions").already_present == 1
        kept = await stores.graph.get_project(newer.ecosystem, newer.name)
        assert kept is not None
        assert (kept.version, kept.name) == ("99.0.0", newer.name)  # never overwritten by the older snapshot
        stored_asset = await stores.graph.get_asset(asset.id)
        assert stored_asset is not None
        assert stored_asset.total_cost == asset.total_cost  # the contribution is counted once
    checked = await verify(snapshot, clean_dsn, threshold_percent=0.0)
    assert [(d.entity, d.kind, d.field) for d in checked.differences] == [
        ("projects", "field", "name"),
        ("projects", "field", "version"),
    ]


async def test_contributions_may_name_parents_only_postgresql_has(clean_dsn: str) -> None:
    snapshot = small_snapshot()
    parents = Snapshot(contributors=snapshot.contributors, assets=snapshot.assets)
    await backfill(clean_dsn, parents)
    children = Snapshot(contributions=snapshot.contributions)

    report = await backfill(clean_dsn, children)

    assert report.inserted == len(snapshot.contributions)
    loaded = Snapshot(contributors=snapshot.contributors, assets=snapshot.assets, contributions=snapshot.contributions)
    assert (await verify(loaded, clean_dsn, threshold_percent=0.0)).ok
    async with connect(clean_dsn) as stores:
        for asset in snapshot.assets:
            stored = await stores.graph.get_asset(asset.id)
            assert stored is not None
            assert stored.total_cost == asset.total_cost


# -- interruption ----------------------------------------------------------------------------------


async def test_a_cancelled_backfill_resumes_to_the_same_end_state(
    clean_dsn: str, database_factory: Callable[[], Awaitable[str]]
) -> None:
    snapshot = small_snapshot()
    reference = await database_factory()
    await migrate(reference)
    await backfill(reference, snapshot, batch_size=20, jobs=1)
    batches_seen = 0
    three_batches = asyncio.Event()

    def progress(section: str, done: int, total: int) -> None:
        nonlocal batches_seen
        if section == "contributions" and done > 0:
            batches_seen += 1
            if batches_seen == 3:
                three_batches.set()

    task = asyncio.ensure_future(backfill(clean_dsn, snapshot, batch_size=20, jobs=2, progress=progress))
    await asyncio.wait_for(three_batches.wait(), timeout=60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    partial = await database_state(clean_dsn)
    assert 0 < partial["contributions"][0] < len(snapshot.contributions)

    resumed = await backfill(clean_dsn, snapshot, batch_size=20, jobs=2)

    # A batch and its checkpoint commit together: what was written is exactly what is skipped.
    assert resumed.resumed == partial_rows(partial) > 0
    assert resumed.inserted == resumed.records - resumed.resumed
    assert (await verify(snapshot, clean_dsn, threshold_percent=0.0)).differences == []
    assert content(await export_snapshot(clean_dsn)) == content(await export_snapshot(reference))


def partial_rows(state: dict[str, Any]) -> int:
    return sum(state[t][0] for t in TABLES)


async def test_a_killed_backfill_process_resumes_to_the_same_end_state(
    database_factory: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    dsn = await database_factory()
    await migrate(dsn)
    snapshot = sample_snapshot(projects=40, edges=100, contributors=20, assets=10, contributions=2000, tasks=10)
    path = tmp_path / "snapshot.json"
    write_snapshot(path, snapshot)
    command = [sys.executable, "-m", "coherence_sql.cli", "--database-url", dsn, "backfill", str(path)]
    process = await asyncio.create_subprocess_exec(
        *command, "--batch-size", "10", "--jobs", "1", "--quiet", stdout=asyncio.subprocess.DEVNULL
    )
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.returncode is None:
            done = await conn.fetchval("SELECT coalesce(sum(batches), 0) FROM backfill_checkpoints")
            if done >= 5:
                break
            await asyncio.sleep(0.01)
        assert process.returncode is None, "the backfill finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), timeout=30)
        killed_at = await conn.fetchval("SELECT count(*) FROM contributions")
    finally:
        await conn.close()
    assert killed_at < len(snapshot.contributions)

    finished = await coherence_sql("--database-url", dsn, "backfill", str(path), "--json", "--batch-size", "500")

    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert resumed_contributions(report) == killed_at > 0  # rows and checkpoints committed together
    assert report["inserted"] == report["records"] - report["resumed"]
    assert (await verify(snapshot, dsn, threshold_percent=0.0)).differences == []


def resumed_contributions(report: dict[str, Any]) -> int:
    return int(next(s["resumed"] for s in report["sections"] if s["section"] == "contributions"))


# -- bad snapshots ---------------------------------------------------------------------------------


def _bad_cost(snapshot: Snapshot) -> tuple[str, str]:
    bad = snapshot.contributions[7].model_copy(update={"cost_amount": Decimal("1.234")})
    snapshot.contributions[7] = bad
    return "contributions[7]", str(bad.id)


def _orphan(snapshot: Snapshot) -> tuple[str, str]:
    stranger = UUID(int=12345)
    snapshot.contributions[11] = snapshot.contributions[11].model_copy(update={"contributor_id": stranger})
    return "contributions[11]", str(stranger)


def _self_edge(snapshot: Snapshot) -> tuple[str, str]:
    snapshot.edges[5] = DependencyEdge("npm", "left-pad", "NPM", "Left-Pad")
    return "edges[5]", "left-pad"


def _duplicate_email(snapshot: Snapshot) -> tuple[str, str]:
    twin = snapshot.contributors[4].model_copy(update={"id": UUID(int=777), "email": snapshot.contributors[2].email})
    snapshot.contributors.append(twin)
    return f"contributors[{len(snapshot.contributors) - 1}]", "contributors[2]"


def _empty_direction(snapshot: Snapshot) -> tuple[str, str]:
    assert snapshot.agent_tasks is not None
    snapshot.agent_tasks[3] = snapshot.agent_tasks[3].model_copy(update={"direction": "   "})
    return "agent_tasks[3]", snapshot.agent_tasks[3].id


def _long_url(snapshot: Snapshot) -> tuple[str, str]:
    snapshot.projects[9] = snapshot.projects[9].model_copy(update={"homepage_url": "https://x.org/" + "a" * 600})
    return "projects[9]", "homepage_url"


def _lone_surrogate(snapshot: Snapshot) -> tuple[str, str]:
    snapshot.github_contributors[1] = snapshot.github_contributors[1].model_copy(update={"name": "Octo \ud800"})
    return "github_contributors[1]", "lone surrogate"


@pytest.mark.parametrize(
    "spoil", [_bad_cost, _orphan, _self_edge, _duplicate_email, _empty_direction, _long_url, _lone_surrogate]
)
async def test_a_bad_record_is_named_and_nothing_is_written(
    clean_dsn: str, spoil: Callable[[Snapshot], tuple[str, str]]
) -> None:
    snapshot = small_snapshot()
    where, detail = spoil(snapshot)

    with pytest.raises(SnapshotError) as caught:
        await backfill(clean_dsn, snapshot)

    assert where in str(caught.value)
    assert detail in str(caught.value)
    state = await database_state(clean_dsn)
    assert all(state[table][0] == 0 for table in TABLES)


async def test_a_batch_postgresql_refuses_is_named_and_none_of_it_is_written(
    database_factory: Callable[[], Awaitable[str]],
) -> None:
    dsn = await database_factory()  # its own database: the test adds a trigger
    await migrate(dsn)
    snapshot = small_snapshot()
    refused = snapshot.contributions[130]
    conn = await asyncpg.connect(dsn)
    try:
        # PostgreSQL refusing a row the checks in Python let through (here: a test trigger).
        await conn.execute(
            f"""
            CREATE FUNCTION refuse_one() RETURNS trigger AS $$
            BEGIN
                IF NEW.id = '{refused.id}' THEN
                    RAISE EXCEPTION 'refused for the test' USING ERRCODE = 'check_violation';
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_one BEFORE INSERT ON contributions FOR EACH ROW EXECUTE FUNCTION refuse_one();
            """
        )
        with pytest.raises(SnapshotError, match=r"contributions\[\d+\.\.\d+\]: PostgreSQL refused the batch") as caught:
            await backfill(dsn, snapshot, batch_size=25, jobs=1)
        assert "refused for the test" in str(caught.value)
        first, last = (int(n) for n in str(caught.value).split("[", 1)[1].split("]", 1)[0].split(".."))
        assert first <= 130 <= last
        stored = {r["id"] for r in await conn.fetch("SELECT id FROM contributions")}
        # The batch: that span of the refused row's partition (contributions load by asset).
        partition = refused.asset_id.int % 4
        batch = {c.id for c in snapshot.contributions[first : last + 1] if c.asset_id.int % 4 == partition}
        assert refused.id in batch
        assert stored.isdisjoint(batch)
        assert stored  # earlier batches stay committed
        sums = await conn.fetchval(
            "SELECT count(*) FROM assets AS a WHERE a.total_cost <> "
            "coalesce((SELECT sum(c.cost_amount) FROM contributions AS c WHERE c.asset_id = a.id), 0)"
        )
        assert sums == 0  # what did commit is consistent
        await conn.execute("DROP TRIGGER refuse_one ON contributions")
    finally:
        await conn.close()

    report = await backfill(dsn, snapshot, batch_size=25, jobs=1)

    assert report.resumed > 0
    assert (await verify(snapshot, dsn, threshold_percent=0.0)).differences == []


# -- the command line ------------------------------------------------------------------------------


async def test_the_cli_and_the_script_backfill_a_file(clean_dsn: str, tmp_path: Path) -> None:
    snapshot = small_snapshot()
    path = tmp_path / "snapshot.json"
    write_snapshot(path, snapshot)

    cli = await coherence_sql("--database-url", clean_dsn, "backfill", str(path))
    script = await run(
        sys.executable, str(ROOT / "scripts" / "backfill_postgres.py"), str(path), "--database-url", clean_dsn, "--json"
    )

    assert cli.returncode == 0, cli.stderr
    assert "contributions" in cli.stdout
    assert "total" in cli.stdout
    assert cli.stderr == ""  # no progress bar when stderr is not a terminal
    assert script.returncode == 0, script.stderr
    second = json.loads(script.stdout)
    assert (second["inserted"], second["resumed"]) == (0, second["records"])
    assert (await verify(snapshot, clean_dsn)).ok


async def test_the_cli_reports_a_bad_snapshot_with_exit_status_2(clean_dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    data = small_snapshot().to_json()
    data["contributions"][2]["cost_amount"] = "-5.00"
    path.write_text(json.dumps(data))

    result = await coherence_sql("--database-url", clean_dsn, "backfill", str(path))

    assert result.returncode == 2
    assert "SnapshotError" in result.stderr
    assert "contributions[2]" in result.stderr


def test_the_report_formats_every_section() -> None:
    report = BackfillReport("0" * 64)
    assert "total" in backfill_text(report)
    assert report.as_json()["sections"] == []


async def test_backfill_verify_and_export_take_the_stores_pool(clean_dsn: str) -> None:
    snapshot = small_snapshot(seed=9)
    async with connect(clean_dsn) as stores:
        report = await backfill(stores.pool, snapshot, jobs=2)
        checked = await verify(snapshot, stores.pool, threshold_percent=0.0)
        exported = await export_snapshot(stores.pool)
        assert await stores.graph.count_projects() == len(snapshot.projects)  # the pool still serves

    assert report.inserted == report.records
    assert checked.ok
    assert content(exported) == content(snapshot)
