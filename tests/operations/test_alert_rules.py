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
from subprocess import PIPE
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


_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(duration: str) -> float:
    """A Prometheus duration ("1h30m", "25h", "0m") in seconds."""
    return sum(int(n) * _DURATION_S[unit] for n, unit in _DURATION.findall(duration))


def _halves(cases: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The cases in two lists of about equal work: promtool evaluates every rule at each step up to a
    case's last eval_time, so that is a case's cost (the backup cases alone are most of the file)."""

    def cost(case: dict[str, Any]) -> float:
        return max((_seconds(check["eval_time"]) for check in case.get("alert_rule_test", [])), default=0.0)

    halves: list[list[dict[str, Any]]] = [[], []]
    loads = [0.0, 0.0]
    for case in sorted(cases, key=cost, reverse=True):
        lighter = loads.index(min(loads))
        halves[lighter].append(case)
        loads[lighter] += cost(case) + 60  # every case costs a little, even at eval_time 0
    return halves


def test_the_rules_unit_tests_pass(tmp_path: Path) -> None:
    """Every case of the file passes. promtool runs case after case on one core, each on its own
    (its own series, its own clock), so the file is run as two halves at once on the two cores."""
    rule_tests = yaml.safe_load(RULE_TESTS.read_text())
    halves = _halves(rule_tests["tests"])
    assert sorted(case["name"] for half in halves for case in half) == sorted(c["name"] for c in rule_tests["tests"])
    shutil.copy(RULES, tmp_path / RULES.name)
    runs: list[subprocess.Popen[str]] = []
    try:
        for index, half in enumerate(halves):
            name = f"half-{index}.test.yml"
            (tmp_path / name).write_text(yaml.safe_dump({**rule_tests, "tests": half}, sort_keys=False))
            command = [_promtool(), "test", "rules", name]
            runs.append(subprocess.Popen(command, cwd=tmp_path, stdout=PIPE, stderr=PIPE, text=True))
        for run in runs:
            stdout, stderr = run.communicate(timeout=PROMTOOL_TIMEOUT_S)
            assert run.returncode == 0, stdout + stderr
            assert "SUCCESS" in stdout
    finally:
        for run in runs:
            if run.poll() is None:  # a timeout: no promtool outlives the test
                run.kill()
                run.wait()


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
    # The file's cases of this alert, as written there: promtool runs each case on its own, so the
    # others (the backup cases alone evaluate 28 hours minute by minute) could not tell.
    rule_tests = yaml.safe_load(RULE_TESTS.read_text())
    rule_tests["tests"] = [
        case
        for case in rule_tests["tests"]
        if any(check["alertname"] == "CoherenceSQLQueryLatencyHigh" for check in case.get("alert_rule_test", []))
    ]
    assert len(rule_tests["tests"]) >= 2  # one that fires, one that stays quiet
    (tmp_path / RULE_TESTS.name).write_text(yaml.safe_dump(rule_tests, sort_keys=False))
    result = _run("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "FAILED:" in output, output  # a case failed (not the file)
    assert "alertname: CoherenceSQLQueryLatencyHigh" in output, output


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
