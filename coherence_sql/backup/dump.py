"""`backup_database()`: one consistent pg_dump (custom format) with its manifest, written atomically.

A connection opens a REPEATABLE READ transaction and exports its snapshot; the manifest's facts
(server version, applied schema files) are read in that transaction and pg_dump dumps that very
snapshot (`--snapshot`), so the manifest describes exactly the data in the dump. Everything is
written into `.partial-…` and renamed to its final name only once the dump is fsynced and the
manifest written: a backup interrupted at any point never looks complete.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from coherence_sql import __version__
from coherence_sql.backup.conninfo import child_connection
from coherence_sql.backup.manifest import Manifest, SchemaFileEntry, describe_file, fsync_path, write_manifest
from coherence_sql.backup.tools import ClientTool, candidate_dirs, find_tool
from coherence_sql.db import Connection, connect
from coherence_sql.errors import DRIVER_FAILURES, BackupError, CoherenceSQLError, translate
from coherence_sql.redaction import redact, redact_text, scrub
from coherence_sql.sql import backup as backup_sql
from coherence_sql.sql import health

__all__ = [
    "DUMP_NAME",
    "PARTIAL_PREFIX",
    "BackupResult",
    "applied_schema",
    "backup_database",
    "client_search",
    "row_counts",
    "run_client",
    "server_major",
]

DUMP_NAME: Final = "database.dump"
PARTIAL_PREFIX: Final = ".partial-"
# The exporting transaction stays open (idle) while pg_dump runs: no idle or statement timeout
# may end it. pg_dump's own locks wait at most this long behind a migration's.
_EXPORTER_SETTINGS: Final = {
    "application_name": "coherence_sql.backup",
    "idle_in_transaction_session_timeout": "0",
    "statement_timeout": "0",
}
_LOCK_WAIT: Final = "120s"
_SAFE_NAME: Final = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path  # the backup directory
    manifest: Manifest


async def server_major(conn: Connection) -> int:
    """The server's major version (18 for 18.1)."""
    number = await backup_sql.server_version_num(conn)
    if number is None:
        raise BackupError("the server did not say its version")
    return number // 10000


async def run_client(tool: ClientTool, args: list[str], env: dict[str, str], dsn: str) -> None:
    """Run a client program; its failure is a BackupError quoting its stderr, redacted."""
    try:
        process = await asyncio.create_subprocess_exec(
            str(tool.path), *args, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    except OSError as exc:  # not executable, vanished since it was found
        raise BackupError(f"{tool.path} could not be run: {exc}") from None
    try:
        _, stderr = await process.communicate()
    except BaseException:  # cancelled (Ctrl-C): the child must not outlive us
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        message = redact_text(scrub(stderr.decode(errors="replace").strip(), dsn))
        raise BackupError(f"{tool.path.name} failed (exit status {process.returncode}): {message}")


def _backup_name(database: str, started: datetime, directory: Path) -> str:
    stem = f"{_SAFE_NAME.sub('_', database) or 'database'}-{started:%Y%m%dT%H%M%SZ}"
    name, n = stem, 1
    while (directory / name).exists():
        n += 1
        name = f"{stem}-{n}"
    return name


def client_search(major: int, pg_bin_dirs: list[Path] | None) -> list[Path]:
    """Where to look for client programs: the directories the operator named, else the defaults."""
    return pg_bin_dirs if pg_bin_dirs is not None else candidate_dirs(major)


def _complete(partial: Path, manifest: Manifest, final: Path) -> Path:
    """The manifest last, then the rename that makes the backup complete, made durable."""
    write_manifest(partial, manifest)
    partial.rename(final)
    fsync_path(final.parent)
    return final


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the manifest says about the database, read in the snapshot pg_dump dumps."""

    version: str
    major: int
    database: str
    schema_files: list[SchemaFileEntry]
    row_counts: dict[str, int]


async def applied_schema(conn: Connection) -> list[SchemaFileEntry]:
    """The schema files applied to the database (none when it was never migrated)."""
    if not await backup_sql.schema_history_exists(conn):
        return []
    rows = await backup_sql.applied_schema_files(conn)
    return [SchemaFileEntry(version=r.version, name=r.name, checksum=r.checksum) for r in rows]


async def row_counts(conn: Connection) -> dict[str, int]:
    """Every table's row count, keyed schema.table."""
    statement = await backup_sql.row_count_statement(conn)
    if statement is None:  # no table at all
        return {}
    # The statement's text comes from queries/backup.sql's format(): names quoted by the server.
    return {row["table_name"]: row["row_count"] for row in await conn.fetch(statement)}


async def _facts(conn: Connection) -> _Facts:
    return _Facts(
        version=await health.server_version(conn) or "unknown",
        major=await server_major(conn),
        database=await backup_sql.current_database_name(conn) or "",
        schema_files=await applied_schema(conn),
        row_counts=await row_counts(conn),
    )


async def backup_database(
    dsn: str, directory: Path, *, pg_bin_dirs: list[Path] | None = None, now: datetime | None = None
) -> BackupResult:
    """Back up the database `dsn` names into a new directory under `directory`; return it.

    pg_dump is the one of the server's major version (`coherence_sql.backup.tools`); with
    `pg_bin_dirs` only those directories are searched. The password reaches pg_dump through
    its environment, never its arguments.
    """
    child = child_connection(dsn)
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    started = now or datetime.now(UTC)
    try:
        conn = await connect(dsn, server_settings=_EXPORTER_SETTINGS)
    except CoherenceSQLError as exc:
        raise BackupError(f"cannot back up {redact(dsn)}: {exc}") from None
    partial: Path | None = None
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            facts = await _facts(conn)
            tool = await asyncio.to_thread(
                find_tool, "pg_dump", facts.major, search=client_search(facts.major, pg_bin_dirs)
            )
            snapshot = await backup_sql.export_snapshot(conn)
            name = await asyncio.to_thread(_backup_name, facts.database, started, directory)
            partial = directory / f"{PARTIAL_PREFIX}{name}"
            await asyncio.to_thread(partial.mkdir)
            dump_args = [
                "--format=custom", f"--file={partial / DUMP_NAME}", f"--snapshot={snapshot}",
                f"--lock-wait-timeout={_LOCK_WAIT}", "--no-password", f"--dbname={child.url}",
            ]  # fmt: skip
            await run_client(tool, dump_args, child.env, dsn)
        described = await asyncio.to_thread(describe_file, partial / DUMP_NAME)  # pg_dump fsynced it
        manifest = Manifest(
            database=facts.database,
            server=redact(dsn),
            server_version=facts.version,
            server_major=facts.major,
            started_utc=started,
            finished_utc=datetime.now(UTC) if now is None else now,
            schema_files=facts.schema_files,
            row_counts=facts.row_counts,
            files=[described],
            tools={"pg_dump": tool.version, "coherence_sql": __version__},
        )
        final = await asyncio.to_thread(_complete, partial, manifest, directory / name)
        partial = None
        return BackupResult(path=final, manifest=manifest)
    except CoherenceSQLError:
        raise
    except OSError as exc:  # the backup directory: disk full, permissions
        raise BackupError(f"backup of {redact(dsn)} failed: {exc}") from None
    except DRIVER_FAILURES as exc:
        raise BackupError(f"backup of {redact(dsn)} failed: {translate(exc)}") from None
    finally:
        await conn.close()
        if partial is not None:
            await asyncio.to_thread(shutil.rmtree, partial, ignore_errors=True)
