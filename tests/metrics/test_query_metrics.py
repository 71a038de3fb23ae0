"""Every generated accessor call is timed under its query's name, and a failure is counted under
the coherence_sql error class the caller got."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from coherence_sql import metrics
from coherence_sql.db import Connection, connect
from coherence_sql.errors import DatabaseUnavailableError, DuplicateError
from coherence_sql.sql import contributors, health
from tests.metrics.scrape import scrape, value

COUNT = "coherence_sql_query_duration_seconds_count"
SUM = "coherence_sql_query_duration_seconds_sum"
FAILURES = "coherence_sql_query_failures_total"


def counts(query: str, error: str | None = None) -> tuple[float, float, float]:
    _, samples = scrape()
    failures = value(samples, FAILURES, query=query, error=error) if error else 0.0
    return (value(samples, COUNT, query=query) or 0.0, value(samples, SUM, query=query) or 0.0, failures or 0.0)


async def insert(conn: Connection, contributor_id: object, email: str) -> None:
    await contributors.insert_contributor(
        conn,
        id=contributor_id,  # type: ignore[arg-type]
        type="HUMAN",
        name="Ada",
        email=email,
        email_key=email.lower(),
        wallet_address=None,
        hourly_rate=None,
        created_at=datetime.now(UTC),
        github_username=None,
        metadata={},
    )


async def test_the_histogram_counts_exactly_the_calls_made(conn: Connection) -> None:
    count, total, _ = counts("health.server_version")
    for _ in range(3):
        assert await health.server_version(conn)
    after_count, after_total, _ = counts("health.server_version")
    assert after_count == count + 3
    assert after_total > total
    _, samples = scrape()
    # Each call also lands in the +Inf bucket (the buckets are cumulative).
    assert value(samples, "coherence_sql_query_duration_seconds_bucket", query="health.server_version", le="+Inf") == (
        after_count
    )


async def test_a_refused_write_is_timed_and_counted_under_duplicate_error(conn: Connection) -> None:
    query = "contributors.insert_contributor"
    count, _, failed = counts(query, "DuplicateError")
    contributor_id = uuid4()
    await insert(conn, contributor_id, "ada@example.org")
    with pytest.raises(DuplicateError):
        await insert(conn, contributor_id, "ada@example.org")
    after_count, _, after_failed = counts(query, "DuplicateError")
    assert (after_count, after_failed) == (count + 2, failed + 1)


async def test_a_closed_connection_is_counted_under_database_unavailable(clean_dsn: str) -> None:
    closed = await connect(clean_dsn)
    await closed.close()
    count, _, failed = counts("health.ping", "DatabaseUnavailableError")
    with pytest.raises(DatabaseUnavailableError, match=r"health\.ping"):
        await health.ping(closed)
    after_count, _, after_failed = counts("health.ping", "DatabaseUnavailableError")
    assert (after_count, after_failed) == (count + 1, failed + 1)


async def test_switched_off_nothing_is_recorded_and_on_again_it_is(conn: Connection) -> None:
    count, _, _ = counts("health.server_version")
    metrics.set_enabled(False)
    try:
        assert not metrics.enabled()
        await health.server_version(conn)
        assert counts("health.server_version")[0] == count
    finally:
        metrics.set_enabled(True)
    await health.server_version(conn)
    assert counts("health.server_version")[0] == count + 1


def test_the_buckets_resolve_a_tenth_of_a_millisecond_and_half_a_second() -> None:
    _, samples = scrape()
    bounds = {
        dict(labels)["le"]
        for (name, labels) in samples
        if name == "coherence_sql_query_duration_seconds_bucket" and dict(labels)["query"] == "health.ping"
    }
    assert bounds == {
        *(str(float(b)) for b in metrics.LATENCY_BUCKETS),
        "+Inf",
    }
    assert metrics.LATENCY_BUCKETS[0] == 0.0001
    assert 0.5 in metrics.LATENCY_BUCKETS


def test_every_generated_accessor_has_a_timer_named_after_its_query() -> None:
    import importlib
    import inspect
    import pkgutil

    import coherence_sql.sql as generated

    checked = 0
    for module_info in pkgutil.iter_modules(generated.__path__):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"coherence_sql.sql.{module_info.name}")
        for name, accessor in vars(module).items():
            if not inspect.iscoroutinefunction(accessor) or accessor.__module__ != module.__name__:
                continue
            timer = getattr(module, f"{name.upper()}_TIMER")
            assert isinstance(timer, metrics.QueryTimer)
            assert timer.query == f"{module_info.name}.{name}"
            assert f"{name.upper()}_TIMER.observe(started)" in inspect.getsource(accessor)
            checked += 1
    assert checked > 50
