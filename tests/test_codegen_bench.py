"""`coherence-sql bench accessors` runs end to end (its numbers are recorded in docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from coherence_sql.codegen.bench import bench_accessors
from coherence_sql.db import Connection


async def test_bench_compares_both_reads_through_accessor_and_raw(conn: Connection) -> None:
    point, listing = await bench_accessors(conn, rounds=2, point_chunk=20, list_chunk=2)
    assert point.label == "point lookup (projects.get_project)"
    assert listing.label == "list of 1,000 rows (projects.scan_projects)"
    for comparison in (point, listing):
        assert comparison.raw_rate > 0
        assert comparison.accessor_rate > 0
        assert 0 < comparison.ratio < 10
        assert comparison.line().startswith(f"{comparison.label}: raw ")


@pytest.mark.parametrize(
    ("status", "count"), [("UPDATE 3", 3), ("INSERT 0 1", 1), ("DELETE 0", 0), ("CREATE TABLE", 0)]
)
def test_rowcount_reads_the_status_string(status: str, count: int) -> None:
    from coherence_sql.sql._runtime import rowcount

    assert rowcount(status) == count
