"""`coherence-sql reconcile` never guesses the database: the journal belongs to a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from coherence_sql.cutover.journal import WriteJournal
from tests.cutover.test_cutover_stores import task


def test_reconcile_without_a_database_refuses_and_keeps_the_journal(tmp_path: Path) -> None:
    journal = WriteJournal(tmp_path / "journal.jsonl")
    journal.append("tasks", "create_task", {"task": task()})
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["COHERENCE_SQL_DATA_DIR"] = str(tmp_path / "never-started")
    result = subprocess.run(
        [sys.executable, "-m", "coherence_sql.cli", "reconcile", "--journal", str(journal.path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "reconcile needs the PostgreSQL the API dual-writes to: --database-url or DATABASE_URL" in result.stderr
    assert journal.pending() == 1
    assert not (tmp_path / "never-started").exists()
