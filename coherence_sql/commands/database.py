"""Which database a command works on: the one rule every subcommand of `coherence-sql` follows.

`--database-url DSN` (before or after the command name), else $DATABASE_URL. The operator
commands (backfill, verify, rollback, reconcile) never guess beyond that: without either they
refuse with one line, unless `--embedded` asks for the embedded server. Developer commands
(demo, migrate, status) fall back to the embedded server as before.
"""

from __future__ import annotations

import argparse
import os

from coherence_sql.db import resolve_dsn
from coherence_sql.embedded import EmbeddedPostgres, default_data_dir
from coherence_sql.errors import ConfigurationError

DATABASE_URL_HELP = "the PostgreSQL to use (default: $DATABASE_URL)"
EMBEDDED_HELP = "use the embedded PostgreSQL server (started if needed), whatever $DATABASE_URL says"


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """The options before the command name; they set the defaults the command's own override."""
    parser.add_argument("--database-url", metavar="DSN", default=None, help=DATABASE_URL_HELP)
    parser.add_argument("--embedded", action="store_true", default=False, help=EMBEDDED_HELP)


def add_database_options(parser: argparse.ArgumentParser, *, embedded: bool = True) -> None:
    """The same options after the command name (absent there, the ones before it stand)."""
    parser.add_argument("--database-url", metavar="DSN", default=argparse.SUPPRESS, help=DATABASE_URL_HELP)
    if embedded:
        parser.add_argument("--embedded", action="store_true", default=argparse.SUPPRESS, help=EMBEDDED_HELP)


def given_dsn(args: argparse.Namespace) -> str | None:
    """The DSN the operator named (--database-url, else $DATABASE_URL), or None."""
    explicit = (getattr(args, "database_url", None) or "").strip()
    if explicit and getattr(args, "embedded", False):
        raise ConfigurationError("--database-url and --embedded name two databases: give one")
    if getattr(args, "embedded", False):
        return None
    return explicit or os.environ.get("DATABASE_URL", "").strip() or None


def chosen_dsn(args: argparse.Namespace, command: str, *, needs: str | None = None) -> str:
    """The DSN `command` runs against. With `needs` (what the database is for, in words) it
    refuses rather than fall back to the embedded server when no database was named."""
    dsn = given_dsn(args)
    if dsn is not None:
        return dsn
    if getattr(args, "embedded", False):
        return EmbeddedPostgres(default_data_dir()).start()
    if needs is not None:
        raise ConfigurationError(
            f"{command} needs {needs}: --database-url or DATABASE_URL (--embedded for the local embedded server)"
        )
    return resolve_dsn(None)
