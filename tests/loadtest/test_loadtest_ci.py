"""The CI load test: `coherence-sql loadtest` for a few seconds on the PostgreSQL stores (and the
cut-over stores for the agent runners). It fails on any failed, dropped or unfinished request, a
lost update or a double claim; never on a time figure (the machine is shared and noisy)."""

from __future__ import annotations

import json

import pytest

from coherence_sql.cli import main
from coherence_sql.loadtest.operations import GROUPS

SMALL = "projects=1000,edges=3000,contributors=100,assets=100,contributions=1000,tasks=300"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["loadtest", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_the_api_mix_on_postgres_runs_without_a_failed_request(
    clean_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = _run(
        capsys, "mixed", "--database-url", clean_dsn, "--rate", "200", "--duration", "8", "--dataset", SMALL
    )
    (leg,) = data["legs"]
    result = leg["result"]
    assert result["errors"] == {}, result["error_examples"]
    assert (result["dropped"], result["unfinished"]) == (0, 0)
    assert result["completed"] == result["planned"] == 1600
    assert set(result["latency_ms_by_operation"]) == {op for group in GROUPS.values() for op in group}
    assert result["latency_ms"]["count"] == 1600
    # Each request's service time (its own cost) is part of its latency: no percentile above it.
    assert set(result["service_ms_by_operation"]) == set(result["latency_ms_by_operation"])
    for name, service in result["service_ms_by_operation"].items():
        latency = result["latency_ms_by_operation"][name]
        assert service["count"] == latency["count"]
        assert all(service[p] <= latency[p] for p in ("p50", "p95", "p99", "p99.9", "max")), name
    assert sum(i["completed"] for i in result["timeline"]) == 1600
    assert leg["dataset"]["load"]["rows_inserted"] > 5000  # loaded by the backfill, then reused:
    assert (code, data["ok"], leg["failed"]) == (0, True, False)
    code, again = _run(
        capsys, "mixed", "--database-url", clean_dsn, "--rate", "50", "--duration", "1", "--dataset", SMALL
    )
    assert again["legs"][0]["dataset"]["load"]["rows_inserted"] == 0
    assert code == 0


@pytest.mark.slow
def test_agent_runners_lose_no_update_and_claim_no_task_twice(
    clean_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = _run(
        capsys,
        "agent-runners",
        "--database-url",
        clean_dsn,
        "--stores",
        "postgres,cutover",
        "--runners",
        "16",
        "--tasks",
        "200",
    )
    assert [leg["target"] for leg in data["legs"]] == ["postgres", "cutover:dual-write:reads-100%"]
    for leg in data["legs"]:
        result = leg["result"]
        assert result["errors"] == {}, result["error_examples"]
        assert (result["lost_updates"], result["double_claims"], result["never_claimed"]) == (0, 0, 0)
        assert result["checked"]
        assert result["correct"]
        assert result["tasks_created"] == 200
        assert result["claims"] >= 200
        assert result["updates"] == result["claims"] * 4
    assert leg["cutover"]["journaled"] == 0
    assert code == 0


def test_bulk_index_writes_every_project_once(clean_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _run(
        capsys, "bulk-index", "--database-url", clean_dsn, "--projects", "600", "--batch-size", "200", "--writers", "2"
    )
    result = data["legs"][0]["result"]
    assert (result["projects_after"] - result["projects_before"], result["all_indexed"], code) == (600, True, 0)
    assert set(result["passes"]) == {"insert", "upsert"}
    assert result["edges"] == 600 * 3 - sum(1 for i in range(600) for k in range(3) if (i * 7 + k + 1) % 600 == i)


def test_memory_needs_no_database_and_a_bad_mix_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    tiny = "projects=10,edges=10,contributors=2,assets=2,contributions=2,tasks=2"
    code, data = _run(
        capsys,
        "mixed",
        "--stores",
        "memory",
        "--mix",
        "noop=1",
        "--rate",
        "500",
        "--duration",
        "0.5",
        "--dataset",
        tiny,
    )
    assert code == 0
    assert data["legs"][0]["result"]["completed"] == 250
    code, data = _run(capsys, "mixed", "--stores", "memory", "--mix", "reads=1")
    assert code == 2
    assert data["error"]["type"] == "InvalidValueError"
    assert "reads=1" in data["error"]["message"]


def test_the_text_report_is_a_table_with_the_machines_load(capsys: pytest.CaptureFixture[str]) -> None:
    tiny = "projects=10,edges=10,contributors=2,assets=2,contributions=2,tasks=2"
    code = main(["loadtest", "mixed", "--stores", "memory", "--mix", "noop=1", "--rate", "200", "--duration", "0.2",
                 "--dataset", tiny, "--loop", "asyncio,uvloop"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "loadtest mixed" in out
    assert "p99.9 ms" in out
    rows = [line.split("│")[1:4] for line in out.splitlines() if line.startswith("│ memory")]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["memory", "asyncio", "200"],
        ["memory", "uvloop", "200"],
    ]
    assert "load average before" in out
    # Beside each leg, its operations' own cost: here the one operation of the mix, once per loop.
    assert out.count("service time per operation, ms (memory,") == 2
    assert len([line for line in out.splitlines() if line.startswith("│ noop ")]) == 2


def test_a_target_that_cannot_start_fails_the_run_with_its_error_and_no_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dsn = "postgresql://loadtester:S3cret-pw@127.0.0.1:1/nowhere"
    code = main(["loadtest", "agent-runners", "--database-url", dsn, "--stores", "cutover", "--phase",
                 "postgres-primary", "--runners", "2", "--tasks", "2", "--json"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 1
    data = json.loads(out.out)
    (leg,) = data["legs"]
    assert (data["ok"], leg["failed"], leg["error"]["type"]) == (False, True, "DatabaseUnavailableError")
    assert "S3cret-pw" not in out.out + out.err
