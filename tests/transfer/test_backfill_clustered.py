"""The edges load clustered by source project within each partition (a batch raises few projects'
dependency_count, each about once): the order is the same in every run, so a run stopped inside
the edges resumes each partition by its count of staged rows and ends in the state of one run."""

from __future__ import annotations

import asyncio
import zlib

import asyncpg
import pytest

from coherence_sql.transfer.backfill import PARTITIONS, backfill
from coherence_sql.transfer.backfill.plan import Plan
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.verify import verify


def test_each_edge_partition_goes_grouped_by_source_project_each_group_in_file_order() -> None:
    snapshot = sample_snapshot(projects=30, edges=200, contributors=2, assets=2, contributions=2, seed=4)

    edges = next(s for s in Plan(snapshot, 25).sections if s.name == "edges")
    units = edges.units()

    clustered = [u for u in units if u.key.startswith("edges/clustered/")]
    assert len(clustered) == PARTITIONS
    assert all(u.resume_by_count for u in clustered)
    for unit in clustered:
        sources = [row[1] for row in unit.rows]  # the source project's number
        runs = [key for i, key in enumerate(sources) if i == 0 or sources[i - 1] != key]
        assert len(runs) == len(set(runs))  # each source project's edges are contiguous
        for source in set(runs):
            ords = [row[0] for row in unit.rows if row[1] == source]
            assert ords == sorted(ords)  # and in file order
    assert sorted(row[0] for u in units for row in u.rows) == sorted(row[0] for row in edges.rows)


def test_the_partitions_hold_the_rows_in_the_order_of_the_grouping_pass_they_replace() -> None:
    """The order a checkpoint's count of staged rows refers to: the file's free edges split by the
    CRC-32 of the source key, then grouped by source (groups in order of first appearance), as the
    separate grouping pass did before the plan's loop built the groups."""
    snapshot = sample_snapshot(projects=40, edges=500, contributors=2, assets=2, contributions=2, seed=6)
    edges = next(s for s in Plan(snapshot, 25).sections if s.name == "edges")
    assert edges.edge_keys is not None
    assert edges.locking
    keys = edges.edge_keys.keys

    shares: list[list[tuple[int, ...]]] = [[] for _ in range(PARTITIONS)]
    for row in edges.rows:
        if row[0] not in edges.locking:
            shares[zlib.crc32("/".join(keys[row[1]]).encode()) % PARTITIONS].append(row)
    expected = []
    for share in shares:
        groups: dict[int, list[tuple[int, ...]]] = {}
        for row in share:
            groups.setdefault(row[1], []).append(row)
        expected.append([row for group in groups.values() for row in group])

    assert [u.rows for u in edges.units() if not u.last] == expected


async def test_a_backfill_stopped_inside_the_edges_resumes_each_partition_where_it_stopped(clean_dsn: str) -> None:
    snapshot = sample_snapshot(projects=80, edges=600, contributors=3, assets=3, contributions=5, tasks=3, seed=9)
    batches = 0
    some_edges = asyncio.Event()

    def progress(section: str, done: int, total: int) -> None:
        nonlocal batches
        if section == "edges" and done > 0:
            batches += 1
            if batches == 5:
                some_edges.set()

    task = asyncio.ensure_future(backfill(clean_dsn, snapshot, batch_size=20, jobs=2, progress=progress))
    await asyncio.wait_for(some_edges.wait(), timeout=60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    conn = await asyncpg.connect(clean_dsn)
    try:
        loaded = await conn.fetchval(
            "SELECT (SELECT count(*) FROM project_dependencies) + (SELECT count(*) FROM pending_dependencies)"
        )
    finally:
        await conn.close()
    assert 0 < loaded < len(snapshot.edges)

    resumed = await backfill(clean_dsn, snapshot, batch_size=20, jobs=2)

    # A batch and its checkpoint commit together: exactly the edges written are skipped.
    assert resumed.section("edges").resumed == loaded
    assert resumed.section("edges").inserted == len(snapshot.edges) - loaded
    assert (await verify(snapshot, clean_dsn, threshold_percent=0.0)).differences == []
