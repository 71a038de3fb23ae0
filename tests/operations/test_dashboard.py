"""The Grafana dashboard (deploy/grafana/coherence-sql.json): well-formed, every panel's PromQL
parses (promtool) and names only metrics the code exports (scraped, not listed by hand), and it
shows what the alerts watch."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operations.exposition import names_in, scrape_everything
from tests.operations.test_alert_rules import ROOT, RULES

DASHBOARD = ROOT / "deploy" / "grafana" / "coherence-sql.json"
GRID_WIDTH = 24


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels() -> list[dict[str, Any]]:
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


def _exprs() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target."""
    return [(panel["title"], target["expr"]) for panel in _panels() for target in panel["targets"]]


def _as_prometheus_sees_it(expr: str) -> str:
    """Grafana's variables replaced as Grafana would before sending the query."""
    return expr.replace("$__rate_interval", "5m")


def test_the_dashboard_is_well_formed() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "coherence-sql"
    assert dashboard["title"]
    assert [variable["name"] for variable in dashboard["templating"]["list"]] == ["datasource"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        columns, lines = range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        mine = {(x, y) for x in columns for y in lines}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
    for panel in _panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_every_panel_query_parses(tmp_path: Path) -> None:
    """Each query as a recording rule: promtool parses it as Prometheus would."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
    rules = [
        {"record": f"dashboard:panel_{number}", "expr": _as_prometheus_sees_it(expr)}
        for number, (_, expr) in enumerate(_exprs())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


async def test_every_panel_names_only_metrics_the_code_exports(clean_dsn: str, tmp_path: Path) -> None:
    exported = await scrape_everything(clean_dsn, tmp_path)
    unknown = {(title, name) for title, expr in _exprs() for name in names_in(expr) if not exported.knows(name)}
    assert unknown == set()
    assert all(names_in(expr) for _, expr in _exprs()), "a query that names no coherence_sql metric"


def test_the_dashboard_shows_latency_quantiles_per_query_and_what_every_alert_watches() -> None:
    exprs = [expr for _, expr in _exprs()]
    for quantile in ("0.5", "0.95", "0.99"):
        pattern = (
            rf"histogram_quantile\({quantile}, sum by \(query, le\) \(rate\(coherence_sql_query_duration_seconds_bucket"
        )
        assert any(re.search(pattern, expr) for expr in exprs), quantile
    shown = set().union(*(names_in(expr) for expr in exprs))
    groups = yaml.safe_load(RULES.read_text())["groups"]
    watched = {name for group in groups for rule in group["rules"] for name in names_in(rule["expr"])}
    assert watched - shown == set()
