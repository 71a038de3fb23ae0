"""The schema migration runner: applies `schema/NNN_name.sql` files in order, exactly once each.

Each file runs in its own transaction (unless its first line is `-- no-transaction`) and is
recorded with its checksum; one runner at a time holds a session advisory lock on its own
connection. An edited or removed applied file, or a dirty database, stops every run. A role that
may not change the schema (the application's) may run it: with nothing pending it says so, with
something pending it is refused (MigrationPrivilegeError) before any statement runs.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import re
import socket
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from coherence_sql.db import Connection, connect, resolve_dsn
from coherence_sql.errors import (
    DRIVER_FAILURES,
    ChecksumMismatchError,
    CoherenceSQLError,
    DirtyDatabaseError,
    MigrationError,
    MigrationLockTimeoutError,
    MigrationPrivilegeError,
    SchemaError,
    SchemaNotCurrentError,
    translate,
)
from coherence_sql.resources import schema_dir
from coherence_sql.sqltext import split_statements

HISTORY_TABLE: Final = "schema_migrations"
NO_TRANSACTION_MARKER: Final = "-- no-transaction"
LOCK_KEY: Final = zlib.crc32(b"coherence_sql.schema")  # stable across processes, unlike hash()
_FILE_NAME: Final = re.compile(r"^(?P<version>\d{3,})_(?P<name>[a-z0-9_]+)\.sql$")
# The runner's own session: no statement timeout (an index build may take long), but DDL waits
# for table locks only this long, so a busy table fails the file instead of queueing every query.
_RUNNER_SETTINGS: Final = {"application_name": "coherence_sql.schema", "lock_timeout": "30s"}

_CREATE_HISTORY: Final = f"""
CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_by TEXT NOT NULL,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    success BOOLEAN NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class SchemaFile:
    version: int
    name: str
    path: Path
    checksum: str
    transactional: bool

    @property
    def filename(self) -> str:
        return self.path.name

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class AppliedFile:
    version: int
    name: str
    checksum: str
    applied_at: datetime
    applied_by: str
    duration_ms: int
    success: bool

    @property
    def filename(self) -> str:
        return f"{self.version:03d}_{self.name}.sql"


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    applied: list[AppliedFile]
    pending: list[SchemaFile]

    @property
    def current(self) -> bool:
        return not self.pending


@dataclass(slots=True)
class MigrationReport:
    applied: list[SchemaFile] = field(default_factory=list)
    durations_ms: list[int] = field(default_factory=list)
    dry_run: bool = False


def checksum(text: str) -> str:
    """SHA-256 of the text with line endings normalised, so a checkout's EOL style does not matter."""
    normalised = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def discover(directory: Path | None = None) -> list[SchemaFile]:
    """The schema files in version order; a misnamed file or a repeated version is an error."""
    root = directory or schema_dir()
    files: dict[int, SchemaFile] = {}
    for path in sorted(root.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: schema files are named NNN_lower_case_name.sql")
        version = int(match["version"])
        if version in files:
            raise MigrationError(f"{path.name}: version {version} is also used by {files[version].filename}")
        text = path.read_text(encoding="utf-8")
        first_line = text.lstrip("\ufeff").split("\n", 1)[0].strip()
        files[version] = SchemaFile(
            version=version,
            name=match["name"],
            path=path,
            checksum=checksum(text),
            transactional=first_line != NO_TRANSACTION_MARKER,
        )
    return [files[v] for v in sorted(files)]


async def _history(conn: Connection) -> list[AppliedFile]:
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", HISTORY_TABLE)
    if not exists:
        return []
    rows = await conn.fetch(
        f"SELECT version, name, checksum, applied_at, applied_by, duration_ms, success "
        f"FROM {HISTORY_TABLE} ORDER BY version"
    )
    return [AppliedFile(**dict(row)) for row in rows]


def _plan(files: Sequence[SchemaFile], history: Sequence[AppliedFile]) -> list[SchemaFile]:
    """What is pending; raises when the history forbids running (dirty, edited, removed, order)."""
    by_version = {f.version: f for f in files}
    for row in history:
        if not row.success:
            raise DirtyDatabaseError(
                f"{row.filename} failed part-way on {row.applied_at:%Y-%m-%d %H:%M:%S%z} and was "
                f"not rolled back (it runs outside a transaction); repair the database by hand, "
                f"then delete its row: DELETE FROM {HISTORY_TABLE} WHERE version = {row.version}"
            )
        known = by_version.get(row.version)
        if known is None:
            raise ChecksumMismatchError(
                f"{row.filename} was applied on {row.applied_at:%Y-%m-%d} but is no longer in the "
                f"schema directory; restore it (applied files are never removed)"
            )
        if known.name != row.name or known.checksum != row.checksum:
            raise ChecksumMismatchError(
                f"{known.filename} was edited after it was applied (checksum {row.checksum[:12]} "
                f"recorded, {known.checksum[:12]} now); add a new file instead of editing it"
            )
    applied_versions = {row.version for row in history}
    pending = [f for f in files if f.version not in applied_versions]
    newest = max(applied_versions, default=0)
    late = [f for f in pending if f.version < newest]
    if late:
        raise MigrationError(
            f"{late[0].filename} is pending but older than applied version {newest}; renumber it after {newest:03d}"
        )
    return pending


async def _acquire_lock(conn: Connection, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
        if time.monotonic() >= deadline:
            # Advisory locks are per database; a bigint key is (classid, objid) = (high, low) halves.
            holder = await conn.fetchval(
                "SELECT l.pid FROM pg_locks AS l JOIN pg_database AS d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database() "
                "AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1",
                LOCK_KEY >> 32,
                LOCK_KEY & 0xFFFFFFFF,
            )
            raise MigrationLockTimeoutError(
                f"another migration runner (backend pid {holder}) held the lock for more than "
                f"{wait_s:g}s; retry when it has finished"
            )
        await asyncio.sleep(0.05)


def _applied_by(user: str) -> str:
    return f"{user} ({getpass.getuser()}@{socket.gethostname()})"


async def _apply(conn: Connection, file: SchemaFile, applied_by: str) -> int:
    text = file.sql()
    started = time.perf_counter()
    record = (
        f"INSERT INTO {HISTORY_TABLE} (version, name, checksum, applied_by, duration_ms, success) "
        f"VALUES ($1, $2, $3, $4, $5, $6)"
    )
    try:
        if file.transactional:
            async with conn.transaction():
                await conn.execute(text)
                duration = int((time.perf_counter() - started) * 1000)
                await conn.execute(record, file.version, file.name, file.checksum, applied_by, duration, True)
            return duration
        # Outside a transaction a failure cannot be undone: mark dirty first, clean after. One
        # statement per query string, or PostgreSQL would wrap them in an implicit transaction.
        await conn.execute(record, file.version, file.name, file.checksum, applied_by, 0, False)
        statements = split_statements(text)
        for number, statement in enumerate(statements, 1):
            try:
                await conn.execute(statement)
            except asyncio.CancelledError:
                raise  # the dirty row stays: the operator sees the file was interrupted
            except DRIVER_FAILURES as exc:
                raise MigrationError(
                    f"{file.filename} failed at statement {number} of {len(statements)} and was NOT "
                    f"rolled back: the database is dirty: {translate(exc)}"
                ) from None
        duration = int((time.perf_counter() - started) * 1000)
        await conn.execute(
            f"UPDATE {HISTORY_TABLE} SET success = true, duration_ms = $2 WHERE version = $1",
            file.version,
            duration,
        )
        return duration
    except asyncio.CancelledError:
        raise  # a cancelled run stays a cancellation (asyncio.timeout, task groups)
    except CoherenceSQLError:
        raise  # the MigrationError above, already saying what failed
    except DRIVER_FAILURES as exc:
        how = "rolled back" if file.transactional else "NOT rolled back: the database is dirty"
        raise MigrationError(f"{file.filename} failed and was {how}: {translate(exc)}") from None


async def migrate(
    dsn: str | None = None,
    *,
    directory: Path | None = None,
    dry_run: bool = False,
    lock_wait_s: float = 60.0,
) -> MigrationReport:
    """Apply every pending schema file in order; with `dry_run`, only say what would run."""
    files = discover(directory)
    conn = await connect(resolve_dsn(dsn), server_settings=_RUNNER_SETTINGS)
    try:
        return await _migrate_on(conn, files, dry_run=dry_run, lock_wait_s=lock_wait_s)
    except asyncio.CancelledError:
        raise
    except CoherenceSQLError:
        raise  # the runner's own refusals (dirty, edited or removed file, lock timeout)
    except DRIVER_FAILURES as exc:  # e.g. no CREATE privilege for the history table
        raise MigrationError(f"migrate: {translate(exc)}") from None
    finally:
        await conn.close()


async def _migrate_on(
    conn: Connection, files: list[SchemaFile], *, dry_run: bool, lock_wait_s: float
) -> MigrationReport:
    if dry_run:
        return MigrationReport(applied=_plan(files, await _history(conn)), dry_run=True)
    await _acquire_lock(conn, lock_wait_s)
    try:
        rights = await _rights(conn)
        if rights.history_owner is None:
            _require_rights(rights, files, "create the migration history table")
            await conn.execute(_CREATE_HISTORY)
        pending = _plan(files, await _history(conn))  # re-read under the lock
        if not pending:
            return MigrationReport()  # nothing to do, whoever asks (the application role too)
        _require_rights(rights, pending, f"apply {pending[0].filename}")
        applied_by = _applied_by(rights.role_name)
        report = MigrationReport()
        for file in pending:
            report.durations_ms.append(await _apply(conn, file, applied_by))
            report.applied.append(file)
        return report
    finally:
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


@dataclass(frozen=True, slots=True)
class _Rights:
    """What the connected role may do to the schema."""

    role_name: str
    superuser: bool
    may_create: bool  # CREATE on the current schema
    history_owner: str | None  # None: no history table yet
    owns_history: bool  # the role is (a member of) the history table's owner
    schema_owner: str | None  # the current schema's owner (the database's for pg_database_owner)


# The runner's own catalog question, like its history SQL: it must work before anything else does.
_RIGHTS: Final = f"""
SELECT
    current_user::text AS role_name,
    coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) AS superuser,
    coalesce(has_schema_privilege(current_schema(), 'CREATE'), false) AS may_create,
    pg_get_userbyid(c.relowner)::text AS history_owner,
    coalesce(pg_has_role(current_user, c.relowner, 'USAGE'), false) AS owns_history,
    coalesce(
        nullif(pg_get_userbyid(n.nspowner)::text, 'pg_database_owner'),
        (SELECT pg_get_userbyid(d.datdba)::text FROM pg_database AS d WHERE d.datname = current_database())
    ) AS schema_owner
FROM (SELECT 1) AS one
LEFT JOIN pg_class AS c ON c.oid = to_regclass('{HISTORY_TABLE}')
LEFT JOIN pg_namespace AS n ON n.nspname = current_schema()
"""


async def _rights(conn: Connection) -> _Rights:
    row = await conn.fetchrow(_RIGHTS)
    assert row is not None
    return _Rights(**dict(row))


def _require_rights(rights: _Rights, pending: Sequence[SchemaFile], action: str) -> None:
    """Refuse, saying which role should migrate, before a statement fails on `permission denied`."""
    if rights.superuser or (rights.may_create and (rights.history_owner is None or rights.owns_history)):
        return
    who = rights.history_owner or rights.schema_owner or "the schema's owner"
    waiting = f"{len(pending)} schema file(s) pending ({pending[0].filename} first)"
    missing = "CREATE on the schema" if not rights.may_create else f"membership in {who}, which owns the schema"
    raise MigrationPrivilegeError(
        f"the role {rights.role_name} cannot migrate ({waiting}): to {action} it needs {missing}; "
        f"run `coherence-sql migrate` as {who} (docs/deployment.md, Roles and least privilege)"
    )


async def status(dsn: str | None = None, *, directory: Path | None = None) -> SchemaStatus:
    """Applied and pending files; raises like `migrate` when the history forbids running."""
    files = discover(directory)
    conn = await connect(resolve_dsn(dsn), server_settings=_RUNNER_SETTINGS)
    try:
        history = await _history(conn)
    except DRIVER_FAILURES as exc:
        raise translate(exc, "status") from None
    finally:
        await conn.close()
    return SchemaStatus(applied=history, pending=_plan(files, history))


async def require_current(conn: Connection, *, directory: Path | None = None) -> None:
    """For the API's start-up: raise SchemaNotCurrentError unless the schema matches the code."""
    files = discover(directory)
    try:
        history = await _history(conn)
    except DRIVER_FAILURES as exc:
        raise translate(exc, "require_current") from None
    known = {f.version for f in files}
    ahead = [row.filename for row in history if row.version not in known]
    if ahead:
        raise SchemaNotCurrentError(
            f"the database's schema is ahead of this code: {', '.join(ahead)} applied but unknown; "
            f"deploy the newer code"
        )
    try:
        pending = _plan(files, history)
    except SchemaError as exc:
        raise SchemaNotCurrentError(str(exc)) from None
    if pending:
        raise SchemaNotCurrentError(
            f"the database's schema is behind this code: {', '.join(f.filename for f in pending)} "
            f"pending; run `coherence-sql migrate`"
        )
