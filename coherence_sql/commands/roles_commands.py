"""`coherence-sql roles`: print (or `--apply`) the SQL that creates the least-privilege roles."""

from __future__ import annotations

import argparse
from typing import Any

from coherence_sql.commands.database import add_database_options, chosen_dsn
from coherence_sql.commands.output import emit
from coherence_sql.db import connect
from coherence_sql.redaction import redact
from coherence_sql.security.roles import DEFAULT_ROLES, RoleNames, apply_roles, role_drift, role_statements


def register(subparsers: Any) -> None:
    roles = subparsers.add_parser(
        "roles",
        help="print the SQL that creates the owner, application, read-only and backfill roles (--apply runs it)",
        description="Renders, for the database named, the statements that create the four least-privilege roles "
        "where missing and grant each exactly what it needs (docs/deployment.md, Roles and least privilege). "
        "Run it as a superuser; it sets no password. Run it again after every migrate; --check says whether "
        "it would change anything.",
    )
    for kind, default in DEFAULT_ROLES.items():
        roles.add_argument(
            f"--{kind}", default=default, metavar="ROLE", help=f"the {kind} role's name (default {default})"
        )
    mode = roles.add_mutually_exclusive_group()
    mode.add_argument(
        "--apply", action="store_true", help="run the statements (in one transaction) instead of printing them"
    )
    mode.add_argument(
        "--check",
        action="store_true",
        help="say what --apply would change (run and rolled back); exit 1 unless the roles match the access map",
    )
    add_database_options(roles)
    roles.set_defaults(run=_roles)


async def _roles(args: argparse.Namespace) -> int:
    names = RoleNames(owner=args.owner, app=args.app, readonly=args.readonly, backfill=args.backfill)
    dsn = chosen_dsn(args, "roles", needs="the database whose roles to set up")
    conn = await connect(dsn)
    try:
        if args.check:
            return _report_drift(args, dsn, await role_drift(conn, names))
        statements = await (apply_roles(conn, names) if args.apply else role_statements(conn, names))
    finally:
        await conn.close()
    lines = [f"{statement};" for statement in statements]
    if args.apply:
        lines = [
            f"database: {redact(dsn)}",
            f"applied {len(statements)} statements; set each role's password with \\password in psql",
        ]
    emit(args, {"database": redact(dsn), "applied": bool(args.apply), "statements": statements}, lines)
    return 0


def _report_drift(args: argparse.Namespace, dsn: str, drift: list[str]) -> int:
    lines = [f"database: {redact(dsn)}"]
    lines += drift or ["the roles match the access map: --apply would change nothing"]
    emit(args, {"database": redact(dsn), "in_sync": not drift, "drift": drift}, lines)
    return 1 if drift else 0
