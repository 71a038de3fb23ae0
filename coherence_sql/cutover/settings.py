"""Cut-over settings: which store is primary, what is dual-written, what share of reads moves.

`CutoverSettings(...)` takes exactly the values it is given; `CutoverSettings.from_env()` reads the
plan's environment variables (DUAL_WRITE_MODE, READ_FROM_POSTGRES_PERCENT) plus ours for what the
plan leaves open, with pydantic-settings (`CutoverEnvironment`). Invalid values and combinations
fail at start-up with a ConfigurationError naming the variable, never mid-traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from coherence_sql.environment import EnvironmentModel, read_environment
from coherence_sql.errors import ConfigurationError
from coherence_sql.redaction import redact


class Phase(str, Enum):
    """The plan's phases as one value (docs/runbook.md walks them in order)."""

    MEMORY = "memory"  # before phase 1, and after a phase-1 rollback
    DUAL_WRITE = "dual-write"  # phases 1-2: memory is the source of truth; reads may move
    POSTGRES_PRIMARY = "postgres-primary"  # phase 3: PostgreSQL is the source of truth


DEFAULT_POSTGRES_BUDGET_S = 0.5

class CutoverEnvironment(EnvironmentModel):
    """The plan's variables (DUAL_WRITE_MODE, READ_FROM_POSTGRES_PERCENT) and ours, as set."""

    SECRET: ClassVar[frozenset[str]] = frozenset({"DATABASE_URL"})

    DUAL_WRITE_MODE: bool = Field(False, description="true or false")
    READ_FROM_POSTGRES_PERCENT: int = Field(0, ge=0, le=100, description="an integer from 0 to 100")
    SHADOW_COMPARE_PERCENT: int = Field(0, ge=0, le=100, description="an integer from 0 to 100")
    POSTGRES_PRIMARY: bool = Field(False, description="true or false")
    MEMORY_WRITES: bool = Field(True, description="true or false")
    COHERENCE_SQL_JOURNAL: Path | None = Field(None, description="a file path")
    DATABASE_URL: str | None = Field(None, repr=False, description="a PostgreSQL URL")
    POSTGRES_BUDGET_MS: int = Field(
        round(DEFAULT_POSTGRES_BUDGET_S * 1000),
        ge=1,
        le=3_600_000,
        description="a whole number of milliseconds from 1 to 3600000",
    )


def _check_percent(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ConfigurationError(f"{name} must be an integer from 0 to 100, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class CutoverSettings:
    """How the cut-over stores route; `validate()` runs on construction."""

    dual_write: bool = False
    read_from_postgres_percent: int = 0
    shadow_compare_percent: int = 0
    postgres_primary: bool = False
    memory_writes: bool = True
    journal_path: Path | None = None
    shadow_timeout_s: float = 2.0
    shadow_max_in_flight: int = 64
    database_url: str | None = None
    # The PostgreSQL leg of a dual-write or routed read (pool acquire + statement) gets this long;
    # past it the write is journaled and the read served from memory (docs/decisions.md).
    postgres_budget_s: float = DEFAULT_POSTGRES_BUDGET_S

    def __post_init__(self) -> None:
        _check_percent("READ_FROM_POSTGRES_PERCENT", self.read_from_postgres_percent)
        _check_percent("SHADOW_COMPARE_PERCENT", self.shadow_compare_percent)
        if self.postgres_primary and not self.dual_write and self.memory_writes:
            # Phase 3 keeps writing memory so rollback stays possible: that is dual-writing.
            raise ConfigurationError(
                "POSTGRES_PRIMARY=true keeps in-memory writes for rollback, so it needs "
                "DUAL_WRITE_MODE=true (or MEMORY_WRITES=false once rollback is no longer wanted)"
            )
        if not self.dual_write and not self.postgres_primary:
            if self.read_from_postgres_percent:
                raise ConfigurationError(
                    "READ_FROM_POSTGRES_PERCENT > 0 needs DUAL_WRITE_MODE=true: PostgreSQL would "
                    "serve reads it never received the writes for"
                )
            if self.shadow_compare_percent:
                raise ConfigurationError("SHADOW_COMPARE_PERCENT > 0 needs DUAL_WRITE_MODE=true")
        if not self.memory_writes and not self.postgres_primary:
            raise ConfigurationError("MEMORY_WRITES=false is only allowed with POSTGRES_PRIMARY=true")
        if self.shadow_timeout_s <= 0 or self.shadow_max_in_flight < 1:
            raise ConfigurationError("shadow reads need a positive timeout and at least one slot")
        budget = self.postgres_budget_s
        if isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 < budget <= 3600:
            raise ConfigurationError(f"POSTGRES_BUDGET_MS must give a budget from 1 ms to 1 hour, got {budget!r} s")

    def __repr__(self) -> str:  # the generated one, with database_url redacted: never a password in a log
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        if shown["database_url"] is not None:
            shown["database_url"] = redact(shown["database_url"])
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def phase(self) -> Phase:
        if self.postgres_primary:
            return Phase.POSTGRES_PRIMARY
        if self.dual_write:
            return Phase.DUAL_WRITE
        return Phase.MEMORY

    @property
    def uses_postgres(self) -> bool:
        return self.phase is not Phase.MEMORY

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CutoverSettings:
        """From DUAL_WRITE_MODE, READ_FROM_POSTGRES_PERCENT, SHADOW_COMPARE_PERCENT,
        POSTGRES_PRIMARY, MEMORY_WRITES, COHERENCE_SQL_JOURNAL, DATABASE_URL and POSTGRES_BUDGET_MS
        (`env`, else the process environment)."""
        variables = read_environment(CutoverEnvironment, env)
        settings = cls(
            dual_write=variables.DUAL_WRITE_MODE,
            read_from_postgres_percent=variables.READ_FROM_POSTGRES_PERCENT,
            shadow_compare_percent=variables.SHADOW_COMPARE_PERCENT,
            postgres_primary=variables.POSTGRES_PRIMARY,
            memory_writes=variables.MEMORY_WRITES,
            journal_path=variables.COHERENCE_SQL_JOURNAL,
            database_url=variables.DATABASE_URL,
            postgres_budget_s=variables.POSTGRES_BUDGET_MS / 1000,
        )
        if settings.uses_postgres and settings.database_url is None:
            raise ConfigurationError(
                f"{settings.phase.value} mode needs DATABASE_URL: the API must not dual-write to "
                "a server nobody configured"
            )
        return settings
