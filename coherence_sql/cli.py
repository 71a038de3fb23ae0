"""`coherence-sql`: the command line for the people who run the migration.

Each group of subcommands lives in its own module under `coherence_sql/commands/` and registers
itself here; every command prints what it did and exits non-zero when something needs attention.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import warnings
from collections.abc import Sequence

from coherence_sql.commands import COMMAND_MODULES
from coherence_sql.errors import CoherenceSQLError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coherence-sql",
        description="PostgreSQL data layer of the Coherence Network API: schema, queries, migration.",
    )
    parser.add_argument(
        "--database-url",
        metavar="DSN",
        default=None,
        help="PostgreSQL to use (default: $DATABASE_URL, else the embedded server)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # platformdirs warns when XDG_RUNTIME_DIR is unset; it is noise to an operator.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.run(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except CoherenceSQLError as exc:
        print(f"coherence-sql: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
