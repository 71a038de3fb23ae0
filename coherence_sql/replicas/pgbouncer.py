"""PgBouncer in front of PostgreSQL: the pool mode setting, and the session settings it cannot carry.

`POSTGRES_PGBOUNCER=transaction` (or `statement`) says the connections go through PgBouncer pooling
by transaction: asyncpg's statement cache is turned off (a named prepared statement lives on one
server connection, and the next transaction may get another; asyncpg then re-sends Parse with every
Bind, so Parse/Bind/Execute share one Sync), and only `application_name`, which PgBouncer passes
on, is sent at start-up. The timeouts the package relies on (lock_timeout, statement_timeout,
idle_in_transaction_session_timeout) must then come from the role (`ALTER ROLE ... SET`): a pool
checks them once when it opens and refuses to start without them. `session` (or unset) changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal

from pydantic import Field

from coherence_sql.environment import EnvironmentModel, read_environment
from coherence_sql.errors import ConfigurationError
from coherence_sql.sql import pgbouncer as pgbouncer_sql
from coherence_sql.sql._runtime import Executor

__all__ = ["PgBouncerEnvironment", "pools_by_transaction", "require_session_settings", "startup_settings"]

# What PgBouncer (1.18) accepts in a client's startup packet and keeps per client.
PASSED_AT_STARTUP: Final = frozenset({"application_name"})
CHECKED_SETTINGS: Final = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")
_UNITS_MS: Final = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000, "": 1}
_DURATION: Final = re.compile(r"^\s*(\d+)\s*(ms|s|min|h|d|)\s*$")


class PgBouncerEnvironment(EnvironmentModel):
    """POSTGRES_PGBOUNCER: how PgBouncer pools the connections, if it is in front of PostgreSQL."""

    POSTGRES_PGBOUNCER: Literal["none", "session", "transaction", "statement"] = Field(
        "none", description="one of none, session, transaction, statement"
    )


def pools_by_transaction(env: Mapping[str, str] | None = None) -> bool:
    """Whether POSTGRES_PGBOUNCER says server connections change between transactions."""
    return read_environment(PgBouncerEnvironment, env).POSTGRES_PGBOUNCER in ("transaction", "statement")


def startup_settings(wanted: Mapping[str, str]) -> dict[str, str]:
    """The part of `wanted` PgBouncer takes in a startup packet (it refuses the others)."""
    return {name: value for name, value in wanted.items() if name in PASSED_AT_STARTUP}


def _milliseconds(value: str) -> int | None:
    match = _DURATION.match(value)
    return None if match is None else int(match.group(1)) * _UNITS_MS[match.group(2)]


async def require_session_settings(executor: Executor, wanted: Mapping[str, str]) -> None:
    """Raise ConfigurationError unless the session runs with `wanted`'s timeouts (one round trip,
    when a pool opens); the message gives the ALTER ROLE statements that fix it."""
    row = await pgbouncer_sql.session_settings(executor)
    found = {} if row is None else {name: str(getattr(row, name)) for name in CHECKED_SETTINGS}
    missing = [
        name
        for name in CHECKED_SETTINGS
        if name in wanted and _milliseconds(found.get(name, "")) != _milliseconds(wanted[name])
    ]
    if not missing:
        return
    role = "<role>" if row is None else row.role
    fixes = "; ".join(f"ALTER ROLE {role} SET {name} = '{wanted[name]}'" for name in missing)
    shown = ", ".join(f"{name} is {found.get(name, 'unknown')}, not {wanted[name]}" for name in missing)
    raise ConfigurationError(
        f"POSTGRES_PGBOUNCER pools by transaction, so the session timeouts must come from the role, "
        f"but {shown}: run {fixes} (docs/deployment.md, PgBouncer)"
    )
