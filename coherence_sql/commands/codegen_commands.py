"""`coherence-sql generate`, `lint` and `bench accessors`: the typed accessors and their checks."""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path
from typing import Any

import asyncpg

from coherence_sql.codegen.generate import build, check, default_output_dir, write
from coherence_sql.codegen.lint import RULES, Catalog, lint_paths
from coherence_sql.codegen.scratch import scratch_database
from coherence_sql.commands import data_commands
from coherence_sql.commands.database import add_database_options
from coherence_sql.commands.output import emit
from coherence_sql.resources import queries_dir


def register(subparsers: Any) -> None:
    generate = subparsers.add_parser(
        "generate",
        help="write coherence_sql/sql/<stem>.py for every queries/<stem>.sql (types read from a scratch database)",
    )
    generate.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming every stale, missing or extra module",
    )
    generate.add_argument("--queries-dir", type=Path, default=None, help="query files (default: queries/)")
    generate.add_argument(
        "--output-dir", type=Path, default=None, help="where modules go (default: coherence_sql/sql/)"
    )
    generate.add_argument("--schema-dir", type=Path, default=None, help=argparse.SUPPRESS)
    add_database_options(generate, embedded=False)
    generate.set_defaults(run=_generate)

    lint = subparsers.add_parser(
        "lint",
        help="flag aiosql hazards in query files (rules: " + ", ".join(RULES) + "); exit 1 when any is found",
    )
    lint.add_argument("paths", nargs="*", type=Path, help="files or directories (default: queries/)")
    lint.add_argument("--schema-dir", type=Path, default=None, help=argparse.SUPPRESS)
    add_database_options(lint, embedded=False)
    lint.set_defaults(run=_lint)

    bench = subparsers.add_parser("bench", help="benchmarks")
    kinds = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    accessors = kinds.add_parser(
        "accessors", help="generated accessor vs raw asyncpg: point lookup and a 1,000-row list"
    )
    accessors.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    accessors.add_argument("--point-chunk", type=int, default=300, help="point lookups per round and side")
    accessors.add_argument("--list-chunk", type=int, default=5, help="list reads per round and side")
    add_database_options(accessors, embedded=False)
    accessors.set_defaults(run=_bench_accessors)
    data_commands.register_bench(kinds)  # `bench backfill`


def _shown(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


async def _generate(args: argparse.Namespace) -> int:
    source = args.queries_dir or queries_dir()
    output = args.output_dir or default_output_dir()
    async with scratch_database(args.database_url, schema_dir=args.schema_dir) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            files = await build(conn, source)
        finally:
            await conn.close()
    shown = _shown(output)
    if args.check:
        drift = check(files, output)
        lines = list(drift.lines(shown))
        if drift.clean:
            lines.append(f"{len(files)} generated files in {shown} are current")
        else:
            lines.append("generated code is out of date: run `coherence-sql generate`")
        emit(args, {"output": str(shown), "files": len(files), "current": drift.clean, "drift": lines[:-1]}, lines)
        return 0 if drift.clean else 1
    drift = write(files, output)
    changes = [
        line.replace("stale:", "rewrote:").replace("missing:", "wrote:").replace("extra:", "removed:")
        for line in drift.lines(shown)
    ]
    done = f"{len(files)} generated files in {shown} are current"
    emit(args, {"output": str(shown), "files": len(files), "current": True, "changes": changes}, [*changes, done])
    return 0


async def _lint(args: argparse.Namespace) -> int:
    paths = args.paths or [queries_dir()]
    async with scratch_database(args.database_url, schema_dir=args.schema_dir) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            catalog = await Catalog.load(conn)
        finally:
            await conn.close()
    findings = lint_paths([_shown(p) for p in paths], catalog)
    files = {f.path for f in findings}
    total = f"{len(findings)} finding(s) in {len(files)} file(s)" if findings else "no hazards found"
    emit(args, {"findings": [str(f) for f in findings]}, [*(str(f) for f in findings), total])
    return 1 if findings else 0


async def _bench_accessors(args: argparse.Namespace) -> int:
    from coherence_sql.codegen.bench import TARGET_RATIO, bench_accessors
    from coherence_sql.db import connect

    async with scratch_database(args.database_url) as dsn:
        conn = await connect(dsn)
        try:
            version = await conn.fetchval("SHOW server_version")
            results = await bench_accessors(
                conn, rounds=args.rounds, point_chunk=args.point_chunk, list_chunk=args.list_chunk
            )
        finally:
            await conn.close()
    where = "DATABASE_URL" if (args.database_url or os.environ.get("DATABASE_URL")) else "embedded"
    below = [r for r in results if r.ratio < TARGET_RATIO]
    lines = [
        f"{datetime.date.today().isoformat()}  PostgreSQL {version} ({where}), one connection, {args.rounds} rounds",
        *(result.line() for result in results),
        "target met" if not below else f"below the {TARGET_RATIO} target: " + ", ".join(r.label for r in below),
    ]
    data = {
        "server_version": version,
        "rounds": args.rounds,
        "results": [{"label": r.label, "ratio": r.ratio, "line": r.line()} for r in results],
        "target_ratio": TARGET_RATIO,
        "target_met": not below,
    }
    emit(args, data, lines)
    return 1 if below else 0
