"""The pytest plugin the package registers (`pytest11` entry point `coherence_sql`).

It offers the fixtures of `coherence_sql.testing.fixtures` when pytest-asyncio is installed (the
`testing` extra); without it, it offers nothing, so a production install never breaks the pytest
of a project that happens to have coherence-sql installed.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("pytest_asyncio") is not None:
    from coherence_sql.testing.fixtures import (
        _emptier,
        _truncate_sql,
        clean_dsn,
        conn,
        cutover_stores,
        database_factory,
        empty_dsn,
        migrated_dsn,
        pg_server,
        postgres_stores,
    )

    __all__ = [
        "_emptier",
        "_truncate_sql",
        "clean_dsn",
        "conn",
        "cutover_stores",
        "database_factory",
        "empty_dsn",
        "migrated_dsn",
        "pg_server",
        "postgres_stores",
    ]
