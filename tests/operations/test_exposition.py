"""Scrape the package's metrics after real store calls (the exposition text parsed as Prometheus
does) and check that every family the alert rules use is there, with samples wherever this
single-server test can produce them."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.operations.exposition import Exported, names_in, scrape_everything
from tests.operations.test_alert_rules import RULES

# Only a primary with a streaming replica has a replication lag, only a replica a replay delay:
# their families are present without samples here (tests/metrics covers them on a replica).
NEED_A_REPLICA = {"coherence_sql_server_replication_lag_seconds", "coherence_sql_server_replay_delay_seconds"}


def _alert_metric_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {name for group in groups for rule in group["rules"] for name in names_in(rule["expr"])}


async def test_every_metric_the_alerts_use_is_exported_with_samples(clean_dsn: str, tmp_path: Path) -> None:
    exported: Exported = await scrape_everything(clean_dsn, tmp_path)
    used = _alert_metric_names()
    assert len(used) >= 15
    assert sorted(name for name in used if not exported.knows(name)) == []
    without_samples = sorted(name for name in used - NEED_A_REPLICA if not exported.samples.get(name))
    assert without_samples == []


async def test_the_scrape_counts_the_calls_and_names_the_failure(clean_dsn: str, tmp_path: Path) -> None:
    exported = await scrape_everything(clean_dsn, tmp_path)
    failures = exported.samples["coherence_sql_query_failures_total"]
    assert any(
        labels == {"query": "contributors.insert_contributor", "error": "DuplicateError"} and value >= 1
        for labels, value in failures
    ), failures
    calls = {labels["query"]: value for labels, value in exported.samples["coherence_sql_query_duration_seconds_count"]}
    assert calls["contributors.insert_contributor"] >= 2  # the dual-write's and the refused one
    assert calls["projects.upsert_project"] >= 1
    phase = {labels["phase"]: value for labels, value in exported.samples["coherence_sql_cutover_phase"]}
    assert phase == {"memory": 0, "dual-write": 1, "postgres-primary": 0}
    shadow = exported.samples["coherence_sql_cutover_shadow_mismatches_total"]
    mismatches = {labels["operation"]: value for labels, value in shadow}
    assert mismatches["get_project"] == 1
    assert exported.samples["coherence_sql_server_up"] == [({}, 1.0)]
    assert exported.samples["coherence_sql_verify_success"] == [({}, 0.0)]
    assert exported.samples["coherence_sql_verify_differences"] == [({}, 3.0)]
