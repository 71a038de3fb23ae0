"""verify holds a digest per key, not the records: a snapshot file ten times larger, verified against
PostgreSQL, raises the peak (tracemalloc) by a small constant per record. No timing."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import asyncpg
import pytest

from coherence_sql.transfer import snapshot_file
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import Snapshot, write_snapshot
from coherence_sql.transfer.verify import source as source_module
from coherence_sql.transfer.verify import verify

# Bytes a record may add to the peak. A key costs two 16-byte digests (bytes objects of 49 bytes)
# and a dict slot: about 150 bytes a record here. Holding the projections of both sides (the
# design before, 1,650 bytes a record measured in this very setting on 2026-12-01), or either
# side's records, gives ≥ 1 KB a record and fails.
BYTES_PER_RECORD = 400


def _sized(n: int) -> Snapshot:
    quarter = n // 4
    return sample_snapshot(
        projects=n, edges=3 * n, contributors=quarter, assets=quarter, contributions=2 * n, tasks=quarter
    )


@pytest.mark.slow
async def test_ten_times_the_records_adds_a_small_constant_per_record(
    clean_dsn: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The constant parts small, so that what grows with the data shows: a 4 KiB read buffer, 50
    # records validated at a time, 250 rows a page.
    monkeypatch.setattr(snapshot_file, "CHUNK", 4096)
    monkeypatch.setattr(source_module, "CHUNK_RECORDS", 50)
    truncate: str = request.getfixturevalue("_truncate_sql")
    peaks, records = [], []
    for n in (80, 800):
        admin = await asyncpg.connect(clean_dsn)
        try:
            await admin.execute(truncate)
        finally:
            await admin.close()
        path = tmp_path / f"{n}.json"
        snapshot = _sized(n)
        write_snapshot(path, snapshot)
        await backfill(clean_dsn, snapshot, vacuum=False)
        del snapshot
        tracemalloc.start()
        try:
            report = await verify(path, clean_dsn, page_size=250)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert report.ok, report.differences[:3]
        records.append(report.compared_count)

    assert records[1] >= 9 * records[0]
    growth = (peaks[1] - peaks[0]) / (records[1] - records[0])
    assert growth < BYTES_PER_RECORD, (peaks, records, growth)
