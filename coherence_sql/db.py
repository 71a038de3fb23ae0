"""Connection settings, connections and pools, with the codecs and timeouts every session gets.

`resolve_dsn()` picks the server: an explicit DSN, else DATABASE_URL, else the embedded default.
The plan's variables (DATABASE_URL, POSTGRES_POOL_SIZE, POSTGRES_MAX_OVERFLOW, POSTGRES_POOL_TIMEOUT)
are read by pydantic-settings (`ConnectionEnvironment`); `PoolSettings(...)` takes given values.
Every connection decodes jsonb to Python objects and carries lock and statement timeouts, so a
hot-row lock can never wedge the writers (upstream's 2026-07 incident).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Final, TypeAlias

import asyncpg
from pydantic import Field

from coherence_sql.embedded import EmbeddedPostgres, default_data_dir
from coherence_sql.environment import EnvironmentModel, read_environment
from coherence_sql.errors import ConfigurationError
from coherence_sql.pool import BoundedPool
from coherence_sql.redaction import redact as redact  # re-exported: its old home
from coherence_sql.security.tls import connect_failure  # TLS failures typed, DSN redacted

if TYPE_CHECKING:  # the stubs make these generic; at run time they are not subscriptable
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
else:
    Connection = asyncpg.Connection
    Pool = asyncpg.Pool

DEFAULT_ACQUIRE_TIMEOUT_S: Final = 5.0

DEFAULT_SERVER_SETTINGS: Final[Mapping[str, str]] = {
    "lock_timeout": "5s",
    "statement_timeout": "60s",
    "idle_in_transaction_session_timeout": "30s",
    "application_name": "coherence_sql",
}


class ConnectionEnvironment(EnvironmentModel):
    """The plan's connection variables, as set (read by pydantic-settings)."""

    SECRET: ClassVar[frozenset[str]] = frozenset({"DATABASE_URL"})

    DATABASE_URL: str | None = Field(None, repr=False, description="a PostgreSQL URL")
    POSTGRES_POOL_SIZE: int = Field(20, ge=1, le=10_000, description="an integer from 1 to 10000")
    POSTGRES_MAX_OVERFLOW: int = Field(0, ge=0, le=10_000, description="an integer from 0 to 10000")
    POSTGRES_POOL_TIMEOUT: int = Field(
        int(DEFAULT_ACQUIRE_TIMEOUT_S), ge=1, le=3_600, description="a whole number of seconds from 1 to 3600"
    )


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Pool sizing, from the plan's POSTGRES_POOL_SIZE and POSTGRES_MAX_OVERFLOW."""

    min_size: int = 2
    max_size: int = 20
    max_queries: int = 50_000
    max_inactive_connection_lifetime: float = 300.0
    server_settings: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SERVER_SETTINGS))
    # The longest any caller waits for a connection (free, or newly opened), and for a used one to
    # be given back; past it PoolTimeoutError (see coherence_sql/pool.py).
    acquire_timeout_s: float = DEFAULT_ACQUIRE_TIMEOUT_S
    # Behind PgBouncer pooling by transaction (POSTGRES_PGBOUNCER): no statement cache, only what
    # PgBouncer passes on at start-up, the rest of server_settings checked to come from the role
    # (coherence_sql/replicas/pgbouncer.py).
    transaction_pooling: bool = False

    def __post_init__(self) -> None:
        if not self.acquire_timeout_s > 0:
            raise ConfigurationError(f"the pool's acquire timeout must be positive, got {self.acquire_timeout_s!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PoolSettings:
        """POSTGRES_POOL_SIZE, POSTGRES_MAX_OVERFLOW and POSTGRES_POOL_TIMEOUT (seconds), from
        `env`, else the process environment."""
        variables = read_environment(ConnectionEnvironment, env)
        size = variables.POSTGRES_POOL_SIZE
        from coherence_sql.replicas.pgbouncer import pools_by_transaction  # replicas imports db

        return cls(
            transaction_pooling=pools_by_transaction(env),
            min_size=min(2, size),
            max_size=size + variables.POSTGRES_MAX_OVERFLOW,
            acquire_timeout_s=float(variables.POSTGRES_POOL_TIMEOUT),
        )


def resolve_dsn(dsn: str | None = None) -> str:
    """An explicit DSN, else $DATABASE_URL, else the embedded server (started if needed; without
    the `embedded` extra installed, a ConfigurationError asking for DATABASE_URL)."""
    if dsn:
        return dsn
    from_env = read_environment(ConnectionEnvironment).DATABASE_URL
    if from_env:
        return from_env
    return EmbeddedPostgres(default_data_dir()).start()


async def init_connection(conn: Connection) -> None:
    """Codecs every coherence_sql connection needs."""
    for type_name in ("jsonb", "json"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(dsn: str | None = None, *, server_settings: Mapping[str, str] | None = None) -> Connection:
    """One connection with the package's codecs and timeouts."""
    target = resolve_dsn(dsn)
    settings = dict(DEFAULT_SERVER_SETTINGS if server_settings is None else server_settings)
    try:
        conn: Connection = await asyncpg.connect(target, server_settings=settings)
    except Exception as exc:
        raise connect_failure(target, exc) from None
    await init_connection(conn)
    return conn


async def create_pool(dsn: str | None = None, settings: PoolSettings | None = None, *, name: str = "primary") -> Pool:
    """A pool whose every connection has the package's codecs and timeouts; `name` labels its
    metrics (a replica's pool is "replica-1", ...)."""
    target = resolve_dsn(dsn)
    chosen = settings or PoolSettings.from_env()
    from coherence_sql.replicas.pgbouncer import require_session_settings, startup_settings  # replicas imports db

    sent = startup_settings(chosen.server_settings) if chosen.transaction_pooling else chosen.server_settings
    try:
        pool = BoundedPool(
            target,
            name=name,
            acquire_timeout_s=chosen.acquire_timeout_s,
            min_size=chosen.min_size,
            max_size=chosen.max_size,
            max_queries=chosen.max_queries,
            max_inactive_connection_lifetime=chosen.max_inactive_connection_lifetime,
            server_settings=dict(sent),
            statement_cache_size=0 if chosen.transaction_pooling else 100,  # 100: asyncpg's default
            init=init_connection,
            loop=None,
            connection_class=asyncpg.Connection,
            record_class=asyncpg.Record,
        )
    except Exception as exc:
        raise connect_failure(target, exc) from None
    try:
        # Opening the first connections is bounded like any other wait for one.
        await asyncio.wait_for(_opened(pool), chosen.acquire_timeout_s)
    except Exception as exc:
        pool.terminate()
        raise connect_failure(target, exc) from None
    if chosen.transaction_pooling:
        try:
            await require_session_settings(pool, chosen.server_settings)
        except BaseException:
            pool.terminate()
            raise
    return pool


async def _opened(pool: Pool) -> None:
    await pool  # asyncpg opens a pool's first connections when it is awaited
