"""Test-server plumbing shared by fixtures and subprocess-based tests."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from coherence_sql.embedded import EmbeddedPostgres


@dataclass(frozen=True)
class PgServer:
    admin_dsn: str
    embedded: bool
    server: EmbeddedPostgres | None = None


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))
