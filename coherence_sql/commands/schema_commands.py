"""`coherence-sql migrate` and `coherence-sql status`: the schema runner for operators."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from coherence_sql import schema
from coherence_sql.commands.database import add_database_options, chosen_dsn
from coherence_sql.commands.output import emit
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
    lines = [f"database: {redact(dsn)}"]
    if not report.applied:
        lines.append("nothing to apply: the schema is current")
    files: list[dict[str, Any]] = []
    for i, file in enumerate(report.applied):
        if report.dry_run:
            mode = "" if file.transactional else " (no transaction)"
            lines.append(f"would apply {file.filename}{mode}")
            files.append({"filename": file.filename, "transactional": file.transactional})
        else:
            lines.append(f"applied {file.filename} in {report.durations_ms[i]} ms")
            files.append({"filename": file.filename, "duration_ms": report.durations_ms[i]})
    emit(args, {"database": redact(dsn), "dry_run": report.dry_run, "applied": files}, lines)
    return 0


async def _status(args: argparse.Namespace) -> int:
    dsn = chosen_dsn(args, "status")
    state = await schema.status(dsn, directory=args.schema_dir)
    lines = [f"database: {redact(dsn)}"]
    for row in state.applied:
        when = f"{row.applied_at:%Y-%m-%d %H:%M:%S%z}"
        lines.append(f"applied  {row.filename}  {when}  {row.duration_ms} ms  by {row.applied_by}")
    lines.extend(f"pending  {file.filename}" for file in state.pending)
    lines.append("schema is current" if state.current else f"{len(state.pending)} file(s) pending")
    data = {
        "database": redact(dsn),
        "current": state.current,
        "applied": [
            {
                "filename": row.filename,
                "applied_at": row.applied_at.isoformat(),
                "duration_ms": row.duration_ms,
                "applied_by": row.applied_by,
            }
            for row in state.applied
        ],
        "pending": [file.filename for file in state.pending],
    }
    emit(args, data, lines)
    return 0 if state.current else 1
