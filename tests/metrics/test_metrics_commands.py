"""The operator's side: `metrics show`, `metrics serve` scraped over HTTP as Prometheus would,
and `verify --metrics-file` writing the node_exporter textfile."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from coherence_sql.cli import main
from coherence_sql.cutover.service import CutoverStores
from coherence_sql.metrics import exposition, metrics_app, register_cutover, register_server
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import write_snapshot
from tests.metrics.scrape import parse, scrape, value

VERIFY_FAMILIES = {
    "coherence_sql_verify_success",
    "coherence_sql_verify_differences",
    "coherence_sql_verify_last_run_timestamp_seconds",
}


async def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(args))  # main runs its own event loop
    out, err = capsys.readouterr()
    return code, out, err


async def test_show_prints_the_server_metrics_once(clean_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = await run(capsys, "metrics", "show", "--database-url", clean_dsn, "--data-directory", "remote")
    assert code == 0
    names, samples = parse(out)
    assert "coherence_sql_server_replication_lag_seconds" in names
    assert value(samples, "coherence_sql_server_up") == 1
    size = value(samples, "coherence_sql_server_database_size_bytes")
    assert size is not None
    assert size > 0


def test_serve_answers_prometheus_over_http_and_stops_on_sigterm(clean_dsn: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    server = subprocess.Popen(
        [sys.executable, "-m", "coherence_sql.cli", "metrics", "serve", "--port", "0", "--database-url", clean_dsn],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once it listens
        found = re.fullmatch(r"serving metrics on (http://127\.0\.0\.1:\d+/metrics)\n", line)
        assert found, line + (server.stderr.read() if server.poll() is not None and server.stderr else "")
        with urllib.request.urlopen(found.group(1), timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            _, samples = parse(response.read().decode("utf-8"))
        assert value(samples, "coherence_sql_server_up") == 1
    finally:
        server.terminate()
        assert server.wait(timeout=15) == 0
        if server.stdout:
            server.stdout.close()
        if server.stderr:
            server.stderr.close()


async def test_verify_writes_success_and_differences_to_the_textfile(
    clean_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics_file = tmp_path / "textfile" / "coherence_sql_verify.prom"
    metrics_file.parent.mkdir()
    empty, some = tmp_path / "empty.json", tmp_path / "some.json"
    write_snapshot(empty, sample_snapshot(projects=0, edges=0, contributors=0, assets=0, contributions=0, tasks=0))
    write_snapshot(some, sample_snapshot(projects=3, edges=2, contributors=2, assets=1, contributions=2, tasks=1))
    common = ["--database-url", clean_dsn, "--journal", str(tmp_path / "journal.jsonl")]

    code, _, _ = await run(capsys, "verify", str(empty), *common, "--metrics-file", str(metrics_file))
    names, samples = parse(metrics_file.read_text())
    assert code == 0
    assert names == VERIFY_FAMILIES
    assert (value(samples, "coherence_sql_verify_success"), value(samples, "coherence_sql_verify_differences")) == (
        1,
        0,
    )
    first_run = value(samples, "coherence_sql_verify_last_run_timestamp_seconds")
    assert first_run is not None
    assert first_run > 1.7e9

    code, _, _ = await run(capsys, "verify", str(some), *common, "--metrics-file", str(metrics_file))
    _, samples = parse(metrics_file.read_text())
    assert code == 1
    assert value(samples, "coherence_sql_verify_success") == 0
    differences = value(samples, "coherence_sql_verify_differences")
    assert differences is not None
    assert differences >= 11
    assert [p.name for p in metrics_file.parent.iterdir()] == [metrics_file.name]  # no temporary left


async def test_a_verify_that_cannot_run_writes_failure_without_a_difference_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics_file = tmp_path / "verify.prom"
    snapshot = tmp_path / "empty.json"
    write_snapshot(snapshot, sample_snapshot(projects=0, edges=0, contributors=0, assets=0, contributions=0, tasks=0))
    code, _, err = await run(
        capsys, "verify", str(snapshot), "--database-url", "postgresql://nobody:S3cretPw@127.0.0.1:9/none",
        "--journal", str(tmp_path / "journal.jsonl"), "--metrics-file", str(metrics_file),
    )  # fmt: skip
    _, samples = parse(metrics_file.read_text())
    assert code == 2
    assert "S3cretPw" not in err
    assert value(samples, "coherence_sql_verify_success") == 0
    assert value(samples, "coherence_sql_verify_differences") is None


async def test_an_unwritable_metrics_file_is_a_typed_error(
    clean_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = tmp_path / "empty.json"
    write_snapshot(snapshot, sample_snapshot(projects=0, edges=0, contributors=0, assets=0, contributions=0, tasks=0))
    code, _, err = await run(
        capsys, "verify", str(snapshot), "--database-url", clean_dsn, "--journal", str(tmp_path / "journal.jsonl"),
        "--metrics-file", str(tmp_path / "missing-dir" / "verify.prom"),
    )  # fmt: skip
    assert code == 2
    assert "MetricsFileError: cannot write the metrics file" in err
    assert "missing-dir" in err


async def test_the_asgi_app_serves_the_registry() -> None:
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}
    await metrics_app()(scope, receive, send)
    assert sent[0]["status"] == 200
    body = sent[1]["body"]
    assert isinstance(body, bytes)
    names, _ = parse(body.decode("utf-8"))
    assert names == scrape()[0]
    assert {"coherence_sql_query_duration_seconds", "coherence_sql_pool_size"} <= names


async def test_promtool_accepts_the_whole_exposition(
    reading_postgres_registry: bytes,
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    checked = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=reading_postgres_registry,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


@pytest.fixture
async def reading_postgres_registry(cutover_stores: CutoverStores, clean_dsn: str) -> bytes:
    """The package registry plus a cut-over and a server collector, after some real calls."""
    await cutover_stores.graph.get_project("npm", "react")
    registry = CollectorRegistry()
    register_cutover(cutover_stores, registry)
    register_server(clean_dsn, registry=registry)
    text = await asyncio.to_thread(lambda: exposition(registry) + exposition())
    assert b"coherence_sql_cutover_phase" in text
    assert b"coherence_sql_server_up 1.0" in text
    return text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["metrics", "serve", "--port", "70000"], "--port: must be a port from 0 to 65535, got 70000"),
        (["metrics", "serve", "--port", "http"], "--port: must be a port number, got 'http'"),
        (["metrics", "show", "--timeout", "-1"], "--timeout: must be a positive number of seconds, got -1"),
        (["health", "--timeout", "0"], "--timeout: must be a positive number of seconds, got 0"),
        (["health", "--timeout", "nan"], "--timeout: must be a positive number of seconds, got nan"),
        # node_exporter reads *.prom only: any other name is written after every run and never seen.
        (["verify", "x.json", "--metrics-file", "/tmp/verify.txt"], "--metrics-file: must end in .prom"),
    ],
)
def test_a_port_or_timeout_out_of_range_is_a_usage_error_not_a_traceback_or_an_outage(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was: an OverflowError traceback (serve), a scrape that failed as "server down" (show), and
    # "PostgreSQL does not answer" (health) for what was the operator's typo.
    assert main([*argv, "--database-url", "postgresql://nobody@127.0.0.1:1/none"]) == 2
    assert message in capsys.readouterr().err
