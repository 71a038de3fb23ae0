"""Backfill, verify and export at the issue's scale: rows per second and each phase's peak memory.

The snapshot (100k projects, 1M edges, 10k contributors, assets and tasks, 100k contributions and
the GitHub sections sample_snapshot adds: 1.26M records) is generated once into a file and reused.
Each phase runs in a child process of its own, so its peak RSS (getrusage) is its own:

    python benchmarks/bench_backfill_scale.py [--database-url URL] [--snapshot /tmp/scale.json]
        [--phases backfill,verify,export] [--jobs 2] [--scale 1.0]

Without --database-url a scratch embedded server on tmpfs is used; with it, a scratch database on
that server (created and dropped). Prints one line per phase and the load average around it.
Before/after side by side: run this file with PYTHONPATH pointing at a `git worktree` of each
commit in turn (the child processes inherit it, and the scratch database gets that tree's schema).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZES = {
    "projects": 100_000,
    "edges": 1_000_000,
    "contributors": 10_000,
    "assets": 10_000,
    "contributions": 100_000,
    "tasks": 10_000,
}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def generate(path: Path, scale: float) -> None:
    from coherence_sql.transfer.sample import sample_snapshot
    from coherence_sql.transfer.snapshot import write_snapshot

    sizes = {name: max(1, int(n * scale)) for name, n in SIZES.items()}
    write_snapshot(path, sample_snapshot(**sizes, seed=1))


async def child(phase: str, dsn: str, path: Path, jobs: int) -> dict[str, object]:
    """One phase in this process; returns its figures."""
    began = time.perf_counter()
    result: dict[str, object] = {"phase": phase}
    if phase == "backfill":
        from coherence_sql.transfer.backfill import backfill

        report = await backfill(dsn, path, jobs=jobs, restart=True)
        result["records"] = report.records
        result["inserted"] = report.inserted
        result["check_seconds"] = round(report.check_seconds or 0.0, 2)
        result["sections"] = {s.section: round(s.seconds, 2) for s in report.sections}
    elif phase == "verify":
        from coherence_sql.transfer.verify import verify

        checked = await verify(path, dsn)
        result["compared"] = checked.compared_count
        result["mismatched"] = checked.mismatch_count
    elif phase == "export":
        from coherence_sql.transfer.export import export_to_file

        await export_to_file(dsn, path.with_suffix(".export.json"))
    result["seconds"] = round(time.perf_counter() - began, 2)
    # The client's own CPU (load inflates it far less than wall time): the process's, imports included.
    result["client_cpu_seconds"] = round(time.process_time(), 2)
    result["peak_rss_mb"] = round(_peak_mb(), 1)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url")
    parser.add_argument("--snapshot", type=Path, default=Path("/tmp/coherence-scale-snapshot.json"))
    parser.add_argument("--phases", default="backfill,verify,export")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size (a quick run: 0.1)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(await child(args.child, args.dsn, args.snapshot, args.jobs)))
        return
    if not args.snapshot.exists():
        began = time.perf_counter()
        generate(args.snapshot, args.scale)
        print(
            f"generated {args.snapshot} ({args.snapshot.stat().st_size / 1e6:.0f} MB) in "
            f"{time.perf_counter() - began:.0f} s"
        )
    from coherence_sql.codegen.scratch import scratch_database

    async with scratch_database(args.database_url) as dsn:
        for phase in args.phases.split(","):
            before = _load()
            out = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    __file__,
                    "--child",
                    phase,
                    "--dsn",
                    dsn,
                    "--snapshot",
                    str(args.snapshot),
                    "--jobs",
                    str(args.jobs),
                ],
                capture_output=True,
                text=True,
                check=False,
                env=os.environ,
            )
            if out.returncode:
                print(f"{phase} failed:\n{out.stderr[-3000:]}")
                return
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            if phase == "backfill":
                records = int(figures["records"])  # type: ignore[call-overload]
                figures["rows_per_s"] = round(records / float(figures["seconds"]))  # type: ignore[arg-type]
            figures["load"] = f"{before} -> {_load()}"
            print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
