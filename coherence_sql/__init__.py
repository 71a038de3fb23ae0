"""coherence_sql: the PostgreSQL data layer of the Coherence Network API.

The names the API imports (README.md shows them at work):

- schema: `migrate(dsn)` applies pending schema files; `require_current(conn)` refuses a database
  behind or ahead of the code (`SchemaNotCurrentError`).
- stores: `connect(dsn)` opens the PostgreSQL stores (`PostgresStores`: `.graph`, `.tasks`);
  `SyncStores` puts them behind synchronous methods (`SyncStores.open(dsn)`).
- cut-over: `open_cutover_stores(settings)` opens the stores the API serves while it moves
  (`CutoverStores`), routed by `CutoverSettings` (`CutoverSettings.from_env()` reads the plan's
  variables); `Phase` names the phase; `store_status()` returns a `StoreStatus`.
  `SyncCutoverStores.open(settings)` is the same for synchronous callers.
- errors: every failure is a `CoherenceSQLError`; the ones a caller handles are exported here.

They load on first use, so `import coherence_sql.errors` (or the CLI's start) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from coherence_sql.cutover.service import CutoverStores, open_cutover_stores
    from coherence_sql.cutover.settings import CutoverSettings, Phase
    from coherence_sql.cutover.status import StoreStatus
    from coherence_sql.cutover.sync import SyncCutoverStores
    from coherence_sql.errors import (
        CoherenceSQLError,
        ConfigurationError,
        CutoverError,
        DatabaseUnavailableError,
        DuplicateError,
        InvalidValueError,
        JournalError,
        MigrationError,
        PoolTimeoutError,
        QueryTimeoutError,
        SchemaNotCurrentError,
        StoreClosedError,
        UnknownReferenceError,
    )
    from coherence_sql.schema import migrate, require_current
    from coherence_sql.stores.postgres import PostgresStores, connect
    from coherence_sql.stores.sync import SyncStores

_HOMES: dict[str, str] = {
    "connect": "coherence_sql.stores.postgres",
    "PostgresStores": "coherence_sql.stores.postgres",
    "SyncStores": "coherence_sql.stores.sync",
    "migrate": "coherence_sql.schema",
    "require_current": "coherence_sql.schema",
    "open_cutover_stores": "coherence_sql.cutover.service",
    "CutoverStores": "coherence_sql.cutover.service",
    "CutoverSettings": "coherence_sql.cutover.settings",
    "Phase": "coherence_sql.cutover.settings",
    "StoreStatus": "coherence_sql.cutover.status",
    "SyncCutoverStores": "coherence_sql.cutover.sync",
    **dict.fromkeys(
        (
            "CoherenceSQLError",
            "ConfigurationError",
            "CutoverError",
            "DatabaseUnavailableError",
            "DuplicateError",
            "InvalidValueError",
            "JournalError",
            "MigrationError",
            "PoolTimeoutError",
            "QueryTimeoutError",
            "SchemaNotCurrentError",
            "StoreClosedError",
            "UnknownReferenceError",
        ),
        "coherence_sql.errors",
    ),
}

__all__ = [
    "CoherenceSQLError",
    "ConfigurationError",
    "CutoverError",
    "CutoverSettings",
    "CutoverStores",
    "DatabaseUnavailableError",
    "DuplicateError",
    "InvalidValueError",
    "JournalError",
    "MigrationError",
    "Phase",
    "PoolTimeoutError",
    "PostgresStores",
    "QueryTimeoutError",
    "SchemaNotCurrentError",
    "StoreClosedError",
    "StoreStatus",
    "SyncCutoverStores",
    "SyncStores",
    "UnknownReferenceError",
    "__version__",
    "connect",
    "migrate",
    "open_cutover_stores",
    "require_current",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'coherence_sql' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
