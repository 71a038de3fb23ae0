"""`coherence-sql backup` and `coherence-sql restore`: checksummed pg_dump backups, retention, restores.

docs/deployment.md ("Backups and restore") schedules them; coherence_sql.backup does the work.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from coherence_sql.backup import backup_database, prune_backups, resolve_target, restore_backup, verify_backup
from coherence_sql.backup.manifest import Manifest
from coherence_sql.backup.textfile import write_backup_textfile
from coherence_sql.commands.database import add_database_options, chosen_dsn, given_dsn
from coherence_sql.commands.output import emit
from coherence_sql.embedded import EmbeddedPostgres, default_data_dir
from coherence_sql.errors import CoherenceSQLError, ConfigurationError
from coherence_sql.metrics.verify import textfile_argument

PG_BIN_DIR_HELP = (
    "look for pg_dump/pg_restore only here (repeatable); by default: the embedded server's, "
    "/usr/lib/postgresql/<major>/bin, pg_config --bindir, PATH"
)


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of days, got {text!r}") from None
    if days < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 day, got {days}")
    return days


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser(
        "backup",
        help="back up the database: pg_dump (custom format) of one snapshot, with a checksummed manifest",
        description="Writes DIR/<database>-<UTC time>Z/ holding database.dump and manifest.json, through a "
        ".partial- name renamed into place when complete. pg_dump is the server's own major version.",
    )
    backup.add_argument("--dir", type=Path, required=True, help="the directory that holds the backups")
    backup.add_argument(
        "--keep-days",
        type=_days,
        default=None,
        metavar="N",
        help="then remove this tool's backups older than N days (never the newest of a database)",
    )
    backup.add_argument("--pg-bin-dir", type=Path, action="append", default=None, help=PG_BIN_DIR_HELP)
    backup.add_argument(
        "--metrics-file",
        type=textfile_argument,
        default=None,
        metavar="PATH",
        help="also write the outcome for node_exporter's textfile collector (PATH ending in .prom), on failure too",
    )
    add_database_options(backup)
    backup.set_defaults(run=_backup)
    restore = subparsers.add_parser(
        "restore",
        help="restore a backup into a new or empty database, its checksums checked first",
        description="Checks every file's SHA-256 against the manifest before touching a server, creates the "
        "target database when it does not exist, refuses one that holds anything, restores in one "
        "transaction, then checks the schema history against the manifest.",
    )
    restore.add_argument("backup", type=Path, metavar="BACKUP", help="a backup directory (or its manifest.json)")
    restore.add_argument(
        "--into",
        metavar="URL_OR_NAME",
        default=None,
        help="the target: a postgresql:// URL, or a database name on the --database-url/DATABASE_URL server",
    )
    restore.add_argument(
        "--check",
        action="store_true",
        help="only check the manifest and every file's checksum; restore nothing",
    )
    restore.add_argument(
        "--no-privileges",
        action="store_true",
        help="leave out the GRANTs (for a server without the source's roles)",
    )
    restore.add_argument("--pg-bin-dir", type=Path, action="append", default=None, help=PG_BIN_DIR_HELP)
    add_database_options(restore)
    restore.set_defaults(run=_restore)


def _manifest_data(manifest: Manifest) -> dict[str, Any]:
    return {
        "database": manifest.database,
        "server_version": manifest.server_version,
        "schema_version": manifest.schema_version,
        "finished_utc": manifest.finished_utc.isoformat(),
        "files": [file.model_dump() for file in manifest.files],
    }


async def _backup(args: argparse.Namespace) -> int:
    try:
        code = await _backup_and_prune(args)
    except CoherenceSQLError:
        if args.metrics_file is not None:  # the alert on a failing backup must see this run too
            write_backup_textfile(args.metrics_file, success=False, directory=args.dir)
        raise
    if args.metrics_file is not None:
        write_backup_textfile(args.metrics_file, success=True, directory=args.dir)
    return code


async def _backup_and_prune(args: argparse.Namespace) -> int:
    dsn = chosen_dsn(args, "backup", needs="the database to back up")
    result = await backup_database(dsn, args.dir, pg_bin_dirs=args.pg_bin_dir)
    manifest = result.manifest
    data: dict[str, Any] = {"backup": str(result.path), **_manifest_data(manifest)}
    lines = [
        f"backup: {result.path}",
        f"database {manifest.database} on PostgreSQL {manifest.server_version}, schema version "
        f"{manifest.schema_version}, by {manifest.tools['pg_dump']}",
        *(f"  {file.name}  {file.bytes} bytes  sha256 {file.sha256}" for file in manifest.files),
    ]
    if args.keep_days is not None:
        pruned = prune_backups(args.dir, args.keep_days)
        data["pruned"] = [str(path) for path in pruned.removed]
        data["kept"] = [str(path) for path in pruned.kept]
        data["partial"] = [str(path) for path in pruned.partial]
        lines.append(
            f"kept {len(pruned.kept)} backup(s); removed {len(pruned.removed)} older than {args.keep_days} days"
        )
        lines.extend(f"  removed {path}" for path in pruned.removed)
        lines.extend(f"  interrupted backup left alone: {path}" for path in pruned.partial)
    emit(args, data, lines)
    return 0


def _server_dsn(args: argparse.Namespace) -> str | None:
    if getattr(args, "embedded", False):
        return EmbeddedPostgres(default_data_dir()).start()
    return given_dsn(args)


async def _restore(args: argparse.Namespace) -> int:
    if args.check:
        manifest = verify_backup(args.backup)
        emit(
            args,
            {"backup": str(args.backup), "checked": True, **_manifest_data(manifest)},
            [f"intact: {args.backup} (every file matches its SHA-256); database {manifest.database}, "
             f"schema version {manifest.schema_version}"],
        )  # fmt: skip
        return 0
    if args.into is None:
        raise ConfigurationError("restore needs --into URL_OR_NAME (or --check to only check the backup)")
    target = resolve_target(args.into, _server_dsn(args))
    result = await restore_backup(args.backup, target, pg_bin_dirs=args.pg_bin_dir, privileges=not args.no_privileges)
    data = {
        "restored": str(result.backup),
        "into": result.target,
        "created": result.created,
        "schema_version": result.manifest.schema_version,
    }
    made = "created and restored" if result.created else "restored into"
    emit(args, data, [f"{made} {result.target} from {result.backup}", "checksums, schema history: match"])
    return 0
