"""`coherence-sql migrate` and `coherence-sql status`: the schema runner for operators."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from coherence_sql import schema
from coherence_sql.commands.database import add_database_options, chosen_dsn
from coherence_sql.redaction import redact


def register(subparsers: Any) -> None:
    migrate = subparsers.add_parser("migrate", help="apply pending schema files in order")
    migrate.add_argument("--dry-run", action="store_true", help="print what would run; change nothing")
    migrate.add_argument(
        "--lock-wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for another runner (default 60)",
    )
    migrate.add_argument("--schema-dir", type=Path, default=None, help=argparse.SUPPRESS)
    add_database_options(migrate)
    migrate.set_defaults(run=_migrate)
    status = subparsers.add_parser("status", help="list applied and pending schema files; exit 1 when any is pending")
    status.add_argument("--schema-dir", type=Path, default=None, help=argparse.SUPPRESS)
    add_database_options(status)
    status.set_defaults(run=_status)


async def _migrate(args: argparse.Namespace) -> int:
    dsn = chosen_dsn(args, "migrate")
    report = await schema.migrate(dsn, directory=args.schema_dir, dry_run=args.dry_run, lock_wait_s=args.lock_wait)
    print(f"database: {redact(dsn)}")
    if not report.applied:
        print("nothing to apply: the schema is current")
    for i, file in enumerate(report.applied):
        if report.dry_run:
            mode = "" if file.transactional else " (no transaction)"
            print(f"would apply {file.filename}{mode}")
        else:
            print(f"applied {file.filename} in {report.durations_ms[i]} ms")
    return 0


async def _status(args: argparse.Namespace) -> int:
    dsn = chosen_dsn(args, "status")
    state = await schema.status(dsn, directory=args.schema_dir)
    print(f"database: {redact(dsn)}")
    for row in state.applied:
        when = f"{row.applied_at:%Y-%m-%d %H:%M:%S%z}"
        print(f"applied  {row.filename}  {when}  {row.duration_ms} ms  by {row.applied_by}")
    for file in state.pending:
        print(f"pending  {file.filename}")
    print("schema is current" if state.current else f"{len(state.pending)} file(s) pending")
    return 0 if state.current else 1
