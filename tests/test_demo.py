"""The README's main job: `coherence-sql demo` end to end, twice (the second run changes nothing)."""

from __future__ import annotations

import json
import subprocess
import sys

from coherence_sql.resources import example_snapshot
from coherence_sql.transfer.snapshot import load_snapshot


def run_demo(dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coherence_sql.cli", "--database-url", dsn, "demo"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_migrates_backfills_verifies_and_prints_a_clean_status(clean_dsn: str) -> None:
    snapshot = load_snapshot(example_snapshot())
    first = run_demo(clean_dsn)
    assert first.returncode == 0, first.stderr
    assert f"{len(snapshot.projects)} projects, {len(snapshot.edges)} edges" in first.stdout
    assert "3. backfill: " in first.stdout
    assert "0 already present" in first.stdout
    assert "4. verify: 0 of " in first.stdout
    status = json.loads(first.stdout[first.stdout.index("{") :])
    assert status["phase"] == "dual-write"
    assert status["postgres"]["reachable"] is True
    assert status["shadow"]["compared"] > 0
    assert status["shadow"]["mismatched"] == 0
    assert status["journal"]["pending"] == 0

    second = run_demo(clean_dsn)
    assert second.returncode == 0, second.stderr
    assert "3. backfill: " in second.stdout
    assert " 0 inserted" in second.stdout
    assert "4. verify: 0 of " in second.stdout
