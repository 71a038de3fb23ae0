"""`coherence-sql backfill`, `verify`, `rollback` and `bench backfill`: moving and checking the data.

The plan's operator scripts (scripts/backfill_postgres.py, verify_data_consistency.py,
rollback_postgres_migration.py) are these commands; docs/runbook.md says when to run each.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from coherence_sql.commands import render
from coherence_sql.commands.database import add_database_options, chosen_dsn
from coherence_sql.cutover.service import default_journal_path
from coherence_sql.errors import CoherenceSQLError
from coherence_sql.metrics.verify import textfile_argument, write_verify_textfile
from coherence_sql.redaction import redact
from coherence_sql.stores.memory import MemoryStores
from coherence_sql.transfer.backfill import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_JOBS,
    DirtySnapshotError,
    backfill,
    read_snapshot_file,
)
from coherence_sql.transfer.export import export_to_file
from coherence_sql.transfer.rollback import (
    check_live,
    check_settings,
    read_env_file,
    rollback_settings,
    write_env_file,
)
from coherence_sql.transfer.snapshot import load_into, write_snapshot
from coherence_sql.transfer.verify import DEFAULT_THRESHOLD_PERCENT, verify

BENCH_TARGET_S = 5.0  # issue 5: the generated snapshot below loads in under 5 seconds


def _show_progress(args: argparse.Namespace) -> bool:
    """Progress only on a terminal, and never with --json or --quiet: a pipe gets the result alone."""
    return render.interactive() and not args.json and not getattr(args, "quiet", False)


def _database_option(parser: argparse.ArgumentParser) -> None:
    # Also accepted after the subcommand (the scripts pass their arguments through).
    add_database_options(parser)


def _percent(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be a percentage from 0 to 100, got {text}")
    return value


def _foreign_keys_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--per-row-foreign-keys",
        action="store_true",
        help="let the foreign keys' triggers check every row, even where the role may skip them "
        "(by default a superuser, or a role granted SET on session_replication_role, checks each "
        "batch's references at once)",
    )


def register(subparsers: Any) -> None:
    fill = subparsers.add_parser(
        "backfill",
        help="load a JSON snapshot of the in-memory stores into PostgreSQL (idempotent, resumable)",
        description="COPY into staging tables, then merge with ON CONFLICT DO NOTHING: rows PostgreSQL "
        "already has are left alone. Checkpointed per batch under the snapshot's SHA-256, so a re-run "
        "after an interruption resumes. Exit 0 when done, 2 when the snapshot or the database is bad.",
    )
    fill.add_argument("snapshot", type=Path, metavar="SNAPSHOT.json", help="a snapshot in the API's format")
    fill.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per transaction (default {DEFAULT_BATCH_SIZE})",
    )
    fill.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help=f"connections at once (default {DEFAULT_JOBS})")
    fill.add_argument("--restart", action="store_true", help="ignore earlier checkpoints of this snapshot")
    fill.add_argument("--no-vacuum", action="store_true", help="skip the VACUUM/ANALYZE of the loaded tables")
    _foreign_keys_option(fill)
    fill.add_argument("--quiet", action="store_true", help="no progress bar (there is none on a pipe either)")
    fill.add_argument("--json", action="store_true", help="print the report as JSON")
    fill.add_argument(
        "--quarantine",
        type=Path,
        metavar="FILE",
        default=None,
        help="load every valid record and write the refused ones, with their reasons, to FILE (a snapshot "
        "backfill reads once they are fixed); exit 1 when any were refused. Without it, a snapshot with "
        "any refused record loads nothing and exits 2, listing every problem",
    )
    _database_option(fill)
    fill.set_defaults(run=_backfill)

    check = subparsers.add_parser(
        "verify",
        help="compare a snapshot with PostgreSQL field by field; exit 1 on any difference or journal backlog",
        description="A gate: every difference is listed, and the exit status is 1 on any difference "
        "(records missing or differing, broken totals, an edge listed twice in the source, a GitHub "
        "contributes-to edge whose contributor is unknown) and whenever the write journal holds "
        "pending writes or dead letters (PostgreSQL is then behind or missing writes: reconcile first). "
        "The migration gates use the default; --threshold is for sampled, scheduled runs.",
    )
    check.add_argument("source", type=Path, metavar="SOURCE", help="a snapshot file (e.g. the API's GRAPH_STORE_PATH)")
    check.add_argument(
        "--sample-percent", type=_percent, default=100.0, help="compare this share of keys, chosen by a stable hash"
    )
    check.add_argument(
        "--threshold",
        type=_percent,
        default=DEFAULT_THRESHOLD_PERCENT,
        metavar="PERCENT",
        help=f"mismatch rate in percent above which the exit status is 1 (default {DEFAULT_THRESHOLD_PERCENT:g}: "
        "any difference fails; every migration gate uses the default). A value above 0 is for sampled, "
        "scheduled runs (--sample-percent) on a live system, where a few writes land between the snapshot "
        "and the read. A journal backlog or dead letter fails whatever the threshold",
    )
    check.add_argument(
        "--journal",
        type=Path,
        default=None,
        metavar="PATH",
        help="the dual-write journal whose pending writes and dead letters are reported (default: "
        "$COHERENCE_SQL_JOURNAL, else ~/.local/share/coherence-sql/write-journal.jsonl)",
    )
    check.add_argument("--limit", type=int, default=200, help="differences printed in the table (0: all)")
    check.add_argument("--json", action="store_true", help="print the full report as JSON")
    check.add_argument(
        "--metrics-file",
        type=textfile_argument,
        default=None,
        metavar="PATH",
        help="also write coherence_sql_verify_* to PATH, a node_exporter textfile (written atomically; "
        "a run that fails before comparing writes success 0)",
    )
    _database_option(check)
    check.set_defaults(run=_verify)

    back = subparsers.add_parser(
        "rollback",
        help="roll back a migration phase: the settings to apply (and, for phase 3, a snapshot export)",
        description="Phases 1 and 2 are configuration changes; phase 3 also exports PostgreSQL to a "
        "snapshot file the in-memory stores load, and checks it against PostgreSQL. Exit 0 when done "
        "(and, with --status-url, in effect), 1 when a check fails, 2 on errors.",
    )
    back.add_argument("--phase", type=int, choices=(1, 2, 3), required=True, help="the phase to roll back")
    back.add_argument("--env-file", type=Path, default=None, help="write the settings into this dotenv file")
    back.add_argument("--out", type=Path, default=None, help="phase 3: where to write the snapshot (required)")
    back.add_argument(
        "--status-url",
        default=None,
        help="the API's store-status URL: report whether the rollback is in effect there",
    )
    back.add_argument("--no-verify", action="store_true", help="phase 3: skip checking the export against PostgreSQL")
    back.add_argument(
        "--check-only",
        action="store_true",
        help="export nothing, write nothing: check the settings (and --status-url) only, e.g. after the restart",
    )
    back.add_argument("--json", action="store_true", help="print the outcome as JSON")
    _database_option(back)
    back.set_defaults(run=_rollback)


def register_bench(kinds: Any) -> None:
    """`coherence-sql bench backfill` (added to the `bench` group of codegen_commands)."""
    bench = kinds.add_parser(
        "backfill", help=f"backfill a generated snapshot into a scratch database (target: under {BENCH_TARGET_S:g} s)"
    )
    for name, default in (
        ("projects", 10_000),
        ("edges", 50_000),
        ("contributors", 10_000),
        ("assets", 10_000),
        ("contributions", 100_000),
        ("tasks", 10_000),
    ):
        bench.add_argument(f"--{name}", type=int, default=default, help=f"default {default:,}")
    bench.add_argument("--seed", type=int, default=1, help="the generator's seed (default 1)")
    bench.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per transaction (default {DEFAULT_BATCH_SIZE:,}, as for backfill)",
    )
    bench.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help=f"connections (default {DEFAULT_JOBS})")
    _foreign_keys_option(bench)
    add_database_options(bench, embedded=False)
    bench.set_defaults(run=_bench_backfill)


# -- backfill ------------------------------------------------------------------------------------


async def _backfill(args: argparse.Namespace) -> int:
    dsn = chosen_dsn(args, "backfill", needs="the PostgreSQL to load the snapshot into")
    try:
        with render.section_progress("backfill", enabled=_show_progress(args)) as progress:
            report = await backfill(
                dsn,
                args.snapshot,
                batch_size=args.batch_size,
                jobs=args.jobs,
                restart=args.restart,
                vacuum=not args.no_vacuum,
                per_row_foreign_keys=args.per_row_foreign_keys,
                progress=progress,
                quarantine=args.quarantine,
            )
    except DirtySnapshotError as exc:  # every problem listed, nothing written
        if args.json:
            error = {"type": type(exc).__name__, "message": str(exc).split("\n", 1)[0]}
            render.print_json({**exc.report.as_json(), "loaded": False, "error": error})
        print(render.problems_text(exc.report.problems, exc.report.normalised), file=sys.stderr)
        print(
            f"coherence-sql: DirtySnapshotError: {len(exc.report.problems):,} record(s) refused, nothing was "
            "written: fix them in the snapshot, or run again with --quarantine FILE to load the others",
            file=sys.stderr,
        )
        return 2
    if args.json:
        render.print_json(report.as_json())
    else:
        print(f"database: {redact(dsn)}")
        render.print_backfill(report)
    return 1 if report.problems else 0


# -- verify --------------------------------------------------------------------------------------


async def _verify(args: argparse.Namespace) -> int:
    dsn = chosen_dsn(args, "verify", needs="the PostgreSQL to compare the source with")
    try:
        with render.step_progress("verify", "tables", enabled=_show_progress(args)) as progress:
            report = await verify(
                args.source,
                dsn,
                sample_percent=args.sample_percent,
                threshold_percent=args.threshold,
                journal=args.journal or default_journal_path(),
                progress=progress,
            )
    except CoherenceSQLError:
        if args.metrics_file is not None:  # the alert on verify failing must see this run too
            write_verify_textfile(args.metrics_file, passed=False, differences=None)
        raise
    if args.metrics_file is not None:
        write_verify_textfile(args.metrics_file, passed=report.passed, differences=len(report.differences))
    if args.json:
        render.print_json(report.as_json())
    else:
        render.print_verify(report, limit=args.limit)
    return report.exit_code


# -- rollback ------------------------------------------------------------------------------------


def _refuse(args: argparse.Namespace, message: str) -> int:
    """A usage error of rollback: one line on stderr, or JSON with --json; exit 2."""
    if args.json:
        render.print_json({"error": {"type": "UsageError", "message": message}})
    else:
        print(f"coherence-sql rollback: {message}", file=sys.stderr)
    return 2


async def _rollback(args: argparse.Namespace) -> int:
    if args.phase == 3 and args.out is None and not args.check_only:
        return _refuse(args, "phase 3 needs --out PATH for the snapshot (or --check-only)")
    for option, path in (("--out", args.out), ("--env-file", args.env_file)):
        if path is not None and path.is_dir():
            return _refuse(args, f"{option} {path} is a directory; give a file path")
    outcome: dict[str, Any] = {"phase": args.phase}
    lines: list[str] = []
    ok = True
    if args.phase == 3 and not args.check_only:
        ok = await _export(args, outcome, lines)
    settings = rollback_settings(args.phase, snapshot_path=args.out if args.phase == 3 else None)
    ok = _settings(args, settings, outcome, lines) and ok
    if args.status_url:
        ok = _live(args.status_url, settings, outcome, lines) and ok
    outcome["ok"] = ok
    if args.json:
        render.print_json(outcome)
    else:
        print("\n".join(lines))
    return 0 if ok else 1


async def _export(args: argparse.Namespace, outcome: dict[str, Any], lines: list[str]) -> bool:
    """Phase 3: PostgreSQL to the snapshot file, loaded back into memory stores, verified."""
    dsn = chosen_dsn(args, "rollback --phase 3", needs="the PostgreSQL to export")
    started = time.perf_counter()
    with render.step_progress("export", "tables", enabled=_show_progress(args)) as progress:
        exported = await export_to_file(dsn, args.out, progress=progress)
    stores = MemoryStores()
    await load_into(args.out, stores.graph, stores.tasks)  # the load the API will do at start-up
    shown = ("projects", "edges", "contributors", "assets", "contributions", "agent_tasks")
    counts = {name: exported.records.get(name, 0) for name in shown}
    outcome["export"] = {"path": str(args.out.resolve()), "records": counts}
    lines.append(f"exported {redact(dsn)} to {args.out} in {time.perf_counter() - started:.2f} s:")
    lines.append("  " + ", ".join(f"{n:,} {name}" for name, n in counts.items()))
    lines.append("  the file loads into the in-memory stores")
    if args.no_verify:
        return True
    with render.step_progress("verify the export", "tables", enabled=_show_progress(args)) as progress:
        report = await verify(stores, dsn, threshold_percent=0.0, progress=progress)
    outcome["verify"] = {"mismatched": report.mismatch_count, "compared": report.compared_count}
    if report.mismatch_count:
        lines.append(render.verify_text(report, limit=50))
        lines.append("  PostgreSQL changed after the export (writes still arriving?): stop writes, export again")
        return False
    lines.append(f"  verified against PostgreSQL: 0 differences in {report.compared_count:,} records")
    return True


def _settings(args: argparse.Namespace, settings: dict[str, str], outcome: dict[str, Any], lines: list[str]) -> bool:
    """The settings, checked as the API's start-up reads them, and written into --env-file."""
    outcome["settings"] = settings
    from_file = args.env_file is not None and args.env_file.exists()
    checked = check_settings(read_env_file(args.env_file) if from_file else dict(os.environ), settings)
    outcome["settings_check"] = {
        "before": checked.before,
        "after": checked.after,
        "error": checked.error,
        "notes": list(checked.notes),
    }
    lines.append(f"rollback of phase {args.phase}: apply these settings and restart the API")
    lines.extend(f"  {key}={value}" for key, value in settings.items())
    against = f"the settings in {args.env_file}" if from_file else "this shell's environment"
    if checked.ok:
        before = checked.before or "(invalid now)"
        lines.append(f"  accepted at start-up (checked against {against}): phase {before} -> {checked.after}")
    else:
        lines.append(f"  REFUSED at start-up with these settings: {checked.error}")
    lines.extend(f"  note: {note}" for note in checked.notes)
    if args.env_file is not None and not args.check_only:
        write_env_file(args.env_file, settings)
        outcome["env_file"] = str(args.env_file)
        lines.append(f"  written to {args.env_file}")
    return checked.ok


def _live(url: str, settings: dict[str, str], outcome: dict[str, Any], lines: list[str]) -> bool:
    """Whether the running API already runs with the settings (its store status)."""
    live = check_live(url, settings)
    outcome["live"] = {
        "url": live.url,
        "phase": live.phase,
        "applied": live.applied,
        "error": live.error,
        "mismatches": [{"variable": v, "live": a, "wanted": w} for v, a, w in live.mismatches],
    }
    if live.error:
        lines.append(f"live API: {live.error}")
    elif live.mismatches:
        lines.append(f"live API (phase {live.phase}): not in effect yet:")
        lines.extend(f"  {v}: live {a!r}, wanted {w!r}" for v, a, w in live.mismatches)
    else:
        lines.append(f"live API (phase {live.phase}): the rollback is in effect")
    return live.applied


# -- bench backfill ------------------------------------------------------------------------------


async def _bench_backfill(args: argparse.Namespace) -> int:
    from coherence_sql.codegen.scratch import scratch_database
    from coherence_sql.db import connect
    from coherence_sql.transfer.sample import sample_snapshot

    started = time.perf_counter()
    snapshot = sample_snapshot(
        projects=args.projects,
        edges=args.edges,
        contributors=args.contributors,
        assets=args.assets,
        contributions=args.contributions,
        tasks=args.tasks,
        seed=args.seed,
    )
    generated = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="coherence-sql-bench-") as tmp:
        path = Path(tmp) / "snapshot.json"
        write_snapshot(path, snapshot)
        size_mb = path.stat().st_size / 1e6
        began = time.perf_counter()
        parsed, sha = read_snapshot_file(path)
        parse_s = time.perf_counter() - began
    async with scratch_database(args.database_url) as dsn:
        conn = await connect(dsn)
        try:
            version = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
        with render.section_progress("backfill", enabled=render.interactive()) as progress:
            report = await backfill(
                dsn,
                parsed,
                snapshot_sha256=sha,
                batch_size=args.batch_size,
                jobs=args.jobs,
                per_row_foreign_keys=args.per_row_foreign_keys,
                progress=progress,
            )
        with render.step_progress("verify", "tables", enabled=render.interactive()) as progress:
            checked = await verify(parsed, dsn, threshold_percent=0.0, progress=progress)
    where = "DATABASE_URL" if (args.database_url or os.environ.get("DATABASE_URL")) else "embedded, tmpfs"
    print(
        f"{datetime.date.today().isoformat()}  PostgreSQL {version} ({where}), {args.jobs} connection(s), "
        f"batch {args.batch_size:,}, seed {args.seed}"
    )
    print(
        f"generated {report.records:,} records in {generated:.2f} s; file {size_mb:.1f} MB, parsed in {parse_s:.2f} s"
    )
    render.print_backfill(report)
    print(f"verify: {checked.mismatch_count} mismatched of {checked.compared_count:,} in {checked.seconds:.2f} s")
    met = report.seconds < BENCH_TARGET_S and checked.mismatch_count == 0
    print(
        f"backfill {report.seconds:.2f} s: "
        + ("target met" if met else f"target ({BENCH_TARGET_S:g} s, zero differences) missed")
    )
    return 0 if met else 1
