"""Migration settings: the plan's variables, and refusal of combinations that would lose data."""

from __future__ import annotations

import pytest

from coherence_sql.cutover.settings import CutoverSettings, Phase
from coherence_sql.errors import ConfigurationError

DSN = "postgresql://app@db.internal/coherence"


def test_no_variables_mean_memory_only() -> None:
    settings = CutoverSettings.from_env({})
    assert settings.phase is Phase.MEMORY
    assert not settings.uses_postgres


def test_the_plans_variables_select_dual_write_with_a_read_share() -> None:
    settings = CutoverSettings.from_env(
        {"DUAL_WRITE_MODE": "true", "READ_FROM_POSTGRES_PERCENT": "10", "DATABASE_URL": DSN}
    )
    assert settings.phase is Phase.DUAL_WRITE
    assert settings.read_from_postgres_percent == 10
    assert settings.database_url == DSN


def test_postgres_primary_is_phase_three() -> None:
    settings = CutoverSettings.from_env(
        {
            "DUAL_WRITE_MODE": "true",
            "POSTGRES_PRIMARY": "true",
            "READ_FROM_POSTGRES_PERCENT": "100",
            "DATABASE_URL": DSN,
        }
    )
    assert settings.phase is Phase.POSTGRES_PRIMARY
    assert settings.memory_writes


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"READ_FROM_POSTGRES_PERCENT": "101", "DUAL_WRITE_MODE": "true", "DATABASE_URL": DSN},
            "READ_FROM_POSTGRES_PERCENT must be an integer from 0 to 100, got 101",
        ),
        (
            {"READ_FROM_POSTGRES_PERCENT": "-1", "DUAL_WRITE_MODE": "true", "DATABASE_URL": DSN},
            "READ_FROM_POSTGRES_PERCENT must be an integer from 0 to 100, got -1",
        ),
        (
            {"READ_FROM_POSTGRES_PERCENT": "ten", "DUAL_WRITE_MODE": "true", "DATABASE_URL": DSN},
            "READ_FROM_POSTGRES_PERCENT must be an integer from 0 to 100, got 'ten'",
        ),
        (
            {"SHADOW_COMPARE_PERCENT": "150", "DUAL_WRITE_MODE": "true", "DATABASE_URL": DSN},
            "SHADOW_COMPARE_PERCENT must be an integer from 0 to 100, got 150",
        ),
        ({"DUAL_WRITE_MODE": "maybe"}, "DUAL_WRITE_MODE must be true or false, got 'maybe'"),
        ({"DUAL_WRITE_MODE": "true"}, "dual-write mode needs DATABASE_URL"),
        (
            {"READ_FROM_POSTGRES_PERCENT": "10", "DATABASE_URL": DSN},
            "READ_FROM_POSTGRES_PERCENT > 0 needs DUAL_WRITE_MODE=true",
        ),
        (
            {"SHADOW_COMPARE_PERCENT": "10", "DATABASE_URL": DSN},
            "SHADOW_COMPARE_PERCENT > 0 needs DUAL_WRITE_MODE=true",
        ),
        ({"POSTGRES_PRIMARY": "true", "DATABASE_URL": DSN}, "POSTGRES_PRIMARY=true keeps in-memory writes"),
        (
            {"MEMORY_WRITES": "false", "DUAL_WRITE_MODE": "true", "DATABASE_URL": DSN},
            "MEMORY_WRITES=false is only allowed with POSTGRES_PRIMARY=true",
        ),
    ],
)
def test_invalid_configuration_fails_at_start_up(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CutoverSettings.from_env(env)
    assert message in str(caught.value)


def test_phase_three_may_stop_memory_writes_once_rollback_is_not_wanted() -> None:
    settings = CutoverSettings.from_env({"POSTGRES_PRIMARY": "true", "MEMORY_WRITES": "false", "DATABASE_URL": DSN})
    assert settings.phase is Phase.POSTGRES_PRIMARY
    assert not settings.memory_writes
