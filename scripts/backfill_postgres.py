#!/usr/bin/env python3
"""Backfill a JSON snapshot of the in-memory stores into PostgreSQL (the plan's backfill script).

A thin entry point: `python scripts/backfill_postgres.py ARGS` is `coherence-sql backfill ARGS`
(`--database-url DSN` may come anywhere among ARGS). See docs/runbook.md.
"""

from __future__ import annotations

import sys

from coherence_sql.cli import main

if __name__ == "__main__":
    sys.exit(main(["backfill", *sys.argv[1:]]))
