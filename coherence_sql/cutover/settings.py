"""Migration settings: which store is primary, what is dual-written, what share of reads moves.

Read from the plan's environment variables (DUAL_WRITE_MODE, READ_FROM_POSTGRES_PERCENT) plus
ours for what the plan leaves open; invalid combinations fail at start-up, never mid-traffic.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path

from coherence_sql.errors import ConfigurationError
from coherence_sql.redaction import redact


class Phase(str, Enum):
    """The plan's phases as one value (docs/runbook.md walks them in order)."""

    MEMORY = "memory"  # before phase 1, and after a phase-1 rollback
    DUAL_WRITE = "dual-write"  # phases 1-2: memory is the source of truth; reads may move
    POSTGRES_PRIMARY = "postgres-primary"  # phase 3: PostgreSQL is the source of truth


DEFAULT_POSTGRES_BUDGET_S = 0.5

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")


def _percent(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "0").strip() or "0"
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer from 0 to 100, got {raw!r}") from None
    return _check_percent(name, value)


def _milliseconds(env: Mapping[str, str], name: str, default_s: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default_s
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number of milliseconds, got {raw!r}") from None
    if not 1 <= value <= 3_600_000:
        raise ConfigurationError(f"{name} must be from 1 to 3600000 milliseconds, got {value}")
    return value / 1000


def _check_percent(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ConfigurationError(f"{name} must be an integer from 0 to 100, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class CutoverSettings:
    """How the migrating stores route; `validate()` runs on construction."""

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
        POSTGRES_PRIMARY, MEMORY_WRITES, COHERENCE_SQL_JOURNAL, DATABASE_URL and POSTGRES_BUDGET_MS."""
        source = os.environ if env is None else env
        journal = source.get("COHERENCE_SQL_JOURNAL", "").strip()
        settings = cls(
            dual_write=_flag(source, "DUAL_WRITE_MODE", False),
            read_from_postgres_percent=_percent(source, "READ_FROM_POSTGRES_PERCENT"),
            shadow_compare_percent=_percent(source, "SHADOW_COMPARE_PERCENT"),
            postgres_primary=_flag(source, "POSTGRES_PRIMARY", False),
            memory_writes=_flag(source, "MEMORY_WRITES", True),
            journal_path=Path(journal) if journal else None,
            database_url=source.get("DATABASE_URL", "").strip() or None,
            postgres_budget_s=_milliseconds(source, "POSTGRES_BUDGET_MS", DEFAULT_POSTGRES_BUDGET_S),
        )
        if settings.uses_postgres and settings.database_url is None:
            raise ConfigurationError(
                f"{settings.phase.value} mode needs DATABASE_URL: the API must not dual-write to "
                "a server nobody configured"
            )
        return settings
