"""Backup and restore wall time at a share of the issue's scale: what a daily backup and a restore
drill cost, and so the recovery time to expect.

    python benchmarks/bench_backup.py [--scale 0.1] [--runs 2]

A scratch embedded server on tmpfs (fsync off: the figures are CPU and pg_dump/pg_restore, not the
disk) is loaded once by the backfill with `sample_snapshot` at `--scale` of 100k projects / 1M
edges / 10k contributors, assets and tasks / 100k contributions; then each run times a backup, the
checksum check alone (`restore --check`), and a restore into a new database (pg_restore, the
row-count and schema checks, ANALYZE). Prints one line per step with the load average around it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from coherence_sql.backup import backup_database, restore_backup, verify_backup
from coherence_sql.backup.conninfo import with_database
from coherence_sql.embedded import EmbeddedPostgres, scratch_parent
from coherence_sql.schema import migrate
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.sample import sample_snapshot

SIZES = {
    "projects": 100_000,
    "edges": 1_000_000,
    "contributors": 10_000,
    "assets": 10_000,
    "contributions": 100_000,
    "tasks": 10_000,
}


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


async def bench(admin: str, work: Path, scale: float, runs: int) -> None:
    source = with_database(admin, "bench_source")
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute("CREATE DATABASE bench_source")
    finally:
        await conn.close()
    await migrate(source)
    sizes = {name: max(1, int(n * scale)) for name, n in SIZES.items()}
    snapshot = sample_snapshot(**sizes, seed=1)
    began = time.perf_counter()
    report = await backfill(source, snapshot)
    print(f"loaded {report.records} records in {time.perf_counter() - began:.1f} s (load {_load()})")
    timings: dict[str, list[float]] = {"backup": [], "check": [], "restore": []}
    for run in range(runs):
        load_before = _load()
        began = time.perf_counter()
        result = await backup_database(source, work / f"run{run}")
        timings["backup"].append(time.perf_counter() - began)
        began = time.perf_counter()
        await asyncio.to_thread(verify_backup, result.path)
        timings["check"].append(time.perf_counter() - began)
        began = time.perf_counter()
        await restore_backup(result.path, with_database(admin, f"bench_restored_{run}"))
        timings["restore"].append(time.perf_counter() - began)
        size_mb = result.manifest.dump.bytes / 1e6
        print(
            f"run {run}: dump {size_mb:.1f} MB; backup {timings['backup'][-1]:.2f} s, check "
            f"{timings['check'][-1]:.2f} s, restore {timings['restore'][-1]:.2f} s "
            f"(load {load_before} -> {_load()})"
        )
    for step, values in timings.items():
        print(f"{step}: median {statistics.median(values):.2f} s over {len(values)} run(s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.1, help="share of the issue's scale (default 0.1)")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backup-", dir=scratch_parent()) as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", durable=False)
        try:
            admin = server.start()
            print(f"scale {args.scale}, load {_load()}")
            asyncio.run(bench(admin, Path(tmp) / "backups", args.scale, args.runs))
        finally:
            server.destroy()


if __name__ == "__main__":
    main()
