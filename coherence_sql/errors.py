"""The typed errors every caller of coherence_sql can catch.

Every failure leaves the package as a subclass of `CoherenceSQLError`; PostgreSQL errors are
translated by `translate()` through one table keyed by SQLSTATE (and constraint name where the
constraint says more than the state), never by matching message text.
"""

from __future__ import annotations

import asyncio
from typing import Final

import asyncpg


class CoherenceSQLError(Exception):
    """Base of every error raised by coherence_sql."""


class ConfigurationError(CoherenceSQLError):
    """A setting (environment variable or argument) is missing or out of range."""


class DatabaseNotWritableError(ConfigurationError):
    """DATABASE_URL names a database the role cannot write: a hot standby, read-only sessions, or
    privileges missing on the tables the stores write (coherence_sql.health.STORE_WRITES)."""


class DuplicateError(CoherenceSQLError):
    """A unique key is already taken."""


class InvalidValueError(CoherenceSQLError, ValueError):
    """A value breaks a rule of the contract (a CHECK, a range, a precision, an enum)."""


class UnknownReferenceError(CoherenceSQLError):
    """A write refers to an entity that does not exist (a foreign key)."""


class DatabaseUnavailableError(CoherenceSQLError):
    """PostgreSQL cannot be reached, or the connection was lost mid-call."""


class PoolTimeoutError(DatabaseUnavailableError):
    """No pooled connection became free (or could be opened) within the pool's acquire timeout."""


class TLSError(DatabaseUnavailableError):
    """A TLS connection was refused: the server's certificate (CA, host name), a TLS file, or a
    server that accepts only TLS (coherence_sql.security.tls says which)."""


class QueryTimeoutError(CoherenceSQLError):
    """A statement or lock wait ran past its timeout."""


class QueryCancelledError(CoherenceSQLError, asyncio.CancelledError):
    """The call was cancelled before PostgreSQL answered.

    It is also an `asyncio.CancelledError`, so cancelling a task that waits on a query still
    cancels the task (see docs/decisions.md).
    """


class ConcurrencyError(CoherenceSQLError):
    """A serialization failure or deadlock: the transaction can be retried."""


class SchemaError(CoherenceSQLError):
    """Base of errors about the schema and its migrations."""


class SchemaNotCurrentError(SchemaError):
    """The database's schema is behind or ahead of the code."""


class MigrationError(SchemaError):
    """A schema file failed to apply, or the migration history forbids running."""


class ChecksumMismatchError(MigrationError):
    """An applied schema file was edited or removed since it was applied."""


class DirtyDatabaseError(MigrationError):
    """An earlier run failed part-way through a file that could not be rolled back."""


class MigrationLockTimeoutError(MigrationError):
    """Another runner held the migration lock for longer than the wait allowed."""


class MigrationPrivilegeError(MigrationError):
    """The role connected may not change the schema (e.g. the application role): another role must migrate."""


class CutoverError(CoherenceSQLError):
    """The data cut-over cannot go on as configured (e.g. phase 3 while dual-writes still wait)."""


class SnapshotError(CoherenceSQLError):
    """A JSON snapshot is unreadable or holds a record that does not validate."""


class StoreClosedError(CoherenceSQLError, RuntimeError):
    """A store was used after it was closed."""


class JournalError(CoherenceSQLError):
    """The dual-write journal holds an entry that cannot be read back."""


class JournalWriteError(JournalError):
    """The journal (or its dead-letter file) could not be written: disk full, I/O error."""


class DatabaseError(CoherenceSQLError):
    """A PostgreSQL error with no more specific translation."""


class MetricsFileError(CoherenceSQLError):
    """A metrics textfile (`verify --metrics-file`) could not be written: the directory is missing or not writable."""


class BackupError(CoherenceSQLError):
    """A backup could not be made, read or restored (see coherence_sql.backup)."""


class BackupChecksumError(BackupError):
    """A backup file's size or SHA-256 differs from its manifest: it is damaged and is not restored."""


class BackupToolNotFoundError(BackupError):
    """No pg_dump/pg_restore of the server's major version was found."""


class RestoreTargetNotEmptyError(BackupError):
    """The database named for a restore already holds objects; a restore only goes into an empty one."""


# What each constraint means to a caller, by constraint name; see schema/*.sql.
CONSTRAINT_MESSAGES: Final[dict[str, str]] = {
    "projects_pkey": "a project with this id already exists",
    "projects_ecosystem_name_key": "a project with this ecosystem and name already exists",
    "projects_ecosystem_lower": "the ecosystem key must be lower-case",
    "projects_name_lower": "the name key must be lower-case",
    "projects_ecosystem_not_empty": "ecosystem must not be empty",
    "projects_name_not_empty": "name must not be empty",
    "projects_display_matches_key": "the display spelling must match the key case-insensitively",
    "projects_dependency_count_check": "dependency_count must not be negative",
    "project_dependencies_pkey": "a dependency with this id already exists",
    "project_dependencies_from_project_id_to_project_id_key": "this dependency already exists",
    "project_dependencies_not_self": "a project cannot depend on itself",
    "project_dependencies_from_project_id_fkey": "the dependent project does not exist",
    "project_dependencies_to_project_id_fkey": "the dependency project does not exist",
    "pending_dependencies_pkey": "this dependency already exists",
    "pending_dependencies_not_self": "a project cannot depend on itself",
    "pending_dependencies_keys_lower": "dependency keys must be lower-case",
    "contributors_pkey": "a contributor with this id already exists",
    "contributors_email_key_unique": "a contributor with this email already exists",
    "contributors_type_check": "contributor type must be HUMAN or SYSTEM",
    "contributors_hourly_rate_check": "hourly_rate must not be negative",
    "contributors_name_not_empty": "contributor name must not be empty",
    "assets_pkey": "an asset with this id already exists",
    "assets_asset_type_check": "asset type must be CODE, MODEL, CONTENT or DATA",
    "assets_total_cost_check": "total_cost must not be negative",
    "contributions_pkey": "a contribution with this id already exists",
    "contributions_cost_amount_check": "cost_amount must not be negative",
    "contributions_coherence_score_check": "coherence_score must be between 0 and 1",
    "contributions_contributor_id_fkey": "the contributor does not exist",
    "contributions_asset_id_fkey": "the asset does not exist",
    "github_contributors_pkey": "a GitHub contributor with this id already exists",
    "github_contributors_id_not_empty": "GitHub contributor id must not be empty",
    "github_contributors_contributions_count_check": "contributions_count must not be negative",
    "github_organizations_pkey": "a GitHub organization with this id already exists",
    "github_organizations_id_not_empty": "GitHub organization id must not be empty",
    "github_organizations_type_check": "GitHub organization type must be Organization or User",
    "github_contributes_to_pkey": "this contributes-to edge already exists",
    "github_contributes_to_keys_lower": "project keys must be lower-case",
    "agent_tasks_pkey": "an agent task with this id already exists",
    "agent_tasks_id_not_empty": "agent task id must not be empty",
    "agent_tasks_progress_pct_range": "progress_pct must be between 0 and 100",
    "agent_tasks_direction_length": "direction must be at most 5000 characters",
    "direction_not_empty": "direction must not be empty",
    "shadow_mismatches_pkey": "a shadow mismatch with this id already exists",
    "shadow_mismatches_control_side": "a shadow mismatch's control side is memory or postgres",
    "backfill_checkpoints_pkey": "a checkpoint for this snapshot and section already exists",
    "backfill_checkpoints_sha256_hex": "a snapshot is named by the 64 lower-case hex digits of its SHA-256",
    "backfill_reserved_seqs_pkey": "these seq values are already reserved for this snapshot",
    "backfill_reserved_seqs_range": "a reserved seq range cannot end before it starts",
}

# SQLSTATE → error class. Classes (first two characters) are matched after exact states.
_BY_SQLSTATE: Final[dict[str, type[CoherenceSQLError]]] = {
    "23505": DuplicateError,  # unique_violation
    "23503": UnknownReferenceError,  # foreign_key_violation
    "23514": InvalidValueError,  # check_violation
    "23502": InvalidValueError,  # not_null_violation
    "22P02": InvalidValueError,  # invalid_text_representation (bad enum label, bad uuid)
    "22003": InvalidValueError,  # numeric_value_out_of_range
    "22001": InvalidValueError,  # string_data_right_truncation
    "22021": InvalidValueError,  # character_not_in_repertoire (NUL byte)
    "22007": InvalidValueError,  # invalid_datetime_format
    "22008": InvalidValueError,  # datetime_field_overflow
    "22023": InvalidValueError,  # invalid_parameter_value
    "22P05": InvalidValueError,  # untranslatable_character
    "57014": QueryTimeoutError,  # query_canceled (statement_timeout)
    "55P03": QueryTimeoutError,  # lock_not_available (lock_timeout)
    "40001": ConcurrencyError,  # serialization_failure
    "40P01": ConcurrencyError,  # deadlock_detected
    "57P01": DatabaseUnavailableError,  # admin_shutdown
    "57P02": DatabaseUnavailableError,  # crash_shutdown
    "57P03": DatabaseUnavailableError,  # cannot_connect_now
}
_BY_SQLSTATE_CLASS: Final[dict[str, type[CoherenceSQLError]]] = {
    "08": DatabaseUnavailableError,  # connection exception
    "22": InvalidValueError,  # data exception
    "23": InvalidValueError,  # integrity constraint violation
    "53": DatabaseUnavailableError,  # insufficient resources
}

# What a driver call can raise, for `except DRIVER_FAILURES as exc: raise translate(exc, ...) from None`
# (the generated accessors, the stores, the schema runner): asyncpg's errors, OSError, timeouts, and
# whatever a codec raises (json.dumps on a deeply nested value raises RecursionError unwrapped), so
# every Exception; plus a cancellation, which `translate` turns into QueryCancelledError (still an
# asyncio.CancelledError). Catch CoherenceSQLError first where one may pass through.
DRIVER_FAILURES: Final[tuple[type[BaseException], ...]] = (Exception, asyncio.CancelledError)

_CONNECTION_LOST: Final = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    # asyncpg's protocol state breaks when the server ends the session between two calls
    # ("cannot switch to state 11"); the connection is closed from then on.
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
    OSError,
)


def _describe_postgres_error(exc: asyncpg.PostgresError) -> str:
    constraint = getattr(exc, "constraint_name", None)
    explained = CONSTRAINT_MESSAGES.get(constraint or "")
    detail = getattr(exc, "detail", None)
    # str(exc) would repeat the DETAIL appended below; the primary message is `.message`.
    message = getattr(exc, "message", None) or str(exc)
    parts = [explained or message.strip() or type(exc).__name__]
    if constraint:
        parts.append(f"constraint {constraint}")
    if detail:
        parts.append(str(detail))
    return "; ".join(parts)


def translate(exc: BaseException, query: str | None = None) -> CoherenceSQLError:
    """Return the typed error for a driver exception; `query` names the query for the message."""
    if isinstance(exc, CoherenceSQLError):
        return exc
    where = f"{query}: " if query else ""
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        cls = _BY_SQLSTATE.get(state) or _BY_SQLSTATE_CLASS.get(state[:2], DatabaseError)
        return cls(f"{where}{_describe_postgres_error(exc)}")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return QueryTimeoutError(f"{where}timed out waiting for PostgreSQL")
    if isinstance(exc, asyncio.CancelledError):
        return QueryCancelledError(f"{where}cancelled before PostgreSQL answered")
    if isinstance(exc, _CONNECTION_LOST):
        return DatabaseUnavailableError(f"{where}connection to PostgreSQL failed: {exc}")
    if isinstance(exc, asyncpg.exceptions.DataError):
        return InvalidValueError(f"{where}{exc}")
    return DatabaseError(f"{where}{type(exc).__name__}: {exc}")
