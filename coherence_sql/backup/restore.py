"""`restore_backup()`: a backup back into a new or empty database, checked before and after.

Before anything touches a server, every file's size and SHA-256 must match the manifest. The
target must be empty (it is created when it does not exist): restoring over data would mix two
histories. pg_restore (the target server's major, which reads older archives) runs in one
transaction and stops at the first error, so a failed restore leaves the target as it was. After
it, the restored schema history and every table's row count must equal the manifest's, and ANALYZE
gives the planner its statistics back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from coherence_sql.backup.conninfo import child_connection, database_of, with_database
from coherence_sql.backup.dump import applied_schema, client_search, row_counts, run_client, server_major
from coherence_sql.backup.manifest import MANIFEST_NAME, Manifest, check_files, read_manifest
from coherence_sql.backup.tools import find_tool
from coherence_sql.db import Connection, connect
from coherence_sql.errors import (
    DRIVER_FAILURES,
    BackupError,
    CoherenceSQLError,
    RestoreTargetNotEmptyError,
    translate,
)
from coherence_sql.redaction import redact
from coherence_sql.sql import backup as backup_sql

__all__ = ["RestoreResult", "resolve_target", "restore_backup", "verify_backup"]

_MAINTENANCE_DATABASE = "postgres"
# pg_restore's data load and the ANALYZE after it may take long on a large database.
_RESTORE_SETTINGS = {"application_name": "coherence_sql.restore", "statement_timeout": "0"}


@dataclass(frozen=True, slots=True)
class RestoreResult:
    backup: Path
    target: str  # redacted
    created: bool  # whether the target database was created by the restore
    manifest: Manifest


def verify_backup(backup: Path) -> Manifest:
    """The backup's manifest, once every file it lists is present with its size and SHA-256."""
    manifest = read_manifest(backup)
    check_files(backup.parent if backup.name == MANIFEST_NAME else backup, manifest)
    return manifest


def resolve_target(into: str, server_dsn: str | None) -> str:
    """`into` as a URL: itself when it is one, else a database name on `server_dsn`'s server."""
    if "://" in into:
        return into
    if not into.strip() or "=" in into:
        raise BackupError(f"--into takes a postgresql:// URL or a database name, got {into!r}")
    if server_dsn is None:
        raise BackupError(
            f"--into {into!r} is a database name: say on which server with --database-url or DATABASE_URL"
        )
    return with_database(server_dsn, into)


async def _ensure_database(target: str) -> bool:
    """Create the target database when it does not exist; return whether it was created."""
    name = database_of(target)
    if not name:
        raise BackupError(f"the restore target {redact(target)} names no database")
    try:
        admin = await connect(with_database(target, _MAINTENANCE_DATABASE))
    except CoherenceSQLError:
        # No way in to create it (a managed server may not let this role into `postgres`): the
        # target must exist already, and connecting to it says so when it does not.
        return False
    try:
        if await backup_sql.database_exists(admin, name=name):
            return False
        statement = await backup_sql.create_database_statement(admin, name=name)
        assert statement is not None  # format() of a non-null name is never null
        try:
            await admin.execute(statement)  # the statement text comes from queries/backup.sql's format()
        except DRIVER_FAILURES as exc:  # e.g. a role without CREATEDB
            raise BackupError(
                f"cannot create the database {name!r} for the restore: {translate(exc)}; create it empty "
                f"(CREATE DATABASE ... OWNER <the restoring role>) as a role that may, then restore into it"
            ) from None
        return True
    finally:
        await admin.close()


async def _check_restored(conn: Connection, manifest: Manifest) -> None:
    """The restored schema history and row counts must be the manifest's."""
    restored = await applied_schema(conn)
    if restored != manifest.schema_files:
        version = max((f.version for f in restored), default=0)
        raise BackupError(
            f"the restored schema history (version {version}) differs from the manifest's (version "
            f"{manifest.schema_version}): the dump does not match its manifest"
        )
    counts = await row_counts(conn)
    differing = sorted(
        f"{table} {manifest.row_counts.get(table)} -> {counts.get(table)}"
        for table in manifest.row_counts.keys() | counts.keys()
        if manifest.row_counts.get(table) != counts.get(table)
    )
    if differing:
        raise BackupError(
            f"the restored rows differ from the manifest's counts ({'; '.join(differing[:5])}): "
            f"the dump does not match its manifest"
        )


async def restore_backup(
    backup: Path, into: str, *, pg_bin_dirs: list[Path] | None = None, privileges: bool = True
) -> RestoreResult:
    """Restore `backup` (a backup directory) into the database URL `into`.

    Raises BackupChecksumError before any connection when a file is damaged,
    RestoreTargetNotEmptyError when the target holds objects, BackupToolNotFoundError when no
    pg_restore of the target's major is found, BackupError when the target server is older than
    the backup's or the restored schema history or row counts differ from the manifest's. `privileges=False`
    leaves out the GRANTs (for a server without the source's roles).
    """
    manifest = await asyncio.to_thread(verify_backup, backup)
    directory = backup.parent if backup.name == MANIFEST_NAME else backup
    child = child_connection(into)
    try:
        created = await _ensure_database(into)
        conn = await connect(into, server_settings=_RESTORE_SETTINGS)
    except CoherenceSQLError as exc:
        raise BackupError(f"cannot restore into {redact(into)}: {exc}") from None
    try:
        major = await server_major(conn)
        if major < manifest.server_major:
            raise BackupError(
                f"the backup comes from PostgreSQL {manifest.server_major} and {redact(into)} runs {major}: "
                f"restore into PostgreSQL {manifest.server_major} or newer"
            )
        objects = await backup_sql.user_object_count(conn)
        if objects:
            raise RestoreTargetNotEmptyError(
                f"{redact(into)} already holds {objects} object(s): restore into a new database (a name "
                f"that does not exist yet is created) or an empty one"
            )
        tool = await asyncio.to_thread(find_tool, "pg_restore", major, search=client_search(major, pg_bin_dirs))
        args = ["--single-transaction", "--exit-on-error", "--no-owner", "--no-password", f"--dbname={child.url}"]
        if not privileges:
            args.append("--no-privileges")
        await run_client(tool, [*args, str(directory / manifest.dump.name)], child.env, into)
        await _check_restored(conn, manifest)
        await backup_sql.analyze_database(conn)
    except CoherenceSQLError:
        raise
    except DRIVER_FAILURES as exc:
        raise BackupError(f"restore into {redact(into)} failed: {translate(exc)}") from None
    finally:
        await conn.close()
    return RestoreResult(backup=directory, target=redact(into), created=created, manifest=manifest)
