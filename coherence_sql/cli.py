"""`coherence-sql`: the command line for the people who run the migration.

Each group of subcommands lives in its own module under `coherence_sql/commands/` and registers
itself here; every command prints what it did and exits non-zero when something needs attention.
Global options: `--version`, `--log-level`, `--log-format text|json`, and `--json` (also accepted
after any command name; the command prints one JSON document, errors included, and `args.json`
is true whichever side it was given on). Exit statuses: 0 done, 1 needs attention (or a bug),
2 bad input or configuration, 130 interrupted. Nothing printed carries a password: errors go
through `coherence_sql.redaction`.
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

from coherence_sql import __version__
from coherence_sql.commands import COMMAND_MODULES
from coherence_sql.commands.database import add_global_options
from coherence_sql.commands.logs import FORMATS, LEVELS, configure_logging
from coherence_sql.commands.output import emit_error
from coherence_sql.errors import CoherenceSQLError
from coherence_sql.redaction import redact_text, scrub

JSON_HELP = 'print the result as one JSON document (errors as {"error": {"type", "message"}})'


class UsageError(SystemExit):
    """A command line argparse refused; `main` prints it as text or JSON and returns 2."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(2)
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors never echo a password (a DSN typed in the wrong place)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, redact_text(message))


def _level(text: str) -> str:
    level = text.upper()
    if level not in LEVELS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LEVELS)} (any case), got {text!r}")
    return level


def _add_json_everywhere(parser: argparse.ArgumentParser) -> None:
    """`--json` after every command name that does not define it itself (absent, the global one stands)."""
    # argparse keeps its subcommands in private fields; reading them is the only way to walk the tree.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if "--json" not in sub._option_string_actions:
                    sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=JSON_HELP)
                _add_json_everywhere(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="coherence-sql",
        description="PostgreSQL data layer of the Coherence Network API: schema, queries, migration.",
    )
    parser.add_argument("--version", action="version", version=f"coherence-sql {__version__}")
    parser.add_argument(
        "--log-level", type=_level, default="WARNING", metavar="LEVEL", help=f"{'|'.join(LEVELS)} (default WARNING)"
    )
    parser.add_argument("--log-format", choices=FORMATS, default="text", help="log lines on stderr (default text)")
    # A separate destination: a command's own `--json` default (False) must not hide this one.
    parser.add_argument("--json", dest="global_json", action="store_true", help=JSON_HELP)
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    _add_json_everywhere(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # platformdirs warns when XDG_RUNTIME_DIR is unset; it is noise to an operator.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except UsageError as exc:
        if "--json" in arguments:
            emit_error(True, "UsageError", exc.message)
        else:
            exc.parser.print_usage(sys.stderr)
            print(f"{exc.parser.prog}: error: {exc.message}", file=sys.stderr)
        return 2
    args.json = bool(getattr(args, "json", False) or args.global_json)
    configure_logging(args.log_level, args.log_format)
    dsns = (args.database_url, os.environ.get("DATABASE_URL"))
    try:
        result = args.run(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except CoherenceSQLError as exc:
        emit_error(args.json, type(exc).__name__, _safe(str(exc), dsns))
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: its traceback helps, but may quote a DSN
        print(_safe(traceback.format_exc(), dsns), file=sys.stderr, end="")
        if args.json:
            emit_error(True, type(exc).__name__, _safe(str(exc), dsns))
        return 1
    return int(result or 0)


def _safe(text: str, dsns: tuple[str | None, ...]) -> str:
    return redact_text(scrub(text, *dsns))


if __name__ == "__main__":
    sys.exit(main())
