"""`coherence-sql health`: the check behind the API's /api/ready, for an operator or a probe:
PostgreSQL answers within the timeout, its schema is this code's, the role can write."""

from __future__ import annotations

import argparse
import time
from typing import Any

from coherence_sql.commands.arguments import positive_seconds
from coherence_sql.commands.database import add_database_options, chosen_dsn
from coherence_sql.commands.output import emit
from coherence_sql.db import PoolSettings, create_pool
from coherence_sql.errors import CoherenceSQLError
from coherence_sql.health import HEALTH_TIMEOUT_S, DatabaseCheck, DatabaseProbe, HealthReport, probe_database, verdict
from coherence_sql.redaction import redact


def register(subparsers: Any) -> None:
    health = subparsers.add_parser(
        "health",
        help="check PostgreSQL as /api/ready does (answers, schema current, writable); exit 1 when not ready",
    )
    health.add_argument(
        "--timeout",
        type=positive_seconds,
        default=HEALTH_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for PostgreSQL (default {HEALTH_TIMEOUT_S:g})",
    )
    add_database_options(health)
    health.set_defaults(run=_health)


async def _check(dsn: str, timeout_s: float) -> HealthReport:
    started = time.perf_counter()
    try:
        # One connection is all the probe uses; opening it is bounded like the probe.
        pool = await create_pool(dsn, PoolSettings(min_size=1, max_size=1, acquire_timeout_s=timeout_s))
    except CoherenceSQLError as exc:  # the message is redacted by db.create_pool
        down = DatabaseCheck(reachable=False, error=f"{type(exc).__name__}: {exc}")
        return verdict(DatabaseProbe(database=down), started=started)
    try:
        return verdict(await probe_database(pool, timeout_s), started=started)
    finally:
        pool.terminate()  # a probe abandoned on a frozen server must not hold the exit


def _lines(dsn: str, report: HealthReport) -> list[str]:
    lines = [f"database: {redact(dsn)}", "ready" if report.ready else "NOT READY"]
    lines.extend(f"  reason: {reason}" for reason in report.reasons)
    lines.extend(f"  warning: {warning}" for warning in report.warnings)
    database = report.database
    if database is not None and database.reachable:
        lines.append(f"PostgreSQL {database.server_version} as {database.role}, round trip {database.round_trip_ms} ms")
    if report.schema_files is not None:
        schema = report.schema_files
        state = "current" if schema.current else "not current"
        lines.append(f"schema: {schema.applied} of {schema.shipped} files applied, {state}")
    return lines


async def _health(args: argparse.Namespace) -> int:
    dsn = chosen_dsn(args, "health", needs="the database to check")
    report = await _check(dsn, args.timeout)
    emit(args, {"database": redact(dsn), **report.model_dump(mode="json")}, _lines(dsn, report))
    return 0 if report.ready else 1
