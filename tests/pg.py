"""Test-server plumbing shared by fixtures and subprocess-based tests (now the plugin's own)."""

from __future__ import annotations

from coherence_sql.testing.server import PgServer, with_database

__all__ = ["PgServer", "with_database"]
