"""The replica settings: DATABASE_REPLICA_URLS and the rotation's limits, read with pydantic-settings.

No DATABASE_REPLICA_URLS (or a blank one) means no replicas: every statement goes to the primary,
exactly as before. The URLs carry passwords, so no message ever shows one (coherence_sql.redaction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final

from pydantic import Field

from coherence_sql.environment import EnvironmentModel, read_environment
from coherence_sql.errors import ConfigurationError

__all__ = ["ReplicaEnvironment", "ReplicaSettings", "split_urls"]

DEFAULT_MAX_LAG_S: Final = 10.0  # the plan's replication-lag alert
DEFAULT_CHECK_INTERVAL_S: Final = 0.1
_SCHEMES: Final = ("postgresql://", "postgres://")


class ReplicaEnvironment(EnvironmentModel):
    """The replica variables, as set."""

    SECRET: ClassVar[frozenset[str]] = frozenset({"DATABASE_REPLICA_URLS"})

    DATABASE_REPLICA_URLS: str | None = Field(
        None, repr=False, description="comma-separated postgresql:// URLs of streaming replicas"
    )
    REPLICA_MAX_LAG_S: float = Field(
        DEFAULT_MAX_LAG_S, gt=0, le=3_600, description="a number of seconds above 0, at most 3600"
    )
    REPLICA_CHECK_INTERVAL_MS: int = Field(
        int(DEFAULT_CHECK_INTERVAL_S * 1000), ge=10, le=60_000, description="milliseconds from 10 to 60000"
    )


@dataclass(frozen=True, slots=True)
class ReplicaSettings:
    """Where the replicas are and when one leaves the rotation.

    `max_lag_s`: a replica further behind the primary than this serves no reads until it catches
    up; `check_interval_s`: how often the health loop samples the primary and every replica."""

    urls: tuple[str, ...] = field(default=(), repr=False)
    max_lag_s: float = DEFAULT_MAX_LAG_S
    check_interval_s: float = DEFAULT_CHECK_INTERVAL_S

    def __post_init__(self) -> None:
        for number, url in enumerate(self.urls, start=1):
            if not url.startswith(_SCHEMES):
                raise ConfigurationError(
                    f"replica {number} of DATABASE_REPLICA_URLS is not a postgresql:// URL "
                    "(the value is not shown: it may hold a password)"
                )
        if not self.max_lag_s > 0:
            raise ConfigurationError(f"the replicas' lag limit must be positive, got {self.max_lag_s!r}")
        if not self.check_interval_s > 0:
            raise ConfigurationError(f"the replica check interval must be positive, got {self.check_interval_s!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReplicaSettings:
        """DATABASE_REPLICA_URLS, REPLICA_MAX_LAG_S and REPLICA_CHECK_INTERVAL_MS, from `env`, else
        the process environment."""
        variables = read_environment(ReplicaEnvironment, env)
        return cls(
            urls=split_urls(variables.DATABASE_REPLICA_URLS or ""),
            max_lag_s=variables.REPLICA_MAX_LAG_S,
            check_interval_s=variables.REPLICA_CHECK_INTERVAL_MS / 1000,
        )


def split_urls(raw: str) -> tuple[str, ...]:
    """The URLs of a comma-separated list. A piece that does not start with a scheme continues the
    URL before it: libpq's multi-host form (postgresql://h1:5432,h2:5432/db) has commas of its own."""
    urls: list[str] = []
    for piece in (p.strip() for p in raw.split(",")):
        if not piece:
            continue
        if urls and not piece.startswith(_SCHEMES):
            urls[-1] = f"{urls[-1]},{piece}"
        else:
            urls.append(piece)
    return tuple(urls)
