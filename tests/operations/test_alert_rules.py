"""The Prometheus alert rules: promtool accepts them, their unit tests pass (each alert fires on
its input series and stays quiet on others), a broken file or a changed threshold makes promtool
fail, and every alert carries what an on-call engineer needs (severity, summary, runbook).

promtool comes with Debian's `prometheus` package (CI installs it); without it these tests skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "coherence-sql-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "coherence-sql-alerts.test.yml"
PROMTOOL_TIMEOUT_S = 60


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
    return found


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S, check=False
    )


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _rule_tests() -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    return tests


def test_promtool_accepts_the_rules() -> None:
    result = _run("check", "rules", RULES.name, cwd=RULES.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_the_rules_unit_tests_pass() -> None:
    result = _run("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_refuses_a_rules_file_with_a_broken_expression(tmp_path: Path) -> None:
    broken = RULES.read_text().replace("coherence_sql_cutover_diverged == 1", "coherence_sql_cutover_diverged == (", 1)
    assert broken != RULES.read_text()
    (tmp_path / RULES.name).write_text(broken)
    result = _run("check", "rules", RULES.name, cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert '"CoherenceSQLPostgresDiverged": could not parse expression' in output, output


def test_the_unit_tests_catch_a_changed_threshold(tmp_path: Path) -> None:
    """The unit tests would notice the plan's 500 ms becoming 5 s."""
    loosened = RULES.read_text().replace(
        "rate(coherence_sql_query_duration_seconds_bucket[5m]))) > 0.5",
        "rate(coherence_sql_query_duration_seconds_bucket[5m]))) > 5",
        1,
    )
    assert loosened != RULES.read_text()
    (tmp_path / RULES.name).write_text(loosened)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = _run("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "CoherenceSQLQueryLatencyHigh" in result.stdout + result.stderr


def test_every_alert_has_unit_tests_that_fire_it_and_that_do_not() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in _rule_tests():
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {alert["alert"] for alert in _alerts()}
    assert names - firing == set(), "alerts no unit test fires"
    assert names - quiet == set(), "alerts no unit test shows quiet"
    assert (firing | quiet) - names == set(), "unit tests of alerts that do not exist"


def test_the_plan_and_cutover_alerts_are_all_there() -> None:
    names = {alert["alert"] for alert in _alerts()}
    assert {
        "CoherenceSQLQueryLatencyHigh",
        "CoherenceSQLQueryFailuresHigh",
        "CoherenceSQLPoolExhausted",
        "CoherenceSQLDiskAlmostFull",
        "CoherenceSQLReplicationLagHigh",
        "CoherenceSQLDeadLetters",
        "CoherenceSQLJournalBacklogOld",
        "CoherenceSQLShadowMismatches",
        "CoherenceSQLPostgresDiverged",
        "CoherenceSQLVerifyFailed",
        "CoherenceSQLVerifyNotRun",
    } <= names


def _github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_says_how_bad_what_and_where_to_read_more() -> None:
    for alert in _alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        annotations = alert["annotations"]
        assert annotations["summary"].strip(), name
        assert annotations["description"].strip(), name
        path, _, anchor = annotations["runbook_url"].partition("#")
        document = ROOT / path
        assert document.is_file(), f"{name}: {path} does not exist"
        anchors = {
            _github_anchor(line.lstrip("#")) for line in document.read_text().splitlines() if line.startswith("#")
        }
        assert anchor in anchors, f"{name}: {path} has no heading #{anchor}"
