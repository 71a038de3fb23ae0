"""`coherence-sql reconcile` and `coherence-sql store-status`: the dual-write journal and the
migration's live state, for operators."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from coherence_sql.db import redact, resolve_dsn
from coherence_sql.errors import ConfigurationError
from coherence_sql.migration.config import MigrationSettings
from coherence_sql.migration.service import default_journal_path, open_migrating_stores


def register(subparsers: Any) -> None:
    reconcile = subparsers.add_parser(
        "reconcile",
        help="replay dual-writes that did not reach PostgreSQL (the write journal), in order",
    )
    reconcile.add_argument(
        "--journal",
        type=Path,
        default=None,
        help="the journal (default: $COHERENCE_SQL_JOURNAL, else ~/.local/share/coherence-sql/write-journal.jsonl)",
    )
    reconcile.set_defaults(run=_reconcile)


async def _reconcile(args: argparse.Namespace) -> int:
    if not (args.database_url or os.environ.get("DATABASE_URL", "").strip()):
        # The journal belongs to a real server; replaying it into the embedded default would
        # empty it into the wrong database.
        raise ConfigurationError(
            "reconcile needs the PostgreSQL the API dual-writes to: --database-url or DATABASE_URL"
        )
    dsn = resolve_dsn(args.database_url)
    journal = args.journal or default_journal_path()
    settings = MigrationSettings(dual_write=True, journal_path=journal, database_url=dsn)
    async with open_migrating_stores(settings, reconcile_interval_s=None, drain_on_start=False) as stores:
        assert stores.core.journal is not None
        before = stores.core.journal.pending()
        report = await stores.reconcile()
        rejected = list(stores.core.stats.recent_rejections)
    print(f"database: {redact(dsn)}")
    print(f"journal:  {journal} ({before} pending)")
    print(
        json.dumps(
            {
                "applied": report.applied,
                "already_applied": report.already_applied,
                "rejected": rejected,
                "remaining": report.remaining,
                "error": report.error,
            },
            indent=2,
        )
    )
    return 0 if report.complete else 1
