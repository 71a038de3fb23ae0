"""The replica settings from the environment (no secret ever shown), the lag estimate, and the
replica families as a scrape reads them (no server needed: nothing here talks to one)."""

from __future__ import annotations

from typing import cast

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from coherence_sql.db import Pool
from coherence_sql.errors import ConfigurationError
from coherence_sql.replicas import ReadRouter, Replica, ReplicaSettings
from coherence_sql.replicas.metrics import RouterCollector
from coherence_sql.replicas.positions import CallerPosition, PrimaryClock, PrimarySample
from coherence_sql.replicas.settings import split_urls

SECRET = "s3cr3t-pw"


def test_no_replica_urls_means_no_replicas() -> None:
    assert not ReplicaSettings.from_env({}).enabled
    assert not ReplicaSettings.from_env({"DATABASE_REPLICA_URLS": "  "}).enabled


def test_replica_urls_limits_and_interval_are_read_from_the_environment() -> None:
    settings = ReplicaSettings.from_env(
        {
            "DATABASE_REPLICA_URLS": f"postgresql://app:{SECRET}@r1/db, postgres://app:{SECRET}@r2:5433/db",
            "REPLICA_MAX_LAG_S": "2.5",
            "REPLICA_CHECK_INTERVAL_MS": "250",
        }
    )
    assert settings.urls == (f"postgresql://app:{SECRET}@r1/db", f"postgres://app:{SECRET}@r2:5433/db")
    assert (settings.max_lag_s, settings.check_interval_s) == (2.5, 0.25)
    assert SECRET not in repr(settings)


def test_defaults_are_the_plans_ten_second_limit_and_a_tenth_of_a_second() -> None:
    settings = ReplicaSettings.from_env({"DATABASE_REPLICA_URLS": "postgresql://r1/db"})
    assert (settings.max_lag_s, settings.check_interval_s) == (10.0, 0.1)


def test_a_multi_host_url_keeps_its_commas() -> None:
    assert split_urls("postgresql://a:5432,b:5432/db,postgresql://c/db") == (
        "postgresql://a:5432,b:5432/db",
        "postgresql://c/db",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_REPLICA_URLS": f"app:{SECRET}@r1/db"}, "replica 1 of DATABASE_REPLICA_URLS is not a postgresql://"),
        ({"REPLICA_MAX_LAG_S": "0"}, "REPLICA_MAX_LAG_S must be a number of seconds above 0"),
        ({"REPLICA_CHECK_INTERVAL_MS": "5"}, "REPLICA_CHECK_INTERVAL_MS must be milliseconds from 10 to 60000"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable_never_the_secret(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as refused:
        ReplicaSettings.from_env(env)
    assert SECRET not in str(refused.value)


def test_a_write_is_covered_only_by_a_primary_sample_that_began_after_it() -> None:
    caller = CallerPosition()
    assert caller.required(None) == 0
    caller.wrote(10.0)
    assert caller.required(PrimarySample(started=9.5, lsn=500)) is None  # began before the write ended
    assert caller.required(PrimarySample(started=10.0, lsn=600)) is None
    assert caller.required(PrimarySample(started=10.1, lsn=700)) == 700
    assert caller.required(PrimarySample(started=11.0, lsn=900)) == 700  # no new write: no new need


def test_a_replicas_delay_is_the_age_of_the_last_sample_it_had_replayed() -> None:
    clock = PrimaryClock(history_s=30.0)
    for second, lsn in enumerate((100, 200, 300, 400)):
        clock.record(PrimarySample(started=float(second), lsn=lsn))
    assert clock.delay(400, now=3.5) == 0.0  # replayed the latest sample: caught up
    assert clock.delay(250, now=3.5) == 2.5  # had all of the sample taken at 1.0
    assert clock.delay(50, now=3.5) == 3.5  # behind everything kept: at least its age


def test_the_replica_families_read_the_router_when_scraped() -> None:
    settings = ReplicaSettings(urls=("postgresql://r1/db", "postgresql://r2/db"))
    replicas = [Replica(name="replica-1", url=settings.urls[0]), Replica(name="replica-2", url=settings.urls[1])]
    router = ReadRouter(cast(Pool, None), replicas, settings)  # never used: no statement runs here
    replicas[0].in_rotation, replicas[0].reads, replicas[0].delay_s = True, 7, 0.25
    replicas[1].reads, replicas[1].delay_s = 2, 12.0
    router.primary_reads = 3
    collector = RouterCollector()
    collector.track(router)
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    for line in (
        'coherence_sql_replica_in_rotation{replica="replica-1"} 1.0',
        'coherence_sql_replica_in_rotation{replica="replica-2"} 0.0',
        'coherence_sql_replica_replay_delay_seconds{replica="replica-2"} 12.0',
        'coherence_sql_replica_reads_total{replica="primary"} 3.0',
        'coherence_sql_replica_reads_total{replica="replica-1"} 7.0',
    ):
        assert line in text
