"""Settings from the environment (pydantic-settings): the plan's variables, typed errors, no secrets shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from coherence_sql.cutover.settings import CutoverSettings, Phase
from coherence_sql.db import ConnectionEnvironment, PoolSettings, resolve_dsn
from coherence_sql.environment import read_environment
from coherence_sql.errors import ConfigurationError

SECRET = "Zq9-never-shown"
DSN = f"postgresql://app:{SECRET}@db.internal/coherence"


def test_pool_settings_come_from_the_plans_variables() -> None:
    settings = PoolSettings.from_env(
        {"POSTGRES_POOL_SIZE": "8", "POSTGRES_MAX_OVERFLOW": "4", "POSTGRES_POOL_TIMEOUT": "3"}
    )
    assert (settings.min_size, settings.max_size, settings.acquire_timeout_s) == (2, 12, 3.0)
    default = PoolSettings.from_env({})
    assert (default.min_size, default.max_size, default.acquire_timeout_s) == (2, 20, 5.0)
    assert PoolSettings.from_env({"POSTGRES_POOL_SIZE": "1"}).min_size == 1


def test_pool_settings_read_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_POOL_SIZE", " 7 ")
    monkeypatch.setenv("POSTGRES_POOL_TIMEOUT", "")  # blank is unset: the default
    settings = PoolSettings.from_env()
    assert (settings.max_size, settings.acquire_timeout_s) == (7, 5.0)
    monkeypatch.setenv("DATABASE_URL", f"  {DSN} ")
    assert resolve_dsn() == DSN


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"POSTGRES_POOL_SIZE": "0"}, "POSTGRES_POOL_SIZE must be an integer from 1 to 10000, got 0"),
        ({"POSTGRES_POOL_SIZE": "2.5"}, "POSTGRES_POOL_SIZE must be an integer from 1 to 10000, got '2.5'"),
        ({"POSTGRES_MAX_OVERFLOW": "-1"}, "POSTGRES_MAX_OVERFLOW must be an integer from 0 to 10000, got -1"),
        (
            {"POSTGRES_POOL_TIMEOUT": "0"},
            "POSTGRES_POOL_TIMEOUT must be a whole number of seconds from 1 to 3600, got 0",
        ),
        (
            {"POSTGRES_POOL_SIZE": "x", "POSTGRES_POOL_TIMEOUT": "y"},
            "POSTGRES_POOL_SIZE must be an integer from 1 to 10000, got 'x'; "
            "POSTGRES_POOL_TIMEOUT must be a whole number of seconds from 1 to 3600, got 'y'",
        ),
    ],
)
def test_a_bad_pool_variable_is_a_configuration_error_naming_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PoolSettings.from_env({**env, "DATABASE_URL": DSN})
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"POSTGRES_BUDGET_MS": "0"},
            "POSTGRES_BUDGET_MS must be a whole number of milliseconds from 1 to 3600000, got 0",
        ),
        ({"POSTGRES_BUDGET_MS": "1.5"}, "got '1.5'"),
        ({"POSTGRES_PRIMARY": "perhaps"}, "POSTGRES_PRIMARY must be true or false, got 'perhaps'"),
        ({"MEMORY_WRITES": "2"}, "MEMORY_WRITES must be true or false, got 2"),
    ],
)
def test_a_bad_cutover_variable_is_a_configuration_error_naming_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CutoverSettings.from_env({**env, "DATABASE_URL": DSN, "DUAL_WRITE_MODE": "true"})
    assert message in str(caught.value)
    assert SECRET not in str(caught.value)


def test_cutover_variables_are_parsed_like_the_plan_says() -> None:
    settings = CutoverSettings.from_env(
        {
            "DUAL_WRITE_MODE": " Yes ",
            "READ_FROM_POSTGRES_PERCENT": " 25 ",
            "SHADOW_COMPARE_PERCENT": "",
            "COHERENCE_SQL_JOURNAL": "/var/lib/api/journal.jsonl",
            "POSTGRES_BUDGET_MS": "250",
            "DATABASE_URL": DSN,
            "UNRELATED": "ignored",
        }
    )
    assert settings.phase is Phase.DUAL_WRITE
    assert (settings.read_from_postgres_percent, settings.shadow_compare_percent) == (25, 0)
    assert settings.journal_path == Path("/var/lib/api/journal.jsonl")
    assert settings.postgres_budget_s == 0.25
    assert settings.database_url == DSN
    assert SECRET not in repr(settings)


def test_keyword_construction_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUAL_WRITE_MODE", "true")
    monkeypatch.setenv("DATABASE_URL", DSN)
    monkeypatch.setenv("READ_FROM_POSTGRES_PERCENT", "50")
    given = CutoverSettings()
    assert (given.phase, given.database_url, given.read_from_postgres_percent) == (Phase.MEMORY, None, 0)
    from_env = CutoverSettings.from_env()
    assert (from_env.phase, from_env.read_from_postgres_percent) == (Phase.DUAL_WRITE, 50)


def test_a_secret_variable_is_never_shown() -> None:
    variables = read_environment(ConnectionEnvironment, {"DATABASE_URL": DSN})
    assert variables.DATABASE_URL == DSN
    assert SECRET not in repr(variables)
    assert SECRET not in str(variables)
