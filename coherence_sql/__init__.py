"""coherence_sql: the PostgreSQL data layer of the Coherence Network API."""

__version__ = "0.1.0"
