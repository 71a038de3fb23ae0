"""`coherence-sql`: the command line for the people who run the migration.

Each group of subcommands lives in its own module under `coherence_sql/commands/` and registers
itself here; every command prints what it did and exits non-zero when something needs attention.
Nothing printed here carries a password: errors go through `coherence_sql.redaction`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import NoReturn

from coherence_sql.commands import COMMAND_MODULES
from coherence_sql.commands.database import add_global_options
from coherence_sql.errors import CoherenceSQLError
from coherence_sql.redaction import redact_text, scrub


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors never echo a password (a DSN typed in the wrong place)."""

    def error(self, message: str) -> NoReturn:
        super().error(redact_text(message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="coherence-sql",
        description="PostgreSQL data layer of the Coherence Network API: schema, queries, migration.",
    )
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # platformdirs warns when XDG_RUNTIME_DIR is unset; it is noise to an operator.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    parser = build_parser()
    args = parser.parse_args(argv)
    dsns = (args.database_url, os.environ.get("DATABASE_URL"))
    try:
        result = args.run(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except CoherenceSQLError as exc:
        print(f"coherence-sql: {type(exc).__name__}: {_safe(str(exc), dsns)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug: its traceback helps, but may quote a DSN
        print(_safe(traceback.format_exc(), dsns), file=sys.stderr, end="")
        return 1
    return int(result or 0)


def _safe(text: str, dsns: tuple[str | None, ...]) -> str:
    return redact_text(scrub(text, *dsns))


if __name__ == "__main__":
    sys.exit(main())
