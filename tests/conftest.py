"""The project's own test settings: Hypothesis profiles, and no skip counted as a pass in CI.

The database fixtures (`pg_server`, `database_factory`, `migrated_dsn`, `clean_dsn`, `conn`,
`empty_dsn`, `postgres_stores`, `cutover_stores`) come from the package's pytest plugin,
`coherence_sql.testing.plugin`, which pytest loads through its `pytest11` entry point.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# CI sets it: a test that skips (a missing server, tool or file) did not show anything works.
NO_SKIPS = os.environ.get("COHERENCE_SQL_NO_SKIPS", "").strip() == "1"


def _skip_as_failure(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not NO_SKIPS or not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = (longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)).removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = f"skipped ({reason}), and COHERENCE_SQL_NO_SKIPS=1 counts a skip as a failure"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _skip_as_failure(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _skip_as_failure(report)
    return report
